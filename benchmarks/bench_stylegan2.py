"""StyleGAN2 synthesis speed and peak memory on this machine (config F weights, random values).

Run:  .venv/bin/python benchmarks/bench_stylegan2.py [--resolutions 256 1024] [--repeats 5]

Each resolution runs in a fresh subprocess so that its peak memory (max RSS) is its own.
Prints seconds per image (median of the repeats, after one warm-up), the CPU time, and
the peak resident memory, for the default path (fused modulation for one image,
channels-last) and, for comparison, the shared-weight path (``fused_modconv=False``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def measure(resolution: int, repeats: int, fused: bool | None, threads: int) -> dict:
    import resource

    import torch

    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(img_resolution=resolution)).eval()
    with torch.inference_mode():
        ws = G.mapping(torch.randn(1, G.z_dim))
        G.synthesis(ws, noise_mode="const", fused_modconv=fused)  # warm-up
        walls, cpus = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            G.synthesis(ws, noise_mode="const", fused_modconv=fused)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    walls.sort()
    cpus.sort()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "resolution": resolution,
        "fused": fused,
        "threads": threads,
        "s_per_image": walls[len(walls) // 2],
        "s_best": walls[0],
        "cpu_s_per_image": cpus[len(cpus) // 2],
        "peak_rss_mb": peak_kb / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        res, fused = json.loads(args.child)
        print(json.dumps(measure(res, args.repeats, fused, args.threads)))
        return
    print(f"StyleGAN2 config F synthesis, batch 1, noise_mode=const, {args.threads} threads")
    print(f"{'res':>5} {'path':>8} {'s/img':>7} {'best':>7} {'cpu s':>7} {'peak MB':>8}")
    results = {}
    for res in args.resolutions:
        for fused in (None, False):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    json.dumps([res, fused]),
                    "--repeats",
                    str(args.repeats),
                    "--threads",
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[(res, fused)] = r
            name = "default" if fused is None else "shared"
            print(
                f"{res:>5} {name:>8} {r['s_per_image']:>7.3f} {r['s_best']:>7.3f} "
                f"{r['cpu_s_per_image']:>7.2f} {r['peak_rss_mb']:>8.0f}"
            )
        ratio = results[(res, False)]["s_per_image"] / results[(res, None)]["s_per_image"]
        print(f"{res:>5} default is {ratio:.2f}x the speed of the shared-weight path")
    if 1024 in args.resolutions:
        r = results[(1024, None)]
        print(
            f"1024 px: {r['s_per_image']:.3f} s/image (target <= 1.0 s; "
            f"{3.1 / r['s_per_image']:.1f}x the 3.1 s of the original port's CPU path), "
            f"peak {r['peak_rss_mb']:.0f} MB (target < 1536 MB)"
        )


if __name__ == "__main__":
    main()
