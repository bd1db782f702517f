"""``faceedit convert``: any supported checkpoint -> faceedit's own format."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceedit.cli.common import Commands, add_output


def register(commands: Commands) -> None:
    p = commands.add(
        "convert",
        "convert an official checkpoint to faceedit's format (config.json + model.safetensors)",
        run,
    )
    p.add_argument("input", help="checkpoint file (.pt, .pth, .pkl) or model directory")
    add_output(p, "output directory", metavar="DIR")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a model already in the directory"
    )


def run(args: argparse.Namespace) -> int:
    from faceedit.checkpoints import load
    from faceedit.errors import FaceeditError

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise FaceeditError(f"{out}: exists and is not a directory")
    if (out / "config.json").exists() and not args.overwrite:
        raise FaceeditError(f"{out}: already holds a model (use --overwrite to replace it)")
    if not out.parent.is_dir():
        raise FaceeditError(f"{out}: parent directory {out.parent} does not exist")
    model = load(args.input)
    if not hasattr(model, "save_pretrained"):
        raise FaceeditError(
            f"{args.input}: a {type(model).__name__} cannot be saved in faceedit's format"
        )
    model.save_pretrained(out, metadata={"converted_from": Path(args.input).name})
    print(
        f"{args.input} -> {out} ({type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters)"
    )
    return 0
