"""Codes of a generator's own samples, labelled by an attribute reader.

``faceedit data latents --generator G --labeller L`` writes the same ``codes.npy`` +
``list_attr_celeba.txt`` pair that encoding a labelled dataset does (:func:`faceedit.synth.
encoded.encode_dataset`), from a different source: ``z ~ N(0, I) -> w = G.mapping(z)`` (one
``w`` repeated over the W+ rows; with ``mixing``, a share of the codes switch to a second
``w`` at a random row), the image ``G.synthesis(w)``, and the labels that an
attribute reader (the avatar oracle) gives that image. This is how InterFaceGAN (Shen et al.,
CVPR 2020) labels a latent space: the label says what the generator *draws* for the code,
where a real image's label says what the photo shows, which an imperfect inversion may not
reproduce. A latent classifier and latent transformers trained on these pairs learn the
directions along which the generator really changes an attribute.

Files: ``codes.npy`` (``float32 [N, num_ws, w_dim]``), ``list_attr_celeba.txt`` (one row per
code, named ``sample_000000`` ...; the reader's attribute names), ``samples.json`` (sources,
seed, how often each attribute is on), ``lineage.json`` (the generator and the labeller,
:mod:`faceedit.lineage`) and ``by_attribute.png`` (for each attribute, samples the
reader calls on: look at it before trusting the labels). The directory appears complete or
not at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceedit.data.avatars import ATTR_FILE
from faceedit.data.latents import celeba_labels_text
from faceedit.errors import FaceeditError
from faceedit.fileio import atomic_dir, check_new_dir
from faceedit.lineage import record, write_lineage
from faceedit.units import FRACTION

META_FILE = "samples.json"
PREVIEW_FILE = "by_attribute.png"
PREVIEW_PER_ATTRIBUTE = 8


@dataclass(frozen=True)
class LabelledSamples:
    """What :func:`label_generator_samples` wrote.

    Attributes:
        out: the output directory.
        n: number of codes.
        attr_names: the reader's attributes, the label columns.
        on_rate: fraction of samples the reader calls on, per attribute.
    """

    out: Path
    n: int
    attr_names: tuple[str, ...]
    on_rate: tuple[float, ...]


def load_labeller(labeller: str | os.PathLike):
    """An avatar oracle to label images with; a bad one raises "labeller: ..."."""
    from faceedit.checkpoints.oracle import load_avatar_oracle
    from faceedit.errors import CheckpointError

    try:
        return load_avatar_oracle(labeller)
    except CheckpointError as e:
        raise FaceeditError(f"labeller: {e}") from None


def draw_and_read(G, reader, ws: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Render codes ``ws [N, num_ws, w_dim]`` and read them as ``faceedit eval`` reads an
    edit (the saved 8-bit image, resized for the reader): ``(images uint8 [N, R, R, 3],
    attrs int [N, n_attrs] in {-1, 1})``."""
    from faceedit.data.images import tensor_to_uint8
    from faceedit.eval.avatars import oracle_read

    images = tensor_to_uint8(G.synthesis(ws, noise_mode="const"))
    attrs, _ = oracle_read(reader, images)
    return images, attrs


def label_generator_samples(
    generator: str | os.PathLike,
    labeller: str | os.PathLike,
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    truncation_psi: float = 1.0,
    mixing: float = 0.0,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> LabelledSamples:
    """Sample ``n`` codes from ``generator``, label their images with ``labeller``, write ``out``.

    Args:
        generator: a generator directory, a StyleGAN2 run directory or a latent bundle
            (a path or a shipped name such as ``avatar-latent``).
        labeller: an avatar oracle (a path or a shipped name such as ``avatar-oracle``).
        out: a new (or empty) directory.
        n: number of samples.
        seed: seed of the ``z`` draws; the same seed gives the same files.
        truncation_psi: ``w = w_avg + psi * (w - w_avg)``; 1 samples the whole space.
        mixing: fraction of samples whose W+ rows switch, at a random row, to the
            code of a second ``z`` (StyleGAN2's style mixing). With one ``w`` repeated
            over every row, a latent classifier may read an attribute from any row,
            and a transformer can then move its verdict by changing rows that do not
            draw the attribute; mixed codes tie each label to the rows that draw it.
        batch_size: samples rendered at once.

    Raises:
        FaceeditError: a bad generator, labeller, output directory or argument.
    """
    from tqdm import tqdm

    from faceedit.train.common import resolve_device
    from faceedit.train.stylegan2 import load_found_generator

    if not isinstance(n, int) or n < 1:
        raise FaceeditError(f"number of samples must be a positive integer, got {n!r}")
    if batch_size < 1:
        raise FaceeditError(f"batch size must be at least 1, got {batch_size}")
    if not 0.0 < truncation_psi <= 1.0:
        raise FaceeditError(f"truncation must be in (0, 1], got {truncation_psi}")
    if not 0.0 <= mixing <= 1.0:
        raise FaceeditError(f"mixing must be in [0, 1], got {mixing}")
    out = check_new_dir(out)
    G = load_found_generator(generator)
    reader = load_labeller(labeller)
    lineage = [
        *record("generator", generator, part="generator"),
        *record("labeller", labeller, note="labelled each sample's image"),
    ]
    dev = resolve_device(device)
    G, reader = G.to(dev).eval(), reader.to(dev).eval()
    names = tuple(reader.config.attr_names)
    codes = np.empty((n, G.num_ws, G.w_dim), dtype=np.float32)
    labels = np.empty((n, len(names)), dtype=np.int8)
    previews: list[list[np.ndarray]] = [[] for _ in names]
    rng = torch.Generator().manual_seed(seed)
    # every draw is made up front, in a fixed order, so the batch size changes nothing
    z_all = torch.randn(n, G.z_dim, generator=rng)
    mix = _mixing_plan(n, G.num_ws, G.z_dim, mixing, rng) if mixing > 0 else None
    bar = tqdm(total=n, desc="labelling samples", unit="img", disable=not progress)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            part = slice(start, min(start + batch_size, n))
            m = part.stop - part.start
            ws = G.mapping(z_all[part].to(dev), truncation_psi=truncation_psi)
            if mix is not None:
                z2, take = mix[0][part].to(dev), mix[1][part].to(dev)
                ws2 = G.mapping(z2, truncation_psi=truncation_psi)
                ws = torch.where(take.unsqueeze(2), ws2, ws)
            images, attrs = draw_and_read(G, reader, ws)
            codes[part] = ws.cpu().numpy()
            labels[part] = attrs
            _collect_previews(previews, images, attrs)
            bar.update(m)
    bar.close()
    on_rate = tuple(float(r) for r in (labels > 0).mean(0))
    meta = {
        "generator": str(generator),
        "labeller": str(labeller),
        "n": n,
        "seed": seed,
        "truncation_psi": truncation_psi,
        "mixing": mixing,
        "num_ws": G.num_ws,
        "w_dim": G.w_dim,
        "on_rate": {a: round(r, 4) for a, r in zip(names, on_rate, strict=True)},
        "units": {"on_rate": FRACTION},
    }
    with atomic_dir(out) as tmp:
        np.save(tmp / "codes.npy", codes)
        rows = [(f"sample_{i:06d}", row) for i, row in enumerate(labels.tolist())]
        (tmp / ATTR_FILE).write_text(celeba_labels_text(names, rows), "utf-8")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
        write_lineage(tmp, lineage)
        _write_preview(tmp / PREVIEW_FILE, names, previews, on_rate)
    return LabelledSamples(out, n, names, on_rate)


def _mixing_plan(
    n: int, num_ws: int, z_dim: int, mixing: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Second codes ``z2 [n, z_dim]`` and rows taken from them, ``take [n, num_ws]`` bool.

    A ``mixing`` share of the samples take rows ``cut ..`` with ``cut`` uniform over
    ``1 .. num_ws - 1``: every mixed code keeps its first row and changes its last.
    """
    z2 = torch.randn(n, z_dim, generator=rng)
    mixed = torch.rand(n, generator=rng) < mixing
    cut = torch.randint(1, max(num_ws, 2), (n,), generator=rng)
    take = mixed.unsqueeze(1) & (torch.arange(num_ws).unsqueeze(0) >= cut.unsqueeze(1))
    return z2, take


def _collect_previews(
    previews: list[list[np.ndarray]], images: np.ndarray, attrs: np.ndarray
) -> None:
    """Keep the first :data:`PREVIEW_PER_ATTRIBUTE` samples called on, per attribute."""
    for k, kept in enumerate(previews):
        on = np.flatnonzero(attrs[:, k] > 0)[: PREVIEW_PER_ATTRIBUTE - len(kept)]
        kept.extend(images[on])


def _write_preview(
    path: Path, names: tuple[str, ...], previews: list[list[np.ndarray]], on_rate: tuple
) -> None:
    from faceedit.viz import image_grid, save_grid

    if not any(previews):
        return  # the reader called nothing on: there is nothing to show
    labels = [f"{a} ({r:.0%} on)" for a, r in zip(names, on_rate, strict=True)]
    grid = image_grid(
        [row or [None] for row in previews],
        row_labels=labels,
        title="generator samples that the labeller calls on, per attribute",
    )
    save_grid(path, grid)
