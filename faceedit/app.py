"""``faceedit serve``: a web demo (Gradio) over the public editing API.

Upload a photo (or take the bundled sample), choose the method (latent transformers, Yao
et al. ICCV 2021; or AttGAN, He et al. TIP 2019) and the model, move one slider per
attribute: the edited photo appears beside the original when a slider is released, with
the detected face box, the aligned crop and a PNG download.

The page is a thin layer: faces are found and aligned by :func:`faceedit.align_face`, the
models come from :func:`faceedit.editing.pipeline.build_editor` (any method of
:data:`faceedit.editing.methods.METHODS`), edits run through its
:class:`~faceedit.editing.pipeline.FaceEditor` on the cached code, and the crop goes back
with :meth:`AlignedFace.paste_back`. What the app adds is caching for interactivity: a
photo is detected, aligned and inverted once; each slider release only re-runs the edit
and the paste-back.

faceedit's shipped models are trained on 64 px avatars, not on photos, so the "bundled"
photo models are tiny random-weight ones built once into the cache; the page says so.

Every error a user can cause (not an image, no face, a file over the size limit, a bad
model path) is shown as a one-line message on the page, never as a traceback. Requests
are queued (one edit at a time on the shared models), so several tabs can use the page.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceedit.editing.methods import METHODS
from faceedit.errors import FaceeditError

log = logging.getLogger("faceedit.app")

BUNDLED = "bundled demo model"
# method -> its model in demo_models_dir()
BUNDLED_DIRS = {"latent": "latent", "attgan": "attgan"}
MAX_MODELS = 4  # models kept loaded at once
MAX_SLIDERS = 40  # CelebA has 40 attributes; unused sliders are hidden
STRENGTH = 2.0
DEMO_ATTRS_LATENT = ("Smiling", "Eyeglasses", "Young", "Male")
DEMO_VERSION = 1
SAMPLE_PHOTO = "grace_hopper.jpg"


class UploadError(FaceeditError):
    """An upload the page refuses (too large, missing)."""


def sample_photo() -> Path:
    """The bundled sample photo (matplotlib's grace_hopper.jpg, available offline)."""
    import matplotlib

    return Path(matplotlib.get_data_path(), "sample_data", SAMPLE_PHOTO)


# ------------------------------------------------------------------- demo models


def demo_models_dir() -> Path:
    """Build (once) and cache tiny random-weight models: a latent bundle and an AttGAN.

    Returns:
        A directory with ``latent/`` (a bundle: 32 px StyleGAN2, latent transformers,
        classifier) and ``attgan/`` (a 32 px AttGAN in the own format).
    """
    import torch

    from faceedit.hub import cache_dir
    from faceedit.nets.attgan import (
        AttGAN,
        AttGANConfig,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )
    from faceedit.nets.latent import (
        LatentClassifier,
        LatentClassifierConfig,
        LatentTransformer,
        LatentTransformerConfig,
    )
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    root = cache_dir() / f"web-demo-v{DEMO_VERSION}"
    if (root / "done").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # built beside its final place and renamed: a half-built cache is never used
    tmp = Path(tempfile.mkdtemp(prefix=".web-demo-", dir=root.parent))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G = StyleGAN2Generator(
            StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=32, channel_base=256, channel_max=32)
        ).eval()
        G.estimate_w_avg(num_samples=500, seed=0)
        G.save_pretrained(tmp / "latent" / "generator", metadata={"note": "random weights"})
        for name in DEMO_ATTRS_LATENT:
            t = LatentTransformer(
                LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name=name)
            )
            with torch.no_grad():  # scaled up so that a slider visibly changes the face
                for p in t.parameters():
                    p.mul_(4.0)
            t.save_pretrained(tmp / "latent" / "transformers" / f"tnet_{name}")
        C = LatentClassifier(
            LatentClassifierConfig(
                num_ws=G.num_ws,
                w_dim=G.w_dim,
                hidden=(16,),
                n_attrs=len(DEMO_ATTRS_LATENT),
                attr_names=DEMO_ATTRS_LATENT,
            )
        )
        C.save_pretrained(tmp / "latent" / "classifier")
        bundle = {
            "method": "latent",
            "generator": "generator",
            "transformers": "transformers",
            "classifier": "classifier",
        }
        (tmp / "latent" / "bundle.json").write_text(json.dumps(bundle, indent=2))
        g = AttGANGeneratorConfig(enc_dim=4, dec_dim=4, enc_layers=3, dec_layers=3, img_size=32)
        d = AttGANDiscriminatorConfig(dim=4, n_layers=3, fc_dim=8, img_size=32)
        AttGAN(AttGANConfig(G=g, D=d)).eval().save_pretrained(tmp / "attgan")
    (tmp / "done").write_text("random weights, built by faceedit serve\n")
    try:
        os.replace(tmp, root)
    except OSError:  # another process built it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return root


# ------------------------------------------------------------------- the work


@dataclass(eq=False)
class Session:
    """One photo prepared for editing with one model (kept in the browser tab's state).

    Attributes:
        key: identifies photo + method + model, for the inversion cache.
        name: the photo's name, for messages and the download.
        original: the photo, RGB ``uint8 [H, W, 3]``.
        face: the aligned face (:class:`~faceedit.faces.AlignedFace`).
        attributes: what the model edits, in slider order.
    """

    key: str
    name: str
    source: str
    original: np.ndarray
    face: Any
    method: str
    model: str
    attributes: list[str] = field(default_factory=list)
    crop: Any = None  # the aligned crop the model edits, uint8 [S, S, 3]
    notes: list[str] = field(default_factory=list)  # warnings for the page (other domain)


class Backend:
    """Models and inversions shared by every tab; all model calls hold one lock."""

    def __init__(
        self,
        steps: int = 40,
        max_upload_mb: float = 10.0,
        workdir: Path | None = None,
        device: str = "cpu",
    ):
        self.steps = steps
        self.device = device
        self.max_upload_bytes = int(max_upload_mb * 1024**2)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-serve-"))
        self._editors: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._codes: OrderedDict[str, Any] = OrderedDict()  # prepared photos (faces, codes)
        self._lock = threading.RLock()

    # models ----------------------------------------------------------------
    def model_path(self, method: str, model: str | None) -> str:
        text = (model or "").strip()
        if not text or text == BUNDLED:
            if method not in BUNDLED_DIRS:
                raise FaceeditError(f"no bundled demo model for method {method}: give a model")
            return str(demo_models_dir() / BUNDLED_DIRS[method])
        return text

    def editor(self, method: str, model: str | None):
        """A cached :class:`~faceedit.editing.pipeline.FaceEditor`."""
        from faceedit.editing.pipeline import build_editor

        path = self.model_path(method, model)
        with self._lock:
            key = (method, path)
            if key not in self._editors:
                self._editors[key] = build_editor(
                    method, path, device=self.device, invert="auto", steps=self.steps, seed=0
                )
                while len(self._editors) > MAX_MODELS:  # bounded memory, whatever users type
                    self._editors.popitem(last=False)
            self._editors.move_to_end(key)
            return self._editors[key]

    # photos -----------------------------------------------------------------
    def read_upload(self, path: str | os.PathLike | None) -> tuple[np.ndarray, str]:
        from faceedit.data.images import read_image
        from faceedit.errors import ImageError

        if not path:
            raise UploadError("choose a photo first (upload one or use the sample)")
        path = Path(path)
        name = path.name
        size = path.stat().st_size if path.is_file() else 0
        if size > self.max_upload_bytes:
            raise UploadError(
                f"{name}: {size / 1024**2:.1f} MB is over the "
                f"{self.max_upload_bytes / 1024**2:g} MB upload limit"
            )
        try:
            return read_image(path.read_bytes(), min_size=16), name
        except ImageError as e:  # name the file as the user knows it
            raise ImageError(str(e).replace("<uploaded bytes>", name, 1)) from None

    def prepare(self, path: str | os.PathLike | None, method: str, model: str | None) -> Session:
        """Read one photo, find and align its face (an avatar model takes the whole
        avatar image) and invert it, once (:meth:`FaceEditor.prepare`)."""
        import warnings

        from faceedit.faces.detect import NoFaceError

        rgb, name = self.read_upload(path)
        with self._lock:
            editor = self.editor(method, model)
            digest = hashlib.sha1(rgb.tobytes()).hexdigest()[:16]
            key = f"{digest}:{method}:{self.model_path(method, model)}"
            notes: list[str] = []
            if key not in self._codes:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        self._codes[key] = editor.prepare(rgb)
                    except NoFaceError:
                        raise NoFaceError(f"{name}: no face found in this photo") from None
                notes = [str(w.message).replace("<image>", name) for w in caught]
                while len(self._codes) > 32:
                    self._codes.popitem(last=False)
            photo = self._codes[key]
        face = photo.faces[0]
        if face is not None:
            face.source = name
        session = Session(
            key, name, str(path), rgb, face, method, model or BUNDLED, editor.attributes
        )
        session.crop, session.notes = photo.crops[0], notes
        return session

    def edit(self, session: Session, strengths: dict[str, float]) -> np.ndarray:
        """The photo with the edits applied to its face, RGB ``uint8 [H, W, 3]``."""
        edits = {k: float(v) for k, v in strengths.items() if abs(float(v)) > 1e-6}
        if not edits:
            return session.original
        with self._lock:
            editor = self.editor(session.method, session.model)
            edits = editor.check_edits(edits)
            photo = self._codes.get(session.key)
            if photo is None:  # evicted: prepare again
                photo = self._codes[session.key] = editor.prepare(session.original)
            return editor.render(photo, edits).image

    def edit_video(
        self, path: str | os.PathLike | None, method: str, model: str | None, edits: dict
    ):
        """Edit a short clip with :class:`~faceedit.editing.video.VideoEditor` (tqdm bars
        show its progress); returns its :class:`~faceedit.editing.video.VideoEditReport`."""
        from faceedit.editing.video import VideoEditor

        if not path:
            raise UploadError("choose a video first")
        path = Path(path)
        size = path.stat().st_size if path.is_file() else 0
        if size > self.max_upload_bytes:
            raise UploadError(
                f"{path.name}: {size / 1024**2:.1f} MB is over the "
                f"{self.max_upload_bytes / 1024**2:g} MB upload limit"
            )
        edits = {k: float(v) for k, v in edits.items() if abs(float(v)) > 1e-6}
        out = Path(tempfile.mkdtemp(dir=self.workdir)) / f"{path.stem}_edited.mp4"
        with self._lock:
            editor = self.editor(method, model)
            video = VideoEditor(editor, sigma=2.0)
            return video.run(path, out, edits, settings={"model": self.model_path(method, model)})

    def save(self, rgb: np.ndarray, name: str) -> str:
        """Write the result as a PNG for download; returns its path."""
        from faceedit.data.images import write_image

        out = Path(tempfile.mkdtemp(dir=self.workdir)) / f"{Path(name).stem}_edited.png"
        write_image(out, rgb)
        return str(out)


def draw_box(rgb: np.ndarray, box: np.ndarray, quad: np.ndarray | None = None) -> np.ndarray:
    """The photo with the detector's box (green) and the crop's quad (orange) drawn."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 250))
    draw.rectangle([float(v) for v in box], outline=(40, 220, 60), width=width)
    if quad is not None:
        pts = [tuple(map(float, p)) for p in quad]
        draw.line(pts + [pts[0]], fill=(255, 150, 0), width=width)
    return np.asarray(img)


def _enlarge(crop: np.ndarray, size: int = 256) -> np.ndarray:
    """A small model's crop (32 px) scaled up with visible pixels, for display only."""
    from PIL import Image

    if crop.shape[0] >= size:
        return crop
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.NEAREST))


# ------------------------------------------------------------------- the page

HEADER = """# faceedit: edit facial attributes

Upload a photo (or use the sample), pick a method and a model, then move a slider: the
edited photo appears when you release it. Strengths go from -2 (remove) to +2 (add)."""

DEMO_NOTE = """**Note:** the models faceedit ships are trained on avatars (see `faceedit demo`),
not on photos, so the *bundled demo model* is a tiny network with **random weights**: the
page works end to end, but the edited face is noise. Give the path of a local checkpoint
or bundle for real edits."""


def build_app(backend: Backend | None = None, method: str = "latent", model: str | None = None):
    """The Gradio ``Blocks`` app (not launched); ``method``/``model`` are the defaults."""
    import gradio as gr

    backend = backend or Backend()

    def _fail(e: Exception) -> str:
        if isinstance(e, FaceeditError):
            return f"Error: {e}"
        log.exception("unexpected error in the web demo")
        return "Error: something went wrong on the server; the details are in its log."

    def _slider_updates(attributes: list[str]) -> list:
        return [
            gr.update(visible=i < len(attributes), label=attributes[i], value=0)
            if i < len(attributes)
            else gr.update(visible=False, value=0)
            for i in range(MAX_SLIDERS)
        ]

    def on_photo(path, method, model):
        try:
            session = backend.prepare(path, method, model)
        except Exception as e:  # noqa: BLE001 - shown on the page, never as a traceback
            return [None, _fail(e), None, None, None, None, None] + [gr.update()] * MAX_SLIDERS
        face = session.face
        if face is None:  # an avatar model: the whole image is the face
            found = "the whole avatar image is edited"
            boxed = session.original
        else:
            found = f"face found (score {face.score:.2f})"
            boxed = draw_box(session.original, face.box, face.quad)
        status = f"{session.name}: {found}; {len(session.attributes)} attributes to edit."
        if session.notes:
            status += " Warning: " + " ".join(session.notes)
        return [
            session,
            status,
            session.original,
            session.original,
            boxed,
            _enlarge(session.crop),
            None,
        ] + _slider_updates(session.attributes)

    def on_sample(method, model):
        return on_photo(str(sample_photo()), method, model)

    def on_edit(session, *values):
        if session is None:
            return None, "Error: choose a photo first (upload one or use the sample)", None
        strengths = dict(zip(session.attributes, values, strict=False))
        try:
            out = backend.edit(session, strengths)
            path = backend.save(out, session.name)
        except Exception as e:  # noqa: BLE001
            return gr.update(), _fail(e), gr.update()
        changed = ", ".join(f"{k} {v:+.1f}" for k, v in strengths.items() if v) or "none"
        return out, f"Edited: {changed}", path

    def on_video(path, method_, model_, attribute, strength, progress=gr.Progress(track_tqdm=True)):
        try:
            progress(0, desc="analysing the clip")
            report = backend.edit_video(path, method_, model_, {attribute or "": strength})
        except Exception as e:  # noqa: BLE001
            return None, None, _fail(e)
        # the server's temporary path means nothing to the user: show the file name
        summary = report.summary().replace(str(report.output), report.output.name)
        return str(report.output), str(report.output), f"Done: {summary}"

    def on_attributes(method_, model_):
        try:
            names = backend.editor(method_, model_).attributes
        except Exception as e:  # noqa: BLE001
            return gr.update(choices=[], value=None), _fail(e)
        return gr.update(choices=names, value=names[0] if names else None), ""

    def on_reset(session):
        original = None if session is None else session.original
        return [original, "reset", None] + [gr.update(value=0)] * MAX_SLIDERS

    with gr.Blocks(title="faceedit", analytics_enabled=False) as app:
        gr.Markdown(HEADER)
        gr.Markdown(DEMO_NOTE, elem_id="demo-note")
        session = gr.State(None)
        with gr.Row():
            upload = gr.File(
                label="Photo (JPEG, PNG, ...)",
                file_types=["image"],
                type="filepath",
                elem_id="upload",
            )
            with gr.Column():
                sample = gr.Button(f"Use the sample photo ({SAMPLE_PHOTO})", elem_id="sample")
                method = gr.Radio(list(METHODS), value=method, label="Method", elem_id="method")
                model = gr.Textbox(
                    value=model or BUNDLED,
                    label="Model: the bundled demo model, or a local checkpoint / bundle path",
                    elem_id="model",
                )
        with gr.Tab("Photo"):
            status = gr.Markdown("Choose a photo to start.", elem_id="status")
            with gr.Row():
                original = gr.Image(
                    label="Original", format="png", interactive=False, elem_id="original"
                )
                result = gr.Image(label="Edited", format="png", interactive=False, elem_id="result")
            with gr.Row():
                sliders = [
                    gr.Slider(
                        -STRENGTH,
                        STRENGTH,
                        value=0,
                        step=0.1,
                        label=f"attribute {i}",
                        visible=False,
                        elem_id=f"slider-{i}",
                        min_width=200,
                    )
                    for i in range(MAX_SLIDERS)
                ]
            with gr.Row():
                reset = gr.Button("Reset", elem_id="reset")
                download = gr.File(label="Download the result (PNG)", elem_id="download")
            with gr.Row():
                boxed = gr.Image(label="Detected face (box, crop)", format="png", interactive=False)
                crop = gr.Image(label="Aligned crop", format="png", interactive=False)
        with gr.Tab("Video"):
            gr.Markdown(
                "Edit a short clip (a few seconds) with the method and model chosen above: "
                "the face is tracked and smoothed over time, the audio kept."
            )
            with gr.Row():
                video_in = gr.File(label="Video (MP4, MKV, MOV, ...)", type="filepath",
                                   file_types=["video"], elem_id="video-upload")  # fmt: skip
                with gr.Column():
                    attribute = gr.Dropdown(label="Attribute", choices=[], elem_id="video-attr")
                    strength = gr.Slider(-STRENGTH, STRENGTH, value=1.0, step=0.1,
                                         label="Strength", elem_id="video-strength")  # fmt: skip
                    run_video = gr.Button("Edit the video", elem_id="video-run")
            video_status = gr.Markdown("", elem_id="video-status")
            with gr.Row():
                video_out = gr.Video(label="Edited video", elem_id="video-result")
                video_file = gr.File(label="Download the edited video", elem_id="video-download")

        prepared = [session, status, original, result, boxed, crop, download, *sliders]
        upload.upload(on_photo, [upload, method, model], prepared)
        sample.click(on_sample, [method, model], prepared)

        def on_model(current, m, mod):
            # a new method or model: prepare the same photo again (its sliders change)
            if current is None:
                return [None, "Choose a photo to start."] + [gr.update()] * (len(prepared) - 2)
            return on_photo(current.source, m, mod)

        method.change(on_model, [session, method, model], prepared)
        model.submit(on_model, [session, method, model], prepared)
        run_video.click(
            on_video,
            [video_in, method, model, attribute, strength],
            [video_out, video_file, video_status],
        )
        for trigger in (app.load, method.change, model.submit):
            trigger(on_attributes, [method, model], [attribute, video_status])
        for slider in sliders:
            slider.release(on_edit, [session, *sliders], [result, status, download])
        reset.click(on_reset, [session], [result, status, download, *sliders])
    # one edit at a time on the shared models; other requests wait in the queue
    app.queue(default_concurrency_limit=1, max_size=64)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 10.0,
    steps: int = 40,
    model: str | None = None,
    method: str = "latent",
    device: str = "cpu",
) -> None:
    """Build and run the web demo (blocks until interrupted); models run on ``device``."""
    backend = Backend(steps=steps, max_upload_mb=max_upload_mb, device=device)
    if model:
        backend.editor(method, model)  # fail early, with a clear message, on a bad path
    app = build_app(backend, method=method, model=model)
    app.launch(
        server_name=host,
        server_port=port,
        max_file_size=f"{max_upload_mb:g}mb",
        show_api=False,
        share=False,
        inbrowser=False,
        quiet=True,
        allowed_paths=[str(backend.workdir)],
    )
