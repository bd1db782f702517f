"""Codes that latent transformers produce, labelled with what the generator draws for them.

A latent classifier learns from codes of one distribution (samples, inversions). A
transformer trained against it can reach codes where the classifier is sure and the
generator draws no change: the classifier is *fooled* (on the avatars, a strength-1
"put a hat on" that the classifier believed 98 % of the time showed a hat 17 % of the time).
``faceedit data latents --transformers T --codes C --generator G --labeller L`` writes
those codes as training data: for ``n`` codes of ``C`` and every transformer ``T_a``, the
edit ``T_a(w, +-s)`` towards the flipped value of ``a`` (``s`` uniform in ``strengths``),
labelled by the reader's verdict on ``G(T_a(w, +-s))``. A classifier retrained with them
(joined with its first data, ``--join``) no longer believes the edits the generator does
not draw, and transformers retrained against it must find edits that it does draw: hard
negative mining, one round per pass.

Files: ``codes.npy`` (``float32 [n * A, num_ws, w_dim]``, the ``A`` edits of each code
together), ``list_attr_celeba.txt`` (rows named ``edit_000123_Smiling``: row 123 of ``C``,
edited for Smiling; the reader's attribute names), and ``edits.json`` (sources, seed
and, per attribute, how often the reader saw the edit land), ``lineage.json`` (the
transformers, codes, generator and labeller, whose role is ``hardening``: its readings
of the edits harden a classifier; :mod:`faceedit.lineage`). The directory appears
complete or not at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceedit.data.avatars import ATTR_FILE
from faceedit.data.latents import celeba_labels_text, load_latent_dataset
from faceedit.errors import FaceeditError
from faceedit.fileio import atomic_dir, check_new_dir
from faceedit.lineage import record, write_lineage
from faceedit.units import FRACTION, STRENGTH

META_FILE = "edits.json"
DEFAULT_CODES = 2000


@dataclass(frozen=True)
class LabelledEdits:
    """What :func:`label_latent_edits` wrote.

    Attributes:
        out: the output directory.
        n: number of edited codes (codes drawn x transformers).
        attributes: the edited attributes, in the order of each code's rows.
        landed: per edited attribute, the share of edits the reader sees land.
    """

    out: Path
    n: int
    attributes: tuple[str, ...]
    landed: tuple[float, ...]


def label_latent_edits(
    transformers: str | os.PathLike,
    codes: str | os.PathLike,
    generator: str | os.PathLike,
    labeller: str | os.PathLike,
    out: str | os.PathLike,
    n: int | None = None,
    seed: int = 0,
    strengths: tuple[float, float] = (0.5, 1.5),
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> LabelledEdits:
    """Edit ``n`` codes of ``codes`` with every transformer, label the edits, write ``out``.

    Args:
        transformers: a directory of ``tnet_<Name>/`` transformers (a bundle's
            ``transformers/``); each edits every W+ row, as a bundle with ``layers: all``.
        codes: a ``faceedit data latents`` output (``codes.npy`` + ``list_attr_celeba.txt``);
            its labels say which way each edit goes (on for a code labelled off).
        generator: the generator that draws the codes (a path, run or bundle).
        labeller: an avatar oracle (a path or a shipped name such as ``avatar-oracle``).
        out: a new (or empty) directory.
        n: codes drawn (without replacement) from ``codes``; ``None``: 2,000, or all of
            them when there are fewer.
        seed: seed of the draw and of the strengths; the same seed gives the same files.
        strengths: ``(low, high)``: each edit's strength is uniform in it.
        batch_size: edits rendered at once.

    Raises:
        FaceeditError: a bad source, output directory or argument, or a transformer whose
            attribute the codes' labels or the reader lack.
    """
    from tqdm import tqdm

    from faceedit.synth.labelled_samples import draw_and_read, load_labeller
    from faceedit.train.common import resolve_device
    from faceedit.train.stylegan2 import load_found_generator

    low, high = strengths
    if not 0 < low <= high:
        raise FaceeditError(f"strengths must satisfy 0 < low <= high, got {low}, {high}")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise FaceeditError(f"number of codes must be a positive integer, got {n!r}")
    if batch_size < 1:
        raise FaceeditError(f"batch size must be at least 1, got {batch_size}")
    src = Path(codes)
    data = load_latent_dataset(src / "codes.npy", src / ATTR_FILE)
    if n is None:
        n = min(DEFAULT_CODES, len(data))
    if n > len(data):
        raise FaceeditError(f"{src} holds {len(data)} codes, fewer than the {n} asked for")
    out = check_new_dir(out)
    G = load_found_generator(generator)
    reader = load_labeller(labeller)
    names = tuple(reader.config.attr_names)
    edits = _load_transformers(transformers)
    lineage = [
        *record("transformer", transformers, part="transformers", note="made the edits"),
        *record("data", src, note="the codes edited"),
        *record("generator", generator, part="generator"),
        *record("hardening", labeller, note="labelled the transformers' edits"),
    ]
    for a in edits:
        for what, have in (("the labels of " + str(src), data.attr_names), ("the labeller", names)):
            if a not in have:
                raise FaceeditError(f"transformer {a!r}: {what} have no such attribute")
    if data.codes.shape[1:] != (G.num_ws, G.w_dim):
        raise FaceeditError(
            f"{src}: codes [N, {data.codes.shape[1]}, {data.codes.shape[2]}], the generator "
            f"draws [N, {G.num_ws}, {G.w_dim}]"
        )
    dev = resolve_device(device)
    G, reader = G.to(dev).eval(), reader.to(dev).eval()
    edits = {a: t.to(dev).eval() for a, t in edits.items()}

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(data), size=n, replace=False))
    attrs = tuple(edits)
    # one strength per (code, attribute), signed towards the flipped label
    cols = [data.attr_names.index(a) for a in attrs]
    turn_on = data.labels[picked][:, cols] <= 0  # [n, A]
    size = rng.uniform(low, high, size=turn_on.shape)
    signed = np.where(turn_on, size, -size).astype(np.float32)

    A = len(attrs)
    out_codes = np.empty((n * A, G.num_ws, G.w_dim), dtype=np.float32)
    out_labels = np.empty((n * A, len(names)), dtype=np.int8)
    per_batch = max(1, batch_size // A)  # codes per batch: their A edits are rendered together
    bar = tqdm(total=n * A, desc="labelling edits", unit="edit", disable=not progress)
    with torch.no_grad():
        for start in range(0, n, per_batch):
            stop = min(start + per_batch, n)
            ws = torch.from_numpy(np.ascontiguousarray(data.codes[picked[start:stop]])).to(dev)
            # rows start*A .. stop*A: each code's A edits together, in `attrs` order
            edited = torch.stack(
                [
                    edits[a](ws, torch.from_numpy(signed[start:stop, k]).to(dev))
                    for k, a in enumerate(attrs)
                ],
                dim=1,
            ).flatten(0, 1)
            _, read = draw_and_read(G, reader, edited)
            out_codes[start * A : stop * A] = edited.cpu().numpy()
            out_labels[start * A : stop * A] = read
            bar.update((stop - start) * A)
    bar.close()
    seen = out_labels.reshape(n, A, len(names))
    landed = tuple(
        float(np.mean((seen[:, k, names.index(a)] > 0) == turn_on[:, k]))
        for k, a in enumerate(attrs)
    )
    meta = {
        "transformers": str(transformers),
        "codes": str(codes),
        "generator": str(generator),
        "labeller": str(labeller),
        "n_codes": n,
        "seed": seed,
        "strengths": [low, high],
        "landed": {a: round(r, 4) for a, r in zip(attrs, landed, strict=True)},
        "on_rate": {
            a: round(float(r), 4) for a, r in zip(names, (out_labels > 0).mean(0), strict=True)
        },
        "units": {"landed": FRACTION, "on_rate": FRACTION, "strengths": STRENGTH},
    }
    with atomic_dir(out) as tmp:
        np.save(tmp / "codes.npy", out_codes)
        rows = [
            (f"edit_{int(picked[i]):06d}_{a}", out_labels[i * A + k].tolist())
            for i in range(n)
            for k, a in enumerate(attrs)
        ]
        (tmp / ATTR_FILE).write_text(celeba_labels_text(names, rows), "utf-8")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
        write_lineage(tmp, lineage)
    return LabelledEdits(out, n * A, attrs, landed)


def _load_transformers(source: str | os.PathLike) -> dict[str, torch.nn.Module]:
    """``{attribute: LatentTransformer}`` of every ``tnet_<Name>/`` in ``source``."""
    from faceedit.editing.latent import LatentEditor
    from faceedit.editing.latent_pipeline import find_transformers

    try:
        return LatentEditor.from_paths(find_transformers(source)).transformers
    except FaceeditError as e:
        raise FaceeditError(f"transformers: {e}") from None
