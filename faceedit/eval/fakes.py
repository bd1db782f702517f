"""Fake edits: images that look like an attribute edit to a careless judge but do not draw
the change (issue 22, item 2).

Each fake is built from a ground-truth pair: the source avatar and its counterfactual
with one attribute flipped (:func:`faceedit.data.avatars.edit_attribute`, rendered with the
same code), whose pixels differ on the region D (:func:`faceedit.eval.metrics.change_region`).
A judge must not count a change unless it is really drawn, so a fake *passes* when the
judge reads the flipped value of the target attribute (``Verdict.target_changed`` of
:func:`faceedit.eval.avatars.judge_edits`, the verdict ``eval avatars`` reports).

=================  ==================================================================
kind               image
=================  ==================================================================
``blend25``        the source alpha-blended 25% towards the truth
``blend50``        ... 50% (half-drawn: reported, no goal)
``noise``          Gaussian noise (sigma :data:`NOISE_SIGMA` levels) painted over D on
                   top of the source, which still shows underneath
``noise_opaque``   D replaced by uniform random colours. Where a part is removed in one
                   direction and added in the other, the two images are alike (the
                   face without the part, noise in the part's shape), so no judge can
                   reject both: reported, no goal
``wash``           D washed 50% with one flat colour, the truth's mean colour over D (a
                   tint instead of a redrawn part)
``blur``           the source blurred (Gaussian, sigma :data:`BLUR_SIGMA` px at 64 px):
                   blurring alone must not read as an edit
=================  ==================================================================

Controls, judged the same way: ``source`` (doing nothing, should not pass), ``truth``
(the counterfactual itself, should pass) and ``truth_blur`` (the counterfactual blurred
like ``blur``: a real change drawn soft, should pass).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from faceedit.eval.metrics import change_region

NOISE_SIGMA = 64.0  # uint8 levels
BLUR_SIGMA = 1.5  # pixels at 64 px
WASH_ALPHA = 0.5

FAKE_KINDS: dict[str, str] = {
    "blend25": "source blended 25% towards the truth",
    "blend50": "source blended 50% towards the truth",
    "noise": f"Gaussian noise (sigma {NOISE_SIGMA:g}) over D, the source underneath",
    "noise_opaque": "D replaced by uniform random colours",
    "wash": f"D washed {WASH_ALPHA:.0%} with the truth's mean colour over D",
    "blur": f"the source blurred (sigma {BLUR_SIGMA:g} px at 64 px)",
}
CONTROL_KINDS: dict[str, str] = {
    "source": "the source itself (doing nothing)",
    "truth": "the ground-truth counterfactual",
    "truth_blur": f"the truth blurred (sigma {BLUR_SIGMA:g} px at 64 px)",
}
#: the fakes whose pass rate has a goal (issue 22: at most 5%)
GOAL_KINDS = ("blend25", "noise")
GOAL_RATE = 0.05


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def blend(source: np.ndarray, truth: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * source + alpha * truth`` of ``uint8 [..., H, W, 3]`` images."""
    return _to_uint8((1 - alpha) * source.astype(np.float64) + alpha * truth.astype(np.float64))


def noise_over(
    source: np.ndarray, region: np.ndarray, gen: torch.Generator, sigma: float = NOISE_SIGMA
) -> np.ndarray:
    """``source [H, W, 3]`` plus Gaussian noise of ``sigma`` levels where ``region [H, W]``."""
    noise = torch.randn(source.shape, generator=gen, dtype=torch.float64).numpy() * sigma
    return _to_uint8(source + noise * region[..., None])


def noise_replacing(source: np.ndarray, region: np.ndarray, gen: torch.Generator) -> np.ndarray:
    """``source [H, W, 3]`` with ``region [H, W]`` replaced by uniform random colours."""
    noise = torch.randint(0, 256, source.shape, generator=gen, dtype=torch.int64).numpy()
    return np.where(region[..., None], noise, source).astype(np.uint8)


def wash(
    source: np.ndarray, truth: np.ndarray, region: np.ndarray, alpha: float = WASH_ALPHA
) -> np.ndarray:
    """``source [H, W, 3]`` blended by ``alpha`` towards one flat colour over ``region``:
    the mean colour of ``truth`` there."""
    if not region.any():
        return source.copy()
    colour = truth[region].astype(np.float64).mean(0)
    out = source.astype(np.float64)
    out[region] = (1 - alpha) * out[region] + alpha * colour
    return _to_uint8(out)


def blur(image: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Gaussian blur of ``uint8 [H, W, 3]``; ``sigma`` in pixels at 64 px."""
    from faceedit.data.augment import gaussian_blur

    x = torch.from_numpy(np.array(image, dtype=np.float64)).permute(2, 0, 1)[None]
    s = torch.tensor([sigma * image.shape[0] / 64], dtype=torch.float64)
    return _to_uint8(gaussian_blur(x, s)[0].permute(1, 2, 0).numpy())


def make_fakes(
    source: np.ndarray, truth: np.ndarray, gen: torch.Generator
) -> Mapping[str, np.ndarray]:
    """Every fake and control of one ground-truth pair, ``{kind: uint8 [H, W, 3]}``.

    Args:
        source: the avatar ``uint8 [H, W, 3]``.
        truth: its counterfactual, same shape.
        gen: the noise of ``noise`` and ``noise_opaque`` (drawn in that order).
    """
    region = change_region(source, truth)
    return {
        "blend25": blend(source, truth, 0.25),
        "blend50": blend(source, truth, 0.5),
        "noise": noise_over(source, region, gen),
        "noise_opaque": noise_replacing(source, region, gen),
        "wash": wash(source, truth, region),
        "blur": blur(source),
        "source": source,
        "truth": truth,
        "truth_blur": blur(truth),
    }
