"""Latent transformers against linear directions on held-out avatars, over a strength sweep.

Yao et al. (ICCV 2021, Sec. 4) compare the latent transformer with the InterFaceGAN linear
baseline (Shen et al., CVPR 2020) by plotting attribute preservation against target
change while the edit strength grows; a method is better when it keeps more of the other
attributes *at the same target change*. Here the judge is the avatar oracle on rendered
avatars with ground-truth counterfactuals (:func:`faceedit.eval.avatars.judge_edits`)
instead of a latent classifier.

Each held-out avatar is inverted **once**; its code is edited by every method, for every
attribute (towards the flipped value) and every strength, and all edits are synthesised
and read by the oracle in batches.

Strength of the linear baseline: ``ws + s * scale * n`` on the W+ rows the transformers
edit, ``n`` the unit normal of a logistic regression fitted on the same codes and labels
as the transformers (their 90% training split), ``scale`` the standard deviation of the
training codes' signed distances to its hyperplane
(:class:`~faceedit.editing.directions.LinearDirections`). Strengths of the two methods
therefore mean different step sizes, and that is why the verdict is not taken at equal
strength: the baseline's (target change, preservation) curve is interpolated linearly at
the transformer's target change at the reference strength (1 by default), between the two
sweep strengths whose target changes bracket it. When the baseline never reaches that
target change in the sweep, the transformer wins (the baseline cannot make the edit as
often); when even the baseline's weakest strength overshoots it, the comparison is
undetermined (add a smaller strength, or 0, to the sweep).

Results: ``avatar_sweep.json``, ``avatar_sweep.csv`` (one row per method, attribute and
strength), ``avatar_sweep.md`` and ``avatar_sweep.png`` (preservation and identity
against target change, one curve per method).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from faceedit.data.avatars import attributes, edit_attribute, render_record
from faceedit.errors import FaceeditError
from faceedit.eval.avatars import judge_edits
from faceedit.eval.metrics import PixelErrors, edit_pixel_errors, psnr_uint8
from faceedit.units import DECIBEL, FRACTION, STRENGTH, with_units

# edit(ws [N, num_ws, w_dim], attribute, alpha [N]) -> ws [N, num_ws, w_dim]
LatentEditFn = Callable[[torch.Tensor, str, torch.Tensor], torch.Tensor]
# synthesize(ws [N, num_ws, w_dim]) -> uint8 [N, S, S, 3]
SynthesizeFn = Callable[[torch.Tensor], np.ndarray]
# invert(uint8 [N, S, S, 3]) -> ws [N, num_ws, w_dim]
InvertFn = Callable[[np.ndarray], torch.Tensor]

TRANSFORMER = "latent transformer"
LINEAR = "linear"
MEAN = "mean"
FIELDS = (
    "method",
    "attribute",
    "strength",
    "n",
    "target_change",
    "preservation",
    "identity",
    # against the ground truth (faceedit.eval.metrics), pooled over the row's edits
    "region_gain",
    "outside_psnr",
)


@dataclass
class SweepReport:
    """Everything ``avatar_sweep.*`` holds.

    Attributes:
        rows: one dict per (method, attribute, strength) with the keys of :data:`FIELDS`;
            attribute ``"mean"`` rows average the attributes.
        comparison: :func:`compare_at_equal_target` rows, one per attribute plus ``"mean"``.
        goals: the issue's goals at the reference strength (see :func:`goals`).
    """

    model: str
    n_avatars: int
    strengths: list[float]
    reference_strength: float
    rows: list[dict]
    comparison: list[dict]
    goals: dict
    psnr: float | None = None
    baseline: dict = field(default_factory=dict)

    def markdown(self) -> str:
        methods = list(dict.fromkeys(r["method"] for r in self.rows))
        lines = [
            f"Edits of {self.n_avatars} held-out avatars judged by the avatar oracle "
            f"(model {self.model}).",
            "",
            "| method | strength | target changed | others preserved | identity preserved "
            "| region gain (pooled) | PSNR outside region |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]

        def gain(r: dict) -> str:
            v = r.get("region_gain")
            return "-" if v is None or not np.isfinite(v) else f"{v:.2f}"

        def outside(r: dict) -> str:
            v = r.get("outside_psnr")
            return "-" if v is None or not np.isfinite(v) else f"{v:.1f} dB"

        for m in methods:
            for r in self.rows:
                if r["method"] == m and r["attribute"] == MEAN:
                    lines.append(
                        f"| {m} | {r['strength']:g} | {r['target_change']:.1%} "
                        f"| {r['preservation']:.1%} | {r['identity']:.1%} | {gain(r)} "
                        f"| {outside(r)} |"
                    )
        strengths = sorted({r["strength"] for r in self.rows})
        lines += [
            "",
            "Per attribute, target changed / others preserved / identity preserved / region gain:",
            "",
            "| attribute | method | " + " | ".join(f"strength {s:g}" for s in strengths) + " |",
            "| --- | --- |" + " --- |" * len(strengths),
        ]
        cells = {(r["attribute"], r["method"], r["strength"]): r for r in self.rows}
        for a in dict.fromkeys(r["attribute"] for r in self.rows):
            for m in methods:
                row = [cells.get((a, m, s)) for s in strengths]
                lines.append(
                    f"| {a} | {m} | "
                    + " | ".join(
                        "n/a"
                        if r is None
                        else f"{r['target_change']:.0%} / {r['preservation']:.0%} / "
                        f"{r['identity']:.0%} / {gain(r)}"
                        for r in row
                    )
                    + " |"
                )
        if self.comparison:
            lines += [
                "",
                f"At equal target change (the transformer's at strength {self.reference_strength:g};"
                " the linear baseline interpolated between sweep strengths):",
                "",
                "| attribute | target change | transformer preservation | linear preservation "
                "| transformer identity | linear identity | linear strength | transformer wins |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]

            def pct(v: float | None) -> str:
                return "n/a" if v is None else f"{v:.1%}"

            for c in self.comparison:
                s = "n/a" if c["baseline_strength"] is None else f"{c['baseline_strength']:.2f}"
                win = {True: "yes", False: "no", None: "undetermined"}[c["transformer_wins"]]
                lines.append(
                    f"| {c['attribute']} | {c['target_change']:.1%} "
                    f"| {pct(c['transformer_preservation'])} | {pct(c['baseline_preservation'])} "
                    f"| {pct(c['transformer_identity'])} | {pct(c['baseline_identity'])} | {s} "
                    f"| {win}{' (' + c['note'] + ')' if c['note'] else ''} |"
                )
        g = self.goals
        beats = (
            "not measured (no baseline)"
            if g["beats_linear"] is None
            else f"{'yes' if g['beats_linear'] else 'no'} ({g['attributes_won']} of "
            f"{g['attributes_compared']} attributes)"
        )
        lines += [
            "",
            f"Goal (strength {self.reference_strength:g}): target change "
            f"{g['target_change']:.1%} (>= 85%: {'yes' if g['target_change_ok'] else 'no'}), "
            f"preservation {g['preservation']:.1%} "
            f"(>= 85%: {'yes' if g['preservation_ok'] else 'no'}), beats the linear baseline "
            f"at equal target change: {beats}.",
        ]
        if self.psnr is not None:
            lines.append(f"\nReconstruction PSNR: {self.psnr:.2f} dB")
        return "\n".join(lines) + "\n"


def sweep_avatar_edits(
    methods: Mapping[str, LatentEditFn],
    invert: InvertFn,
    synthesize: SynthesizeFn,
    edit_attributes: Sequence[str],
    oracle,
    records: Sequence[Mapping[str, str]],
    size: int,
    strengths: Sequence[float],
    batch_size: int = 128,
    progress: bool = True,
) -> tuple[list[dict], float]:
    """Flip every attribute of every avatar with every method at every strength.

    Args:
        methods: ``{name: edit(ws, attribute, alpha [N]) -> ws}``; ``alpha`` is ``+s`` to
            turn the attribute on, ``-s`` to turn it off.
        invert: images ``uint8 [N, size, size, 3]`` -> ``ws [N, num_ws, w_dim]``.
        synthesize: ``ws`` -> images ``uint8 [N, size, size, 3]``.
        edit_attributes: attributes to flip (each known to the oracle).
        records: held-out avatar parameters.
        strengths: non-negative strengths of the sweep.

    Returns:
        ``(rows, psnr)``: rows as in :class:`SweepReport` (with the ``"mean"`` rows) and the
        mean reconstruction PSNR of the inverted codes.
    """
    names = list(oracle.config.attr_names)
    unknown = [a for a in edit_attributes if a not in names]
    if unknown:
        raise FaceeditError(f"the avatar oracle does not know {unknown}; it reads {names}")
    if not edit_attributes:
        raise FaceeditError("no attribute to evaluate (the model and the oracle share none)")
    if not strengths or any(not np.isfinite(s) or s < 0 for s in strengths):
        raise FaceeditError(f"strengths must be non-negative numbers, got {list(strengths)}")
    if batch_size < 1:
        raise FaceeditError(f"batch size must be at least 1, got {batch_size}")
    if not records:
        raise FaceeditError("no avatar to evaluate")
    images = np.stack([render_record(r, size) for r in records])
    batches = [
        slice(i, min(i + batch_size, len(records))) for i in range(0, len(records), batch_size)
    ]
    ws_parts, psnrs = [], []
    for sl in tqdm(batches, desc="inverting avatars", unit="batch", disable=not progress):
        ws_b = invert(images[sl])
        ws_parts.append(ws_b)
        psnrs += psnr_uint8(synthesize(ws_b), images[sl]).tolist()
    ws = torch.cat(ws_parts)
    truth = [attributes(r) for r in records]
    # the ground truth of each attribute's flip (the same at every strength and method)
    truths = {
        a: np.stack([render_record(edit_attribute(r, a, t[a] < 0), size) for r, t in zip(
            records, truth, strict=True)])
        for a in edit_attributes
    }  # fmt: skip
    errors_of: dict[tuple[str, float], list[PixelErrors]] = {}
    rows: list[dict] = []
    jobs = [(m, a, float(s)) for m in methods for a in edit_attributes for s in strengths]
    bar = tqdm(total=len(jobs) * len(records), desc="sweep", unit="edit", disable=not progress)
    for method, a, s in jobs:
        turn_on = np.array([t[a] < 0 for t in truth])
        alpha = torch.from_numpy(np.where(turn_on, s, -s)).to(ws.dtype)
        sums = np.zeros(3)
        pixel: list[PixelErrors] = []
        for sl in batches:
            edited = synthesize(methods[method](ws[sl], a, alpha[sl]))
            pixel.append(edit_pixel_errors(edited, images[sl], truths[a][sl]))
            verdicts = judge_edits(
                oracle,
                [(records[i], a, bool(turn_on[i])) for i in range(sl.start, sl.stop)],
                list(edited),
            )
            sums += [
                sum(v.target_changed for v in verdicts),
                sum(v.preservation for v in verdicts),
                sum(v.identity for v in verdicts),
            ]
            bar.update(sl.stop - sl.start)
        n = len(records)
        errors = PixelErrors.concat(pixel)
        errors_of.setdefault((method, s), []).append(errors)
        rows.append(
            dict(
                zip(
                    FIELDS,
                    (method, a, s, n, *(float(x) for x in sums / n), *_pooled(errors)),
                    strict=True,
                )
            )
        )
    bar.close()
    out = with_means(rows)
    for r in out:  # the means of the pixel figures pool the errors of every attribute
        if r["attribute"] == MEAN:
            pooled = _pooled(PixelErrors.concat(errors_of[(r["method"], r["strength"])]))
            r["region_gain"], r["outside_psnr"] = pooled
    return out, float(np.mean(psnrs))


def _pooled(errors: PixelErrors) -> tuple[float | None, float | None]:
    """``(pooled region gain, pooled PSNR outside the change region)`` of ``errors``
    (None where nothing was measured)."""
    summary = errors.summary()
    return tuple(  # type: ignore[return-value]
        None if not np.isfinite(summary[k]) else float(summary[k])
        for k in ("pooled_region_gain", "pooled_outside_psnr")
    )


def with_means(rows: Sequence[dict]) -> list[dict]:
    """``rows`` plus one ``"mean"`` row per (method, strength), averaging the attributes."""
    rows = [r for r in rows if r["attribute"] != MEAN]
    out = list(rows)
    keys = dict.fromkeys((r["method"], r["strength"]) for r in rows)
    for method, s in keys:
        sel = [r for r in rows if r["method"] == method and r["strength"] == s]
        mean = {
            k: float(np.mean([r[k] for r in sel]))
            for k in FIELDS[4:]
            if all(r.get(k) is not None for r in sel)
        }
        out.append(dict(method=method, attribute=MEAN, strength=s, n=sel[0]["n"], **mean))
    return out


def _interpolate(points: Sequence[dict], level: float) -> tuple[dict | None, str]:
    """The curve's point at target change ``level``: ``(values, note)``.

    ``points`` are rows sorted by strength; the first segment whose target changes bracket
    ``level`` is interpolated linearly in target change. On a plateau (several strengths
    at that target change) this is the weakest one, which usually preserves the most: the
    reading least favourable to the transformer.
    """
    tc = [p["target_change"] for p in points]
    for lo, hi in zip(points, points[1:], strict=False):
        a, b = lo["target_change"], hi["target_change"]
        if min(a, b) <= level <= max(a, b):
            t = 0.0 if a == b else (level - a) / (b - a)
            return {
                k: lo[k] + t * (hi[k] - lo[k]) for k in ("strength", "preservation", "identity")
            }, ""
    if len(points) == 1 and tc[0] == level:
        return {k: points[0][k] for k in ("strength", "preservation", "identity")}, ""
    if max(tc) < level:
        return None, f"linear reaches at most {max(tc):.1%}"
    return None, f"linear's weakest strength already changes {min(tc):.1%}"


def compare_at_equal_target(
    rows: Sequence[dict],
    reference: str = TRANSFORMER,
    baseline: str = LINEAR,
    strength: float = 1.0,
) -> list[dict]:
    """Preservation of both methods at the reference method's target change.

    For each attribute (and ``"mean"``): the reference's target change, preservation and
    identity at ``strength``; the baseline's preservation and identity interpolated at
    that target change along its sweep (see :func:`_interpolate`); and
    ``transformer_wins``: ``True`` when the reference preserves more (or the baseline
    never reaches that target change), ``False`` when it preserves less or as much,
    ``None`` when the sweep cannot tell.
    """
    out = []
    for attr in dict.fromkeys(r["attribute"] for r in rows):
        ref = [
            r
            for r in rows
            if r["method"] == reference and r["attribute"] == attr and r["strength"] == strength
        ]
        curve = sorted(
            (r for r in rows if r["method"] == baseline and r["attribute"] == attr),
            key=lambda r: r["strength"],
        )
        if not ref or not curve:
            raise FaceeditError(
                f"no {reference!r} row at strength {strength:g} or no {baseline!r} rows for "
                f"{attr}: add {strength:g} to the strengths"
            )
        ref = ref[0]
        at, note = _interpolate(curve, ref["target_change"])
        if at is None:
            wins = True if note.startswith("linear reaches") else None
        else:
            wins = bool(ref["preservation"] > at["preservation"])
        out.append(
            {
                "attribute": attr,
                "target_change": ref["target_change"],
                "transformer_preservation": ref["preservation"],
                "transformer_identity": ref["identity"],
                "baseline_preservation": None if at is None else at["preservation"],
                "baseline_identity": None if at is None else at["identity"],
                "baseline_strength": None if at is None else at["strength"],
                "transformer_wins": wins,
                "note": note,
            }
        )
    return out


def goals(rows: Sequence[dict], comparison: Sequence[dict], strength: float = 1.0) -> dict:
    """The issue's goals: >= 85% target change and preservation at ``strength``, and a win
    over the linear baseline at equal target change (on the attributes' mean curve;
    ``None`` without a comparison)."""
    ref = next(
        r
        for r in rows
        if r["method"] == TRANSFORMER and r["attribute"] == MEAN and r["strength"] == strength
    )
    per_attr = [c for c in comparison if c["attribute"] != MEAN]
    mean = next((c for c in comparison if c["attribute"] == MEAN), None)
    return {
        "strength": strength,
        "target_change": ref["target_change"],
        "preservation": ref["preservation"],
        "target_change_ok": ref["target_change"] >= 0.85,
        "preservation_ok": ref["preservation"] >= 0.85,
        "beats_linear": None if mean is None else bool(mean["transformer_wins"]),
        "attributes_won": sum(c["transformer_wins"] is True for c in per_attr),
        "attributes_compared": sum(c["transformer_wins"] is not None for c in per_attr),
    }


def write_sweep(report: SweepReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``avatar_sweep.{json,csv,md,png}`` in ``out_dir`` (each written atomically)."""
    from dataclasses import asdict

    from faceedit.eval.latent import plot_curves
    from faceedit.fileio import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"avatar_sweep.{k}" for k in ("json", "csv", "md", "png")}
    markdown = report.markdown()  # before any file: a failure leaves nothing half-written
    rates = (
        "target_change",
        "preservation",
        "identity",
        "transformer_preservation",
        "baseline_preservation",
        "transformer_identity",
        "baseline_identity",
    )
    on_disk = with_units(
        asdict(report),
        **dict.fromkeys(rates, FRACTION),
        strengths=STRENGTH,
        strength=STRENGTH,
        reference_strength=STRENGTH,
        baseline_strength=STRENGTH,
        psnr=DECIBEL,
        outside_psnr=DECIBEL,
    )
    atomic_write_text(paths["json"], json.dumps(on_disk, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FIELDS))
    writer.writeheader()
    writer.writerows(report.rows)
    atomic_write_text(paths["csv"], buf.getvalue())
    atomic_write_text(paths["md"], markdown)
    plot_curves(report.rows, paths["png"])  # written atomically by viz.saved_figure
    return paths


# --------------------------------------------------------------------------- the models


def fit_linear_directions(
    codes_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    attrs: Sequence[str] | None = None,
    num_ws: int | None = None,
    w_dim: int | None = None,
    layers: tuple[int, int] | None = None,
):
    """Linear directions for ``attrs`` fitted on the training split of codes and labels.

    The transformers train on the first 90% of the rows (``split_indices``); the
    directions see the same rows. Raises a one-line :class:`FaceeditError` on a row
    mismatch, a W+ shape other than ``[N, num_ws, w_dim]`` (when given) or an attribute
    the labels lack. ``attrs=None`` fits every label column.
    """
    from faceedit.data.latents import check_codes_shape, load_latent_dataset, split_indices
    from faceedit.editing.directions import fit_directions

    data = load_latent_dataset(codes_path, labels_path, num_ws=num_ws)
    if num_ws is not None and w_dim is not None:
        check_codes_shape(data.codes, num_ws, w_dim, str(codes_path))
    attrs = list(data.attr_names if attrs is None else attrs)
    missing = [a for a in attrs if a not in data.attr_names]
    if missing:
        raise FaceeditError(
            f"{labels_path}: no column for {', '.join(missing)} (has: {', '.join(data.attr_names)})"
        )
    train, _ = split_indices(len(data))
    if train.stop < 2:
        train = slice(0, len(data))
    cols = [data.attr_names.index(a) for a in attrs]
    return fit_directions(
        data.codes[train], data.labels[train], data.attr_names, cols, layers=layers
    )


def latent_methods(pipeline, directions=None) -> dict[str, LatentEditFn]:
    """``{"latent transformer": ..., "linear": ...}`` edit functions for a
    :class:`~faceedit.editing.latent_pipeline.LatentPipeline`'s transformers and the given
    linear directions.

    Both edit the rows ``pipeline.layers`` and restore the others from the input code.
    """
    import dataclasses

    editor = pipeline.using(None, "latent").latent_method()
    methods: dict[str, LatentEditFn] = {
        TRANSFORMER: lambda ws, a, alpha: editor.edit_latents(ws, {a: alpha})
    }
    if directions is not None:
        directions = dataclasses.replace(directions, layers=editor.layers)

        def linear(ws: torch.Tensor, a: str, alpha: torch.Tensor) -> torch.Tensor:
            return directions.edit_latents(ws, {a: alpha})

        methods[LINEAR] = linear
    return methods


def generator_synthesize(generator, size: int) -> SynthesizeFn:
    """``ws -> uint8 [N, size, size, 3]`` renders of a StyleGAN2 generator."""
    from PIL import Image

    from faceedit.data.images import tensor_to_uint8

    @torch.no_grad()
    def synthesize(ws: torch.Tensor) -> np.ndarray:
        out = tensor_to_uint8(generator.synthesis(ws, noise_mode="const").clamp(-1, 1))
        if out.shape[1] != size:
            out = np.stack(
                [
                    np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                    for im in out
                ]
            )
        return out

    return synthesize


def editor_invert(editor) -> InvertFn:
    """``uint8 [N, S, S, 3] -> ws`` with a :class:`~faceedit.editing.pipeline.FaceEditor`'s
    inversion (its encoder in one batch, or optimisation projection per avatar), giving
    the codes that ``faceedit edit`` and ``faceedit eval avatars --strength`` edit."""
    return getattr(editor, "editor", editor).invert
