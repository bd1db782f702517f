"""``faceedit edit CODES.npy``: edit W+ codes with latent transformers (Yao et al. 2021).

Writes the edited codes (``-o out.npy``) or, with a generator, a strip of renders over
strengths (``-o strip.png``: one row per code, one column per strength). The deprecated
``faceedit edit-latent`` verb (kept one release) runs the same code with its old options.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_output,
    parse_attr_strengths,
    parse_range,
    parse_strengths,
)
from faceedit.errors import FaceeditError

STRIP_RANGE = (-1.5, 1.5)
STRIP_COUNT = 7


def register(commands: Commands) -> None:
    p = commands.add(
        "edit-latent",
        "edit W+ codes with latent transformers; render strips over strengths with --model",
        _run_edit_latent,
        deprecated="faceedit edit CODES.npy --transformers DIR [--generator G]",
    )
    p.add_argument(
        "codes", help="W+ codes .npy [N, num_ws, w_dim], latent_code_*.npy or a directory"
    )
    p.add_argument("--attr", action="append", required=True, help="NAME=STRENGTH (repeatable)")
    p.add_argument(
        "--transformers",
        default="logs/001",
        help="directory with tnet_<Name>/ or tnet_<k>.pth.tar files (or one transformer); "
        "the default is the original repository's layout",
    )
    p.add_argument("--model", help="StyleGAN2 generator for rendering")
    add_output(p, ".png strip (needs --model) or .npy codes")
    p.add_argument("--steps", type=int, default=7, help="strengths in the strip")
    p.add_argument(
        "--range", type=float, default=1.5, help="strip spans [-range, range] x strength"
    )
    p.add_argument("--layers", default="0-10", help="edited W+ rows, e.g. 0-10, or 'all'")
    p.add_argument("--max-codes", type=int, default=8, help="rows of the strip")
    add_device(p)


def _run_edit_latent(args: argparse.Namespace) -> int:
    """The old verb's options -> :func:`edit_codes`."""
    import numpy as np

    if not args.output.endswith(".npy") and (args.steps < 1 or args.max_codes < 1):
        raise FaceeditError("--steps and --max-codes must be at least 1")
    strengths = (
        [float(t) for t in np.linspace(-args.range, args.range, args.steps)]
        if args.steps > 1
        else [1.0]
    )
    return edit_codes(
        args.codes,
        parse_attr_strengths(args.attr),
        args.transformers,
        args.output,
        generator=args.model,
        layers=args.layers,
        strengths=strengths,
        max_codes=args.max_codes,
        device=args.device,
        generator_flag="--model",
    )


def run_edit_codes(args: argparse.Namespace) -> int:
    """``faceedit edit CODES.npy``'s options -> :func:`edit_codes`."""
    import numpy as np

    if not args.attr:
        raise FaceeditError("W+ codes: give the edits, e.g. --attr Smiling=1 (repeatable)")
    if not args.transformers:
        raise FaceeditError("W+ codes: give --transformers DIR (tnet_<Name>/ ...)")
    if args.generator and args.model:
        raise FaceeditError("W+ codes: render with --generator or --model, not both")
    if args.max_codes < 1:
        raise FaceeditError(f"--max-codes {args.max_codes}: must be at least 1")
    if args.strengths is not None:
        if args.strength_range is not None or args.num_strengths is not None:
            raise FaceeditError("--strengths lists the strengths: drop --strength-range/--num-")
        strengths = parse_strengths(args.strengths)
    else:
        low, high = (
            parse_range(args.strength_range, "--strength-range")
            if args.strength_range
            else STRIP_RANGE
        )
        count = STRIP_COUNT if args.num_strengths is None else args.num_strengths
        if count < 1:
            raise FaceeditError(f"--num-strengths {count}: must be at least 1")
        strengths = [float(t) for t in np.linspace(low, high, count)] if count > 1 else [1.0]
    return edit_codes(
        args.inputs[0],
        parse_attr_strengths(args.attr),
        args.transformers,
        args.output,
        generator=args.generator or args.model,
        layers=args.layers,
        strengths=strengths,
        max_codes=args.max_codes,
        device=args.device,
        generator_flag="--model" if args.model else "--generator",
    )


def edit_codes(
    codes_path: str,
    edits: dict[str, float],
    transformers: str,
    output: str,
    generator: str | None,
    layers: str,
    strengths: list[float],
    max_codes: int,
    device: str,
    generator_flag: str = "--generator",
) -> int:
    """Edit ``codes_path`` (ws ``[N, num_ws, w_dim]``) and write codes or a strip.

    Args:
        strengths: the strip's columns, as multiples ``t`` of each edit: ``{a: t * s_a}``.
        layers: edited W+ rows, ``"0-10"`` or ``"all"``.
    """
    import numpy as np
    import torch

    from faceedit.cli.latent import _load_editor, _parse_layers
    from faceedit.data.latents import read_codes
    from faceedit.fileio import atomic_path, check_output_path
    from faceedit.train.common import resolve_device

    out = check_output_path(output)
    rows = _parse_layers(layers)
    codes = read_codes(codes_path)
    dev = resolve_device(device)
    G = None
    if generator:
        from faceedit.checkpoints import load

        G = load(generator)
        if not hasattr(G, "synthesis"):
            raise FaceeditError(f"{generator}: not a StyleGAN2 generator")
        G = G.to(dev)
    editor = _load_editor(transformers, list(edits), rows, G)
    for t in editor.transformers.values():
        t.to(dev)
    ws = torch.from_numpy(codes)
    if tuple(ws.shape[1:]) != (editor.num_ws, editor.w_dim):
        raise FaceeditError(
            f"{codes_path}: codes are [N, {ws.shape[1]}, {ws.shape[2]}], the transformers "
            f"edit [N, {editor.num_ws}, {editor.w_dim}]"
        )
    ws = ws.to(dev)
    if out.suffix == ".npy":
        edited = editor.edit_latents(ws, edits).cpu().numpy().astype(np.float32)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, edited)
        print(f"wrote {out} ({edited.shape[0]} edited codes)")
        return 0
    if G is None:
        raise FaceeditError(
            f"rendering a strip needs {generator_flag} (or write codes with -o out.npy)"
        )
    from PIL import Image

    from faceedit.data.images import tensor_to_uint8
    from faceedit.viz import image_grid

    ws = ws[:max_codes]
    strip = editor.strip(ws, edits, strengths).cpu()  # [N, T, 3, H, W]
    cells = [[tensor_to_uint8(img) for img in row] for row in strip]
    col_labels = ["\n".join(f"{a[:10]} {t * s:+.2f}" for a, s in edits.items()) for t in strengths]
    grid = image_grid(cells, row_labels=[f"#{i}" for i in range(len(cells))], col_labels=col_labels)
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp)
    print(f"wrote {out} ({len(cells)} x {len(strengths)} images)")
    return 0
