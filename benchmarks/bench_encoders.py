"""Encoder time per image at 256 px on the CPU: pSp, e4e (18 styles) and IR-SE-50.

Full-size networks with random weights (the speed does not depend on the values).
Prints seconds per image (best and median run) for each batch size and e4e's time
relative to pSp's.

    .venv/bin/python benchmarks/bench_encoders.py [--batch 1 4] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from faceedit.nets.encoders import E4EEncoder, IRSEBackbone, PSPEncoder


def seconds_per_image(fn, x: torch.Tensor, repeat: int) -> tuple[float, float, float]:
    """(best wall, median wall, median CPU) seconds per image over ``repeat`` calls.

    On a shared machine the best wall time is the figure to compare (other processes
    only ever make a run slower); CPU time (all threads) is less sensitive to them.
    """
    with torch.no_grad():
        fn(x)  # warm-up: first-call allocations
        wall, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(x)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    n = x.shape[0]
    return min(wall) / n, statistics.median(wall) / n, statistics.median(cpu) / n


def gflops_per_image(cls, method: str = "forward") -> float:
    """Floating-point operations of one 256 px image, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = cls().eval()
        x = torch.zeros(1, 3, 256, 256)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        getattr(model, method)(x)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "psp": PSPEncoder().eval(),
        "e4e": E4EEncoder().eval(),
        "ir_se50": IRSEBackbone().eval(),
    }
    flops = {
        "psp": gflops_per_image(PSPEncoder),
        "e4e": gflops_per_image(E4EEncoder),
        "ir_se50": gflops_per_image(IRSEBackbone, "extract"),
    }
    for name, m in models.items():
        n = sum(p.numel() for p in m.parameters())
        print(f"{name:8s} {n / 1e6:7.1f} M parameters  {flops[name]:6.1f} GFLOP per image")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, no_grad")
    for batch in args.batch:
        x = torch.rand(batch, 3, 256, 256) * 2 - 1
        t = {
            "psp": seconds_per_image(models["psp"], x, args.repeat),
            "e4e": seconds_per_image(models["e4e"], x, args.repeat),
            # the ID-loss path: crop + pool the 256 px image to 112 px, then the backbone
            "ir_se50": seconds_per_image(models["ir_se50"].extract, x, args.repeat),
        }
        print(f"batch {batch}: seconds per image, best wall / median wall / median CPU")
        for k, (best, med, cpu) in t.items():
            print(f"  {k:8s} {best:7.3f} / {med:7.3f} / {cpu:7.3f}")
        print(f"  e4e/psp best wall {t['e4e'][0] / t['psp'][0]:.2f}x")


if __name__ == "__main__":
    main()
