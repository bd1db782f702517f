"""Image similarity metrics: PSNR and SSIM (Wang et al., IEEE TIP 2004; Gaussian window 11,
sigma 1.5), differentiable, on any device. ``data_range`` is 2 for images in [-1, 1] and
1 for images in [0, 1]. :func:`psnr_uint8` is PSNR for rendered ``uint8`` pictures."""

from __future__ import annotations

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
