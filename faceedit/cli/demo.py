"""``faceedit demo``: the main job on the models shipped with faceedit, no download needed.

Held-out avatars are edited by both methods (the shipped AttGAN and the shipped StyleGAN2
+ latent-transformer bundle) for several attributes at several strengths; the shipped
oracle judges every edit against the ground truth. Writes ``demo_grid.png`` and
``report.html`` (see :mod:`faceedit.eval.demo`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from faceedit.cli.common import Commands


def cache_dir() -> Path:
    """faceedit's cache directory (``$FACEEDIT_CACHE``, else ``~/.cache/faceedit``); the
    web demo keeps its models there."""
    root = os.environ.get("FACEEDIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "faceedit"
    )
    return Path(root)


def register(commands: Commands) -> None:
    p = commands.add(
        "demo",
        "edit held-out avatars with both shipped models; grid + HTML report (no download)",
        run,
        description=(
            "Renders N held-out avatars, flips several attributes of each with the shipped "
            "AttGAN and the shipped StyleGAN2 + latent transformers at several strengths, "
            "judges every edit with the shipped avatar oracle, and writes demo_grid.png and "
            "report.html."
        ),
    )
    p.add_argument("-o", "--output", default="faceedit-demo", help="output directory")
    p.add_argument("--attgan", default="avatar-attgan", help="AttGAN model (name or path)")
    p.add_argument(
        "--latent", default="avatar-latent", help="latent bundle (shipped name or directory)"
    )
    p.add_argument("--oracle", default="avatar-oracle", help="avatar oracle (name or path)")
    p.add_argument("--n", type=int, default=4, help="number of held-out avatars")
    p.add_argument("--seed", type=int, default=1, help="seed of the held-out avatars")
    p.add_argument(
        "--attrs",
        help="comma-separated attributes (default: Smiling, Eyeglasses, Blond_Hair, "
        "Wearing_Hat, Mustache, those the models edit)",
    )
    p.add_argument("--strengths", default="0.5,1", help="comma-separated edit strengths")
    p.add_argument(
        "--steps",
        type=int,
        default=20,
        help="projection steps when the latent bundle has no encoder (each costs about "
        "0.1 s per avatar on 2 CPU cores; a bundle with an encoder needs none)",
    )
    p.add_argument("--device", default="cpu")


def _floats(text: str, what: str) -> list[float]:
    from faceedit.errors import FaceeditError

    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise FaceeditError(f"{what} {text!r}: give comma-separated numbers") from None


def run(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.oracle import load_avatar_oracle
    from faceedit.editing.pipeline import _resolve_path, build_editor
    from faceedit.errors import FaceeditError
    from faceedit.eval.demo import run_demo, write_demo
    from faceedit.shipped import shipped_path

    start = time.perf_counter()
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise FaceeditError(f"{out}: exists and is not a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FaceeditError(f"{out}: parent directory {parent} does not exist")
    strengths = _floats(args.strengths, "--strengths")
    attrs = [a.strip() for a in args.attrs.split(",") if a.strip()] if args.attrs else None
    if args.n < 1:
        raise FaceeditError(f"--n {args.n}: show at least one avatar")
    # every model must be there before anything is loaded or written
    models = {"attgan": args.attgan, "latent": args.latent}
    for method, name in models.items():
        _resolve_path(name, f"--{method}")
    oracle = load_avatar_oracle(args.oracle)
    editors = {
        "attgan": build_editor("attgan", args.attgan, device=args.device),
        # encoder inversion when the bundle has one, else a short projection
        "latent": build_editor("latent", args.latent, device=args.device, steps=args.steps),
    }
    if editors["latent"].invert != "encoder":
        print(
            f"faceedit demo: {args.latent} has no encoder, so each avatar is projected "
            f"({args.steps} steps): slower, and rougher than an encoder's inversion"
        )
    oracle_file = shipped_path(args.oracle) if not Path(args.oracle).exists() else None
    result = run_demo(
        editors,
        models,
        oracle,
        n=args.n,
        seed=args.seed,
        attrs=attrs,
        strengths=strengths,
        oracle_name=str(oracle_file or args.oracle),
    )
    paths = write_demo(result, out)
    for run_ in result.runs:
        print(run_.summary())
    print(f"grid:   {paths['grid']}")
    print(f"report: {paths['report']}")
    print(f"faceedit demo: done in {time.perf_counter() - start:.1f} s")
    return 0
