"""``faceedit data avatars``: write the labelled avatar face dataset.

The avatar domain is described in :mod:`faceedit.data.avatars`. Numbers are parsed here
rather than by argparse so that a bad value gives one clear line, like every other
faceedit error.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands
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
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="new output directory")
    p.add_argument("--n", default="30000", metavar="N", help="number of avatars")
    p.add_argument("--size", default="64", metavar="PX", help="image side in pixels")
    p.add_argument("--seed", default="0", metavar="SEED", help="random seed")
    p.add_argument(
        "--workers",
        default=None,
        metavar="K",
        help="rendering processes (default: all available cores)",
    )
    p.add_argument(
        "--split",
        default="0.8,0.1,0.1",
        metavar="TR,VA,TE",
        help="train,val,test fractions",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _int(text: str, flag: str, minimum: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise FaceeditError(f"{flag} {text!r}: expected an integer") from None
    if value < minimum:
        raise FaceeditError(f"{flag} {text!r}: must be at least {minimum}")
    return value


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(x < 0 for x in parts) or sum(parts) <= 0:
        raise FaceeditError(f"--split {text!r}: expected three fractions, e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


def run_avatars(args: argparse.Namespace) -> int:
    import time

    from faceedit.data.avatars import write_dataset

    n = _int(args.n, "--n", 1)
    size = _int(args.size, "--size", 8)
    seed = _int(args.seed, "--seed", 0)
    workers = None if args.workers is None else _int(args.workers, "--workers", 1)
    split = _split(args.split)
    start = time.perf_counter()
    ds = write_dataset(
        args.out, n=n, size=size, seed=seed, workers=workers, split=split, progress=not args.quiet
    )
    took = time.perf_counter() - start
    counts = ", ".join(f"{k} {v}" for k, v in ds.split_counts.items())
    print(f"wrote {ds.n} avatars ({size}x{size}) to {ds.root} in {took:.1f} s ({counts})")
    return 0
