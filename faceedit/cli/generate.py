"""``faceedit generate``: images from seeds, optionally beside a perturbed W+."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceedit.cli.common import Commands, add_device, add_output, add_quiet, parse_seeds


def register(commands: Commands) -> None:
    p = commands.add(
        "generate",
        "render images from seeds with a StyleGAN2 generator, as a labelled PNG grid",
        run,
    )
    p.add_argument(
        "--model", required=True, help="generator: checkpoint file or faceedit model dir"
    )
    p.add_argument("--seeds", default="0-7", help="seeds, e.g. 0-7 or 1,5,9")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1 = none)")
    p.add_argument(
        "--perturb",
        type=float,
        default=None,
        metavar="SIGMA",
        help="also render each W+ plus Gaussian noise of this standard deviation",
    )
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument(
        "--save-latents", action="store_true", help="save the W+ codes as .npy beside the grid"
    )
    add_device(p)
    add_output(p, "output PNG path")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from faceedit.cli.runtime import load_generator
    from faceedit.editing.sampling import perturb_ws, synthesize, ws_from_seeds
    from faceedit.errors import FaceeditError
    from faceedit.fileio import check_output_path
    from faceedit.viz import image_grid, save_grid

    seeds = parse_seeds(args.seeds)
    output = check_output_path(args.output)
    if args.perturb is not None and args.perturb < 0:
        raise FaceeditError(f"--perturb {args.perturb}: sigma must be >= 0")
    G = load_generator(args.model, args.device)
    ws = ws_from_seeds(G, seeds, truncation_psi=args.truncation)
    images = synthesize(G, ws, noise_mode=args.noise_mode, progress=not args.quiet)
    col_labels = None
    if args.perturb is not None:
        ws_p = perturb_ws(ws, args.perturb, seed=seeds[0])
        perturbed = synthesize(G, ws_p, noise_mode=args.noise_mode, progress=not args.quiet)
        cells = [[a, b] for a, b in zip(images, perturbed, strict=True)]
        row_labels = [f"seed {s}" for s in seeds]
        col_labels = ["W+", f"W+ + N(0, {args.perturb:g}^2)"]
    else:
        per_row = 8
        cells = [list(images[i : i + per_row]) for i in range(0, len(images), per_row)]
        col_labels = None
        row_labels = [f"seeds {seeds[i]}.." for i in range(0, len(seeds), per_row)]
    title = f"{Path(args.model).name}  truncation {args.truncation:g}"
    cell = max(128, images.shape[1])  # small renders are enlarged so a person can see them
    save_grid(output, image_grid(cells, row_labels, col_labels, title=title, cell_size=cell))
    written = [str(output)]
    if args.save_latents:
        from faceedit.cli.runtime import save_npy

        stem = output.with_suffix("")
        written.append(save_npy(f"{stem}_ws.npy", ws))
        if args.perturb is not None:
            written.append(save_npy(f"{stem}_ws_perturbed.npy", ws_p))
    for path in written:
        print(f"wrote {path}")
    return 0
