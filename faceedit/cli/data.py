"""``faceedit data avatars`` and ``faceedit train oracle``: the avatar face domain.

``data avatars`` writes the labelled dataset (:mod:`faceedit.data.avatars`);
``train oracle`` trains the CNN that reads its labels back (:mod:`faceedit.train.oracle`). Numbers are parsed here
rather than by argparse so that a bad value gives one clear line, like every other
faceedit error.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_option,
    add_output,
    add_quiet,
    parse_float,
    parse_int,
)
from faceedit.cli.training import add_restart_flag
from faceedit.errors import FaceeditError


def register(commands: Commands) -> None:
    p = commands.add(
        "avatars",
        help="render the labelled avatar face dataset (DiceBear avataaars)",
        run=run_avatars,
        group="data",
        description=(
            "Render avatar faces with balanced binary attributes: images/*.png, "
            "list_attr_celeba.txt (CelebA format), list_eval_partition.txt, "
            "params.jsonl (every rendering parameter) and dataset.json."
        ),
    )
    add_output(p, "new output directory", metavar="DIR")
    p.add_argument("--n", default="30000", metavar="N", help="number of avatars")
    p.add_argument("--size", default="64", metavar="PX", help="image side in pixels")
    p.add_argument("--seed", default="0", metavar="SEED", help="random seed")
    p.add_argument(
        "--workers",
        default=None,
        metavar="K",
        help="rendering processes; all available cores when not given",
    )
    add_option(
        p,
        "--split-fractions",
        deprecated=("--split",),
        dest="split",
        default="0.8,0.1,0.1",
        metavar="TR,VA,TE",
        help="train,val,test fractions",
    )
    add_quiet(p, help="no progress bar")

    t = commands.add(
        "oracle",
        help="train the avatar attribute oracle (a small CNN) on 'data avatars' output",
        run=run_train_oracle,
        group="train",
        description=(
            "Train a CNN that predicts every avatar attribute and rendering parameter; "
            "writes an own-format model directory (config.json + model.safetensors) and "
            "metrics.json with the validation accuracy, beside the run's checkpoint.pt and "
            "run.json: re-running the same command resumes (--restart starts over)."
        ),
    )
    t.add_argument("--data", required=True, metavar="DIR", help="dataset from 'data avatars'")
    add_output(t, "new model directory", metavar="DIR")
    t.add_argument("--epochs", default="3", metavar="E", help="passes over the train split")
    t.add_argument("--batch-size", default="128", metavar="B", help="images per step")
    t.add_argument("--lr", default="3e-3", help="peak learning rate (one-cycle)")
    t.add_argument("--seed", default="0", help="initialisation and shuffling seed")
    t.add_argument("--max-train", default=None, metavar="N", help="use the first N train images")
    t.add_argument("--max-val", default=None, metavar="N", help="use the first N val images")
    t.add_argument(
        "--channels", default="32,64,128,192", metavar="C,..", help="widths of the CNN stages"
    )
    t.add_argument(
        "--augment",
        choices=["none", "heavy", "heavy-strict"],
        default="none",
        help="heavy: blur, noise, JPEG, resampling, scale and shift, backgrounds, colour "
        "jitter, faint ghosts (faceedit.data.augment), for an evaluation judge; "
        "heavy-strict: more ghosts and local noise, milder colour jitter",
    )
    t.add_argument(
        "--hard-negatives",
        default="0",
        metavar="P",
        help="replace this fraction of training images by partial edits of themselves "
        "(up to 30%% blended towards a counterfactual, or noise over its region) with their "
        "own labels (faceedit.data.partial_edits), so a judge does not count a half-drawn "
        "change; default 0",
    )
    t.add_argument(
        "--role",
        choices=["oracle", "judge"],
        default="oracle",
        help="recorded in the model's metadata; a judge is for evaluation only",
    )
    t.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="start from this oracle's weights (train in chunks: each run continues the last)",
    )
    add_device(t)
    t.add_argument("--threads", default=None, metavar="K", help="torch CPU threads")
    add_quiet(t)
    add_restart_flag(t)


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(x < 0 for x in parts) or sum(parts) <= 0:
        raise FaceeditError(
            f"--split-fractions {text!r}: expected three fractions, e.g. 0.8,0.1,0.1"
        )
    return parts  # type: ignore[return-value]


def run_avatars(args: argparse.Namespace) -> int:
    import time

    from faceedit.data.avatars import write_dataset

    n = parse_int(args.n, "--n", 1)
    size = parse_int(args.size, "--size", 8)
    seed = parse_int(args.seed, "--seed", 0)
    workers = None if args.workers is None else parse_int(args.workers, "--workers", 1)
    split = _split(args.split)
    start = time.perf_counter()
    ds = write_dataset(
        args.output,
        n=n,
        size=size,
        seed=seed,
        workers=workers,
        split=split,
        progress=not args.quiet,
    )
    took = time.perf_counter() - start
    counts = ", ".join(f"{k} {v}" for k, v in ds.split_counts.items())
    print(f"wrote {ds.n} avatars ({size}x{size}) to {ds.root} in {took:.1f} s ({counts})")
    return 0


def run_train_oracle(args: argparse.Namespace) -> int:
    from faceedit.train.common import resolve_device

    try:
        channels = tuple(int(c) for c in args.channels.split(","))
        if not channels or min(channels) < 1:
            raise ValueError
    except ValueError:
        raise FaceeditError(
            f"--channels {args.channels!r}: expected widths, e.g. 32,64,128"
        ) from None
    config_kwargs = {
        "epochs": parse_float(args.epochs, "--epochs"),
        "batch_size": parse_int(args.batch_size, "--batch-size", 1),
        "lr": parse_float(args.lr, "--lr"),
        "seed": parse_int(args.seed, "--seed", 0),
        "max_train": None
        if args.max_train is None
        else parse_int(args.max_train, "--max-train", 1),
        "max_val": None if args.max_val is None else parse_int(args.max_val, "--max-val", 1),
        "device": str(resolve_device(args.device)),
        "threads": None if args.threads is None else parse_int(args.threads, "--threads", 1),
        "augment": args.augment,
        "hard_negatives": parse_float(args.hard_negatives, "--hard-negatives", allow_zero=True),
        "role": args.role,
        "init": args.init,
    }
    from faceedit.data.avatars import load_arrays
    from faceedit.train.oracle import OracleTrainConfig, default_oracle_config, train_oracle

    probe = load_arrays(args.data, "train", limit=1)
    try:
        model_config = default_oracle_config(probe, channels=channels)
    except ValueError as e:
        raise FaceeditError(f"--channels {args.channels!r}: {e}") from None
    result = train_oracle(
        args.data,
        args.output,
        OracleTrainConfig(**config_kwargs),
        model_config=model_config,
        progress=not args.quiet,
        restart=args.restart,
    )
    m = result.metrics
    print(
        f"oracle saved to {result.out_dir} ({result.seconds:.0f} s, {m['steps']} steps): "
        f"val attribute accuracy {m['attr_accuracy']:.4f}, parameter accuracy "
        f"{m['param_accuracy']:.4f}, all attributes right {m['all_attrs_correct']:.4f} "
        f"on {m['n']} images"
    )
    return 0
