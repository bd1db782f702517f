"""Optimisation projection: seconds per step at 256 and 1024 px on the CPU.

One step = synthesis of a W+ code, the loss (pixel + multiscale pyramid), backward to
the code, Adam update: what :func:`faceedit.editing.projection.project` does per step.
Config F generators with random weights (speed does not depend on the values). The
per-step time is ``(t(1 + n steps) - t(1 step)) / n``, which leaves out the set-up
(W statistics, first-call allocations). Wall time and CPU time (all threads) are both
printed, since the machine may be shared. On a busy shared machine also try
``--threads 1``: threads waiting for each other inflate wall and CPU time alike (here,
2-core machine at load ~8: 256 px 14.9 s wall / 4.9 s CPU with 2 threads, 2.2 / 1.8 s
with 1 thread; 1024 px 8.7 s wall / 5.5 s CPU with 1 thread).

    .venv/bin/python benchmarks/bench_projection.py [--sizes 256 1024] [--steps 4 2] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from faceedit.editing.projection import project
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 2], help="timed steps per size")
    parser.add_argument("--space", choices=["w", "w+"], default="w+")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {args.space}")
    results = {}
    for size, n in zip(args.sizes, args.steps * len(args.sizes), strict=False):
        torch.manual_seed(0)
        G = StyleGAN2Generator(StyleGAN2Config(img_resolution=size)).eval()
        params = sum(p.numel() for p in G.synthesis.parameters()) / 1e6
        target = torch.rand(1, 3, size, size) * 2 - 1

        def run(steps: int, G=G, target=target) -> None:
            project(
                G,
                target,
                space=args.space,
                steps=steps,
                w_stats_samples=1000,
                generator=torch.Generator().manual_seed(0),
                progress=False,
            )

        run(1)  # warm-up
        wall1, cpu1 = timed(lambda run=run: run(1))
        walln, cpun = timed(lambda run=run, n=n: run(1 + n))
        wall, cpu = (walln - wall1) / n, (cpun - cpu1) / n
        results[size] = (wall, cpu)
        print(
            f"{size:5d} px ({params:5.1f} M synthesis params, {n} steps): "
            f"{wall:7.3f} s/step wall, {cpu:7.3f} s/step CPU"
        )
    if len(results) > 1:
        lo, hi = min(results), max(results)
        print(
            f"{hi}/{lo} px ratio: {results[hi][0] / results[lo][0]:.1f}x wall, "
            f"{results[hi][1] / results[lo][1]:.1f}x CPU "
            f"({(hi / lo) ** 2:.0f}x the pixels)"
        )


if __name__ == "__main__":
    main()
