"""``faceedit edit --method attgan --mode grid|slide|style``: labelled AttGAN grids.

Aligned face crops in, one labelled PNG grid out: ``grid`` flips every attribute in turn
(or, with ``--attr``, sets the given ones), ``slide`` sweeps one attribute's input over a
range, ``style`` shows one attribute in several styles (He et al., AttGAN, TIP 2019). The
deprecated ``faceedit attgan-edit`` verb (kept one release) runs the same code with its
old options.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_option,
    add_output,
    parse_attr_strengths,
    parse_range,
)
from faceedit.errors import FaceeditError

SLIDE_RANGE = (-1.0, 1.0)
SLIDE_COUNT = 10


def add_grid_arguments(g: argparse._ArgumentGroup) -> None:
    """AttGAN grid options shared by ``edit --mode`` and the deprecated ``attgan-edit``."""
    g.add_argument("--setting", help="setting.txt of a release checkpoint (if not beside it)")
    g.add_argument(
        "--current",
        action="append",
        metavar="NAME=0|1",
        help="current attributes (others are predicted by the classifier head)",
    )
    add_option(
        g,
        "--num-styles",
        deprecated=("--n-styles",),
        type=int,
        default=6,
        metavar="N",
        help="--mode style: number of styles",
    )
    g.add_argument("--test-int", type=float, default=None, help="--mode grid flip strength")
    g.add_argument("--crop", default="center", choices=["center", "celeba", "none"])
    g.add_argument("--plain", action="store_true", help="no batch-norm folding (slower)")


def register(commands: Commands) -> None:
    p = commands.add(
        "attgan-edit",
        "edit aligned face crops with an AttGAN",
        _run_attgan_edit,
        description="Edit aligned faces with an AttGAN: flip every attribute (--flip-all, "
        "the default), slide one (--slide), set several (--attr NAME=STRENGTH ...) or show "
        "attribute styles (--style ATTR). Writes a labelled PNG grid.",
        deprecated="faceedit edit --method attgan --mode grid|slide|style",
    )
    p.add_argument("images", nargs="+", help="aligned face images")
    p.add_argument(
        "--model",
        required=True,
        help="weights.N.pth, its checkpoint folder, "
        "a faceedit model directory or a training run directory",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--flip-all", action="store_true", help="flip each attribute in turn")
    mode.add_argument("--slide", metavar="ATTR", help="sweep one attribute's strength")
    mode.add_argument(
        "--attr", action="append", metavar="NAME=STRENGTH", help="set attributes (repeatable)"
    )
    mode.add_argument("--style", metavar="ATTR", help="show styles of one attribute")
    p.add_argument("--min", type=float, default=-1.0, help="--slide start")
    p.add_argument("--max", type=float, default=1.0, help="--slide end")
    p.add_argument("--steps", type=int, default=10, help="--slide steps")
    p.add_argument("--seed", type=int, default=0, help="--style: controller seed")
    add_grid_arguments(p)
    add_output(p, "output PNG")
    add_device(p)


def _run_attgan_edit(args: argparse.Namespace) -> int:
    """The old verb's options -> :func:`attgan_grid`."""
    if args.slide:
        mode, edits = "slide", {args.slide: 1.0}
    elif args.style:
        mode, edits = "style", {args.style: 1.0}
    else:
        mode, edits = "grid", parse_attr_strengths(args.attr) if args.attr else {}
    return attgan_grid(
        args.images,
        args.output,
        args.model,
        mode=mode,
        edits=edits,
        slide=(args.min, args.max, args.steps),
        **_grid_options(args),
    )


def _grid_options(args: argparse.Namespace) -> dict:
    """The options both spellings (``edit --mode`` and ``attgan-edit``) pass on as they are."""
    keys = ("num_styles", "seed", "setting", "current", "test_int", "crop", "plain", "device")
    return {k: getattr(args, k) for k in keys}


def run_edit_grid(args: argparse.Namespace) -> int:
    """``faceedit edit --method attgan --mode ...``'s options -> :func:`attgan_grid`."""
    if args.model is None:
        raise FaceeditError(f"--mode {args.mode}: give the AttGAN with --model")
    edits = parse_attr_strengths(args.attr) if args.attr else {}
    if args.mode in ("slide", "style") and len(edits) != 1:
        raise FaceeditError(f"--mode {args.mode}: give exactly one --attr NAME")
    if args.mode != "slide" and (args.strength_range is not None or args.num_strengths is not None):
        raise FaceeditError(
            f"--mode {args.mode}: --strength-range/--num-strengths sweep in --mode slide"
        )
    if args.strengths is not None:
        raise FaceeditError(
            f"--mode {args.mode}: takes no --strengths (slide with --strength-range LO,HI "
            "--num-strengths N)"
        )
    low, high = (
        parse_range(args.strength_range, "--strength-range") if args.strength_range else SLIDE_RANGE
    )
    count = SLIDE_COUNT if args.num_strengths is None else args.num_strengths
    if args.mode == "slide" and count < 2:
        raise FaceeditError(f"--num-strengths {count}: a slide needs at least 2")
    return attgan_grid(
        args.inputs,
        args.output,
        args.model,
        mode=args.mode,
        edits=edits,
        slide=(low, high, count),
        **_grid_options(args),
    )


def attgan_grid(
    images: list[str],
    output: str,
    model: str,
    mode: str,
    edits: dict[str, float],
    slide: tuple[float, float, int],
    num_styles: int,
    seed: int,
    setting: str | None,
    current: list[str] | None,
    test_int: float | None,
    crop: str,
    plain: bool,
    device: str,
) -> int:
    """Write one labelled grid of aligned ``images`` edited by the AttGAN ``model``.

    Args:
        mode: ``"grid"`` (flip every attribute, or set ``edits`` when given), ``"slide"``
            (sweep the one attribute of ``edits`` over ``linspace(*slide)``) or ``"style"``
            (``num_styles`` styles of the one attribute of ``edits``, drawn from ``seed``).
    """
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.editing.attgan import AttGANEditor
    from faceedit.fileio import check_output_path
    from faceedit.train.common import resolve_device
    from faceedit.viz import image_grid, save_grid

    check_output_path(output)
    net = load_trained(model, setting).to(resolve_device(device))
    editor = AttGANEditor(net, fast=not plain, crop=crop)
    cur = parse_attr_strengths(current) if current else None
    if mode == "slide":
        (attr,) = edits
        grid = editor.slide_grid(images, attr, slide[0], slide[1], slide[2], cur)
    elif mode == "style":
        from faceedit.editing.attgan_style import style_grid

        (attr,) = edits
        grid = style_grid(editor, images, attr, num_styles, seed, cur)
    elif edits:
        res = editor.edit(images, edits, current=cur)
        label = ", ".join(f"{k}={v:g}" for k, v in edits.items())
        cells = [[res.input[i], res.image[i]] for i in range(len(res.image))]
        grid = image_grid(
            cells, col_labels=["input", "edited"], title=label, cell_size=editor.cell_size
        )
    else:
        grid = editor.flip_grid(images, cur, test_int)
    save_grid(output, grid)
    print(f"wrote {output}")
    return 0
