"""A tiny randomly initialised 16 px StyleGAN2 generator, saved in faceedit's format, for
the tests of the commands that work on a generator (encoder training, labelled samples)."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_generator(path: Path, seed: int = 3) -> Path:
    """Write ``path`` (config.json + model.safetensors) and return it: z/w 16, 16 px, a
    random ``w_avg`` (so that codes are not centred on zero by accident)."""
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(seed)
    G = StyleGAN2Generator(
        StyleGAN2Config(
            z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2, channel_base=64,
            channel_max=16,
        )
    )  # fmt: skip
    G.mapping.w_avg.normal_()
    G.eval().save_pretrained(path)
    return path
