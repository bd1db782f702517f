"""How far an avatar judge can be trusted: fake edits, held-out accuracy, a second opinion.

``faceedit eval judge`` renders held-out avatars (a seed no training used), flips each
attribute the judge reads, and reports:

- how often each fake edit of :mod:`faceedit.eval.fakes` passes as a change (the judge
  reads the target attribute flipped), over all edits, per direction and per attribute;
- the judge's accuracy per attribute and per rendering parameter on the clean renders
  (the held-out avatars and their counterfactuals), and on the same renders through
  :func:`faceedit.data.augment.heavy_augment` (a fixed seed);
- with a second network, where the two disagree: on the attributes of the clean renders
  and on the verdicts of every fake kind.

Results: ``judge_eval.json`` and ``judge_eval.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from faceedit.data.avatars import (
    PARAMETERS,
    AvatarArrays,
    attributes,
    edit_attribute,
    render_record,
    visible_parameters,
)
from faceedit.errors import FaceeditError
from faceedit.eval.avatars import judge_edits
from faceedit.eval.fakes import CONTROL_KINDS, FAKE_KINDS, GOAL_KINDS, GOAL_RATE, make_fakes

KINDS = (*FAKE_KINDS, *CONTROL_KINDS)


@dataclass
class PassRates:
    """How often one kind of image passes as a change, in [0, 1] (None: no such edit)."""

    n: int
    rate: float
    on: float | None
    off: float | None
    by_attribute: dict[str, float]


@dataclass
class JudgeResult:
    """One judge's figures."""

    name: str
    fakes: dict[str, PassRates]
    accuracy: dict[str, Any]  # faceedit.train.oracle.evaluate_oracle on the clean renders
    augmented_accuracy: dict[str, Any]  # ... on the same renders, heavily augmented
    goals_met: dict[str, bool] = field(default_factory=dict)
    # {confidence: {kind: pass rate}}: the same images with a change counted at another
    # confidence (``evaluate_judges(confidences=...)``; how CHANGE_CONFIDENCE was chosen)
    by_confidence: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Disagreement:
    """Where two judges differ: share of images (or verdicts) read differently."""

    first: str
    second: str
    attrs: dict[str, float]  # per attribute, on the clean renders
    attr_mean: float
    any_attr: float  # images where at least one attribute differs
    verdicts: dict[str, float]  # per fake kind, target-changed verdicts that differ


@dataclass
class JudgeReport:
    n_avatars: int
    seed: int
    size: int
    attributes: list[str]
    judges: list[JudgeResult]
    disagreement: Disagreement | None

    def markdown(self) -> str:
        return report_markdown(self)


def _labelled(records: Sequence[Mapping[str, str]], images: np.ndarray, judge) -> AvatarArrays:
    """An in-memory split of rendered records, with the judge's head order."""
    names, params = tuple(judge.config.attr_names), tuple(judge.config.param_names)
    index = {k: {v: i for i, v in enumerate(PARAMETERS[k])} for k in params}
    p = np.full((len(records), len(params)), -1, dtype=np.int64)
    for r, record in enumerate(records):
        shown = set(visible_parameters(record))
        for c, k in enumerate(params):
            if k in shown:
                p[r, c] = index[k][record[k]]
    attrs = np.array([[attributes(r)[a] for a in names] for r in records], dtype=np.int8)
    return AvatarArrays([], images, attrs, p, names, params)


def _rates(passed: np.ndarray, attr_of: np.ndarray, on: np.ndarray, names: Sequence[str]):
    def share(mask: np.ndarray) -> float | None:
        return float(passed[mask].mean()) if mask.any() else None

    return PassRates(
        n=int(passed.size),
        rate=float(passed.mean()),
        on=share(on),
        off=share(~on),
        by_attribute={a: float(passed[attr_of == i].mean()) for i, a in enumerate(names)},
    )


def evaluate_judges(
    judges: Mapping[str, Any],
    records: Sequence[Mapping[str, str]],
    seed: int,
    chunk: int = 50,
    progress: bool = True,
    confidences: Sequence[float] = (),
) -> JudgeReport:
    """Fakes, accuracy and (for two judges) disagreement on ``records``.

    Args:
        judges: ``{name: AvatarOracle}``, one or two, reading the same attributes and
            parameters at the same side.
        records: held-out avatars (from a seed no judge was trained on).
        seed: seeds the noise of the fakes and the augmentation of the accuracy check.
        confidences: also give each kind's pass rate with a change counted at each of
            these probabilities (``JudgeResult.by_confidence``).
    """
    from faceedit.data.augment import heavy_augment
    from faceedit.train.oracle import evaluate_oracle

    models = list(judges.values())
    first = models[0]
    names = list(first.config.attr_names)
    for m in models[1:]:
        same = (m.config.attr_names, m.config.param_names, m.config.img_size)
        if same != (first.config.attr_names, first.config.param_names, first.config.img_size):
            raise FaceeditError("the judges read different attributes, parameters or sizes")
    size = int(first.config.img_size)
    gen = torch.Generator().manual_seed(seed)
    passed: dict[str, dict[str, list[np.ndarray]]] = {j: {k: [] for k in KINDS} for j in judges}
    toward: dict[str, dict[str, list[np.ndarray]]] = {j: {k: [] for k in KINDS} for j in judges}
    attr_of, turned_on = [], []
    clean_records: list[Mapping[str, str]] = []
    clean_images: list[np.ndarray] = []
    bar = tqdm(total=len(records), desc="fake edits", unit="avatar", disable=not progress)
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        edits, images = [], {k: [] for k in KINDS}
        for record in part:
            source = render_record(record, size)
            clean_records.append(record)
            clean_images.append(source)
            for i, a in enumerate(names):
                want_on = attributes(record)[a] < 0
                target = edit_attribute(record, a, want_on)
                truth = render_record(target, size)
                clean_records.append(target)
                clean_images.append(truth)
                for k, img in make_fakes(source, truth, gen).items():
                    images[k].append(img)
                edits.append((record, a, want_on))
                attr_of.append(i)
                turned_on.append(want_on)
        for j, model in judges.items():
            for k in KINDS:
                verdicts = judge_edits(model, edits, images[k])
                passed[j][k].append(np.array([v.target_changed for v in verdicts]))
                toward[j][k].append(np.array([v.target_logit for v in verdicts]))
        bar.update(len(part))
    bar.close()
    attr_arr, on_arr = np.array(attr_of), np.array(turned_on)
    verdicts = {j: {k: np.concatenate(v) for k, v in kinds.items()} for j, kinds in passed.items()}
    clean = np.stack(clean_images)
    augmented = heavy_augment(clean, torch.Generator().manual_seed(seed))
    augmented = ((augmented + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    aug_images = augmented.permute(0, 2, 3, 1).numpy()
    results = []
    for j, model in judges.items():
        fakes = {k: _rates(verdicts[j][k], attr_arr, on_arr, names) for k in KINDS}
        results.append(
            JudgeResult(
                name=j,
                fakes=fakes,
                accuracy=evaluate_oracle(model, _labelled(clean_records, clean, model)),
                augmented_accuracy=evaluate_oracle(
                    model, _labelled(clean_records, aug_images, model)
                ),
                goals_met={k: fakes[k].rate <= GOAL_RATE for k in GOAL_KINDS},
                by_confidence={
                    f"{c:g}": {
                        k: float((np.concatenate(toward[j][k]) > _logit(c)).mean()) for k in KINDS
                    }
                    for c in confidences
                },
            )
        )
    disagreement = None
    if len(models) == 2:
        (a_name, a), (b_name, b) = judges.items()
        disagreement = _disagreement(a_name, a, b_name, b, clean, verdicts)
    return JudgeReport(len(records), seed, size, names, results, disagreement)


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _disagreement(a_name, a, b_name, b, images: np.ndarray, verdicts) -> Disagreement:
    from faceedit.eval.avatars import oracle_read

    reads = []
    for model in (a, b):
        parts = [oracle_read(model, images[i : i + 512])[0] for i in range(0, len(images), 512)]
        reads.append(np.concatenate(parts))
    differ = reads[0] != reads[1]
    names = list(a.config.attr_names)
    return Disagreement(
        first=a_name,
        second=b_name,
        attrs={n: float(differ[:, i].mean()) for i, n in enumerate(names)},
        attr_mean=float(differ.mean()),
        any_attr=float(differ.any(1).mean()),
        verdicts={k: float((verdicts[a_name][k] != verdicts[b_name][k]).mean()) for k in KINDS},
    )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def report_markdown(report: JudgeReport) -> str:
    """The report as Markdown tables (fakes, per attribute, accuracy, disagreement)."""
    lines = [
        f"# Judges on fake edits: {report.n_avatars} held-out avatars (seed {report.seed}), "
        f"{report.n_avatars * len(report.attributes)} edits per kind, {report.size} px\n",
        "A fake passes when the judge reads the target attribute flipped. Goal: at most "
        f"{GOAL_RATE:.0%} for {' and '.join(GOAL_KINDS)}.\n",
        "| kind | what | " + " | ".join(f"{j.name} (on / off)" for j in report.judges) + " |",
        "| --- | --- |" + " --- |" * len(report.judges),
    ]
    for k in KINDS:
        what = FAKE_KINDS.get(k) or f"control: {CONTROL_KINDS[k]}"
        cells = []
        for j in report.judges:
            r = j.fakes[k]
            mark = ""
            if k in GOAL_KINDS:
                mark = " (goal met)" if j.goals_met[k] else " (**goal missed**)"
            cells.append(f"{_pct(r.rate)} ({_pct(r.on)} / {_pct(r.off)}){mark}")
        lines.append(f"| {k} | {what} | " + " | ".join(cells) + " |")
    for j in report.judges:
        lines += [
            f"\n## {j.name}: pass rate per attribute\n",
            "| attribute | " + " | ".join(KINDS) + " |",
            "| --- |" + " --- |" * len(KINDS),
        ]
        for a in report.attributes:
            lines.append(
                f"| {a} | " + " | ".join(_pct(j.fakes[k].by_attribute[a]) for k in KINDS) + " |"
            )
    for j in report.judges:
        if not j.by_confidence:
            continue
        lines += [
            f"\n## {j.name}: pass rate by the confidence a change needs\n",
            "| confidence | " + " | ".join(KINDS) + " |",
            "| --- |" + " --- |" * len(KINDS),
        ]
        for c, rates in j.by_confidence.items():
            lines.append(f"| {c} | " + " | ".join(_pct(rates[k]) for k in KINDS) + " |")
    lines += [
        "\n## Held-out accuracy (clean renders / heavily augmented)\n",
        f"{report.n_avatars} avatars and their {report.n_avatars * len(report.attributes)} "
        "counterfactuals; parameters only where they show.\n",
        "| attribute | " + " | ".join(j.name for j in report.judges) + " |",
        "| --- |" + " --- |" * len(report.judges),
    ]

    def acc(j: JudgeResult, group: str, name: str) -> str:
        return f"{j.accuracy[group][name]:.2%} / {j.augmented_accuracy[group][name]:.2%}"

    for a in report.attributes:
        lines.append(f"| {a} | " + " | ".join(acc(j, "attrs", a) for j in report.judges) + " |")
    lines.append(
        "| **mean** | "
        + " | ".join(
            f"{j.accuracy['attr_accuracy']:.2%} / {j.augmented_accuracy['attr_accuracy']:.2%}"
            for j in report.judges
        )
        + " |"
    )
    lines += [
        "\n| part (rendering parameter) | " + " | ".join(j.name for j in report.judges) + " |",
        "| --- |" + " --- |" * len(report.judges),
    ]
    for p in report.judges[0].accuracy["params"]:
        lines.append(f"| {p} | " + " | ".join(acc(j, "params", p) for j in report.judges) + " |")
    lines.append(
        "| **mean** | "
        + " | ".join(
            f"{j.accuracy['param_accuracy']:.2%} / {j.augmented_accuracy['param_accuracy']:.2%}"
            for j in report.judges
        )
        + " |"
    )
    d = report.disagreement
    if d is not None:
        lines += [
            f"\n## Where {d.first} and {d.second} disagree\n",
            f"Clean renders: {d.attr_mean:.2%} of attribute readings differ; "
            f"{d.any_attr:.2%} of images have at least one.\n",
            "| attribute | readings that differ |",
            "| --- | --- |",
            *(f"| {a} | {v:.2%} |" for a, v in d.attrs.items()),
            "\n| kind | verdicts that differ |",
            "| --- | --- |",
            *(f"| {k} | {v:.2%} |" for k, v in d.verdicts.items()),
        ]
    return "\n".join(lines) + "\n"


def write_judge_report(report: JudgeReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``judge_eval.json`` and ``judge_eval.md`` in ``out_dir`` (written atomically)."""
    from faceedit.fileio import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "judge_eval.json", "md": out / "judge_eval.md"}
    atomic_write_text(paths["json"], json.dumps(asdict(report), indent=2) + "\n")
    atomic_write_text(paths["md"], report.markdown())
    return paths
