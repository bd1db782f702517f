"""``faceedit demo``: the main job on the models shipped with faceedit, no download needed.

Held-out avatars are edited by both methods (the shipped AttGAN and the shipped StyleGAN2
+ latent-transformer bundle) for several attributes at several strengths; the shipped
judge (an evaluation judge that is in neither model's lineage) reads every edit, and each
edit is measured against its ground truth. Writes ``demo_grid.png`` and
``report.html`` (see :mod:`faceedit.eval.demo`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from faceedit.cli.common import (
    Commands,
    add_device,
    add_judge,
    add_output,
    add_quiet,
    load_judge,
    parse_strengths,
)
from faceedit.editing.methods import METHODS


def register(commands: Commands) -> None:
    p = commands.add(
        "demo",
        "edit held-out avatars with both shipped models; grid + HTML report (no download)",
        run,
        description=(
            "Renders N held-out avatars, flips several attributes of each with the shipped "
            "AttGAN and the shipped StyleGAN2 + latent transformers at several strengths, "
            "shows each edit beside its ground truth with its region gain and the shipped "
            "evaluation judge's reading, and writes demo_grid.png and "
            "report.html."
        ),
    )
    add_output(p, "output directory", required=False, default="faceedit-demo", metavar="DIR")
    p.add_argument("--attgan", default="avatar-attgan", help="AttGAN model (name or path)")
    p.add_argument(
        "--latent", default="avatar-latent", help="latent bundle (shipped name or directory)"
    )
    p.add_argument(
        "--methods",
        default="attgan,latent",
        help="comma-separated editing methods, of: " + ", ".join(METHODS) + " (AttGAN uses "
        "--attgan; the others the --latent bundle: linear edits with its linear directions)",
    )
    add_judge(p)
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
    add_device(p)
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from faceedit.editing.pipeline import build_editor
    from faceedit.errors import FaceeditError
    from faceedit.eval.demo import run_demo, write_demo
    from faceedit.hub import resolve
    from faceedit.train.common import resolve_device

    start = time.perf_counter()
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise FaceeditError(f"{out}: exists and is not a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FaceeditError(f"{out}: parent directory {parent} does not exist")
    strengths = parse_strengths(args.strengths)
    attrs = [a.strip() for a in args.attrs.split(",") if a.strip()] if args.attrs else None
    if args.n < 1:
        raise FaceeditError(f"--n {args.n}: show at least one avatar")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise FaceeditError(f"--methods {args.methods}: choose from {', '.join(METHODS)}")
    # AttGAN is its own model; every latent-space method edits the --latent bundle's codes
    flags = {m: "--attgan" if m == "attgan" else "--latent" for m in methods}
    models = {m: getattr(args, flag[2:]) for m, flag in flags.items()}
    # every model must be there before anything is loaded or written
    for method, name in models.items():
        resolve(name, flags[method])
    device = resolve_device(args.device)
    oracle, dependent = load_judge(args, list(dict.fromkeys(models.values())))
    for note in dependent:
        print(f"faceedit demo: note: {note}")
    # a bundle without an encoder is inverted by a short projection (--steps)
    editors = {
        m: build_editor(m, name, device=device, steps=args.steps) for m, name in models.items()
    }
    for m, editor in editors.items():
        if editor.editor.settings().get("invert", "encoder") != "encoder":
            print(
                f"faceedit demo: {models[m]} has no encoder, so each avatar is projected "
                f"({args.steps} steps): slower, and rougher than an encoder's inversion"
            )
    oracle_file = resolve(args.judge, "--judge")
    result = run_demo(
        editors,
        models,
        oracle,
        n=args.n,
        seed=args.seed,
        attrs=attrs,
        strengths=strengths,
        oracle_name=str(oracle_file),
        progress=not args.quiet,
    )
    result.dependent_judge = dependent
    paths = write_demo(result, out)
    for run_ in result.runs:
        print(run_.summary())
    print(f"grid:   {paths['grid']}")
    print(f"report: {paths['report']}")
    print(f"faceedit demo: done in {time.perf_counter() - start:.1f} s")
    return 0
