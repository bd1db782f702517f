"""Heavy image augmentation for training an evaluation judge on avatar renders.

An evaluation judge must read what an image shows, not how the renderer happens to draw
it: edits come out of generators blurred, noisy, resampled, slightly shifted, on a
background that is not the renderer's exact lavender. Each function here is pure: it
takes images (``float32 [N, 3, H, W]`` in [0, 1] unless said otherwise) and a
``torch.Generator`` and returns new images, drawing every random number from that
generator in a fixed order, so a batch is a function of the images and the seed.

:func:`heavy_augment` chains them (each with its own probability, per image):

========================  ==============================================================
step                      what it does
========================  ==============================================================
background                the renderer's plain background becomes a random flat colour
                          or a vertical two-colour gradient (found as the pixels equal to
                          :data:`~faceedit.data.avatars.BACKGROUND` before anything else)
local noise               Gaussian noise over one colour segment of the image (the pixels
                          of a randomly picked colour: the hair, the skin, a shirt), so
                          that noise on a part does not change what the part is
patch noise               (``heavy-strict`` only) the same over a random rectangle
ghost                     a faint copy (alpha up to 0.35) of another image of the batch
                          blended in; the labels stay those of the dominant image, so a
                          part that is only faintly there is read as not there
scale and shift           zoom 0.92-1.08 and shift up to 3 px at 64 px (border padding)
render size               down to a random side in [size/2, size] and back, each way
                          with a random filter (nearest, bilinear, bicubic, area):
                          what rendering at another size and resampling does
blur                      Gaussian, sigma 0.3-1.2 px at 64 px
colour jitter             mild brightness, contrast, saturation and per-channel gain
                          (the labels include exact colours: hair and skin tones)
noise                     Gaussian, sigma up to 0.06
JPEG                      quality 30-90 (Pillow)
========================  ==============================================================
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

RESAMPLE_MODES = ("nearest", "bilinear", "bicubic", "area")
AUGMENT_NAMES = ("none", "heavy", "heavy-strict")


def to_unit(images: np.ndarray) -> torch.Tensor:
    """``uint8 [N, H, W, 3]`` -> ``float32 [N, 3, H, W]`` in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _chosen(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    """``bool [n]``: which images a step with probability ``p`` applies to."""
    return torch.rand(n, generator=gen) < p


def background_mask(images: np.ndarray, colour: str, tolerance: int = 2) -> torch.Tensor:
    """``bool [N, 1, H, W]``: pixels of ``uint8 [N, H, W, 3]`` images within ``tolerance``
    of the hex ``colour`` on every channel (the renderer's plain background)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.int16)
    close = (np.abs(images.astype(np.int16) - rgb) <= tolerance).all(-1)
    return torch.from_numpy(close)[:, None]


def replace_background(
    x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, p: float = 0.6
) -> torch.Tensor:
    """A random flat colour (half of the chosen images) or vertical two-colour gradient
    (the other half) where ``mask [N, 1, H, W]`` is set, on a fraction ``p`` of images."""
    n, _, h, _ = x.shape
    chosen = _chosen(gen, n, p)
    top = torch.rand(n, 3, 1, 1, generator=gen)
    bottom = torch.rand(n, 3, 1, 1, generator=gen)
    flat = _chosen(gen, n, 0.5).view(n, 1, 1, 1)
    ramp = torch.linspace(0, 1, h).view(1, 1, h, 1)
    fill = torch.where(flat, top, top + (bottom - top) * ramp).expand_as(x)
    where = mask & chosen.view(n, 1, 1, 1)
    return torch.where(where, fill, x)


def colour_segment_noise(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.3,
    sigma: tuple[float, float] = (0.05, 0.3),
    tolerance: float = 6 / 255,
) -> torch.Tensor:
    """Gaussian noise over the pixels that share the colour of one random pixel (a part
    of a flat-shaded render), on a fraction ``p`` of images; the picture underneath still
    shows, so the labels do not change."""
    n, _, h, w = x.shape
    chosen = _chosen(gen, n, p)
    ys = torch.randint(0, h, (n,), generator=gen)
    xs = torch.randint(0, w, (n,), generator=gen)
    strength = _uniform(gen, n, *sigma).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * strength
    seed_colour = x[torch.arange(n), :, ys, xs].view(n, 3, 1, 1)
    mask = ((x - seed_colour).abs() <= tolerance).all(1, keepdim=True)
    mask &= chosen.view(n, 1, 1, 1)
    return torch.where(mask, (x + noise).clamp(0, 1), x)


def patch_noise(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.3,
    sigma: tuple[float, float] = (0.05, 0.3),
    side: tuple[float, float] = (6 / 64, 24 / 64),
) -> torch.Tensor:
    """Gaussian noise over one random rectangle (sides a random fraction ``side`` of the
    image) of a fraction ``p`` of images: noise over several parts at once (a mouth and
    its lips, glasses and the eyes behind them), the picture still showing underneath."""
    n, _, h, w = x.shape
    chosen = _chosen(gen, n, p)
    hs = (_uniform(gen, n, *side) * h).long().clamp(min=1)
    ws = (_uniform(gen, n, *side) * w).long().clamp(min=1)
    y0 = (torch.rand(n, generator=gen) * (h - hs + 1)).long()
    x0 = (torch.rand(n, generator=gen) * (w - ws + 1)).long()
    strength = _uniform(gen, n, *sigma).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * strength
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    in_rows = (rows >= y0.view(n, 1, 1)) & (rows < (y0 + hs).view(n, 1, 1))
    inside = in_rows & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + ws).view(n, 1, 1))
    mask = (inside & chosen.view(n, 1, 1))[:, None]
    return torch.where(mask, (x + noise).clamp(0, 1), x)


def ghost_blend(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.3, max_alpha: float = 0.35
) -> torch.Tensor:
    """Blend a copy of another image of the batch (the batch rolled by a random offset)
    into a fraction ``p`` of images at alpha in [0, ``max_alpha``]."""
    n = x.shape[0]
    chosen = _chosen(gen, n, p)
    alpha = _uniform(gen, n, 0.0, max_alpha) * chosen
    shift = int(torch.randint(1, max(2, n), (1,), generator=gen)) if n > 1 else 0
    other = torch.roll(x, shifts=shift, dims=0)
    a = alpha.view(n, 1, 1, 1)
    return (1 - a) * x + a * other


def scale_and_shift(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.5,
    scale: tuple[float, float] = (0.92, 1.08),
    max_shift: float = 3 / 64,
) -> torch.Tensor:
    """Zoom and translate a fraction ``p`` of images (bilinear, border padding);
    ``max_shift`` is a fraction of the side."""
    n = x.shape[0]
    chosen = _chosen(gen, n, p)
    s = torch.where(chosen, _uniform(gen, n, *scale), torch.ones(n))
    # affine_grid works in [-1, 1]: a shift of f of the side is 2 f there
    t = _uniform(gen, 2 * n, -2 * max_shift, 2 * max_shift).view(n, 2) * chosen[:, None]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.where(chosen.view(n, 1, 1, 1), out, x)


def _resize(x: torch.Tensor, side: int, mode: str) -> torch.Tensor:
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=(side, side), mode=mode, align_corners=False, antialias=True)
    return F.interpolate(x, size=(side, side), mode=mode)


def resample_chain(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """A fraction ``p`` of images go down to a random side in [H/2, H] and back to H,
    with a random filter each way (:data:`RESAMPLE_MODES`)."""
    n, _, h, _ = x.shape
    chosen = _chosen(gen, n, p)
    sides = torch.randint(h // 2, h + 1, (n,), generator=gen)
    down = torch.randint(0, len(RESAMPLE_MODES), (n,), generator=gen)
    up = torch.randint(0, len(RESAMPLE_MODES), (n,), generator=gen)
    out = x.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        small = _resize(x[i : i + 1], int(sides[i]), RESAMPLE_MODES[int(down[i])])
        out[i : i + 1] = _resize(small, h, RESAMPLE_MODES[int(up[i])]).clamp(0, 1)
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image by its own ``sigma [N]`` in pixels (0 leaves it as it is)."""
    n, c, h, w = x.shape
    radius = max(1, int(np.ceil(3 * float(sigma.max())))) if n else 1
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.clamp(min=1e-3).view(n, 1)
    k = torch.exp(-(coords.view(1, -1) ** 2) / (2 * s**2))
    k = k / k.sum(1, keepdim=True)  # [N, K]
    # separable, one kernel per image: fold the batch into the channels
    flat = x.reshape(1, n * c, h, w)
    kh = k.repeat_interleave(c, 0).view(n * c, 1, 1, -1)
    kv = k.repeat_interleave(c, 0).view(n * c, 1, -1, 1)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kh, groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kv, groups=n * c)
    return flat.view(n, c, h, w)


def random_blur(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.3, sigma: tuple[float, float] = (0.3, 1.2)
) -> torch.Tensor:
    """Gaussian blur of a fraction ``p`` of images; ``sigma`` in pixels at 64 px."""
    n, _, h, _ = x.shape
    chosen = _chosen(gen, n, p)
    s = _uniform(gen, n, *sigma) * h / 64
    out = gaussian_blur(x, s)
    return torch.where(chosen.view(n, 1, 1, 1), out, x)


def colour_jitter(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.6,
    brightness: float = 0.05,
    contrast: float = 0.08,
    saturation: float = 0.1,
    gain: float = 0.02,
) -> torch.Tensor:
    """Mild brightness, contrast, saturation and per-channel gain changes on a fraction
    ``p`` of images. Kept small on purpose: hair and skin attributes are exact colours."""
    n = x.shape[0]
    chosen = _chosen(gen, n, p).view(n, 1, 1, 1).float()
    b = _uniform(gen, n, -brightness, brightness).view(n, 1, 1, 1) * chosen
    c = 1 + _uniform(gen, n, -contrast, contrast).view(n, 1, 1, 1) * chosen
    s = 1 + _uniform(gen, n, -saturation, saturation).view(n, 1, 1, 1) * chosen
    g = 1 + _uniform(gen, 3 * n, -gain, gain).view(n, 3, 1, 1) * chosen
    grey = x.mean(1, keepdim=True)
    y = grey + (x - grey) * s
    mean = y.mean((1, 2, 3), keepdim=True)
    y = (y - mean) * c + mean + b
    return (y * g).clamp(0, 1)


def gaussian_noise(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.3, max_sigma: float = 0.06
) -> torch.Tensor:
    """Gaussian noise of a random sigma in [0, ``max_sigma``] on a fraction ``p``."""
    n = x.shape[0]
    sigma = _uniform(gen, n, 0.0, max_sigma) * _chosen(gen, n, p)
    return (x + torch.randn(x.shape, generator=gen) * sigma.view(n, 1, 1, 1)).clamp(0, 1)


def jpeg(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.3, quality: tuple[int, int] = (30, 90)
) -> torch.Tensor:
    """JPEG-compress a fraction ``p`` of images at a random quality (Pillow, 4:2:0)."""
    from PIL import Image

    n = x.shape[0]
    chosen = _chosen(gen, n, p)
    q = torch.randint(quality[0], quality[1] + 1, (n,), generator=gen)
    out = x.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        arr = (x[i].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(q[i]))
        buf.seek(0)
        with Image.open(buf) as im:
            back = np.asarray(im.convert("RGB"))
        out[i] = torch.from_numpy(back.copy()).permute(2, 0, 1).float() / 255
    return out


@dataclass(frozen=True)
class HeavyAugment:
    """The probabilities of each step of :func:`heavy_augment` (see the module table)."""

    background: float = 0.6
    local_noise: float = 0.3
    patch_noise: float = 0.0  # 0: the step is skipped (draws nothing)
    ghost: float = 0.3
    ghost_alpha: float = 0.35
    geometry: float = 0.5
    resample: float = 0.5
    blur: float = 0.3
    colour: float = 0.6
    saturation: float = 0.1
    gain: float = 0.02
    noise: float = 0.3
    jpeg: float = 0.3


#: "heavy-strict" (the second recipe of avatar-judge): more faint ghosts and local noise,
#: noise over rectangles too, and milder colour jitter, because the hair colours nearest to
#: one another (ecdcbf blond, e8e1e1 grey) differ by less than the saturation jitter moved
STRICT = HeavyAugment(local_noise=0.5, patch_noise=0.3, ghost=0.5, saturation=0.05, gain=0.01)


def heavy_augment(
    images: np.ndarray, gen: torch.Generator, settings: HeavyAugment = HeavyAugment()
) -> torch.Tensor:
    """Augment a batch of renders: ``uint8 [N, H, W, 3]`` -> ``float32 [N, 3, H, W]`` in
    [-1, 1] (the oracle's input). Deterministic for the same images and generator state."""
    from faceedit.data.avatars import BACKGROUND

    mask = background_mask(images, BACKGROUND)
    x = to_unit(images)
    x = replace_background(x, mask, gen, settings.background)
    x = colour_segment_noise(x, gen, settings.local_noise)
    if settings.patch_noise > 0:
        x = patch_noise(x, gen, settings.patch_noise)
    x = ghost_blend(x, gen, settings.ghost, settings.ghost_alpha)
    x = scale_and_shift(x, gen, settings.geometry)
    x = resample_chain(x, gen, settings.resample)
    x = random_blur(x, gen, settings.blur)
    x = colour_jitter(x, gen, settings.colour, saturation=settings.saturation, gain=settings.gain)
    x = gaussian_noise(x, gen, settings.noise)
    x = jpeg(x, gen, settings.jpeg)
    return x.mul_(2).sub_(1)


BatchAugmenter = Callable[[np.ndarray, torch.Generator], torch.Tensor]


def batch_augmenter(name: str) -> BatchAugmenter | None:
    """The augmenter called ``name`` (:data:`AUGMENT_NAMES`); None for ``"none"``.

    Raises:
        ValueError: an unknown name.
    """
    if name == "none":
        return None
    if name == "heavy":
        return heavy_augment
    if name == "heavy-strict":
        return functools.partial(heavy_augment, settings=STRICT)
    raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENT_NAMES)}")
