"""Wall time of ``faceedit demo`` on models the size of the shipped avatar ones.

The shipped AttGAN and latent bundle may not exist yet, so this builds random-weight
models with the avatar training configs (64 px AttGAN, enc/dec/dis dim 32, 4 layers,
13 attributes; 64 px StyleGAN2, z/w 128, channel_base 2048, channel_max 64, 4 mapping
layers; five latent transformers and a classifier) and times the demo's default run
(4 avatars, 5 attributes, strengths 0.5 and 1) with the latent bundle's encoder when
faceedit has one, and with the projection fallback. The goal is under a minute on
2 CPU cores. The CPU may be shared: the figures are what this machine gave at the time.

    .venv/bin/python benchmarks/bench_demo.py [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import torch

from faceedit.data.avatars import ATTRIBUTE_NAMES as AVATAR_ATTRS

ATTRS = ("Smiling", "Eyeglasses", "Blond_Hair", "Wearing_Hat", "Mustache")


def build(root: Path, with_encoder: bool) -> tuple[Path, Path]:
    from faceedit.nets.attgan import (
        AttGAN,
        AttGANConfig,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )
    from faceedit.nets.latent import (
        LatentClassifier,
        LatentClassifierConfig,
        LatentTransformer,
        LatentTransformerConfig,
    )
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(0)
    g = AttGANGeneratorConfig(
        enc_dim=32,
        dec_dim=32,
        enc_layers=4,
        dec_layers=4,
        img_size=64,
        n_attrs=len(AVATAR_ATTRS),
        attrs=AVATAR_ATTRS,
    )
    d = AttGANDiscriminatorConfig(
        dim=32, n_layers=4, fc_dim=256, img_size=64, n_attrs=len(AVATAR_ATTRS)
    )
    AttGAN(AttGANConfig(G=g, D=d)).eval().save_pretrained(root / "attgan")
    G = StyleGAN2Generator(
        StyleGAN2Config(
            z_dim=128,
            w_dim=128,
            img_resolution=64,
            mapping_layers=4,
            channel_base=2048,
            channel_max=64,
        )
    ).eval()
    G.estimate_w_avg(num_samples=2000)
    latent = root / "latent"
    G.save_pretrained(latent / "generator")
    for name in ATTRS:
        LatentTransformer(
            LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name=name)
        ).save_pretrained(latent / "transformers" / f"tnet_{name}")
    LatentClassifier(
        LatentClassifierConfig(num_ws=G.num_ws, w_dim=G.w_dim, n_attrs=len(ATTRS), attr_names=ATTRS)
    ).save_pretrained(latent / "classifier")
    spec = {
        "method": "latent",
        "generator": "generator",
        "transformers": "transformers",
        "classifier": "classifier",
        "layers": [0, G.num_ws],
    }
    if with_encoder:
        from faceedit.nets.latent_encoder import LatentEncoder, LatentEncoderConfig

        E = LatentEncoder(LatentEncoderConfig(img_resolution=64, num_ws=G.num_ws, w_dim=G.w_dim))
        E.set_w_avg(G.w_avg)
        E.save_pretrained(latent / "encoder")
        spec["encoder"] = "encoder"
    (latent / "bundle.json").write_text(json.dumps(spec))
    return root / "attgan", latent


def time_demo(root: Path, attgan: Path, latent: Path, steps: int) -> float:
    from faceedit.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "demo",
                "--attgan",
                str(attgan),
                "--latent",
                str(latent),
                "-o",
                str(root / "out"),
                "--steps",
                str(steps),
            ]
        )
    assert code == 0
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="projection steps (fallback)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import faceedit.nets.latent_encoder  # noqa: F401

        variants = [("encoder", True), ("projection", False)]
    except ImportError:
        variants = [("projection", False)]
    print(f"faceedit demo, default run (4 avatars x 2 methods), {args.threads} threads")
    for label, with_encoder in variants:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            attgan, latent = build(root, with_encoder)
            seconds = time_demo(root, attgan, latent, args.steps)
            print(
                f"  latent inversion by {label:10s}: {seconds:6.1f} s  ({seconds / 60:.2f} of the 1 min goal)"
            )


if __name__ == "__main__":
    main()
