"""``faceedit eval avatars``: edit quality on held-out avatars, judged by the oracle."""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_judge,
    add_output,
    add_quiet,
    load_judge,
    parse_strengths,
)
from faceedit.cli.inversion import (
    INVERT_CHOICES,
    add_pti_arguments,
    check_pti_options,
    load_pti_networks,
    pti_options,
)
from faceedit.editing.methods import METHODS


def register(commands: Commands) -> None:
    p = commands.add(
        "avatars",
        "flip each attribute of held-out avatars; judge each edit and measure it against its "
        "ground truth",
        run,
        group="eval",
        description=(
            "Renders N avatars from a seed the training data did not use, flips each "
            "attribute the model edits, and reports per attribute and direction how close "
            "each edit came to its ground truth (region gain, PSNR outside the change "
            "region) and how often the judge (an evaluation judge that is not in the "
            "model's lineage) sees the target changed, the other attributes and the "
            "identity parameters preserved, and the reconstruction PSNR (JSON, CSV, "
            "Markdown table, bar chart)."
        ),
    )
    p.add_argument("--method", choices=list(METHODS), required=True)
    p.add_argument("--model", required=True, help="AttGAN model, or a latent bundle")
    add_judge(p)
    p.add_argument("--n", type=int, default=500, help="number of held-out avatars")
    p.add_argument("--seed", type=int, default=1, help="seed of the held-out avatars")
    p.add_argument("--strength", type=float, default=1.0, help="edit strength")
    p.add_argument("--attrs", help="comma-separated attributes (default: all the model edits)")
    p.add_argument(
        "--invert",
        choices=INVERT_CHOICES,
        default="auto",
        help="latent inversion (pti: pivotal tuning per avatar, see faceedit edit --help)",
    )
    p.add_argument("--steps", type=int, default=100, help="projection steps (latent, optimize)")
    add_pti_arguments(p)
    add_device(p)
    add_output(p, "output directory", metavar="DIR")
    add_quiet(p)
    g = p.add_argument_group(
        "strength sweep",
        "Latent: with --strengths or --baseline, each avatar is inverted once and edited at "
        "every strength by the transformers (and the baseline); writes avatar_sweep.* with "
        "the comparison at equal target change (the transformer's at --strength). AttGAN: "
        "--strengths evaluates every strength and writes avatar_strengths.* (the intensity "
        "curve, --strength marked as the operating point).",
    )
    g.add_argument("--strengths", help="comma-separated strengths, e.g. 0.5,1,1.5,2")
    g.add_argument("--baseline", choices=["none", "linear"], default="none")
    g.add_argument("--directions", help="linear directions .npz (faceedit train directions)")
    g.add_argument("--codes", help="W+ codes the transformers were trained on (fits directions)")
    g.add_argument("--labels", help="their labels (list_attr_celeba.txt or .npy)")
    g.add_argument("--batch-size", type=int, default=128, help="edits synthesised per batch")


def run(args: argparse.Namespace) -> int:
    from faceedit.editing.pipeline import build_editor
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatars import (
        editor_functions,
        evaluate_avatar_edits,
        held_out_records,
        write_report,
    )
    from faceedit.train.common import resolve_device

    check_pti_options(args)
    if args.invert == "pti" and (args.strengths or args.baseline != "none"):
        raise FaceeditError(
            "--invert pti: the strength sweep (--strengths, --baseline) renders codes with "
            "the shipped generator; evaluate pivotal tuning at one --strength"
        )
    editor = build_editor(
        args.method,
        args.model,
        device=resolve_device(args.device),
        invert=args.invert,
        steps=args.steps,
        **pti_options(args),
    )
    load_pti_networks(editor)
    # the inversion's own networks (PTI's perceptual one) must not be the judge either
    extra = getattr(editor.editor, "lineage", lambda: [])()
    oracle, dependent = load_judge(args, [args.model, *(e["name"] for e in extra[:1])])
    for note in dependent:
        print(f"faceedit: note: {note}")
    known = [a for a in editor.attributes if a in oracle.config.attr_names]
    attrs = [a.strip() for a in args.attrs.split(",")] if args.attrs else known
    editor.check_edits({a: args.strength for a in attrs})
    records = held_out_records(args.n, args.seed)
    if args.strengths and args.baseline == "none" and args.method != "latent":
        return _run_curve(args, editor, oracle, dependent, attrs, records)
    if args.strengths or args.baseline != "none":
        return _run_sweep(args, editor, oracle, attrs, records)
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
        progress=not args.quiet,
        keep_worst=16,
    )
    report.dependent_judge = dependent
    report.inversion = editor.editor.settings()
    paths = write_report(report, args.output)
    print(report.table(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _run_curve(args: argparse.Namespace, editor, oracle, dependent, attrs, records) -> int:
    """An AttGAN (any non-latent) editor at each of --strengths: avatar_strengths.*."""
    from faceedit.eval.avatars import editor_functions
    from faceedit.eval.strength_curve import strength_curve, write_curve

    edit, reconstruct = editor_functions(editor)
    curve = strength_curve(
        edit,
        attrs,
        oracle,
        records,
        size=editor.crop_size,
        strengths=parse_strengths(args.strengths),
        operating_strength=args.strength,
        reconstruct=reconstruct,
        method=args.method,
        model=str(args.model),
        progress=not args.quiet,
    )
    curve.dependent_judge = dependent
    paths = write_curve(curve, args.output)
    print(curve.markdown(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _run_sweep(args: argparse.Namespace, editor, oracle, attrs, records) -> int:
    """Transformers (and linear directions) over a strength sweep: avatar_sweep.*."""
    import math

    from faceedit.editing.latent_pipeline import LatentPipeline
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatar_sweep import (
        SweepReport,
        compare_at_equal_target,
        editor_invert,
        generator_synthesize,
        goals,
        latent_methods,
        sweep_avatar_edits,
        write_sweep,
    )

    pipeline = editor.editor
    if not isinstance(pipeline, LatentPipeline):
        raise FaceeditError("--strengths/--baseline compare latent edits: use --method latent")
    strengths = parse_strengths(args.strengths or "0.5,1,1.5,2")
    if any(not math.isfinite(s) or s < 0 for s in strengths):
        raise FaceeditError(f"--strengths {args.strengths}: strengths must be non-negative")
    if args.strength not in strengths:
        strengths = sorted([*strengths, args.strength])
    directions, baseline = None, {}
    if args.baseline == "linear":
        directions, baseline = _directions(args, pipeline, attrs)
    report_rows, psnr = sweep_avatar_edits(
        latent_methods(pipeline, directions),
        editor_invert(editor),
        generator_synthesize(pipeline.generator, editor.crop_size),
        attrs,
        oracle,
        records,
        size=editor.crop_size,
        strengths=strengths,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    comparison = (
        compare_at_equal_target(report_rows, strength=args.strength)
        if directions is not None
        else []
    )
    goal = goals(report_rows, comparison, args.strength)
    report = SweepReport(
        model=str(args.model),
        n_avatars=len(records),
        strengths=strengths,
        reference_strength=args.strength,
        rows=report_rows,
        comparison=comparison,
        goals=goal,
        psnr=psnr,
        baseline=baseline,
    )
    paths = write_sweep(report, args.output)
    print(report.markdown(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _directions(args: argparse.Namespace, pipeline, attrs):
    """Linear directions from --directions, --codes/--labels, or the bundle's "directions"."""
    from pathlib import Path

    from faceedit.editing.directions import LinearDirections
    from faceedit.errors import FaceeditError
    from faceedit.eval.avatar_sweep import fit_linear_directions

    G = pipeline.generator
    if args.codes or args.labels:
        if not (args.codes and args.labels):
            raise FaceeditError("--codes and --labels go together (the directions' training data)")
        directions = fit_linear_directions(
            args.codes, args.labels, attrs, int(G.num_ws), int(G.w_dim), pipeline.layers
        )
        source = {"codes": str(args.codes), "labels": str(args.labels)}
    else:
        path = args.directions
        if path is None:
            path = pipeline.sources.get("directions")
            if path is None:
                raise FaceeditError(
                    "--baseline linear needs --directions FILE, --codes and --labels, or a "
                    'bundle naming "directions"'
                )
        if not Path(path).is_file():
            raise FaceeditError(f"{path}: directions file not found")
        directions = LinearDirections.load(path)
        shape = tuple(directions.directions.shape[1:])
        if shape != (int(G.num_ws), int(G.w_dim)):
            raise FaceeditError(
                f"{path}: directions are {shape[0]}x{shape[1]}, the generator's W+ is "
                f"{G.num_ws}x{G.w_dim}"
            )
        missing = [a for a in attrs if a not in directions.attr_names]
        if missing:
            raise FaceeditError(f"{path}: no direction for {', '.join(missing)}")
        source = {"directions": str(path)}
    return directions, source
