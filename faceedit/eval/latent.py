"""Evaluation of latent editing, as described in Yao et al. (ICCV 2021), Sec. 4.

The original code does not release it. For each attribute and strength ``s`` (default
11 values from 0 to 2), every code is edited towards the opposite of its current label
(as the classifier sees it: ``alpha = +s`` when ``p < 0.5``, ``-s`` otherwise), and:

- target change rate: fraction of codes whose predicted target attribute flipped;
- preservation rate: fraction of (code, other attribute) pairs whose prediction did not
  change;
- latent distance: mean L2 distance between the edited and the input code;
- identity similarity (optional): mean of an ``identity(ws0, ws1) -> [N]`` callable,
  e.g. a face-recognition cosine similarity of the rendered images.

Any editing method can be compared: a method is ``edit(ws, attr_name, alpha [N]) -> ws``
(the latent transformers, the InterFaceGAN-style linear baseline, ...). Results are
written as CSV, JSON and the paper's curves (preservation vs. target change).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from faceedit.fileio import atomic_write_text
from faceedit.nets.latent import LatentClassifier
from faceedit.units import COSINE, FRACTION, STRENGTH, with_units

EditFn = Callable[[torch.Tensor, str, torch.Tensor], torch.Tensor]
IdentityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

FIELDS = (
    "method",
    "attribute",
    "strength",
    "target_change",
    "preservation",
    "latent_distance",
    "identity",
)


def identity_similarity(
    generator: torch.nn.Module, embedder: torch.nn.Module, noise_mode: str = "const"
) -> IdentityFn:
    """``identity(ws0, ws1) -> [N]``: cosine similarity of face embeddings of the renders.

    ``generator.synthesis(ws) -> img [N,3,H,W]`` in [-1, 1]; ``embedder`` maps images to
    embeddings, through ``embedder.extract(img)`` when it has one (the IR-SE-50 ID
    network crops and pools aligned faces there), else ``embedder(img)``.
    """
    embed = getattr(embedder, "extract", embedder)

    @torch.no_grad()
    def identity(ws0: torch.Tensor, ws1: torch.Tensor) -> torch.Tensor:
        f0 = embed(generator.synthesis(ws0, noise_mode=noise_mode).clamp(-1, 1))
        f1 = embed(generator.synthesis(ws1, noise_mode=noise_mode).clamp(-1, 1))
        return torch.nn.functional.cosine_similarity(f0.flatten(1), f1.flatten(1), dim=1)

    return identity


def default_strengths(n: int = 11, max_strength: float = 2.0) -> list[float]:
    return [float(s) for s in np.linspace(0.0, max_strength, n)]


@torch.no_grad()
def evaluate_editing(
    codes: torch.Tensor,
    classifier: LatentClassifier,
    methods: Mapping[str, EditFn],
    attrs: Sequence[tuple[int, str]],
    strengths: Sequence[float] | None = None,
    identity: IdentityFn | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> list[dict]:
    """Sweep strengths for every method and attribute.

    Args:
        codes: ``[N, num_ws, w_dim]`` evaluation codes (e.g. the validation split).
        classifier: judges attributes (``[N, n_attrs]`` logits).
        methods: ``{name: edit(ws, attr_name, alpha [N]) -> ws}``.
        attrs: ``(classifier column, attribute name)`` pairs.
        strengths: non-negative magnitudes (default :func:`default_strengths`).
        identity: optional ``(ws0, ws1) -> similarity [N]``.

    Returns:
        one dict per (method, attribute, strength) with the keys of :data:`FIELDS`
        (``identity`` is ``None`` without an identity callable).
    """
    from tqdm.auto import tqdm

    strengths = list(default_strengths() if strengths is None else strengths)
    classifier = classifier.eval()
    p0 = torch.cat(
        [classifier(codes[i : i + batch_size]) > 0 for i in range(0, len(codes), batch_size)]
    )
    n_attrs = p0.shape[1]
    rows: list[dict] = []
    jobs = [(m, a) for m in methods for a in attrs]
    for method, (col, name) in tqdm(jobs, disable=not progress, leave=False, desc="eval"):
        edit = methods[method]
        others = torch.ones(n_attrs, dtype=torch.bool)
        others[col] = False
        sign = torch.where(p0[:, col], -1.0, 1.0)
        for s in strengths:
            changed = kept = dist = ident = 0.0
            for i in range(0, len(codes), batch_size):
                w0 = codes[i : i + batch_size]
                alpha = s * sign[i : i + batch_size]
                w1 = edit(w0, name, alpha)
                p1 = classifier(w1) > 0
                base = p0[i : i + batch_size]
                changed += float((p1[:, col] != base[:, col]).sum())
                kept += float((p1[:, others] == base[:, others]).sum())
                dist += float((w1 - w0).flatten(1).norm(dim=1).sum())
                if identity is not None:
                    ident += float(identity(w0, w1).sum())
            n = len(codes)
            rows.append(
                {
                    "method": method,
                    "attribute": name,
                    "strength": float(s),
                    "target_change": changed / n,
                    "preservation": kept / (n * max(1, int(others.sum()))),
                    "latent_distance": dist / n,
                    "identity": ident / n if identity is not None else None,
                }
            )
    return rows


def summarise(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per method, means over attributes at the largest strength, for a one-line report."""
    out: dict[str, dict[str, float]] = {}
    top = max(r["strength"] for r in rows)
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method and r["strength"] == top]
        out[method] = {
            "strength": top,
            "target_change": float(np.mean([r["target_change"] for r in sel])),
            "preservation": float(np.mean([r["preservation"] for r in sel])),
            "latent_distance": float(np.mean([r["latent_distance"] for r in sel])),
        }
    return out


def write_results(rows: Sequence[dict], out_dir: str | os.PathLike) -> dict[str, Path]:
    """``results.csv``, ``results.json`` and ``curves.png`` in ``out_dir`` (atomic)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FIELDS))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in FIELDS})
    atomic_write_text(out_dir / "results.csv", buf.getvalue())
    atomic_write_text(
        out_dir / "results.json",
        json.dumps(
            with_units(
                {"rows": list(rows), "summary": summarise(rows)},
                strength=STRENGTH,
                target_change=FRACTION,
                preservation=FRACTION,
                latent_distance="L2 distance in W+",
                identity=COSINE,
            ),
            indent=1,
        )
        + "\n",
    )
    plot_curves(rows, out_dir / "curves.png")
    return {k: out_dir / f"results.{k}" for k in ("csv", "json")} | {"png": out_dir / "curves.png"}


def plot_curves(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Per attribute, preservation (and identity) against target change, one line per method."""
    from faceedit.viz import saved_figure

    attrs = list(dict.fromkeys(r["attribute"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    with_id = any(r["identity"] is not None for r in rows)
    metrics = ["preservation"] + (["identity"] if with_id else [])
    n_cols = min(4, len(attrs))
    n_rows = -(-len(attrs) // n_cols) * len(metrics)
    size = dict(figsize=(3.2 * n_cols, 2.8 * n_rows), dpi=90, squeeze=False)
    with saved_figure(path, nrows=n_rows, ncols=n_cols, **size) as (fig, axes):
        for a_i, attr in enumerate(attrs):
            for m_i, metric in enumerate(metrics):
                r_i = (a_i // n_cols) * len(metrics) + m_i
                ax = axes[r_i][a_i % n_cols]
                for method in methods:
                    sel = sorted(
                        (r for r in rows if r["attribute"] == attr and r["method"] == method),
                        key=lambda r: r["strength"],
                    )
                    ax.plot(
                        [r["target_change"] for r in sel],
                        [r[metric] for r in sel],
                        marker="o",
                        markersize=3,
                        label=method,
                    )
                ax.set_title(attr, fontsize=9)
                ax.set_xlabel("target change rate", fontsize=8)
                ax.set_ylabel(metric, fontsize=8)
                ax.set_xlim(-0.02, 1.02)
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=7)
        for j in range(len(attrs), -(-len(attrs) // n_cols) * n_cols):
            for m_i in range(len(metrics)):
                axes[(j // n_cols) * len(metrics) + m_i][j % n_cols].axis("off")
        axes[0][0].legend(fontsize=7)
    return Path(path)
