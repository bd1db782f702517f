"""Helpers the CLI verbs share at run time (imported lazily, may import torch)."""

from __future__ import annotations

import numpy as np
import torch

from faceedit.fileio import atomic_path
from faceedit.train.common import resolve_device


def load_generator(path: str, device: str = "cpu"):
    """Load a StyleGAN2 generator (any supported format, path or name) onto ``device``."""
    from faceedit.checkpoints import load_generator as load_any_generator

    return load_any_generator(path).to(resolve_device(device)).eval()


def save_npy(path: str, tensor: torch.Tensor) -> str:
    """Save a tensor as float32 .npy atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, tensor.detach().float().cpu().numpy())
    return path
