"""``faceedit train stylegan2``: train a StyleGAN2 generator on a folder of images."""

from __future__ import annotations

import argparse
import os

from faceedit.cli.common import Commands, add_device, add_output, add_quiet
from faceedit.cli.training import add_restart_flag, notice


def register(commands: Commands) -> None:
    p = commands.add(
        "stylegan2",
        "train a StyleGAN2 generator (runs under torchrun for several processes)",
        run,
        group="train",
        description=(
            "Train a StyleGAN2 generator on a folder of images. Settings come from --config "
            "(YAML with the fields of StyleGAN2TrainConfig) and the options below, which win. "
            "Re-running the same command resumes from OUT/checkpoint.pt (a larger --steps "
            "extends the run; --restart starts over). Several processes: "
            "torchrun --nproc_per_node N -m faceedit train stylegan2 ..."
        ),
    )
    p.add_argument("--data", help="folder of training images (searched recursively)")
    add_output(
        p,
        "run directory (checkpoints, samples, logs, final generator)",
        required=False,
        metavar="DIR",
    )
    p.add_argument("--config", help="YAML file with training settings")
    p.add_argument("--resolution", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--r1-gamma", type=float)
    p.add_argument("--pl-weight", type=float)
    p.add_argument("--channel-base", type=int)
    p.add_argument("--channel-max", type=int)
    p.add_argument("--amp", choices=["none", "bf16"])
    p.add_argument("--sample-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--max-images", type=int)
    p.add_argument("--seed", type=int)
    add_device(p, default=None, help="auto, cpu, cuda or cuda:N (overrides the config's; auto)")
    p.add_argument(
        "--init-from",
        help="continue this generator (its dir, a run dir or a latent bundle) with a fresh D",
    )
    p.add_argument(
        "--d-warmup-steps", type=int, help="train only D for the first steps (with --init-from)"
    )
    add_restart_flag(p)
    p.add_argument("--no-resume", action="store_true", help="deprecated spelling of --restart")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from faceedit.train.common import load_yaml_config
    from faceedit.train.stylegan2 import StyleGAN2TrainConfig, train_stylegan2

    fields = [
        "data",
        "out",
        "resolution",
        "steps",
        "batch_size",
        "lr",
        "r1_gamma",
        "pl_weight",
        "channel_base",
        "channel_max",
        "amp",
        "sample_every",
        "checkpoint_every",
        "max_images",
        "seed",
        "device",
        "init_from",
        "d_warmup_steps",
    ]
    overrides = {f: getattr(args, "output" if f == "out" else f) for f in fields}
    config = load_yaml_config(args.config, StyleGAN2TrainConfig, **overrides)
    if args.no_resume:
        notice("--no-resume is deprecated: use --restart (it starts the run over)")
    export = train_stylegan2(
        config, restart=args.restart or args.no_resume, progress=not args.quiet
    )
    if int(os.environ.get("RANK", "0")) == 0:  # one line, not one per torchrun process
        print(f"generator written to {export}")
    return 0
