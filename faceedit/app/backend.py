"""The page's work, without the page: models, prepared photos, edits and each browser
session's files.

A photo is read, its faces found, aligned and inverted once
(:meth:`~faceedit.editing.pipeline.FaceEditor.prepare`, every face); each slider release
only re-runs the edit and the paste-back of the chosen face (or all of them). An avatar
model takes the whole image (no detection). Models are cached (a few at a time) and every
model call holds one lock, so several tabs share them safely.

Model names go through the server's :class:`~faceedit.app.access.AccessPolicy`, and a
model that fails to load is one line naming what the user typed
(:func:`~faceedit.app.access.model_error`). Everything the server writes (results, clips)
goes into a per-session folder under one temporary directory: a session's folder is
removed when its tab closes, the whole directory when the server stops; nothing is ever
written next to the user's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceedit.app.access import AccessPolicy, ModelRefused, model_error
from faceedit.errors import FaceeditError

log = logging.getLogger("faceedit.app")

#: the explicit choice of the tiny random-weight models (a self-test of the page only)
SELFTEST = "self-test model (random weights)"
SELFTEST_DIRS = {"latent": "latent", "linear": "latent", "attgan": "attgan"}
MAX_MODELS = 4  # models kept loaded at once
MAX_PHOTOS = 32  # prepared photos kept
DEMO_ATTRS_LATENT = ("Smiling", "Eyeglasses", "Young", "Male")
DEMO_VERSION = 2
SAMPLE_PHOTO = "grace_hopper.jpg"
ALL_FACES = "all"


class UploadError(FaceeditError):
    """An upload the page refuses (too large, missing)."""


def sample_photo() -> Path:
    """The bundled sample photo (matplotlib's grace_hopper.jpg, available offline)."""
    import matplotlib

    return Path(matplotlib.get_data_path(), "sample_data", SAMPLE_PHOTO)


# ------------------------------------------------------------------- self-test models


def demo_models_dir() -> Path:
    """Build (once) and cache tiny random-weight models: a latent bundle (with linear
    directions) and an AttGAN. They check the page end to end; their edits are noise.

    Returns:
        A directory with ``latent/`` (a bundle: 32 px StyleGAN2, latent transformers,
        classifier, directions) and ``attgan/`` (a 32 px AttGAN in the own format).
    """
    import torch

    from faceedit.editing.directions import LinearDirections
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
        raw = torch.randn(len(DEMO_ATTRS_LATENT), G.num_ws, G.w_dim)
        LinearDirections(
            tuple(DEMO_ATTRS_LATENT),
            raw / raw.flatten(1).norm(dim=1)[:, None, None],
            torch.full((len(DEMO_ATTRS_LATENT),), 8.0),  # a visible change per unit
        ).save(tmp / "latent" / "directions.npz")
        bundle = {
            "method": "latent",
            "generator": "generator",
            "transformers": "transformers",
            "classifier": "classifier",
            "directions": "directions.npz",
        }
        (tmp / "latent" / "bundle.json").write_text(json.dumps(bundle, indent=2))
        g = AttGANGeneratorConfig(enc_dim=4, dec_dim=4, enc_layers=3, dec_layers=3, img_size=32)
        d = AttGANDiscriminatorConfig(dim=4, n_layers=3, fc_dim=8, img_size=32)
        AttGAN(AttGANConfig(G=g, D=d)).eval().save_pretrained(tmp / "attgan")
    (tmp / "done").write_text("random weights, built by faceedit serve\n")
    try:
        os.replace(tmp, root)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# ------------------------------------------------------------------- the work


@dataclass(eq=False)
class Session:
    """One photo prepared for editing with one model (kept in the browser tab's state).

    Attributes:
        key: identifies photo + method + model, for the inversion cache.
        name: the photo's name, for messages and the download.
        source: where the upload lies (in the server's upload folder).
        original: the photo, RGB ``uint8 [H, W, 3]``.
        faces: the aligned faces, largest first (``[None]`` for an avatar model, which
            takes the whole image).
        method, model: what edits it (``model`` as the user typed it).
        attributes: what the model edits, in slider order.
        crops: each face's aligned crop ``uint8 [S, S, 3]``.
        notes: warnings for the page (an image of the other domain).
    """

    key: str
    name: str
    source: str
    original: np.ndarray
    faces: list[Any]
    method: str
    model: str
    attributes: list[str] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def face(self) -> Any:
        """The largest face (``None`` for an avatar model)."""
        return self.faces[0]

    @property
    def crop(self) -> np.ndarray:
        return self.crops[0]


def face_choices(n_faces: int) -> list[str]:
    """The face picker's entries: each face (largest first), then all of them."""
    if n_faces <= 1:
        return ["face 1"]
    return [f"face {i + 1}" for i in range(n_faces)] + [ALL_FACES]


def parse_face(choice: str | int | None, n_faces: int) -> int | str:
    """The face index (or ``"all"``) for a picker entry; anything else is face 0."""
    if choice == ALL_FACES and n_faces > 1:
        return ALL_FACES
    if isinstance(choice, int):
        index = choice
    else:
        m = re.fullmatch(r"face (\d+)", str(choice or "").strip())
        index = int(m.group(1)) - 1 if m else 0
    return index if 0 <= index < n_faces else 0


class Backend:
    """Models, prepared photos and session folders shared by every tab.

    Args:
        steps: projection steps for a latent model without an encoder.
        max_upload_mb: the largest upload accepted.
        workdir: where sessions' files go (default: a new temporary directory).
        device: where models run.
        policy: what the model box accepts (:class:`~faceedit.app.access.AccessPolicy`).
    """

    def __init__(
        self,
        steps: int = 40,
        max_upload_mb: float = 10.0,
        workdir: Path | None = None,
        device: str = "cpu",
        policy: AccessPolicy | None = None,
        invert: str = "auto",
        inversion: dict | None = None,
    ):
        self.steps = steps
        # how latent models invert (auto: the encoder; pti: pivotal tuning per image) and
        # the tuning's options (``pti_steps``, ...); AttGAN ignores both
        self.invert = invert
        self.inversion = dict(inversion or {})
        self.device = device
        self.policy = policy or AccessPolicy()
        self.max_upload_mb = max_upload_mb
        self.max_upload_bytes = int(max_upload_mb * 1024**2)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-serve-"))
        self._editors: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._codes: OrderedDict[str, Any] = OrderedDict()  # prepared photos (faces, codes)
        self._lock = threading.RLock()
        self._uploads: dict[str, set[Path]] = {}  # session -> its uploads (to remove)

    @property
    def lock(self) -> threading.RLock:
        """Held around every model call."""
        return self._lock

    # session files -----------------------------------------------------------
    def session_dir(self, session_id: str | None) -> Path:
        """The folder of one browser session's files (created on first use)."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "", session_id or "") or "shared"
        path = self.workdir / "sessions" / safe[:64]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def track(self, session_id: str | None, upload: str | os.PathLike | None) -> None:
        """Remember an upload of a session, to remove it with the session's files (only
        files inside this server's folder: its uploads)."""
        if not session_id or not upload:
            return
        path = Path(upload).resolve()
        if path.is_relative_to(self.workdir.resolve()):
            self._uploads.setdefault(session_id, set()).add(path)

    def end_session(self, session_id: str | None) -> None:
        """Remove a session's files and uploads (its tab was closed)."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "", session_id or "")
        if safe:
            shutil.rmtree(self.workdir / "sessions" / safe[:64], ignore_errors=True)
        for path in self._uploads.pop(session_id or "", set()):
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # gradio's own folder for that file
                path.parent.rmdir()

    def close(self) -> None:
        """Remove every file the server wrote (it stops)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    # models ----------------------------------------------------------------
    def model_path(self, method: str, model: str | None) -> str:
        """What to load for the model box's text (after the access policy)."""
        text = (model or "").strip()
        if text == SELFTEST:
            if method not in SELFTEST_DIRS:
                raise ModelRefused(f"no self-test model for method {method}")
            return str(demo_models_dir() / SELFTEST_DIRS[method])
        if not text:
            raise ModelRefused("choose a model first")
        return self.policy.resolve(text)

    def editor(self, method: str, model: str | None):
        """A cached :class:`~faceedit.editing.pipeline.FaceEditor`.

        Raises:
            ModelRefused: the model is not offered, or did not load (one line naming only
                what the user typed).
        """
        from faceedit.editing.pipeline import build_editor

        typed = (model or "").strip()
        path = self.model_path(method, model)
        with self._lock:
            key = (method, path)
            if key not in self._editors:
                try:
                    editor = build_editor(
                        method,
                        path,
                        device=self.device,
                        invert=self.invert,
                        steps=self.steps,
                        seed=0,
                        name=typed,
                        **self.inversion,
                    )
                except Exception as e:  # noqa: BLE001 - any loader failure is one line
                    if not isinstance(e, FaceeditError | OSError | ValueError | KeyError):
                        log.exception("model %r did not load", typed)
                    raise model_error(typed, method, e) from None
                self._editors[key] = editor
                while len(self._editors) > MAX_MODELS:  # bounded memory, whatever users type
                    self._editors.popitem(last=False)
            self._editors.move_to_end(key)
            return self._editors[key]

    # photos -----------------------------------------------------------------
    def check_size(self, path: str | os.PathLike, what: str = "file") -> None:
        """Refuse an upload over the limit, naming the limit."""
        path = Path(path)
        size = path.stat().st_size if path.is_file() else 0
        if size > self.max_upload_bytes:
            raise UploadError(
                f"{path.name}: {size / 1024**2:.1f} MB is over the "
                f"{self.max_upload_mb:g} MB upload limit"
            )

    def read_upload(self, path: str | os.PathLike | None) -> tuple[np.ndarray, str]:
        """An uploaded image, RGB ``uint8 [H, W, 3]``, and its name."""
        from faceedit.data.images import read_image
        from faceedit.errors import ImageError

        if not path:
            raise UploadError("choose a photo first (upload one or use the sample)")
        path = Path(path)
        self.check_size(path)
        try:
            return read_image(path.read_bytes(), min_size=16), path.name
        except ImageError as e:  # name the file as the user knows it
            raise ImageError(str(e).replace("<uploaded bytes>", path.name, 1)) from None

    def prepare(
        self,
        path: str | os.PathLike | None,
        method: str,
        model: str | None,
        rgb: np.ndarray | None = None,
        name: str | None = None,
    ) -> Session:
        """Read one photo (or take ``rgb``), find and align every face (an avatar model
        takes the whole image) and invert each, once (:meth:`FaceEditor.prepare`)."""
        from faceedit.faces.detect import NoFaceError

        if rgb is None:
            rgb, name = self.read_upload(path)
        name = name or "image.png"
        with self._lock:
            editor = self.editor(method, model)
            digest = hashlib.sha1(rgb.tobytes()).hexdigest()[:16]
            key = f"{digest}:{method}:{self.model_path(method, model)}"
            notes: list[str] = []
            if key not in self._codes:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        self._codes[key] = editor.prepare(rgb, face_index=ALL_FACES)
                    except NoFaceError:
                        raise NoFaceError(f"{name}: no face found in this photo") from None
                notes = [str(w.message).replace("<image>", name) for w in caught]
                while len(self._codes) > MAX_PHOTOS:
                    self._codes.popitem(last=False)
            photo = self._codes[key]
        faces = list(photo.faces)
        for face in faces:
            if face is not None:
                face.source = name
        return Session(
            key,
            name,
            str(path or ""),
            rgb,
            faces,
            method,
            (model or "").strip(),
            list(editor.attributes),
            list(photo.crops),
            notes,
        )

    def edit(
        self, session: Session, strengths: dict[str, float], face: int | str = 0
    ) -> np.ndarray:
        """The photo with the edits applied to face ``face`` (an index, largest first,
        or ``"all"``), RGB ``uint8 [H, W, 3]``."""
        from faceedit.editing.pipeline import PreparedPhoto

        edits = {k: float(v) for k, v in strengths.items() if abs(float(v)) > 1e-6}
        if not edits:
            return session.original
        with self._lock:
            editor = self.editor(session.method, session.model)
            edits = editor.check_edits(edits)
            photo = self._codes.get(session.key)
            if photo is None:  # evicted: prepare again
                photo = editor.prepare(session.original, face_index=ALL_FACES)
                self._codes[session.key] = photo
            chosen = parse_face(face, len(photo.faces))
            if chosen != ALL_FACES:
                i = int(chosen)
                photo = PreparedPhoto(
                    photo.rgb, photo.name, [photo.faces[i]], [photo.crops[i]], [photo.codes[i]]
                )
            return editor.render(photo, edits).image

    def edit_video(
        self,
        path: str | os.PathLike | None,
        method: str,
        model: str | None,
        edits: dict,
        session_id: str | None = None,
    ):
        """Edit a short clip with :class:`~faceedit.editing.video.VideoEditor` (tqdm bars
        show its progress) into the session's folder; returns its
        :class:`~faceedit.editing.video.VideoEditReport`."""
        from faceedit.editing.video import VideoEditor

        if not path:
            raise UploadError("choose a video first")
        path = Path(path)
        self.check_size(path)
        edits = {k: float(v) for k, v in edits.items() if abs(float(v)) > 1e-6}
        if not edits:
            raise UploadError("move the strength away from 0 to edit the video")
        out = Path(tempfile.mkdtemp(dir=self.session_dir(session_id))) / f"{path.stem}_edited.mp4"
        with self._lock:
            editor = self.editor(method, model)
            video = VideoEditor(editor, sigma=2.0)
            return video.run(path, out, edits, settings={"model": self.model_path(method, model)})

    def save(self, rgb: np.ndarray, name: str, session_id: str | None = None) -> str:
        """Write the result as a PNG (in the session's folder) for download; returns its
        path."""
        from faceedit.data.images import write_image

        folder = Path(tempfile.mkdtemp(dir=self.session_dir(session_id)))
        out = folder / f"{Path(name).stem}_edited.png"
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


def enlarge(image: np.ndarray, size: int = 256) -> np.ndarray:
    """A small image (a 32 or 64 px crop) scaled up with visible pixels, for display."""
    from PIL import Image

    if image.shape[0] >= size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST))
