"""Pivotal tuning (``--invert pti``) on the CPU: seconds per tuning step and peak memory at
1024 px (StyleGAN2 config F, random weights), and seconds per avatar with the PSNR gain
over the pivot for the shipped 64 px ``avatar-latent`` bundle.

1024 px: one step = the tuned copy's synthesis of the pivot and one locality code (a
batch of two), the original's synthesis of the locality code, pixel + multiscale losses,
backward into the weights, Adam. The per-step time is ``(t(1 + n) - t(1)) / n``, which
leaves out the copy and first-call allocations; the peak is the process's peak resident
memory (``ru_maxrss``) with the generator, its tuned copy, Adam's state and the
activations, next to the peak with the generator alone. Each part runs in its own
process, so that each peak is its own.

Avatars: held-out avatars rendered from ``--seed`` (5 by default: never 1 or 21, the
evaluation seeds), inverted by the bundle's encoder (the pivot) and tuned with the
default options (or those given); prints each avatar's reconstruction PSNR (uint8, to
the render) before and after, the seconds per avatar, and how alike the tuned copy and
the original draw the pivot edited (Smiling=1): what the locality term keeps. Wall and CPU time are both
printed, since the machine may be shared; CPU time / threads approximates the wall time
on that many idle cores.

    .venv/bin/python benchmarks/bench_pti.py [--part all|ffhq|avatar] [--threads 2]
        [--n 4] [--seed 5] [--pti-steps N] [--pti-lr LR] [--pti-locality W]
        [--pti-radius R] [--pti-perceptual NET] [--pti-perceptual-weight W] [--ffhq-steps 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import torch

EVALUATION_SEEDS = (1, 21)


def timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_ffhq(args: argparse.Namespace) -> None:
    from faceedit.configs import preset
    from faceedit.editing.pti import tune_generator
    from faceedit.nets.stylegan2 import StyleGAN2Generator

    torch.manual_seed(0)
    G = StyleGAN2Generator(preset("stylegan2-ffhq-1024")).eval()
    G.estimate_w_avg(num_samples=1000)
    params = sum(p.numel() for p in G.synthesis.parameters()) / 1e6
    target = torch.rand(1, 3, 1024, 1024) * 2 - 1
    with torch.no_grad():
        pivot = G.mapping(torch.randn(1, G.z_dim))
    alone = peak_mib()
    options = _tuning(args)

    def run(steps: int) -> None:
        tune_generator(G, target, pivot, **{**options, "steps": steps}, generator=torch.Generator())

    run(1)  # warm-up
    wall1, cpu1 = timed(lambda: run(1))
    n = args.ffhq_steps
    walln, cpun = timed(lambda: run(1 + n))
    wall, cpu = (walln - wall1) / n, (cpun - cpu1) / n
    print(
        f"1024 px config F ({params:.1f} M synthesis params, locality "
        f"{options['locality']:g}, pixels): {wall:.2f} s/step wall, {cpu:.2f} s/step CPU; "
        f"peak memory {peak_mib():.0f} MiB (generator alone {alone:.0f} MiB)"
    )


def _tuning(args: argparse.Namespace) -> dict:
    from faceedit.editing.latent_pipeline import Inversion

    d = Inversion()
    return {
        "steps": args.pti_steps or d.pti_steps,
        "lr": args.pti_lr or d.pti_lr,
        "locality": d.pti_locality if args.pti_locality is None else args.pti_locality,
        "radius": args.pti_radius or d.pti_radius,
    }


def bench_avatars(args: argparse.Namespace) -> None:
    from faceedit.data.avatars import render_record, sample_records
    from faceedit.editing.latent_pipeline import LatentPipeline

    pipe = LatentPipeline.from_pretrained("avatar-latent")
    options = {"invert": "pti"}
    keys = ("pti_steps", "pti_lr", "pti_locality", "pti_radius", "pti_perceptual")
    for key in (*keys, "pti_perceptual_weight"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    tuned = pipe.with_options(**options)
    settings = tuned.settings()["pti"]
    print(f"avatar-latent, seed {args.seed}, {args.n} avatars, pti {settings}")
    tuned.perceptual_network()  # loaded once, not timed
    crops = np.stack([render_record(r, 64) for r in sample_records(args.n, seed=args.seed)])
    walls, cpus, before, after, agree = [], [], [], [], []
    attr = "Smiling" if "Smiling" in pipe.attributes else pipe.attributes[0]
    for i, crop in enumerate(crops):
        t0, c0 = time.perf_counter(), time.process_time()
        code = tuned.invert(crop[None])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        pivot = _psnr(pipe.render(code.ws)[0], crop)
        rec = _psnr(tuned.reconstruct(code)[0], crop)
        walls.append(wall), cpus.append(cpu), before.append(pivot), after.append(rec)
        # locality: the edited pivot drawn by the tuned copy and by the original
        edit = {attr: 1.0}
        same = _psnr(
            tuned.edit_codes(code, edit).images[0], pipe.edit_codes(code.ws, edit).images[0]
        )
        agree.append(same)
        print(
            f"  avatar {i}: {pivot:5.2f} -> {rec:5.2f} dB, {wall:6.1f} s wall, {cpu:6.1f} s "
            f"CPU; {attr}=1 by tuned vs original {same:5.2f} dB",
            flush=True,
        )
    gain = np.mean(after) - np.mean(before)
    print(
        f"mean: {np.mean(before):.2f} -> {np.mean(after):.2f} dB (+{gain:.2f}), "
        f"{np.mean(walls):.1f} s wall, {np.mean(cpus):.1f} s CPU per avatar "
        f"({torch.get_num_threads()} threads: {np.mean(cpus) / torch.get_num_threads():.1f} s "
        "on as many idle cores)"
    )
    print(f"{attr}=1 drawn by the tuned copy vs the original: {np.mean(agree):.2f} dB")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "ffhq", "avatar"], default="all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=4, help="held-out avatars")
    parser.add_argument("--seed", type=int, default=5, help="their seed (never 1 or 21)")
    parser.add_argument("--ffhq-steps", type=int, default=2, help="timed steps at 1024 px")
    parser.add_argument("--pti-steps", type=int)
    parser.add_argument("--pti-lr", type=float)
    parser.add_argument("--pti-locality", type=float)
    parser.add_argument("--pti-radius", type=float)
    parser.add_argument("--pti-perceptual")
    parser.add_argument("--pti-perceptual-weight", type=float)
    args = parser.parse_args()
    if args.seed in EVALUATION_SEEDS:
        parser.error(f"--seed {args.seed}: an evaluation seed; develop on another (e.g. 5)")
    if args.part == "all":  # each part in its own process: its own peak memory
        for part in ("ffhq", "avatar"):
            argv = [a for a in sys.argv[1:] if a not in ("--part", "all")]
            subprocess.run([sys.executable, __file__, "--part", part, *argv], check=True)
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    bench_ffhq(args) if args.part == "ffhq" else bench_avatars(args)


if __name__ == "__main__":
    main()
