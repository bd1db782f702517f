"""W+ encoder training speed (``faceedit train encoder``): seconds per step.

Times :func:`faceedit.train.encoder.encoder_step` (``B`` generated + ``B`` real images,
one pass through the encoder and the frozen generator, backward, Adam) for a generator
shaped like the avatar StyleGAN2 run (64 px, z/w 128, 4 mapping layers, channel_base
2048, channel_max 64) and the default encoder, the same step with the feature loss of
``--perceptual`` (a default-sized avatar oracle's features, see
:mod:`faceedit.losses`), with that and the oracle-reading loss of
``--lambda-identity`` as well, and the encoder forward alone. Weights and "real" images
are random: the timing does not depend on their values. Prints the median over
``--steps`` timed steps (after 2 warm-up steps), the cost ratio of the oracle losses, and
the minutes the default 1000-step run would take at each rate. The CPU is shared:
figures vary with the load.

    .venv/bin/python benchmarks/bench_encoder_train.py [--threads 2] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from faceedit.losses import OracleAgreement, OracleFeatures, PerceptualDistance
from faceedit.nets.latent_encoder import LatentEncoder, LatentEncoderConfig
from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from faceedit.train.encoder import EncoderTrainConfig, encoder_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--channel-max", type=int, default=64, help="the generator's")
    parser.add_argument("--run-steps", type=int, default=1000, help="steps of a full run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = StyleGAN2Generator(
        StyleGAN2Config(
            z_dim=128,
            w_dim=128,
            img_resolution=64,
            mapping_layers=4,
            channel_base=2048,
            channel_max=args.channel_max,
        )
    ).requires_grad_(False)
    E = LatentEncoder(LatentEncoderConfig(img_resolution=64, num_ws=G.num_ws, w_dim=G.w_dim))
    n_params = sum(p.numel() for p in E.parameters())
    opt = torch.optim.Adam(E.parameters(), lr=1e-3)
    images = torch.randint(0, 256, (256, 3, 64, 64), dtype=torch.uint8)
    config = EncoderTrainConfig(generator="-", data="-", out="-", batch_size=args.batch_size)
    gen = torch.Generator().manual_seed(0)
    oracle = AvatarOracle(AvatarOracleConfig(attr_names=("Smiling",)))
    perceptual = PerceptualDistance(OracleFeatures(oracle), size=None).requires_grad_(False)

    agreement = OracleAgreement(oracle)
    config_identity = dataclasses.replace(config, perceptual="-", lambda_identity=1.0)

    def time_steps(distance, identity=None) -> list[float]:
        times = []
        for i in range(args.steps + 2):
            t = time.perf_counter()
            cfg = config if identity is None else config_identity
            encoder_step(E, G, opt, images, args.batch_size, cfg, gen, distance, identity)
            if i >= 2:
                times.append(time.perf_counter() - t)
        return times

    times = time_steps(None)
    step = statistics.median(times)
    step_perceptual = statistics.median(time_steps(perceptual))
    step_identity = statistics.median(time_steps(perceptual, agreement))
    x = torch.randn(2 * args.batch_size, 3, 64, 64)
    with torch.no_grad():
        fwd = []
        for _ in range(5):
            t = time.perf_counter()
            E(x)
            fwd.append(time.perf_counter() - t)
    print(
        f"encoder {n_params / 1e6:.2f} M parameters; generator channel_max {args.channel_max}; "
        f"{args.threads} thread(s), batch {args.batch_size} + {args.batch_size}"
    )
    print(f"train step: {step:.3f} s (median of {len(times)}; min {min(times):.3f} s)")
    print(
        f"train step with --perceptual: {step_perceptual:.3f} s "
        f"({step_perceptual / step:.2f}x the step without)"
    )
    print(
        f"train step with --perceptual and --lambda-identity: {step_identity:.3f} s "
        f"({step_identity / step:.2f}x the step without either)"
    )
    print(f"encoder forward of {len(x)} images: {statistics.median(fwd) * 1000:.1f} ms")
    print(
        f"{args.run_steps} steps at these rates: {args.run_steps * step / 60:.1f} min, "
        f"{args.run_steps * step_perceptual / 60:.1f} min with --perceptual, "
        f"{args.run_steps * step_identity / 60:.1f} min with --lambda-identity too"
    )


if __name__ == "__main__":
    main()
