"""``faceedit eval avatars``: edit quality on held-out avatars, judged by the oracle."""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands


def register(commands: Commands) -> None:
    p = commands.add(
        "avatars",
        "flip each attribute of held-out avatars and judge the edits with the avatar oracle",
        run,
        group="eval",
        description=(
            "Renders N avatars from a seed the training data did not use, flips each "
            "attribute the model edits, and reports per attribute how often the oracle sees "
            "the target changed, the other attributes and the identity parameters preserved, "
            "and the reconstruction PSNR (JSON, CSV, Markdown table, bar chart)."
        ),
    )
    p.add_argument("--method", choices=["attgan", "latent"], required=True)
    p.add_argument("--model", required=True, help="AttGAN model, or a latent bundle")
    p.add_argument("--oracle", default="avatar-oracle", help="oracle model (name or path)")
    p.add_argument("--n", type=int, default=500, help="number of held-out avatars")
    p.add_argument("--seed", type=int, default=1, help="seed of the held-out avatars")
    p.add_argument("--strength", type=float, default=1.0, help="edit strength")
    p.add_argument("--attrs", help="comma-separated attributes (default: all the model edits)")
    p.add_argument("--invert", choices=["auto", "encoder", "optimize"], default="auto")
    p.add_argument("--steps", type=int, default=100, help="projection steps (latent, optimize)")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from faceedit.checkpoints import load
    from faceedit.editing.pipeline import build_editor
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatars import (
        editor_functions,
        evaluate_avatar_edits,
        held_out_records,
        write_report,
    )
    from faceedit.nets.oracle import AvatarOracle

    oracle = load(args.oracle)
    if not isinstance(oracle, AvatarOracle):
        raise FaceeditError(f"{args.oracle}: not an avatar oracle")
    editor = build_editor(
        args.method, args.model, device=args.device, invert=args.invert, steps=args.steps
    )
    known = [a for a in editor.attributes if a in oracle.config.attr_names]
    attrs = [a.strip() for a in args.attrs.split(",")] if args.attrs else known
    editor.check_edits({a: args.strength for a in attrs})
    records = held_out_records(args.n, args.seed)
    edit, reconstruct = editor_functions(editor)
    report = evaluate_avatar_edits(
        edit,
        attrs,
        oracle,
        records,
        size=editor.crop_size,
        strength=args.strength,
        reconstruct=reconstruct,
        method=args.method,
        model=str(args.model),
    )
    paths = write_report(report, args.out)
    print(report.table(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
