"""The two seams every editing method plugs into.

- :class:`LatentEditMethod`: a way to move StyleGAN2 codes, ``edit_latents(ws, {name:
  strength}) -> ws``. The latent transformers (:class:`~faceedit.editing.latent.LatentEditor`,
  Yao et al. ICCV 2021) and the linear directions
  (:class:`~faceedit.editing.directions.LinearDirections`, Shen et al. CVPR 2020) both are;
  a :class:`~faceedit.editing.latent_pipeline.LatentPipeline` renders whichever it holds.
- :class:`CropEditor`: edits aligned face crops, ``uint8 [N, S, S, 3]`` in and out. It
  inverts crops into a *code* (W+ codes for the latent pipeline; the preprocessed crops and
  their current attributes for AttGAN), reconstructs a code unedited, and edits a code.
  :class:`~faceedit.editing.pipeline.FaceEditor`, the web app, the demo, ``eval`` and the
  video editor hold one of these and never ask which method it is.

Strengths are numbers or one value per crop (``[N]``): the demo and ``eval`` flip each
avatar towards the opposite of its own attribute in one batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from faceedit.errors import EditError

# strengths far beyond what either method was trained with only produce artefacts
MAX_STRENGTH = 10.0

Strength = float | Sequence[float] | np.ndarray | torch.Tensor


@runtime_checkable
class LatentEditMethod(Protocol):
    """Moves W+ codes: ``edit_latents(ws [N, num_ws, w_dim], {name: strength}) -> ws``
    (strength a number or ``[N]``), for the names in ``attributes``."""

    @property
    def attributes(self) -> list[str]: ...

    def edit_latents(self, ws: torch.Tensor, edits: Mapping[str, Any]) -> torch.Tensor: ...


@dataclass(eq=False)
class CropEdits:
    """What :meth:`CropEditor.edit_codes` returns, for ``N`` crops.

    Attributes:
        images: the edited crops, ``uint8 [N, S, S, 3]`` at the editor's crop size.
        codes: the edited codes (``ws [N, num_ws, w_dim]`` for latent methods), else ``None``.
        scores: attribute probabilities of the results ``{attr: float [N]}``, when the
            model has a classifier (empty otherwise).
    """

    images: np.ndarray
    codes: torch.Tensor | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)


def check_strengths(
    edits: Mapping[str, Strength], known: Sequence[str], name: str = ""
) -> dict[str, Strength]:
    """``{attr: strength}`` with known names and finite strengths within
    ``[-MAX_STRENGTH, MAX_STRENGTH]`` (floats stay floats, per-crop values stay arrays).

    Raises:
        EditError: no edit, an unknown attribute (the message lists the known ones) or a
            strength out of bounds.
    """
    if not edits:
        raise EditError("no edit given: e.g. --attr Smiling=1")
    bad = [k for k in edits if k not in known]
    if bad:
        raise EditError(
            f"{name + ': ' if name else ''}unknown attribute "
            f"{', '.join(map(repr, bad))}; this model edits: {', '.join(known)}"
        )
    out: dict[str, Strength] = {}
    for k, v in edits.items():
        values = np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) > MAX_STRENGTH):
            shown = float(values) if values.ndim == 0 else "…"
            raise EditError(
                f"--attr {k}={shown}: strength must be a number in "
                f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]"
            )
        out[k] = float(values) if values.ndim == 0 else v
    return out


class CropEditor(ABC):
    """Edits aligned face crops with one method and one set of models.

    Subclasses set ``method`` (a label for reports and caches, never branched on) and
    implement :meth:`invert`, :meth:`reconstruct` and :meth:`edit_codes`.
    """

    method: str = ""
    #: ``"avatar"`` (whole 64 px avatar images) or ``"ffhq"`` (FFHQ-aligned photo crops)
    domain: str = "ffhq"

    @property
    @abstractmethod
    def attributes(self) -> list[str]:
        """The attribute names this editor can edit."""

    @property
    @abstractmethod
    def crop_size(self) -> int:
        """Side ``S`` of the aligned crops it takes and returns."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @property
    def chains_codes(self) -> bool:
        """Whether inverting a video frame should start from the previous frame's code
        (an optimisation does; an encoder does not need it)."""
        return False

    def settings(self) -> dict[str, Any]:
        """The options that change its results (for caches such as the video's)."""
        return {"method": self.method}

    def check_edits(self, edits: Mapping[str, Strength], name: str = "") -> dict[str, Strength]:
        """Validate ``{attr: strength}`` (see :func:`check_strengths`)."""
        return check_strengths(edits, self.attributes, name)

    @abstractmethod
    def invert(self, crops: np.ndarray, init: Any | None = None, seed: int | None = None) -> Any:
        """The code of aligned crops ``uint8 [N, S, S, 3]`` (opaque to callers).

        ``init``: a code to start from (a video's previous frame); ``seed``: the seed of
        any random exploration."""

    @abstractmethod
    def reconstruct(self, code: Any) -> np.ndarray:
        """The unedited rendering of ``code``: ``uint8 [N, S, S, 3]``."""

    @abstractmethod
    def edit_codes(self, code: Any, edits: Mapping[str, Strength]) -> CropEdits:
        """Apply ``{attr: strength}`` (checked by :meth:`check_edits`) to ``code``."""

    def edit_crops(self, crops: np.ndarray, edits: Mapping[str, Strength]) -> CropEdits:
        """Invert and edit aligned crops ``uint8 [N, S, S, 3]`` in one call."""
        return self.edit_codes(self.invert(crops), self.check_edits(edits))


def resize_crops(images: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [N, s, s, 3]`` -> ``[N, size, size, 3]`` (Lanczos; unchanged at ``size``)."""
    from PIL import Image

    if images.shape[1] == size and images.shape[2] == size:
        return images
    return np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
            for im in images
        ]
    )


def per_crop(strength: Strength, n: int) -> np.ndarray:
    """A strength as ``float [n]`` (a number repeated, or the given values)."""
    values = np.asarray(
        strength.cpu() if isinstance(strength, torch.Tensor) else strength, dtype=np.float64
    ).reshape(-1)
    if values.size == 1:
        return np.full(n, float(values[0]))
    if values.size != n:
        raise EditError(f"{values.size} strengths for {n} crops")
    return values
