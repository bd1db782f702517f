"""The avatar strength sweep: how long transformers + linear directions take on N avatars.

What ``faceedit eval avatars --method latent --baseline linear --strengths ...`` does after
loading: render the held-out avatars, invert each once, then for every method, attribute
and strength edit the codes, synthesise them in batches and let the shipped oracle judge
them. Models with random weights at the shipped avatar generator's size (64 px,
channel base 2048, channel max 64, w_dim 512: speed does not depend on the values),
13 transformers and 13 random unit directions; the "inverter" is the mapping network
(an encoder's cost is not what this measures). Prints wall and CPU time, edits per
second and the projection to 500 avatars x 13 attributes x 4 strengths x 2 methods.
The machine may be shared: wall and CPU time are both printed. Measured here (2 cores
shared with two training runs at nice -5, this at nice 10): 128 avatars x 2 attributes x
4 strengths x 2 methods = 2048 edits in 86 s wall / 38 s CPU (24 edits/s, projected 36 min
for the full 52,000); synthesis is ~60% of it (cProfile; 52 images/s at batch 128),
the oracle most of the rest: on two idle cores expect about half the wall time.

    .venv/bin/python benchmarks/bench_avatar_sweep.py [--n 40] [--batch-size 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="avatars")
    parser.add_argument("--attrs", type=int, default=13)
    parser.add_argument("--strengths", default="0.5,1,1.5,2")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import faceedit
    from faceedit.editing.directions import LinearDirections
    from faceedit.editing.latent import LatentEditor
    from faceedit.eval.avatar_sweep import (
        LINEAR,
        TRANSFORMER,
        generator_synthesize,
        sweep_avatar_edits,
    )
    from faceedit.eval.avatars import held_out_records
    from faceedit.nets.latent import LatentTransformer, LatentTransformerConfig
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(0)
    G = StyleGAN2Generator(
        StyleGAN2Config(img_resolution=64, channel_base=2048, channel_max=64)
    ).eval()
    oracle = faceedit.load("avatar-oracle")
    attrs = list(oracle.config.attr_names)[: args.attrs]
    editor = LatentEditor(
        {
            a: LatentTransformer(LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim))
            for a in attrs
        },
        layers=(0, G.num_ws),
    )
    d = torch.nn.functional.normalize(torch.randn(len(attrs), G.num_ws * G.w_dim), dim=1)
    directions = LinearDirections(
        tuple(attrs), d.reshape(len(attrs), G.num_ws, G.w_dim), torch.ones(len(attrs))
    )
    methods = {
        TRANSFORMER: lambda ws, a, alpha: editor.edit_latents(ws, {a: alpha}),
        LINEAR: lambda ws, a, alpha: directions.edit_latents(ws, {a: alpha}),
    }

    @torch.no_grad()
    def invert(images: np.ndarray) -> torch.Tensor:
        return G.mapping(torch.randn(len(images), G.z_dim))

    strengths = [float(s) for s in args.strengths.split(",")]
    records = held_out_records(args.n, seed=1)
    t0, c0 = time.perf_counter(), time.process_time()
    sweep_avatar_edits(
        methods,
        invert,
        generator_synthesize(G, 64),
        attrs,
        oracle,
        records,
        size=64,
        strengths=strengths,
        batch_size=args.batch_size,
        progress=False,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    edits = args.n * len(attrs) * len(strengths) * len(methods)
    full = 500 * 13 * 4 * 2
    print(
        f"{args.n} avatars x {len(attrs)} attributes x {len(strengths)} strengths x "
        f"{len(methods)} methods = {edits} edits: {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"({args.threads} threads), {edits / wall:.0f} edits/s"
    )
    print(
        f"projected to 500 x 13 x 4 x 2 = {full} edits: {full / (edits / wall) / 60:.1f} min wall"
    )


if __name__ == "__main__":
    main()
