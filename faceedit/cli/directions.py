"""``faceedit train directions``: InterFaceGAN-style linear directions in W+ (a baseline).

Fits one unit direction per attribute (a logistic regression on the codes' training split,
:func:`faceedit.eval.avatar_sweep.fit_linear_directions`) and saves them as an ``.npz``
that ``faceedit eval avatars --baseline linear --directions FILE`` reads, or that a latent
bundle names under ``"directions"``; the file also records the lineage of the codes
(:mod:`faceedit.lineage`).
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_output


def register(commands: Commands) -> None:
    p = commands.add(
        "directions",
        "fit linear (InterFaceGAN) editing directions in W+ from codes and labels",
        run,
        group="train",
    )
    p.add_argument("--codes", required=True, help="W+ codes .npy [N, num_ws, w_dim]")
    p.add_argument("--labels", required=True, help="list_attr_celeba.txt or labels .npy")
    p.add_argument("--attrs", default="all", help="comma-separated attributes, or 'all'")
    add_output(p, "output .npz")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from faceedit.data.latents import read_labels, resolve_attrs
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatar_sweep import fit_linear_directions
    from faceedit.fileio import check_output_path
    from faceedit.lineage import record_dataset

    out = Path(args.output)
    if out.suffix != ".npz":
        raise FaceeditError(f"{out}: the directions file must end in .npz")
    check_output_path(out)
    _, names = read_labels(args.labels)
    attrs = [names[i] for i in resolve_attrs(args.attrs, names)]
    directions = fit_linear_directions(args.codes, args.labels, attrs)
    directions.save(out, lineage=record_dataset(args.codes, args.labels))
    _, num_ws, w_dim = directions.directions.shape
    print(f"wrote {out} ({len(attrs)} directions in W+ {num_ws}x{w_dim})")
    return 0
