"""AttGAN generator speed on the CPU: plain eval-mode module vs the inference path
(batch norm folded into the convolutions, transposed convolutions as sub-pixel
convolutions, GEMMs for small feature maps, ``torch.inference_mode``).

Full-size release configurations (enc/dec dim 64, 5 layers, shortcut 1; 384 px is the
``384_shortcut1_inject1_none_hq`` experiment with inject 1), random weights with
non-trivial batch-norm statistics. Prints ms per image, the speed-up and the largest
output difference. The CPU may be shared: read the figures as indicative.

    python benchmarks/bench_attgan.py [--sizes 128 256 384] [--batch 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from faceedit.nets.attgan import AttGANGenerator, AttGANGeneratorConfig, fast_generate


def _model(size: int) -> AttGANGenerator:
    torch.manual_seed(0)
    G = AttGANGenerator(AttGANGeneratorConfig(img_size=size, inject_layers=1 if size == 384 else 0))
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return G.eval()


def _time_pair(a, b, repeats: int) -> tuple[float, float]:
    a()
    b()
    best_a = best_b = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        best_a = min(best_a, time.perf_counter() - t0)
        t0 = time.perf_counter()
        b()
        best_b = min(best_b, time.perf_counter() - t0)
    return best_a, best_b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(
        f"{'size':>5} {'plain ms/img':>13} {'fast ms/img':>12} {'speed-up':>9} {'max |diff|':>11}"
    )
    for size in args.sizes:
        G = _model(size)
        fast = G.inference_copy()
        x = torch.rand(args.batch, 3, size, size) * 2 - 1
        a = (torch.rand(args.batch, 13) > 0.5).float() - 0.5

        def plain(G=G, x=x, a=a):
            with torch.no_grad():
                return G(x, a)

        def folded(fast=fast, x=x, a=a):
            return fast_generate(fast, x, a)

        diff = (plain() - folded()).abs().max().item()
        # interleaved, best of N: other load on a shared CPU hits both paths alike
        t_plain, t_fast = _time_pair(plain, folded, args.repeats)
        t_plain, t_fast = t_plain / args.batch, t_fast / args.batch
        print(
            f"{size:>5} {1000 * t_plain:>13.1f} {1000 * t_fast:>12.1f} "
            f"{t_plain / t_fast:>8.2f}x {diff:>11.2e}"
        )


if __name__ == "__main__":
    main()
