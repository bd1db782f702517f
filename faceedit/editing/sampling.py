"""Sampling a generator from seeds, and perturbing W+ codes (the slides' first experiment)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from faceedit.nets.stylegan2 import StyleGAN2Generator, seed_to_z


@torch.no_grad()
def ws_from_seeds(
    G: StyleGAN2Generator, seeds: list[int], truncation_psi: float = 1.0
) -> torch.Tensor:
    """``ws [len(seeds), num_ws, w_dim]``: one W+ per seed (z from NumPy's RandomState(seed))."""
    device = G.w_avg.device
    z = torch.cat([seed_to_z(s, G.z_dim) for s in seeds]).to(device)
    return G.mapping(z, truncation_psi=truncation_psi)


def perturb_ws(ws: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """``ws + sigma * N(0, 1)``, independently per row and channel, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(ws.shape, generator=g).to(ws.device, ws.dtype)
    return ws + sigma * noise


@torch.no_grad()
def synthesize(
    G: StyleGAN2Generator,
    ws: torch.Tensor,
    batch_size: int = 4,
    noise_mode: str = "const",
    progress: bool = False,
    desc: str = "synthesising",
) -> np.ndarray:
    """Render ``ws [N, num_ws, w_dim]`` in batches; returns ``uint8 [N, H, W, 3]``."""
    from faceedit.data.images import tensor_to_uint8

    out = []
    starts = range(0, ws.shape[0], batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        img = G.synthesis(ws[start : start + batch_size], noise_mode=noise_mode)
        out.append(tensor_to_uint8(img))
    return np.concatenate(out)
