"""The demo: both editing methods on held-out avatars, every edit judged by the oracle.

Held-out avatars (:func:`faceedit.eval.avatars.held_out_records`, a seed the training
data did not use) are rendered at each model's crop size and edited by

- **AttGAN** (He et al., IEEE TIP 2019): encode-decode with the flipped attribute;
- **StyleGAN2 + latent transformers** (Yao et al., ICCV 2021): the avatar is inverted
  into W+ once (the bundle's encoder, else a short optimisation projection), then each
  transformer moves the code and the generator renders it.

Every attribute is flipped (on when it is off, off when it is on, as in
:mod:`faceedit.eval.avatars`) at several strengths, and the shipped oracle judges each
edit against the ground-truth counterfactual with
:func:`faceedit.eval.avatars.judge_edits` (the same verdict as ``faceedit eval avatars``).
Outputs: ``demo_grid.png`` (one row per avatar and method) and ``report.html`` (every
edit with its verdict; the images are embedded, so the page stands alone).
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from faceedit.data.avatars import attributes, edit_attribute, has_unique_truth, render_record
from faceedit.errors import FaceeditError
from faceedit.eval.avatars import Verdict, held_out_records, judge_edits, judge_role
from faceedit.eval.metrics import PixelErrors, edit_pixel_errors, psnr_uint8

DEFAULT_ATTRS = ("Smiling", "Eyeglasses", "Blond_Hair", "Wearing_Hat", "Mustache")
DEFAULT_STRENGTHS = (0.5, 1.0)
GRID_FILE = "demo_grid.png"
REPORT_FILE = "report.html"
# grid cells are at least this wide so the labels and the +/- badges stay readable
MIN_CELL = 96


@dataclass(eq=False)
class DemoEdit:
    """One edit: avatar ``avatar`` with ``attribute`` turned on (``turned_on``) or off."""

    avatar: int
    attribute: str
    turned_on: bool
    strength: float
    image: np.ndarray  # uint8 [S, S, 3], the model's output
    verdict: Verdict
    truth: np.ndarray | None = None  # uint8 [S, S, 3], the ground-truth counterfactual
    pixels: PixelErrors | None = None  # its errors against the truth (one entry)
    unique: bool = True  # the edit has one right answer (has_unique_truth)

    @property
    def region_gain(self) -> float:
        """1 = drew the truth, 0 = did nothing, < 0 = worse than nothing; NaN when the
        truth does not differ from the source."""
        return float(self.pixels.region_gain[0]) if self.pixels is not None else float("nan")

    @property
    def signed(self) -> float:
        """The strength given to the model: positive turns the attribute on."""
        return self.strength if self.turned_on else -self.strength


@dataclass(eq=False)
class MethodRun:
    """What one method did to every avatar.

    Attributes:
        method: ``"attgan"`` or ``"latent"``.
        model: the model as named on the command line.
        files: ``{part: path}`` of the files that were loaded.
        attributes: the attributes this model edited (in column order).
        inputs, recons: ``uint8 [S, S, 3]`` per avatar: the rendering and the model's
            unedited output.
        edits: every edit, avatar-major, then attribute, then strength.
        inversion: how the latent method found the codes (``""`` for AttGAN).
    """

    method: str
    model: str
    files: dict[str, str]
    attributes: list[str]
    inputs: list[np.ndarray]
    recons: list[np.ndarray]
    edits: list[DemoEdit] = field(default_factory=list)
    inversion: str = ""

    def psnr(self) -> float:
        """Mean reconstruction PSNR in dB (capped at 100 for an exact copy)."""
        return float(np.mean(psnr_uint8(np.stack(self.inputs), np.stack(self.recons))))

    def region_gain(self) -> float:
        """Region gain pooled over every edit (NaN without ground truth)."""
        parts = [e.pixels for e in self.edits if e.pixels is not None]
        return PixelErrors.concat(parts).summary()["pooled_region_gain"] if parts else np.nan

    def summary(self) -> str:
        n = len(self.edits)
        hit = sum(e.verdict.target_changed for e in self.edits)
        kept = np.mean([e.verdict.preservation for e in self.edits])
        same = np.mean([e.verdict.identity for e in self.edits])
        return (
            f"{self.method}: region gain {self.region_gain():.2f} (pooled; 1 = the ground "
            f"truth, 0 = no change), target changed in {hit}/{n} edits ({hit / n:.0%}), "
            f"other attributes kept {kept:.0%}, identity parameters kept {same:.0%}, "
            f"reconstruction PSNR {self.psnr():.1f} dB"
        )


@dataclass(eq=False)
class DemoResult:
    """The demo's runs and its grid (``cells``: rows of ``uint8`` tiles or ``None``)."""

    records: list[dict[str, str]]
    seed: int
    columns: list[tuple[str, float]]  # (attribute, strength) after input, reconstruction
    runs: list[MethodRun]
    cells: list[list[np.ndarray | None]]
    row_labels: list[str]
    col_labels: list[str]
    grid: np.ndarray
    oracle: str
    seconds: float = 0.0
    judge_role: str = ""
    # non-empty only with --allow-dependent-judge: what the judge was in a model's lineage
    dependent_judge: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- choosing


def choose_attributes(
    requested: Sequence[str] | None, editors: dict[str, object], oracle_names: Sequence[str]
) -> dict[str, list[str]]:
    """``{method: [attribute, ...]}``: what each model edits among those asked for.

    Attributes asked for by name must be read by the oracle and edited by at least one
    model; from the defaults, those no model edits are left out.
    """
    names = list(requested) if requested else list(DEFAULT_ATTRS)
    unknown = [a for a in names if a not in oracle_names]
    if unknown:
        raise FaceeditError(
            f"unknown attribute {', '.join(unknown)}: the avatar oracle reads "
            f"{', '.join(oracle_names)}"
        )
    per = {m: [a for a in names if a in ed.attributes] for m, ed in editors.items()}
    if requested:
        nobody = [a for a in names if not any(a in v for v in per.values())]
        if nobody:
            edited = sorted({a for ed in editors.values() for a in ed.attributes})
            raise FaceeditError(
                f"no model edits {', '.join(nobody)}; they edit: {', '.join(edited)}"
            )
    for m, attrs in per.items():
        if not attrs:
            raise FaceeditError(
                f"the {m} model edits none of {', '.join(names)} (it edits: "
                f"{', '.join(editors[m].attributes)})"
            )
    return per


# --------------------------------------------------------------------------- editing


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))


def _run(editor, images, records, plan, bar):
    """Invert each avatar once, then render each planned edit ``(attribute, strength)``
    as one batch, each avatar towards the opposite of its own value.

    Returns ``(recons, {(a, s): [uint8 [S, S, 3]] per avatar})``.
    """
    from faceedit.editing.base import resize_crops

    crop_editor = editor.editor
    size = images[0].shape[0]
    code = crop_editor.invert(np.stack(images))
    recons = list(resize_crops(crop_editor.reconstruct(code), size))
    bar.update(1)
    outs = {}
    for a, s in plan:
        signed = np.array([s if attributes(r)[a] < 0 else -s for r in records])
        out = crop_editor.edit_codes(code, {a: signed}).images
        outs[(a, s)] = list(resize_crops(out, size))
        bar.update(1)
    return recons, outs


def model_files(model: str | os.PathLike, editor, used: Sequence[str] = ()) -> dict[str, str]:
    """``{part: path}`` of what ``model`` loads (a bundle's parts, or the model itself);
    of the latent transformers, those of the ``used`` attributes."""
    from faceedit.hub import read_bundle, resolve

    path = resolve(model, "--model")
    spec = read_bundle(path)
    if not spec:
        return {"model": str(path)}
    files = {"bundle": str(path / "bundle.json")}
    for key in ("model", "generator", "encoder", "classifier", "directions"):
        if isinstance(spec.get(key), str):
            files[key] = spec[key]
    for a, p in getattr(editor.editor, "transformer_paths", {}).items():
        if a in used:
            files[f"transformer {a}"] = str(p)
    return files


def run_demo(
    editors: dict[str, object],
    models: dict[str, str],
    oracle,
    n: int = 4,
    seed: int = 1,
    attrs: Sequence[str] | None = None,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    oracle_name: str = "avatar-oracle",
    progress: bool = True,
) -> DemoResult:
    """Edit ``n`` held-out avatars with every editor and judge each edit.

    Args:
        editors: ``{"attgan": FaceEditor, "latent": FaceEditor}`` (either may be absent).
        models: ``{method: model name or path}`` as given (for the report).
        oracle: the avatar oracle.
        attrs: attributes to flip (default :data:`DEFAULT_ATTRS`, those the models edit).
        strengths: positive strengths; each edit is applied towards the flipped value.
    """
    start = time.perf_counter()
    strengths = [float(s) for s in strengths]
    if not strengths or any(not (0 < s <= 10) for s in strengths):
        raise FaceeditError(f"strengths must be in (0, 10], got {strengths}")
    per = choose_attributes(attrs, editors, list(oracle.config.attr_names))
    records = held_out_records(n, seed)
    order = [a for a in (attrs or DEFAULT_ATTRS) if any(a in v for v in per.values())]
    columns = [(a, s) for a in order for s in strengths]
    total = sum(2 + len(v) * len(strengths) for v in per.values())
    runs: list[MethodRun] = []
    with tqdm(total=total, desc="faceedit demo", unit="step", disable=not progress) as bar:
        for method, editor in editors.items():
            plan = [(a, s) for a in per[method] for s in strengths]
            images = [render_record(r, editor.crop_size) for r in records]
            recons, outs = _run(editor, images, records, plan, bar)
            run = MethodRun(
                method,
                str(models[method]),
                model_files(models[method], editor, per[method]),
                per[method],
                images,
                recons,
                inversion=str(editor.editor.settings().get("invert", "")),
            )
            asked = [
                (i, a, s, attributes(r)[a] < 0) for i, r in enumerate(records) for a, s in plan
            ]
            verdicts = judge_edits(
                oracle,
                [(records[i], a, on) for i, a, _, on in asked],
                [outs[(a, s)][i] for i, a, s, _ in asked],
            )
            truths = {
                (i, a): render_record(edit_attribute(records[i], a, on), editor.crop_size)
                for i, a, _, on in asked
            }
            for (i, a, s, on), v in zip(asked, verdicts, strict=True):
                out, truth = outs[(a, s)][i], truths[(i, a)]
                pixels = edit_pixel_errors(out, images[i], truth)
                unique = has_unique_truth(records[i], a, on)
                run.edits.append(DemoEdit(i, a, on, s, out, v, truth, pixels, unique))
            runs.append(run)
            bar.update(1)
    cells, row_labels, col_labels = grid_cells(runs, columns)
    from faceedit.viz import image_grid

    grid = image_grid(
        cells,
        row_labels,
        col_labels,
        title=(
            f"faceedit demo: {n} held-out avatars (seed {seed}); each attribute flipped, "
            "+ = turned on, - = turned off, g = region gain against the truth row"
        ),
    )
    return DemoResult(
        [dict(r) for r in records],
        seed,
        columns,
        runs,
        cells,
        row_labels,
        col_labels,
        grid,
        oracle_name,
        seconds=time.perf_counter() - start,
        judge_role=judge_role(oracle),
    )


# --------------------------------------------------------------------------- outputs


def _badge(img: np.ndarray, text: str, size: int) -> np.ndarray:
    """``img`` at ``size`` px with ``text`` (e.g. ``+0.5``) in its top-left corner."""
    from faceedit.viz import _font

    tile = Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(tile)
    font = _font(max(10, size // 8))
    box = draw.textbbox((2, 1), text, font=font)
    draw.rectangle((0, 0, box[2] + 2, box[3] + 2), fill=(255, 255, 255))
    draw.text((2, 1), text, fill=(20, 20, 20), font=font)
    return np.asarray(tile)


def grid_cells(runs: Sequence[MethodRun], columns: Sequence[tuple[str, float]]):
    """Rows (avatar x method) of tiles: input, reconstruction, then one per column.

    Edited tiles carry the signed strength (``+1`` on, ``-1`` off) in a corner; a column
    the method does not edit is blank. Returns ``(cells, row_labels, col_labels)``.
    """
    size = max(MIN_CELL, max(r.inputs[0].shape[0] for r in runs))
    col_labels = ["input", "reconstruction"] + [f"{a}\n±{s:g}" for a, s in columns]
    cells, row_labels = [], []
    n = len(runs[0].inputs)
    for i in range(n):
        # first the ground truth of every column: what each edit should have drawn
        truth = {(e.attribute, e.strength): e for r in runs for e in r.edits if e.avatar == i}
        row = [_resize(runs[0].inputs[i], size), None]
        for col in columns:
            e = truth.get(col)
            ok = e is not None and e.truth is not None
            row.append(_badge(e.truth, "truth", size) if ok else None)
        cells.append(row)
        row_labels.append(f"avatar {i + 1} truth")
        for run in runs:
            by_col = {(e.attribute, e.strength): e for e in run.edits if e.avatar == i}
            row: list[np.ndarray | None] = [
                _resize(run.inputs[i], size),
                _resize(run.recons[i], size),
            ]
            for col in columns:
                e = by_col.get(col)
                if e is None:
                    row.append(None)
                    continue
                gain = "" if not np.isfinite(e.region_gain) else f" g{e.region_gain:.2f}"
                row.append(_badge(e.image, f"{e.signed:+g}{gain}", size))
            cells.append(row)
            row_labels.append(f"avatar {i + 1} {run.method}")
    return cells, row_labels, col_labels


def _png_b64(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: center; font-size: 13px; }
td img { width: 64px; height: 64px; image-rendering: pixelated; }
.yes { background: #dfd; } .no { background: #fdd; }
.summary { font-weight: bold; }
"""


def report_html(result: DemoResult) -> str:
    """The report: the grid, then per method a table of every edit with its verdict."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>faceedit demo</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>faceedit demo</h1>",
        f"<p>{len(result.records)} held-out avatars (seed {result.seed}), each attribute "
        "flipped (turned on when off, off when on) at strengths "
        f"{', '.join(f'{s:g}' for s in sorted({s for _, s in result.columns}))}. Each edit "
        "stands beside its ground truth, the counterfactual: the same avatar rendered with "
        "only that attribute changed. <em>Region gain</em> measures how much of the way "
        "from the input to the truth the edit went, over the pixels that had to change "
        "(1 = the truth, 0 = nothing changed, negative = further from it than the input; "
        "<em>one answer</em> marks edits whose truth is the only right answer, the others "
        "draw one of several valid shapes). The judge "
        f"(<code>{e(result.oracle)}</code>, {e(result.judge_role or 'judge')}) reads each "
        "edit: <em>target changed</em> = it sees the new value; <em>others kept</em> = "
        "other attributes equal the counterfactual's; <em>identity kept</em> = the rendering "
        "parameters the edit did not have to change (eyes, skin, clothes, ...) are unchanged."
        "</p>",
        f'<p><img src="{GRID_FILE}" alt="demo grid" style="max-width:100%"></p>',
        "<h2>Summary</h2><ul>",
    ]
    out += [f'<li class="summary">{e(run.summary())}</li>' for run in result.runs]
    out.append("</ul>")
    for note in result.dependent_judge:
        out.append(f'<p class="dependent"><strong>Not an independent judge:</strong> {e(note)}</p>')
    for run in result.runs:
        how = f", inversion: {run.inversion}" if run.inversion else ""
        out.append(f"<h2>{e(run.method)} (<code>{e(run.model)}</code>{e(how)})</h2>")
        out.append(f'<p class="summary">{e(run.summary())}</p>')
        out.append(
            "<table><tr><th>avatar</th><th>input</th><th>attribute</th><th>direction</th>"
            "<th>strength</th><th>edit</th><th>truth</th><th>region gain</th>"
            "<th>one answer</th><th>target changed</th><th>others kept</th>"
            "<th>identity kept</th></tr>"
        )
        per_avatar = {i: sum(d.avatar == i for d in run.edits) for i in range(len(run.inputs))}
        shown: set[int] = set()
        for d in run.edits:
            v = d.verdict
            yes = "yes" if v.target_changed else "no"
            gain = f"{d.region_gain:.2f}" if np.isfinite(d.region_gain) else "-"
            # the avatar and its input once, spanning its edits (keeps the page small)
            head = ""
            if d.avatar not in shown:
                shown.add(d.avatar)
                k = per_avatar[d.avatar]
                head = (
                    f'<td rowspan="{k}">{d.avatar + 1}</td><td rowspan="{k}">'
                    f'<img src="{_png_b64(run.inputs[d.avatar])}" alt="input"></td>'
                )
            out.append(
                f'<tr class="edit" data-method="{e(run.method)}" data-avatar="{d.avatar}" '
                f'data-attribute="{e(d.attribute)}" data-on="{int(d.turned_on)}" '
                f'data-strength="{d.strength:g}" data-target="{yes}" data-gain="{gain}" '
                f'data-kept="{v.kept}/{v.n_others}" data-identity="{v.same}/{v.n_identity}">'
                f"{head}<td>{e(d.attribute)}</td><td>{'+ (on)' if d.turned_on else '- (off)'}</td>"
                f"<td>{d.strength:g}</td>"
                f'<td><img class="edited" src="{_png_b64(d.image)}" alt="edit"></td>'
                + (
                    f'<td><img class="truth" src="{_png_b64(d.truth)}" alt="truth"></td>'
                    if d.truth is not None
                    else "<td></td>"
                )
                + f'<td class="gain">{gain}</td><td>{"yes" if d.unique else "no"}</td>'
                f'<td class="{yes}">{yes}</td><td>{v.kept}/{v.n_others}</td>'
                f"<td>{v.same}/{v.n_identity}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Model files</h2><ul>")
    for run in result.runs:
        for part, path in run.files.items():
            out.append(f"<li>{e(run.method)} {e(part)}: <code>{e(path)}</code></li>")
    out.append(f"<li>judge: <code>{e(result.oracle)}</code></li></ul>")
    out.append(f"<p>Run time: {result.seconds:.1f} s.</p></body></html>")
    return "\n".join(out) + "\n"


def write_demo(result: DemoResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``demo_grid.png`` and ``report.html`` in ``out_dir``, each written atomically."""
    from faceedit.fileio import atomic_write_text
    from faceedit.viz import save_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"grid": out / GRID_FILE, "report": out / REPORT_FILE}
    save_grid(paths["grid"], result.grid)
    atomic_write_text(paths["report"], report_html(result))
    return paths
