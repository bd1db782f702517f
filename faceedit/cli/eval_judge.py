"""``faceedit eval judge``: can an avatar judge be fooled by edits that draw nothing?"""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_device, add_output, add_quiet, parse_int


def register(commands: Commands) -> None:
    p = commands.add(
        "judge",
        "measure an avatar judge on fake edits, its held-out accuracy, and a second opinion",
        run,
        group="eval",
        description=(
            "Renders N held-out avatars, flips each attribute, and builds fake edits from "
            "each ground-truth pair (the source blended 25% and 50% towards the "
            "counterfactual, noise over the changed region, a flat colour wash over it, a "
            "blurred copy); reports how often each passes as a change, the judge's accuracy "
            "per attribute and part, and where a second network disagrees "
            "(judge_eval.json, judge_eval.md)."
        ),
    )
    p.add_argument("--judge", required=True, help="avatar judge (name or path)")
    p.add_argument("--second", help="a second judge: report where the two disagree")
    p.add_argument("--n", default="500", help="number of held-out avatars")
    p.add_argument(
        "--seed", default="11", help="seed of the held-out avatars (one no training used)"
    )
    p.add_argument(
        "--confidences",
        metavar="P,P,...",
        help="also report each fake's pass rate with a change counted at each of these "
        "probabilities (e.g. 0.7,0.8,0.9: how the verdict's confidence is chosen, on a "
        "development seed)",
    )
    add_device(p)
    add_quiet(p)
    add_output(p, "output directory", metavar="DIR")


def _data_seed(name: str) -> int | None:
    """The seed of the avatars a judge was trained on, from its metadata (None: unknown)."""
    from faceedit.hub import model_metadata

    seed = model_metadata(name).get("data_seed")
    return int(seed) if isinstance(seed, int) else None


def _confidences(text: str | None) -> list[float]:
    """``--confidences``: probabilities in (0, 1), comma-separated."""
    from faceedit.errors import FaceeditError

    if not text:
        return []
    out = []
    for item in text.split(","):
        try:
            p = float(item)
        except ValueError:
            raise FaceeditError(f"--confidences: {item!r} is not a number") from None
        if not 0 < p < 1:
            raise FaceeditError(f"--confidences: {item} is not a probability between 0 and 1")
        out.append(p)
    return out


def run(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.oracle import load_avatar_oracle
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatars import held_out_records
    from faceedit.eval.judge import evaluate_judges, write_judge_report

    n = parse_int(args.n, "--n", 1)
    confidences = _confidences(args.confidences)
    seed = parse_int(args.seed, "--seed", 0)
    names = [args.judge] + ([args.second] if args.second else [])
    if len(set(names)) != len(names):
        raise FaceeditError("--second names the same judge as --judge")
    for name in names:
        if _data_seed(name) == seed:
            raise FaceeditError(
                f"--seed {seed}: {name} was trained on avatars of that seed; "
                "pick a seed no training used"
            )
    from faceedit.train.common import resolve_device

    device = resolve_device(args.device)
    judges = {name: load_avatar_oracle(name).to(device) for name in names}
    report = evaluate_judges(
        judges, held_out_records(n, seed), seed, progress=not args.quiet, confidences=confidences
    )
    paths = write_judge_report(report, args.output)
    print(report.markdown(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
