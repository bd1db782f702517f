"""How an editor's verdicts move with its strength: the intensity curve of a model card.

``faceedit eval avatars --method attgan --strengths 0.5,1,1.5,2,2.5,3`` runs
:func:`faceedit.eval.avatars.evaluate_avatar_edits` once per strength on the same held-out
avatars and the same judge, and writes ``avatar_strengths.{json,md,png}``: per strength and
attribute, target changed, other attributes kept, identity kept and the pooled region
gain; the plot draws the means against strength with the operating point (``--strength``,
the strength the headline figures use) marked. A stronger edit changes more targets and
keeps less of the rest; the curve shows where that trade settles, so the operating point
is a choice a reader can check rather than take on trust.

(The latent method has its own sweep, :mod:`faceedit.eval.avatar_sweep`, which inverts
each avatar once and compares the transformers with a linear baseline.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from faceedit.errors import FaceeditError
from faceedit.eval.avatars import AvatarEvalReport, EditFn, ReconstructFn, evaluate_avatar_edits

#: the per-strength figures the curve keeps (AvatarEvalReport / AttributeResult fields)
FIGURES = ("target_change", "preservation", "identity", "region_gain")


@dataclass
class StrengthPoint:
    """One strength's figures: the means and ``{attribute: {figure: value}}``."""

    strength: float
    target_change: float
    preservation: float
    identity: float
    region_gain: float | None
    outside_psnr: float | None
    by_attribute: dict[str, dict[str, float | None]]


@dataclass
class StrengthCurve:
    method: str
    model: str
    n_avatars: int
    operating_strength: float  # the strength of the headline figures (--strength)
    points: list[StrengthPoint]
    judge: str = ""
    judge_role: str = ""
    psnr: float | None = None  # reconstruction, dB (strength-independent)
    dependent_judge: list[str] = field(default_factory=list)

    def point(self, strength: float) -> StrengthPoint:
        for p in self.points:
            if p.strength == strength:
                return p
        raise KeyError(strength)

    def markdown(self) -> str:
        return curve_markdown(self)


def _point(report: AvatarEvalReport) -> StrengthPoint:
    return StrengthPoint(
        strength=report.strength,
        target_change=report.target_change,
        preservation=report.preservation,
        identity=report.identity,
        region_gain=report.region_gain,
        outside_psnr=report.outside_psnr,
        by_attribute={r.attribute: {k: getattr(r, k) for k in FIGURES} for r in report.rows},
    )


def strength_curve(
    edit: EditFn,
    edit_attributes: Sequence[str],
    judge,
    records: Sequence[Mapping[str, str]],
    size: int,
    strengths: Sequence[float],
    operating_strength: float,
    reconstruct: ReconstructFn | None = None,
    method: str = "",
    model: str = "",
    progress: bool = True,
) -> StrengthCurve:
    """:func:`~faceedit.eval.avatars.evaluate_avatar_edits` at each of ``strengths``.

    Args:
        strengths: positive, distinct; sorted in the result. ``operating_strength`` is
            added when missing, so the curve always holds the headline point.
        reconstruct: measured once (it does not depend on the strength).
    """
    chosen = sorted({float(s) for s in [*strengths, operating_strength]})
    if not chosen or any(not s > 0 for s in chosen):
        raise FaceeditError(f"--strengths: strengths must be positive, got {list(strengths)}")
    points, psnr, report = [], None, None
    for i, s in enumerate(chosen):
        report = evaluate_avatar_edits(
            edit,
            edit_attributes,
            judge,
            records,
            size=size,
            strength=s,
            reconstruct=reconstruct if i == 0 else None,
            method=method,
            model=model,
            progress=progress,
        )
        psnr = report.psnr if i == 0 else psnr
        points.append(_point(report))
    return StrengthCurve(
        method=method,
        model=model,
        n_avatars=len(records),
        operating_strength=float(operating_strength),
        points=points,
        judge=report.judge,
        judge_role=report.judge_role,
        psnr=psnr,
    )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _gain(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def curve_markdown(curve: StrengthCurve) -> str:
    """Means per strength, then target changed / identity kept per attribute."""
    strengths = [p.strength for p in curve.points]
    lines = [
        f"# {curve.method} edits against strength: {curve.n_avatars} held-out avatars, "
        f"judged by {curve.judge or 'the avatar judge'} ({curve.judge_role or 'role unknown'})"
        "\n",
        f"Operating point: strength {curve.operating_strength:g} (the headline figures).\n",
        "| strength | target changed | others kept | identity kept | region gain (pooled) "
        "| PSNR outside region |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in curve.points:
        mark = " (operating point)" if p.strength == curve.operating_strength else ""
        outside = "-" if p.outside_psnr is None else f"{p.outside_psnr:.1f} dB"
        lines.append(
            f"| {p.strength:g}{mark} | {_pct(p.target_change)} | {_pct(p.preservation)} | "
            f"{_pct(p.identity)} | {_gain(p.region_gain)} | {outside} |"
        )
    lines += [
        "\nTarget changed / identity kept per attribute:\n",
        "| attribute | " + " | ".join(f"strength {s:g}" for s in strengths) + " |",
        "| --- |" + " --- |" * len(strengths),
    ]
    for a in curve.points[0].by_attribute:
        cells = [
            f"{_pct(p.by_attribute[a]['target_change'])} / {_pct(p.by_attribute[a]['identity'])}"
            for p in curve.points
        ]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    if curve.psnr is not None:
        lines.append(f"\nReconstruction PSNR: {curve.psnr:.2f} dB")
    for note in curve.dependent_judge:
        lines.append(f"\n**Not an independent judge**: {note}")
    return "\n".join(lines) + "\n"


def write_curve(curve: StrengthCurve, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``avatar_strengths.{json,md,png}`` in ``out_dir`` (written atomically)."""
    from faceedit.fileio import atomic_write_text
    from faceedit.viz import saved_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"avatar_strengths.{k}" for k in ("json", "md", "png")}
    atomic_write_text(paths["json"], json.dumps(asdict(curve), indent=2) + "\n")
    atomic_write_text(paths["md"], curve.markdown())
    x = [p.strength for p in curve.points]
    with saved_figure(paths["png"], figsize=(7, 4.2), dpi=100) as (fig, ax):
        for a in curve.points[0].by_attribute:  # faint: each attribute's target changed
            ys = [p.by_attribute[a]["target_change"] for p in curve.points]
            ax.plot(x, ys, color="tab:blue", alpha=0.15, linewidth=1)
        for key, label, colour in (
            ("target_change", "target changed (mean)", "tab:blue"),
            ("preservation", "other attributes kept", "tab:green"),
            ("identity", "identity parts kept", "tab:orange"),
        ):
            ax.plot(x, [getattr(p, key) for p in curve.points], "o-", color=colour, label=label)
        ax.axvline(curve.operating_strength, color="k", linestyle="--", linewidth=1)
        ax.annotate(
            "operating point",
            (curve.operating_strength, 0.02),
            rotation=90,
            fontsize=8,
            ha="right",
            va="bottom",
        )
        ax.set_xlabel("edit strength")
        ax.set_ylim(0, 1)
        ax.set_title(
            f"{curve.model}: judged by {curve.judge or 'the avatar judge'} "
            f"({curve.n_avatars} avatars; faint: each attribute's target changed)",
            fontsize=9,
        )
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3)
    return paths
