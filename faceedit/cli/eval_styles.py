"""``faceedit eval styles``: how many distinct looks an AttGAN's style controllers draw."""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_judge,
    add_output,
    add_quiet,
    load_judge,
    parse_int,
)


def register(commands: Commands) -> None:
    p = commands.add(
        "styles",
        "count the distinct glasses, hats and hair shapes an AttGAN's style controllers draw",
        run,
        group="eval",
        description=(
            "For held-out avatars, switches an attribute on with several settings of its "
            "style controllers (the attribute-style extension) and lets the judge read the "
            "part drawn: which glasses, which hat, which hair shape on a bald head. Reports "
            "the distinct looks per avatar (avatar_styles.json, .md, and a grid .png). A "
            "model without controllers draws one look per avatar."
        ),
    )
    p.add_argument("--model", required=True, help="AttGAN model (name or folder)")
    add_judge(p)
    p.add_argument(
        "--targets", default="glasses,hats,hair", help="comma-separated: glasses, hats, hair"
    )
    p.add_argument("--n", default="40", help="held-out avatars to draw from")
    p.add_argument("--seed", default="21", help="seed of the held-out avatars")
    p.add_argument("--styles", default="12", help="controller settings per avatar")
    p.add_argument("--style-seed", default="0", help="seed of the controller settings")
    p.add_argument("--strength", type=float, default=2.0, help="edit strength")
    add_device(p)
    add_quiet(p)
    add_output(p, "output directory", metavar="DIR")


def run(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.editing.attgan import AttGANEditor
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatars import held_out_records
    from faceedit.eval.styles import count_styles, write_styles
    from faceedit.train.common import resolve_device

    n = parse_int(args.n, "--n", 1)
    n_styles = parse_int(args.styles, "--styles", 1)
    seed = parse_int(args.seed, "--seed", 0)
    style_seed = parse_int(args.style_seed, "--style-seed", 0)
    if not args.strength > 0:
        raise FaceeditError(f"--strength {args.strength}: a positive strength")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    device = resolve_device(args.device)
    net = load_trained(args.model)
    if not hasattr(net, "G"):
        raise FaceeditError(f"{args.model}: not an AttGAN model")
    editor = AttGANEditor(net.to(device))
    judge, dependent = load_judge(args, [args.model])
    for note in dependent:
        print(f"faceedit: note: {note}")
    report, images = count_styles(
        editor,
        judge.to(device),
        held_out_records(n, seed),
        targets,
        n_styles=n_styles,
        strength=args.strength,
        seed=style_seed,
        model=str(args.model),
    )
    report.dependent_judge = dependent
    paths = write_styles(report, images, args.output)
    print(report.markdown(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
