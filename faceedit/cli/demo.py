"""``faceedit demo``: the main job on the embedded default model, no download needed.

Until faceedit ships its trained avatar models, the demo runs ``faceedit generate`` on a
small StyleGAN2 generator that it builds from a fixed seed (random weights, so the
pictures are abstract) and caches; it says so when it runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from faceedit.cli.common import Commands

DEMO_SEED = 0


def cache_dir() -> Path:
    root = os.environ.get("FACEEDIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "faceedit"
    )
    return Path(root)


def register(commands: Commands) -> None:
    p = commands.add("demo", "run the demo on the embedded default model (no download)", run)
    p.add_argument("-o", "--output", default="faceedit-demo", help="output directory")


def demo_generator_dir() -> Path:
    """Build (once) and cache the small demo generator; return its directory."""
    import torch

    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    path = cache_dir() / "demo-stylegan2-64"
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    config = StyleGAN2Config(
        z_dim=128, w_dim=128, img_resolution=64, channel_base=4096, channel_max=128
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        G = StyleGAN2Generator(config)
    G.estimate_w_avg(num_samples=2000, seed=DEMO_SEED)
    G.save_pretrained(path, metadata={"note": "random weights, built by `faceedit demo`"})
    return path


def run(args: argparse.Namespace) -> int:
    from faceedit.cli.generate import run as generate

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model = demo_generator_dir()
    print(
        "faceedit demo: the trained avatar models are not shipped yet, so this runs "
        f"`faceedit generate` on a small random-weight StyleGAN2 generator cached at {model}"
    )
    gen_args = argparse.Namespace(
        model=str(model),
        seeds="0-7",
        truncation=0.7,
        perturb=0.5,
        noise_mode="const",
        save_latents=True,
        device="cpu",
        output=str(out / "generate_grid.png"),
    )
    return generate(gen_args)
