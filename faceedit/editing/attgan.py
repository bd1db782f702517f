"""Attribute editing with AttGAN (He et al., IEEE TIP 2019), the modes of the release's
``test.py`` / notebook (elvisyjlin/AttGAN-PyTorch):

- **flip every attribute** in turn, each at ``test_int`` strength, with the release's
  conflict rules (bald / receding hairline vs bangs, a single hair colour, straight vs
  wavy hair, mustache vs no beard), or the avatar domain's (a hat or a bald head shows
  no hair colour) for models whose config names them (the rules live in
  :mod:`faceedit.attributes`, which training and evaluation share);
- **slide** one attribute from ``min`` to ``max`` in ``steps`` values;
- **several attributes** at once, each with its own strength;
- the notebook's **labelled grid**: input, reconstruction, one panel per attribute.

Strength convention: the number given for an attribute is its generator input; the
model was trained on ``+-thres_int`` and the release edits at ``+-test_int`` (1.0). The
attributes not mentioned keep their current value ``(2 a - 1) * thres_int``. Current
attributes ``a`` are given or predicted by the discriminator's classifier head.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from faceedit.attributes import (
    AVATAR_CONFLICTS,
    CONFLICT_RULES,
    CONFLICTS,
    conflict_rules,
    flip_targets,
    resolve_conflicts,
)
from faceedit.editing.base import CropEditor, CropEdits, Strength, per_crop, resize_crops
from faceedit.errors import FaceeditError
from faceedit.nets.attgan import AttGAN, AttGANGenerator, fast_generate


def _to_uint8(img: torch.Tensor) -> list[np.ndarray]:
    from faceedit.data.images import tensor_to_uint8

    return list(tensor_to_uint8(img))


@dataclass
class AttGANEditResult:
    """Output of :meth:`AttGANEditor.edit`.

    Attributes:
        image: edited faces ``uint8 [N, S, S, 3]``.
        input: the aligned, resized inputs ``uint8 [N, S, S, 3]``.
        attrs: the current attributes used ``{0, 1} [N, n_attrs]``.
        target: the generator input ``[N, n_attrs]``.
        scores: classifier probabilities of the edited faces ``{attr: [N]}`` (empty
            without a discriminator).
    """

    image: np.ndarray
    input: np.ndarray
    attrs: torch.Tensor
    target: torch.Tensor
    scores: dict[str, torch.Tensor]


ImageLike = str | os.PathLike | np.ndarray | Image.Image | torch.Tensor


@dataclass(eq=False)
class AttGANCode:
    """Crops ready for AttGAN (what :meth:`AttGANEditor.invert` returns).

    Attributes:
        x: the crops ``[N, 3, S, S]`` in [-1, 1] at the model's size.
        attrs: their current attributes ``{0, 1} [N, n_attrs]`` (the classifier head's).
    """

    x: torch.Tensor
    attrs: torch.Tensor


class AttGANEditor(CropEditor):
    """Edit aligned face crops with an AttGAN.

    Args:
        model: an :class:`AttGAN` (its ``D`` head predicts the current attributes) or a
            bare :class:`AttGANGenerator` (then current attributes must be given).
        fast: run the generator with batch norm folded under ``inference_mode``.
        crop: ``"center"`` square crop, ``"celeba"`` (the release's 170 px crop of 178 x
            218 aligned CelebA images) or ``"none"`` (resize only).
        domain: what its crops are: ``"avatar"`` or ``"ffhq"`` (aligned photo crops).

    As a :class:`~faceedit.editing.base.CropEditor` it takes aligned crops at
    :attr:`crop_size` (:meth:`invert`, :meth:`reconstruct`, :meth:`edit_codes`);
    :meth:`edit`, :meth:`flip_grid` and :meth:`slide_grid` are the release's modes.
    """

    method = "attgan"

    def __init__(
        self,
        model: AttGAN | AttGANGenerator,
        fast: bool = True,
        crop: str = "center",
        domain: str = "ffhq",
    ) -> None:
        if isinstance(model, AttGAN):
            self.G, self.D = model.G.eval(), (model.D.eval() if model.D is not None else None)
        elif isinstance(model, AttGANGenerator):
            self.G, self.D = model.eval(), None
        else:
            raise FaceeditError(f"AttGANEditor needs an AttGAN model, got {type(model).__name__}")
        if crop not in ("center", "celeba", "none"):
            raise FaceeditError(f"crop {crop!r}: choose center, celeba or none")
        self.crop = crop
        self.config = self.G.config
        self.names = list(self.config.attrs)
        self.domain = domain
        self.rules = conflict_rules(self.config.conflict_rules)
        self._fast = self.G.inference_copy() if fast else None

    # ------------------------------------------------------------------ basics
    @property
    def size(self) -> int:
        return self.config.img_size

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    @property
    def attributes(self) -> list[str]:
        return list(self.names)

    @property
    def crop_size(self) -> int:
        return int(self.size)

    @property
    def cell_size(self) -> int:
        """Grid cell side: the model's size, enlarged for tiny models so labels fit."""
        return max(96, self.size)

    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Images (paths, arrays, PIL, tensors) -> ``[N, 3, S, S]`` in [-1, 1]."""
        from faceedit.data.celeba import CELEBA_CROP, _center_crop
        from faceedit.data.images import read_image

        if isinstance(images, torch.Tensor):
            if images.ndim == 3:
                images = images[None]
            if images.ndim != 4 or images.shape[1] != 3:
                raise FaceeditError(f"image tensor must be [N, 3, H, W], got {list(images.shape)}")
            from faceedit.nets.attgan import resize_for

            return resize_for(images.float().to(self.device), self.size)
        if not isinstance(images, (list, tuple)):
            images = [images]
        out = []
        for item in images:
            rgb = item if isinstance(item, np.ndarray) else read_image(item)
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise FaceeditError("image arrays must be uint8 [H, W, 3]")
            im = Image.fromarray(rgb)
            if self.crop == "celeba":
                im = _center_crop(im, CELEBA_CROP)
            elif self.crop == "center":
                im = _center_crop(im, min(im.size))
            im = im.resize((self.size, self.size), Image.Resampling.BILINEAR)
            arr = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
            out.append(arr.permute(2, 0, 1).float() / 127.5 - 1.0)
        return torch.stack(out).to(self.device)

    def generate(self, img: torch.Tensor, target: torch.Tensor, style=None) -> torch.Tensor:
        """``G(img, target)`` (fast path when enabled) -> ``[N, 3, S, S]`` in [-1, 1]."""
        if self._fast is not None:
            return fast_generate(self._fast, img, target, style)
        with torch.no_grad():
            return self.G(img, target, style)

    @torch.no_grad()
    def predict_attrs(self, img: torch.Tensor) -> torch.Tensor:
        """``{0, 1} [N, n_attrs]`` from the classifier head (needs the discriminator)."""
        if self.D is None:
            raise FaceeditError(
                "this checkpoint has no discriminator, so current attributes cannot be "
                "predicted; give them (--current NAME=0/1 ...) or use a file with D"
            )
        return (self.D.classify(self._for_d(img)) > 0).float()

    def _for_d(self, img: torch.Tensor) -> torch.Tensor:
        from faceedit.nets.attgan import resize_for

        return resize_for(img, self.D.config.img_size)

    @torch.no_grad()
    def scores(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.D is None:
            return {}
        p = torch.sigmoid(self.D.classify(self._for_d(img)))
        return {n: p[:, i] for i, n in enumerate(self.names)}

    def current_attrs(
        self, img: torch.Tensor, attrs: Mapping[str, float] | torch.Tensor | None
    ) -> torch.Tensor:
        """Current attributes ``{0,1} [N, n_attrs]``: given (tensor or partial dict,
        the rest predicted) or predicted."""
        n = len(img)
        if isinstance(attrs, torch.Tensor):
            att = attrs.float().reshape(-1, len(self.names))
            if len(att) == 1 and n > 1:
                att = att.expand(n, -1)
            return att.to(self.device).clone()
        given = dict(attrs or {})
        self._check_names(given)
        if len(given) == len(self.names):
            att = torch.tensor([[float(given[k] > 0.5) for k in self.names]] * n)
            att = att.to(self.device)
        else:
            att = self.predict_attrs(img)
            for k, v in given.items():
                att[:, self.names.index(k)] = float(v > 0.5)
        return att

    def _check_names(self, names) -> None:
        bad = [k for k in names if k not in self.names]
        if bad:
            raise FaceeditError(
                f"unknown attribute(s) {', '.join(bad)}; this model has: {', '.join(self.names)}"
            )

    # ------------------------------------------------------------------ modes
    def edit(
        self,
        image: ImageLike | Sequence[ImageLike],
        strengths: Mapping[str, float],
        current: Mapping[str, float] | torch.Tensor | None = None,
        style: torch.Tensor | None = None,
    ) -> AttGANEditResult:
        """Set several attributes at once, each to its own strength (generator input).

        ``{"Eyeglasses": 1.0}`` adds glasses at the release's test strength,
        ``{"Eyeglasses": -1.0}`` removes them; attributes that conflict with one that is
        switched on are switched off unless they are also given.
        """
        if not strengths:
            raise FaceeditError("edit: give at least one attribute, e.g. {'Eyeglasses': 1.0}")
        self._check_names(strengths)
        img = self.preprocess(image)
        att = self.current_attrs(img, current)
        b = att.clone()
        for k, v in strengths.items():
            b[:, self.names.index(k)] = float(v > 0)
        for k in strengths:
            b = resolve_conflicts(b, k, self.names, keep=list(strengths), rules=self.rules)
        target = (b * 2 - 1) * self.config.thres_int
        for k, v in strengths.items():
            target[:, self.names.index(k)] = float(v)
        out = self.generate(img, target, style)
        return AttGANEditResult(
            image=np.stack(_to_uint8(out)),
            input=np.stack(_to_uint8(img)),
            attrs=att,
            target=target,
            scores=self.scores(out),
        )

    def reconstruct_tensor(self, img: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """``G(img, (2a - 1) * thres_int)``: ``[N, 3, S, S]``."""
        return self.generate(img, (att * 2 - 1) * self.config.thres_int)

    # ------------------------------------------------------------------ CropEditor
    def invert(self, crops: np.ndarray, init=None, seed: int | None = None) -> AttGANCode:
        """AttGAN has no latent code to search: the crops ``uint8 [N, S, S, 3]``
        themselves, resized to the model, with their predicted attributes."""
        x = self.preprocess(list(np.asarray(crops)))
        with torch.no_grad():
            return AttGANCode(x, self.current_attrs(x, None))

    def reconstruct(self, code: AttGANCode) -> np.ndarray:
        """The crops redrawn with their own attributes: ``uint8 [N, S, S, 3]``."""
        with torch.no_grad():
            out = self.reconstruct_tensor(code.x, code.attrs)
        return resize_crops(np.stack(_to_uint8(out)), self.crop_size)

    def edit_codes(self, code: AttGANCode, edits: Mapping[str, Strength]) -> CropEdits:
        """:meth:`edit` on the code's crops; crops given different strengths (the demo
        flips each avatar towards its own opposite) go through in one batch per distinct
        set of strengths."""
        n = len(code.x)
        values = {k: per_crop(v, n) for k, v in edits.items()}
        keys = [tuple(float(values[k][i]) for k in edits) for i in range(n)]
        images = np.zeros((n, self.crop_size, self.crop_size, 3), dtype=np.uint8)
        scores: dict[str, np.ndarray] = {}
        for key in dict.fromkeys(keys):
            idx = [i for i in range(n) if keys[i] == key]
            res = self.edit(
                code.x[idx], dict(zip(edits, key, strict=True)), current=code.attrs[idx]
            )
            images[idx] = resize_crops(res.image, self.crop_size)
            for name, p in res.scores.items():
                scores.setdefault(name, np.zeros(n, dtype=np.float32))[idx] = p.cpu().numpy()
        return CropEdits(images, None, scores)

    def flip_all(
        self,
        image: ImageLike | Sequence[ImageLike],
        current: Mapping[str, float] | torch.Tensor | None = None,
        test_int: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each attribute flipped in turn (release conflict rules, ``test_int`` strength).

        Returns ``(img [N,3,S,S], recon [N,3,S,S], flips [n_attrs, N, 3, S, S])``.
        """
        img = self.preprocess(image)
        att = self.current_attrs(img, current)
        ti = self.config.test_int if test_int is None else float(test_int)
        targets = flip_targets(att, self.names, self.config.thres_int, ti, self.rules)
        flips = torch.stack([self.generate(img, t) for t in targets])
        return img, self.reconstruct_tensor(img, att), flips

    def slide(
        self,
        image: ImageLike | Sequence[ImageLike],
        attr: str,
        min_value: float = -1.0,
        max_value: float = 1.0,
        steps: int = 10,
        current: Mapping[str, float] | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[float]]:
        """One attribute's input swept over ``linspace(min, max, steps)``.

        Returns ``(imgs [steps, N, 3, S, S], values)``.
        """
        self._check_names([attr])
        if steps < 2:
            raise FaceeditError("--steps must be at least 2")
        img = self.preprocess(image)
        att = self.current_attrs(img, current)
        values = torch.linspace(min_value, max_value, steps).tolist()
        base = (att * 2 - 1) * self.config.thres_int
        j = self.names.index(attr)
        outs = []
        for v in values:
            t = base.clone()
            t[:, j] = v
            outs.append(self.generate(img, t))
        return torch.stack(outs), values

    def flip_grid(
        self,
        image: ImageLike | Sequence[ImageLike],
        current: Mapping[str, float] | torch.Tensor | None = None,
        test_int: float | None = None,
    ) -> np.ndarray:
        """The notebook's labelled grid (one row per image) as ``uint8 [H, W, 3]``."""
        from faceedit.viz import image_grid

        img, recon, flips = self.flip_all(image, current, test_int)
        cols = [_to_uint8(img), _to_uint8(recon)] + [_to_uint8(f) for f in flips]
        cells = [[c[r] for c in cols] for r in range(len(img))]
        labels = ["input", "recon"] + [n.replace("_", "\n") for n in self.names]
        return image_grid(cells, col_labels=labels, cell_size=self.cell_size)

    def slide_grid(self, image, attr: str, min_value=-1.0, max_value=1.0, steps=10, current=None):
        """Labelled grid of :meth:`slide` (one row per image) as ``uint8 [H, W, 3]``."""
        from faceedit.viz import image_grid

        outs, values = self.slide(image, attr, min_value, max_value, steps, current)
        img = self.preprocess(image)
        cols = [_to_uint8(img)] + [_to_uint8(o) for o in outs]
        cells = [[c[r] for c in cols] for r in range(len(img))]
        return image_grid(
            cells,
            col_labels=["input"] + [f"{v:+.2f}" for v in values],
            title=attr,
            cell_size=self.cell_size,
        )


__all__ = [
    "AttGANCode",
    "AttGANEditResult",
    "AttGANEditor",
    "AVATAR_CONFLICTS",
    "CONFLICTS",
    "CONFLICT_RULES",
    "conflict_rules",
    "flip_targets",
    "resolve_conflicts",
]
