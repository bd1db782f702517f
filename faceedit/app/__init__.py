"""``faceedit serve``: the web page (Gradio) over the public editing API.

- :mod:`~faceedit.app.studio`: the *Avatar studio* (first tab): seeded avatars on the
  shipped avatar models, the evaluation judge's readings, each edit beside its ground
  truth with its region gain, and a clip editor.
- :mod:`~faceedit.app.photo`: the official photo models in the cache, or the commands
  that fetch them.
- :mod:`~faceedit.app.backend`: models, prepared photos, edits, each session's files.
- :mod:`~faceedit.app.access`: what the model box accepts and what its errors may say.
- :mod:`~faceedit.app.page`: the page itself and :func:`serve`.
"""

from faceedit.app.access import AccessPolicy, ModelRefused
from faceedit.app.backend import (
    SELFTEST,
    Backend,
    Session,
    UploadError,
    demo_models_dir,
    draw_box,
    sample_photo,
)
from faceedit.app.page import build_app, serve

__all__ = [
    "SELFTEST",
    "AccessPolicy",
    "Backend",
    "ModelRefused",
    "Session",
    "UploadError",
    "build_app",
    "demo_models_dir",
    "draw_box",
    "sample_photo",
    "serve",
]
