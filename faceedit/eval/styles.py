"""How many distinct looks an AttGAN's style controllers draw (the attribute-style
extension, paper Sec. III-D, on the avatar domain).

On avatars a style has a meaning a judge can read: *which* glasses (the ``accessories``
part), *which* hat or hair shape (``top``). For each target below and each of ``n``
held-out avatars it applies to, the attribute is switched on at ``strength`` with
``n_styles`` settings of its controllers (:func:`faceedit.editing.attgan_style.
style_values`); the judge reads each result. A result counts when the judge sees the
edit made (the target attribute's new value at :data:`~faceedit.eval.avatars.
CHANGE_CONFIDENCE`); the figure is the number of distinct part values among the counted
results of one avatar. A model without controllers draws one look per avatar, which is
the baseline.

=========  ====================================  =========================  =========
target     edit                                  controller                 part read
=========  ====================================  =========================  =========
glasses    Eyeglasses on (avatars without)       Eyeglasses                 accessories
hats       Wearing_Hat on (avatars without)      Wearing_Hat                top
hair       Bald off + Black_Hair on (bald ones)  Black_Hair                 top
=========  ====================================  =========================  =========

(The style loss trains the controllers of the attributes that are *on* after the edit,
so a hair shape drawn on a bald head is chosen by the new hair colour's controller.)
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from faceedit.data.avatars import attributes, render_record
from faceedit.errors import FaceeditError


@dataclass(frozen=True)
class StyleTarget:
    name: str
    edits: dict[str, float]  # attribute -> sign of its edit (+1 on, -1 off)
    controller: str  # the attribute whose controllers are swept
    part: str  # the rendering parameter the judge reads
    requires: dict[str, int]  # the avatar's attributes (+1 / -1) for the edit to apply

    @property
    def checked(self) -> str:
        """The attribute whose new value must be seen for a result to count."""
        return next(iter(self.edits))


TARGETS: dict[str, StyleTarget] = {
    "glasses": StyleTarget(
        "glasses", {"Eyeglasses": 1}, "Eyeglasses", "accessories", {"Eyeglasses": -1}
    ),
    "hats": StyleTarget("hats", {"Wearing_Hat": 1}, "Wearing_Hat", "top", {"Wearing_Hat": -1}),
    "hair": StyleTarget("hair", {"Bald": -1, "Black_Hair": 1}, "Black_Hair", "top", {"Bald": 1}),
}

#: issue 23's goal: at least this many distinct looks from one avatar
GOAL_DISTINCT = 3


@dataclass
class TargetResult:
    target: str
    n_avatars: int  # avatars the edit applies to
    n_styles: int
    counted: float  # share of results in which the judge saw the edit made
    distinct_mean: float  # distinct part values per avatar (counted results only)
    distinct_max: int
    reaching_goal: float  # share of avatars with >= GOAL_DISTINCT distinct values
    values: dict[str, int]  # how often each part value was read, over counted results
    per_avatar: list[list[str | None]]  # the judge's reading per style (None: not counted)


@dataclass
class StyleReport:
    model: str
    style_dim: int
    strength: float
    seed: int
    judge: str
    results: list[TargetResult]
    dependent_judge: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        return report_markdown(self)


def applicable(records: Sequence[Mapping[str, str]], target: StyleTarget) -> list[int]:
    """Indices of the records the target's edit applies to."""
    return [
        i
        for i, r in enumerate(records)
        if all(attributes(r)[a] == v for a, v in target.requires.items())
    ]


def sweep_styles(
    editor, target: StyleTarget, images: torch.Tensor, n_styles: int, strength: float, seed: int
) -> np.ndarray:
    """The target's edit of ``images [N, 3, S, S]`` at each controller setting:
    ``uint8 [N, n_styles, S, S, 3]`` (one setting when the model has no controllers)."""
    from faceedit.editing.attgan_style import style_codes, style_values

    cfg = editor.config
    ti = cfg.test_int * strength
    edits = {a: sign * ti for a, sign in target.edits.items()}
    att = editor.current_attrs(images, None)
    if cfg.style_dim == 0:
        return editor.edit(images, edits, current=att).image[:, None]
    j = editor.names.index(target.controller)
    values = style_values(cfg.style_dim, n_styles, seed)
    out = []
    for k in range(n_styles):
        theta = style_codes(cfg.n_attrs, cfg.style_dim, j, values[k : k + 1])
        theta = theta.expand(len(images), -1, -1).contiguous().to(images.device)
        out.append(editor.edit(images, edits, current=att, style=theta).image)
    return np.stack(out, axis=1)


def count_styles(
    editor,
    judge,
    records: Sequence[Mapping[str, str]],
    targets: Sequence[str],
    n_styles: int = 12,
    strength: float = 2.0,
    seed: int = 0,
    model: str = "",
) -> tuple[StyleReport, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Distinct looks per avatar for each target; also returns each target's images for
    the grid: ``{target: (inputs uint8 [N, S, S, 3], results uint8 [N, K, S, S, 3])}``."""
    from faceedit.eval.avatars import CHANGE_CONFIDENCE, judge_name, oracle_logits

    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise FaceeditError(f"unknown style targets {unknown} (known: {', '.join(TARGETS)})")
    names = list(judge.config.attr_names)
    margin = float(np.log(CHANGE_CONFIDENCE / (1 - CHANGE_CONFIDENCE)))
    results, images_of = [], {}
    for t in targets:
        target = TARGETS[t]
        for a in (*target.edits, target.controller):
            if a not in editor.names:
                raise FaceeditError(f"style target {t}: the model does not edit {a}")
        chosen = applicable(records, target)
        if not chosen:
            raise FaceeditError(f"style target {t}: none of the avatars has {target.requires}")
        src = np.stack([render_record(records[i], editor.size) for i in chosen])
        x = editor.preprocess(list(src))
        with torch.no_grad():
            out = sweep_styles(editor, target, x, n_styles, strength, seed)
        n, k = out.shape[:2]
        logits, params = oracle_logits(judge, out.reshape(n * k, *out.shape[2:]))
        sign = target.edits[target.checked]
        made = logits[:, names.index(target.checked)] * sign > margin
        read = params[target.part]
        per_avatar = [
            [read[i * k + s] if made[i * k + s] else None for s in range(k)] for i in range(n)
        ]
        distinct = [len({v for v in row if v is not None}) for row in per_avatar]
        values = Counter(v for row in per_avatar for v in row if v is not None)
        results.append(
            TargetResult(
                target=t,
                n_avatars=n,
                n_styles=k,
                counted=float(made.mean()),
                distinct_mean=float(np.mean(distinct)),
                distinct_max=int(max(distinct)),
                reaching_goal=float(np.mean([d >= GOAL_DISTINCT for d in distinct])),
                values=dict(values.most_common()),
                per_avatar=per_avatar,
            )
        )
        images_of[t] = (src, out)
    report = StyleReport(
        model=model,
        style_dim=int(editor.config.style_dim),
        strength=float(strength),
        seed=int(seed),
        judge=judge_name(judge),
        results=results,
    )
    return report, images_of


def report_markdown(report: StyleReport) -> str:
    lines = [
        f"# Styles of {report.model or 'the model'} (style_dim {report.style_dim}), "
        f"strength {report.strength:g}, judged by {report.judge}\n",
        "A result counts when the judge sees the edit made; *distinct* is the number of "
        "different part values among one avatar's counted results "
        f"(goal: at least {GOAL_DISTINCT}).\n",
        "| target | part | avatars | styles each | edit seen | distinct per avatar "
        f"(mean / max) | avatars with >= {GOAL_DISTINCT} | values read |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.results:
        t = TARGETS[r.target]
        values = ", ".join(f"{v} {c}" for v, c in r.values.items()) or "-"
        lines.append(
            f"| {r.target} | {t.part} | {r.n_avatars} | {r.n_styles} | {r.counted:.1%} | "
            f"{r.distinct_mean:.2f} / {r.distinct_max} | {r.reaching_goal:.1%} | {values} |"
        )
    for note in report.dependent_judge:
        lines.append(f"\n**Not an independent judge**: {note}")
    return "\n".join(lines) + "\n"


def write_styles(
    report: StyleReport,
    images_of: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out_dir: str | os.PathLike,
    rows: int = 4,
) -> dict[str, Path]:
    """``avatar_styles.{json,md}`` and ``avatar_styles.png`` (per target, ``rows``
    avatars: the input, then each style with the judge's reading in the row label)."""
    from faceedit.fileio import atomic_write_text
    from faceedit.viz import image_grid, save_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"avatar_styles.{k}" for k in ("json", "md", "png")}
    atomic_write_text(paths["json"], json.dumps(asdict(report), indent=2) + "\n")
    atomic_write_text(paths["md"], report.markdown())
    cells, labels = [], []
    for r in report.results:
        src, imgs = images_of[r.target]
        for i in range(min(rows, len(imgs))):
            cells.append([src[i], *imgs[i]])
            seen = sorted({v for v in r.per_avatar[i] if v is not None})
            labels.append(f"{r.target}: {len(seen)}")
    k = max(len(row) for row in cells) - 1
    grid = image_grid(
        cells,
        row_labels=labels,
        col_labels=["input"] + [f"style {s + 1}" for s in range(k)],
        title=f"{report.model}: styles (row label: target, distinct looks the judge read)",
    )
    save_grid(paths["png"], grid)
    return paths
