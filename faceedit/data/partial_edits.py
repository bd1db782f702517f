"""Partial edits: training negatives that teach an evaluation judge what is *not* an edit.

A judge that reads an attribute from a faint trace of it (a hair colour 25% of the way to
another, noise in the shape of a beard) counts an editor's half-drawn change as done.
``faceedit train oracle --hard-negatives P`` shows it such images with the labels of the
avatar underneath, built from ground-truth pairs of its own training renders: the source
avatar and its counterfactual with one attribute flipped
(:func:`faceedit.data.avatars.edit_attribute`), whose pixels differ on the region D.

=================  ==================================================================
kind               image (labels: the source's)
=================  ==================================================================
partial blend      the source blended ``alpha`` in [0.05, ``max_alpha``] towards the truth
noise over D       Gaussian noise (sigma 24-96 levels) over D, the source underneath
=================  ==================================================================

Nothing here comes from an editing model: the pairs are renders, so a judge trained with
them still has no editor in its lineage. ``faceedit eval judge`` measures the same two
families on avatars of another seed (:mod:`faceedit.eval.fakes`), and three families
never shown in training (half blends, opaque noise, colour washes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

# the pixels where source and truth differ: any channel by more than this many levels
# (the rule of faceedit.eval.metrics.change_region)
CHANGE_THRESHOLD = 8
NOISE_SIGMA = (24.0, 96.0)  # uint8 levels
MAX_ALPHA = 0.3


def flip_targets(records: Sequence[Mapping[str, str]], seed: int) -> list[str | None]:
    """One attribute to flip per record, uniformly among those whose flip changes the
    avatar (None where none does). Deterministic for ``seed``."""
    from faceedit.data.avatars import ATTRIBUTE_NAMES, attributes, edit_options

    rng = np.random.default_rng(seed)
    out: list[str | None] = []
    for record in records:
        values = attributes(record)
        names = [a for a in ATTRIBUTE_NAMES if edit_options(record, a, values[a] != 1)]
        out.append(str(rng.choice(names)) if names else None)
    return out


def render_counterfactuals(
    records: Sequence[Mapping[str, str]], size: int, seed: int, progress: bool = False
) -> np.ndarray:
    """``uint8 [N, size, size, 3]``: each record rendered with one attribute flipped
    (:func:`flip_targets`), or unchanged where no flip changes it."""
    from faceedit.data.avatars import attributes, edit_attribute, render_record

    targets = flip_targets(records, seed)
    images = np.empty((len(records), size, size, 3), dtype=np.uint8)
    pairs = zip(records, targets, strict=True)
    for i, (record, name) in enumerate(
        tqdm(pairs, total=len(records), desc="counterfactuals", unit="img", disable=not progress)
    ):
        if name is not None:
            record = edit_attribute(record, name, attributes(record)[name] != 1)
        images[i] = render_record(record, size)
    return images


def partial_edits(
    sources: np.ndarray,
    truths: np.ndarray,
    gen: torch.Generator,
    p: float,
    max_alpha: float = MAX_ALPHA,
) -> np.ndarray:
    """Replace a fraction ``p`` of ``sources`` by partial edits towards ``truths``: half
    partial blends, half noise over the changed region (see the module table).

    Args:
        sources: renders ``uint8 [N, H, W, 3]``.
        truths: their counterfactuals, same shape.
        gen: every random number, drawn in a fixed order (a batch is a function of the
            images and the generator state).
        p: the probability that an image is replaced.
        max_alpha: the largest blend towards the truth.

    Returns:
        ``uint8 [N, H, W, 3]``, a new array.
    """
    if sources.shape != truths.shape:
        raise ValueError(f"sources {sources.shape} and truths {truths.shape} differ in shape")
    n = len(sources)
    chosen = (torch.rand(n, generator=gen) < p).numpy()
    as_blend = (torch.rand(n, generator=gen) < 0.5).numpy()
    alpha = (0.05 + (max_alpha - 0.05) * torch.rand(n, generator=gen)).numpy()
    lo, hi = NOISE_SIGMA
    sigma = (lo + (hi - lo) * torch.rand(n, generator=gen)).numpy()
    noise = torch.randn(sources.shape, generator=gen).numpy()
    src = sources.astype(np.float32)
    tru = truths.astype(np.float32)
    region = (np.abs(src - tru).max(-1) > CHANGE_THRESHOLD)[..., None]
    blended = src + alpha[:, None, None, None] * (tru - src)
    noisy = src + np.where(region, noise * sigma[:, None, None, None], 0.0)
    fake = np.where(as_blend[:, None, None, None], blended, noisy)
    out = np.where(chosen[:, None, None, None], fake, src)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def counterfactuals_for(
    params: Mapping[str, Mapping[str, str]], files: Sequence[str], size: int, seed: int,
    progress: bool = False,
) -> np.ndarray:  # fmt: skip
    """:func:`render_counterfactuals` of the records of ``files`` (their ``params.jsonl``
    entries, :func:`faceedit.data.avatars.read_params`), in that order."""
    return render_counterfactuals([params[f] for f in files], size, seed, progress=progress)
