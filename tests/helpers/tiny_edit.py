"""Tiny randomly initialised models for the photo/video editing tests, saved as bundles.

A 32 px StyleGAN2 (w_dim 32, 8 W+ rows), latent transformers and a classifier on its W+
space, and a 32 px AttGAN: seconds to build, milliseconds to run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import torch

GRACE = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
ATTRS = ("Smiling", "Eyeglasses")


def latent_bundle(root: Path) -> Path:
    """``root/latent`` with bundle.json, a generator, two transformers and a classifier."""
    from faceedit.nets.latent import (
        LatentClassifier,
        LatentClassifierConfig,
        LatentTransformer,
        LatentTransformerConfig,
    )
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    out = root / "latent"
    torch.manual_seed(0)
    G = StyleGAN2Generator(
        StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=32, channel_base=256, channel_max=32)
    ).eval()
    G.estimate_w_avg(num_samples=500)
    G.save_pretrained(out / "generator")
    for name in ATTRS:
        t = LatentTransformer(
            LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name=name)
        )
        with torch.no_grad():  # large enough that an edit is visible on a random model
            for p in t.parameters():
                p.mul_(4.0)
        t.save_pretrained(out / "transformers" / f"tnet_{name}")
    C = LatentClassifier(
        LatentClassifierConfig(
            num_ws=G.num_ws, w_dim=G.w_dim, hidden=(16,), n_attrs=2, attr_names=ATTRS
        )
    )
    C.save_pretrained(out / "classifier")
    spec = {
        "method": "latent",
        "generator": "generator",
        "transformers": "transformers",
        "classifier": "classifier",
        "layers": [0, 8],
    }
    (out / "bundle.json").write_text(json.dumps(spec, indent=2))
    return out


def attgan_model(root: Path) -> Path:
    """``root/attgan``: a 32 px AttGAN (G and D) in the own format."""
    from faceedit.nets.attgan import (
        AttGAN,
        AttGANConfig,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )

    torch.manual_seed(0)
    g = AttGANGeneratorConfig(enc_dim=4, dec_dim=4, enc_layers=3, dec_layers=3, img_size=32)
    d = AttGANDiscriminatorConfig(dim=4, n_layers=3, fc_dim=8, img_size=32)
    model = AttGAN(AttGANConfig(G=g, D=d)).eval()
    model.save_pretrained(root / "attgan")
    return root / "attgan"


def read_only(path: Path) -> bool:
    """Make ``path`` read-only; False when that has no effect (running as root)."""
    os.chmod(path, 0o555)
    return not os.access(path, os.W_OK)
