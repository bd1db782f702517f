"""Which face domain an image belongs to: a drawn avatar or a photograph.

faceedit's avatar models (``avatar-latent``, ``avatar-attgan``) take a whole avatar image;
photo models take an FFHQ-aligned crop of a detected face. Run on the other domain, either
gives a result that means little, so the pipeline warns. Avatars are flat vector art:
most neighbouring pixels are the same colour, which photographs (sensor noise, texture,
gradients) almost never are. Measured at 128 px: 90 avatars (30 held-out records at 64,
256 and 512 px) have at least 75% flat neighbours (median 86%); grace_hopper.jpg 46%,
scikit-image's astronaut 28%, coffee 24%, chelsea 18%.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# a share of flat neighbours above this reads as drawn (between the two domains' ranges)
DRAWN_THRESHOLD = 0.6
_SIDE = 128  # compared at one size, so that the render size does not matter


def flat_fraction(rgb: np.ndarray) -> float:
    """Share of horizontally neighbouring pixels of ``uint8 [H, W, 3]`` that differ by at
    most 2 levels in every channel, at 128 px."""
    small = np.asarray(Image.fromarray(rgb).resize((_SIDE, _SIDE), Image.Resampling.BILINEAR))
    step = np.abs(np.diff(small.astype(np.int16), axis=1)).max(-1)
    return float((step <= 2).mean())


def looks_drawn(rgb: np.ndarray) -> bool:
    """Whether ``uint8 [H, W, 3]`` looks like a drawn avatar rather than a photograph."""
    return flat_fraction(rgb) > DRAWN_THRESHOLD
