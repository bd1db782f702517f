"""The avatar studio's work: seeded avatars, edits on the shipped avatar models, the
evaluation judge's readings, and each generated avatar's ground truth.

A *generated* avatar is a record of the avatar renderer (:mod:`faceedit.data.avatars`,
the same one ``faceedit eval avatars`` draws its held-out avatars with), so every edit of
it has a ground truth: the same record with the moved attributes set, by the rule that
``eval avatars`` uses for one attribute (:func:`~faceedit.data.avatars.edit_attribute`:
on for a positive strength, off for a negative one), applied in turn for several. The
edit is measured against it by its region gain (:func:`faceedit.eval.metrics.region_gain`:
1 = the truth, 0 = no better than doing nothing). An uploaded avatar has no record, so no
truth; the judge still reads it.

The judge is the shipped evaluation judge (``avatar-judge``), which no model it reads was
trained, labelled or chosen with; its reading of an attribute is its probability.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceedit.errors import FaceeditError

#: the studio's methods and the shipped model each runs on (linear: the bundle's
#: directions, the baseline of the latent transformers)
STUDIO_MODELS = {"attgan": "avatar-attgan", "latent": "avatar-latent", "linear": "avatar-latent"}
JUDGE = "avatar-judge"
#: avatar k is record k % 100 of sample_records(100, seed STUDIO_SEED_BASE + k // 100):
#: seeds the training data (seed 0) and the evaluations (1, 2) do not use
STUDIO_SEED_BASE = 10_000
SEED_BATCH = 100
#: the face (eyes, brows, glasses, mouth, moustache) as fractions (x0, y0, x1, y1) of an
#: avatar image: where the face attributes' ground truths differ from their sources
FACE_BOX = (0.25, 0.14, 0.77, 0.80)


@dataclass(eq=False)
class Avatar:
    """An avatar in the studio.

    Attributes:
        image: ``uint8 [S, S, 3]`` at the models' size.
        name: for messages and downloads.
        record: its rendering parameters (generated avatars only; else ``None``).
        seed: the seed it was generated from.
        before: the judge's reading of ``image`` ``{attr: probability}``.
    """

    image: np.ndarray
    name: str
    record: dict[str, str] | None = None
    seed: int | None = None
    before: dict[str, float] = field(default_factory=dict)


@dataclass
class StudioEdit:
    """One slider release's answer.

    Attributes:
        image: the edited avatar ``uint8 [S, S, 3]``.
        after: the judge's reading of it.
        truth: the ground-truth counterfactual (generated avatars), else ``None``.
        gain: the edit's region gain against it (``None`` without truth or when nothing
            had to change).
        note: one line about the truth (several right answers, nothing to change, ...).
    """

    image: np.ndarray
    after: dict[str, float]
    truth: np.ndarray | None = None
    gain: float | None = None
    note: str = ""


def avatar_record(seed: int) -> dict[str, str]:
    """The record of studio avatar ``seed`` (see :data:`STUDIO_SEED_BASE`)."""
    from faceedit.data.avatars import sample_records

    if not isinstance(seed, int) or seed < 0 or seed > 10**9:
        raise FaceeditError(f"seed {seed!r}: give a whole number from 0 to 1000000000")
    batch = sample_records(SEED_BATCH, seed=STUDIO_SEED_BASE + seed // SEED_BATCH)
    return dict(batch[seed % SEED_BATCH])


def face_mask(size: int) -> np.ndarray:
    """``bool [size, size]``: the avatar's face (:data:`FACE_BOX`)."""
    x0, y0, x1, y1 = (round(f * size) for f in FACE_BOX)
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def ground_truth(
    record: Mapping[str, str], strengths: Mapping[str, float]
) -> tuple[dict[str, str], str]:
    """The record with every moved attribute set (on for a positive strength, off for a
    negative one), and a note: ``""`` when the edit has one right answer, else why not.

    Each attribute is set by :func:`~faceedit.data.avatars.edit_attribute` in turn; when a
    later one undoes an earlier one (a hat on and a hair colour on exclude one another)
    the edit has no truth and the note says so.
    """
    from faceedit.data.avatars import attributes, edit_attribute, has_unique_truth

    target = dict(record)
    several = []
    for name, strength in strengths.items():
        on = strength > 0
        if not has_unique_truth(target, name, on):
            several.append(name)
        target = dict(edit_attribute(target, name, on))
    reached = attributes(target)
    clash = [a for a, s in strengths.items() if (reached[a] > 0) != (s > 0)]
    if clash:
        return target, f"no ground truth: {' and '.join(strengths)} exclude one another here"
    if several:
        return target, (
            f"{', '.join(several)} can be drawn several right ways: the truth shown is one"
        )
    return target, ""


class AvatarStudio:
    """The studio over a :class:`~faceedit.app.backend.Backend` (its models and lock)."""

    def __init__(self, backend, judge: str = JUDGE, size: int = 64) -> None:
        self.backend = backend
        self.judge_name = judge
        self.size = size
        self._judge = None

    @property
    def judge(self):
        from faceedit.checkpoints.oracle import load_avatar_oracle

        if self._judge is None:
            with self.backend.lock:
                self._judge = load_avatar_oracle(self.judge_name).eval()
        return self._judge

    def attributes(self, method: str) -> list[str]:
        """The sliders of ``method``: its model's attributes, in the judge's order."""
        names = self.editor(method).attributes
        order = list(self.judge.config.attr_names)
        return sorted(names, key=lambda a: (order.index(a) if a in order else len(order), a))

    def editor(self, method: str):
        if method not in STUDIO_MODELS:
            raise FaceeditError(f"method {method!r}: choose from {', '.join(STUDIO_MODELS)}")
        return self.backend.editor(method, STUDIO_MODELS[method])

    def read(self, images: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """The judge's probability of each attribute, per ``uint8 [S, S, 3]`` image."""
        import torch
        from PIL import Image

        from faceedit.train.oracle import images_to_tensor

        judge = self.judge
        side = judge.config.img_size
        batch = np.stack(
            [
                im
                if im.shape[0] == side
                else np.asarray(Image.fromarray(im).resize((side, side), Image.Resampling.LANCZOS))
                for im in images
            ]
        )
        with self.backend.lock, torch.no_grad():
            logits = judge(images_to_tensor(batch, next(judge.parameters()).device)).attrs
        probs = torch.sigmoid(logits).cpu().numpy()
        names = list(judge.config.attr_names)
        return [{a: float(p[i]) for i, a in enumerate(names)} for p in probs]

    def new_avatar(self, seed: int) -> Avatar:
        """Studio avatar ``seed``, rendered at the models' size and read by the judge."""
        from faceedit.data.avatars import render_record

        record = avatar_record(seed)
        image = render_record(record, self.size)
        return Avatar(image, f"avatar-{seed}.png", record, seed, self.read([image])[0])

    def upload(self, path: str | Path | None) -> Avatar:
        """An uploaded avatar image (square), at the models' size; it has no truth."""
        from faceedit.editing.base import resize_crops

        rgb, name = self.backend.read_upload(path)
        h, w = rgb.shape[:2]
        if abs(h - w) > 0.02 * max(h, w):
            raise FaceeditError(f"{name}: an avatar image is square, got {w}x{h}")
        image = resize_crops(rgb[None], self.size)[0]
        return Avatar(image, name, None, None, self.read([image])[0])

    def edit(self, avatar: Avatar, method: str, strengths: Mapping[str, float]) -> StudioEdit:
        """Edit ``avatar`` with ``method``'s shipped model; judge it; measure it against
        the ground truth where there is one. All sliders at 0 give the avatar back."""
        from faceedit.data.avatars import render_record
        from faceedit.eval.metrics import region_gain

        moved = {k: float(v) for k, v in strengths.items() if abs(float(v)) > 1e-6}
        if not moved:
            return StudioEdit(avatar.image, dict(avatar.before))
        session = self.backend.prepare(
            None, method, STUDIO_MODELS[method], rgb=avatar.image, name=avatar.name
        )
        image = self.backend.edit(session, moved)
        after = self.read([image])[0]
        if avatar.record is None:
            return StudioEdit(image, after, note="an uploaded avatar has no ground truth")
        target, note = ground_truth(avatar.record, moved)
        truth = render_record(target, self.size)
        gain = float(region_gain(image, avatar.image, truth)[0])
        if not math.isfinite(gain):
            return StudioEdit(image, after, truth, None, note or "nothing to change: the "
                              "avatar already is so")  # fmt: skip
        if note.startswith("no ground truth"):
            return StudioEdit(image, after, None, None, note)
        return StudioEdit(image, after, truth, gain, note)

    def clip(self, seed: int, path: Path, frames: int = 12, size: int = 128) -> Path:
        """A short clip of studio avatar ``seed`` (:func:`write_avatar_clip`)."""
        return write_avatar_clip(avatar_record(seed), path, frames=frames, size=size)


def write_avatar_clip(
    record: Mapping[str, str], path: Path, frames: int = 12, size: int = 128, fps: int = 8
) -> Path:
    """An MP4 of an avatar under a slow zoom and pan (square frames, as an avatar model
    takes them): the window shrinks from the whole image to 90% of it while it drifts to
    the lower right. Needs PyAV (``faceedit[video]``)."""
    from PIL import Image

    from faceedit.data.avatars import render_record

    try:
        import av
    except ImportError:
        raise FaceeditError("the video tab needs PyAV: pip install 'faceedit[video]'") from None
    big = Image.fromarray(render_record(record, size * 2))
    side0 = big.size[0]
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            t = i / max(1, frames - 1)
            side = round(side0 * (1 - 0.1 * t))
            offset = round((side0 - side) * t)
            box = (offset, offset, offset + side, offset + side)
            rgb = np.asarray(big.crop(box).resize((size, size), Image.Resampling.LANCZOS))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path
