"""Image similarity metrics: PSNR and SSIM (Wang et al., IEEE TIP 2004; Gaussian window 11,
sigma 1.5), differentiable, on any device. ``data_range`` is 2 for images in [-1, 1] and
1 for images in [0, 1]. :func:`psnr_uint8` is PSNR for rendered ``uint8`` pictures.

Ground-truth pixel metrics of an edit (issue 22, item 3), for ``uint8 [..., H, W, 3]``
edits, sources and rendered counterfactuals: PSNR against the truth; the *region gain*
``1 - SE_D(edit, truth) / SE_D(source, truth)`` over the pixels D where source and truth
differ (:func:`change_region`, :data:`REGION_THRESHOLD`); PSNR outside D against the source;
pooled summaries and medians (:class:`PixelErrors`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-image PSNR in dB of ``[N, C, H, W]`` images (range 2 for [-1, 1]) -> ``[N]``."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(data_range**2 / mse)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of ``uint8 [..., H, W, 3]`` images, one value per image (``[...]``).

    An exact copy counts as 100 dB rather than infinity, so means stay finite.
    """
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.mean(diff**2, axis=(-3, -2, -1))
    return np.minimum(100.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))


def ssim(
    a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 2.0
) -> torch.Tensor:
    """Differentiable SSIM of ``[N, C, H, W]`` images -> ``[N]`` (Gaussian window).

    ``data_range`` is 2 for images in [-1, 1]. The window shrinks for tiny images.
    """
    window = min(window, a.shape[-1], a.shape[-2])
    coords = torch.arange(window, dtype=a.dtype, device=a.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(a.shape[1], 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=a.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a**2
    s_bb = blur(b * b) - mu_b**2
    s_ab = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return (num / den).flatten(1).mean(1)


# ---------------------------------------------------------------- ground-truth pixel metrics
#
# An edit of a rendered avatar has an exact ground truth: the counterfactual rendered with
# the attribute flipped. The pixels that must change are the region D where the source and
# the truth differ; the rest must stay as it was. Per-edit region gains are heavy-tailed
# (a faint, small region makes the denominator tiny), so summaries pool the squared errors
# over all edits before taking the ratio, and give the median of per-edit gains beside it.

#: a pixel is in the change region D when some channel of source and truth differs by more
#: than this many uint8 levels: renders of the same record are identical, so anything above
#: the rounding of anti-aliased edges is a real difference
REGION_THRESHOLD = 8


def change_region(
    source: np.ndarray, truth: np.ndarray, threshold: int = REGION_THRESHOLD
) -> np.ndarray:
    """``bool [..., H, W]``: pixels of ``uint8 [..., H, W, 3]`` images where any channel of
    ``source`` and ``truth`` differs by more than ``threshold`` levels."""
    if source.shape != truth.shape or source.shape[-1] != 3:
        raise ValueError(
            f"expected two uint8 [..., H, W, 3] images of one shape, got "
            f"{list(source.shape)} and {list(truth.shape)}"
        )
    diff = np.abs(source.astype(np.int16) - truth.astype(np.int16))
    return diff.max(-1) > threshold


@dataclass
class PixelErrors:
    """Squared errors of edits against their ground truth, one entry per edit (``[N]``).

    ``se_*`` are sums of squared uint8 differences over pixels and channels; ``n_*`` count
    the pixels (times 3 channels) they are summed over. ``region`` is D
    (:func:`change_region`), ``outside`` the other pixels, ``all`` the whole image.
    """

    se_region_edit: np.ndarray  # edit vs truth inside D
    se_region_source: np.ndarray  # source vs truth inside D (what doing nothing scores)
    n_region: np.ndarray
    se_outside: np.ndarray  # edit vs source outside D
    n_outside: np.ndarray
    se_all: np.ndarray  # edit vs truth, whole image
    n_all: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[PixelErrors]) -> PixelErrors:
        names = [f.name for f in fields(cls)]
        if not parts:
            return cls(*(np.zeros(0) for _ in names))
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in names))

    def __len__(self) -> int:
        return len(self.n_all)

    def select(self, which: np.ndarray) -> PixelErrors:
        """The entries where ``which`` (a bool or index array) selects."""
        return PixelErrors(*(getattr(self, f.name)[which] for f in fields(self)))

    @property
    def region_gain(self) -> np.ndarray:
        """Per-edit ``1 - SE_D(edit, truth) / SE_D(source, truth)``; NaN where D is empty."""
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = 1 - self.se_region_edit / self.se_region_source
        return np.where(self.se_region_source > 0, gain, np.nan)

    @property
    def truth_psnr(self) -> np.ndarray:
        """Per-edit PSNR (dB) of the edit against the truth, capped at 100 like
        :func:`psnr_uint8`."""
        return _psnr_of(self.se_all, self.n_all)

    @property
    def outside_psnr(self) -> np.ndarray:
        """Per-edit PSNR (dB) outside D, edit against source; NaN where D is everything."""
        return np.where(self.n_outside > 0, _psnr_of(self.se_outside, self.n_outside), np.nan)

    def summary(self) -> dict[str, float]:
        """Pooled figures over all entries (sums of squared errors first, then the ratio)
        and the medians of the per-edit figures; NaN where nothing was measured."""
        n = len(self)
        pooled_region = float(self.se_region_source.sum())
        gains = self.region_gain
        finite = gains[np.isfinite(gains)]
        outside = float(self.n_outside.sum())
        return {
            "n": n,
            "pooled_region_gain": 1 - float(self.se_region_edit.sum()) / pooled_region
            if pooled_region > 0
            else float("nan"),
            "median_region_gain": float(np.median(finite)) if finite.size else float("nan"),
            "pooled_truth_psnr": float(_psnr_of(self.se_all.sum(), self.n_all.sum()))
            if n
            else float("nan"),
            "mean_truth_psnr": float(self.truth_psnr.mean()) if n else float("nan"),
            "pooled_outside_psnr": float(_psnr_of(self.se_outside.sum(), outside))
            if outside > 0
            else float("nan"),
        }


def _psnr_of(se, count) -> np.ndarray:
    mse = np.asarray(se, dtype=np.float64) / np.maximum(np.asarray(count, dtype=np.float64), 1)
    return np.minimum(100.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))


def edit_pixel_errors(
    edit: np.ndarray, source: np.ndarray, truth: np.ndarray, threshold: int = REGION_THRESHOLD
) -> PixelErrors:
    """The squared errors of edits ``uint8 [H, W, 3]`` or ``[N, H, W, 3]`` against the
    ground truth (same shapes), with D taken from ``source`` and ``truth``."""
    if not (edit.shape == source.shape == truth.shape) or edit.shape[-1] != 3:
        raise ValueError(
            "edit, source and truth must be uint8 [..., H, W, 3] of one shape, got "
            f"{list(edit.shape)}, {list(source.shape)}, {list(truth.shape)}"
        )
    if edit.ndim == 3:
        edit, source, truth = edit[None], source[None], truth[None]
    e, s, t = (a.astype(np.float64) for a in (edit, source, truth))
    region = change_region(source, truth, threshold)[..., None]  # [N, H, W, 1]
    outside = ~region
    sq_edit_truth = (e - t) ** 2
    channels = e.shape[-1]
    return PixelErrors(
        se_region_edit=(sq_edit_truth * region).sum((1, 2, 3)),
        se_region_source=(((s - t) ** 2) * region).sum((1, 2, 3)),
        n_region=region.sum((1, 2, 3)) * channels,
        se_outside=(((e - s) ** 2) * outside).sum((1, 2, 3)),
        n_outside=outside.sum((1, 2, 3)) * channels,
        se_all=sq_edit_truth.sum((1, 2, 3)),
        n_all=np.full(len(e), e[0].size, dtype=np.int64),
    )


def region_gain(
    edit: np.ndarray, source: np.ndarray, truth: np.ndarray, threshold: int = REGION_THRESHOLD
) -> np.ndarray:
    """Per-edit region gain of ``uint8 [..., H, W, 3]`` edits: 1 = the truth, 0 = did
    nothing, negative = worse than nothing (NaN where source and truth do not differ)."""
    return edit_pixel_errors(edit, source, truth, threshold).region_gain


def outside_region_psnr(
    edit: np.ndarray, source: np.ndarray, truth: np.ndarray, threshold: int = REGION_THRESHOLD
) -> np.ndarray:
    """Per-edit PSNR (dB) of the edit against the source outside D (the rest of the face
    left alone scores high)."""
    return edit_pixel_errors(edit, source, truth, threshold).outside_psnr
