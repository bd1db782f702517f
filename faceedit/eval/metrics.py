"""Image similarity metrics: PSNR and SSIM (Wang et al., IEEE TIP 2004; Gaussian window 11,
sigma 1.5), differentiable, on any device. ``data_range`` is 2 for images in [-1, 1] and
1 for images in [0, 1]. :func:`psnr_uint8` is PSNR for rendered ``uint8`` pictures.

:func:`psnr` and :func:`ssim` are defined in :mod:`faceedit.losses` (the structural term of
the multiscale loss is SSIM, and ``losses`` sits below ``eval``); they are reported from
here under the same names."""

from __future__ import annotations

import numpy as np

from faceedit.losses import psnr, ssim


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of ``uint8 [..., H, W, 3]`` images, one value per image (``[...]``).

    An exact copy counts as 100 dB rather than infinity, so means stay finite.
    """
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.mean(diff**2, axis=(-3, -2, -1))
    return np.minimum(100.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))


__all__ = ["psnr", "psnr_uint8", "ssim"]
