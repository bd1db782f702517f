"""Optimisation projection: find the StyleGAN2 code that reproduces an aligned image.

Image2StyleGAN (Abdal et al., ICCV 2019) optimises a W+ code with pixel and perceptual
losses; the StyleGAN2 paper's projector (Karras et al., CVPR 2020, Sec. 5 and App. D)
optimises one W plus the per-layer noise maps, starting at the average W with Gaussian
noise added to the code early on, an lr ramp up/down, and a penalty on the noise maps'
autocorrelation at every scale so that they cannot carry the image. Both are offered:

- ``space="w"``: one W ``[1, w_dim]`` broadcast to every layer (stays on the manifold,
  edits well, reconstructs less exactly);
- ``space="w+"``: one W per layer ``[1, num_ws, w_dim]`` (reconstructs better).

Losses: with a perceptual network (any module returning a list of feature maps, see
:mod:`faceedit.losses`), ``pixel_weight * MSE + LPIPS-style feature distance``;
without one, ``pixel_weight * MSE + multiscale pyramid MSE (+ SSIM)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from faceedit.errors import FaceeditError
from faceedit.losses import PerceptualDistance, multiscale_loss, psnr
from faceedit.nets.stylegan2 import StyleGAN2Generator

SPACES = ("w", "w+")


class ProjectionError(FaceeditError, ValueError):
    """A projection input (target, init, option) is unusable."""


@dataclass
class ProjectionResult:
    """What :func:`project` found.

    Attributes:
        ws: ``[1, num_ws, w_dim]``, the code (W space: the same W in every row).
        img: ``[1, 3, H, W]``, its synthesis (with ``noise`` when optimised), detached.
        losses: the total loss at each step.
        noise: the optimised noise maps ``[1, 1, res, res]`` (one per conv layer, 4x4
            first), to pass as ``G.synthesis(ws, noise=...)``; ``None`` when the stored
            constant noise was used.
        psnr: PSNR (dB, range [-1, 1]) of ``img`` against the target.
    """

    ws: torch.Tensor
    img: torch.Tensor
    losses: list[float]
    noise: list[torch.Tensor] | None
    psnr: float


@torch.no_grad()
def w_stats(
    G: StyleGAN2Generator, num_samples: int = 10_000, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, float]:
    """``(w_mean [w_dim], w_std)``: mean of W over random z and the RMS distance to it.

    The stored ``G.w_avg`` is used as the mean when it is set (non-zero); ``w_std`` scales
    the exploration noise added to the code early in the optimisation.
    """
    device = G.w_avg.device
    z = torch.randn(num_samples, G.z_dim, generator=generator).to(device)
    w = G.mapping(z)[:, 0]
    w_mean = G.w_avg.clone() if bool(G.w_avg.abs().sum() > 0) else w.mean(0)
    w_std = float((w - w_mean).square().sum(1).mean().sqrt())
    return w_mean, w_std


def noise_regularization(noise: list[torch.Tensor], min_size: int = 8) -> torch.Tensor:
    """Squared autocorrelation (1-pixel shifts, x and y) of each map at every scale.

    StyleGAN2's projector penalty: noise maps that stay white Gaussian cannot encode the
    image, so the code has to.
    """
    reg = noise[0].new_zeros(())
    for n in noise:
        while True:
            reg = reg + (n * torch.roll(n, shifts=1, dims=3)).mean().square()
            reg = reg + (n * torch.roll(n, shifts=1, dims=2)).mean().square()
            if n.shape[-1] <= min_size:
                break
            n = F.avg_pool2d(n, 2)
    return reg


@torch.no_grad()
def normalize_noise_(noise: list[torch.Tensor]) -> None:
    """Zero mean, unit variance per map, in place (after each step, as StyleGAN2 does)."""
    for n in noise:
        n.sub_(n.mean()).div_(n.square().mean().sub(n.mean().square()).clamp(min=1e-12).sqrt())


def learning_rate(
    step: int, steps: int, lr: float, rampup: float = 0.05, rampdown: float = 0.25
) -> float:
    """Cosine ramp-down over the last ``rampdown`` fraction, linear ramp-up over the first."""
    t = step / max(1, steps)
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / rampup) if rampup > 0 else 1.0
    return lr * ramp


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """No weight gradients inside (saves the weight-grad half of every backward conv)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(f)


def _check_target(G: StyleGAN2Generator, target: torch.Tensor) -> torch.Tensor:
    res = G.img_resolution
    want = [1, G.img_channels, res, res]
    if not isinstance(target, torch.Tensor):
        raise ProjectionError(f"target must be a tensor {want}, got a {type(target).__name__}")
    if list(target.shape) != want:
        raise ProjectionError(
            f"target must be {want} in [-1, 1] (one image at the generator's resolution), "
            f"got {list(target.shape)}"
        )
    target = target.detach().float()
    if not torch.isfinite(target).all():
        raise ProjectionError("target has NaN or infinite values")
    lo, hi = float(target.min()), float(target.max())
    # generators overshoot [-1, 1] a little; a span in the tens means 0..255 pixel values
    if max(-lo, hi) > 10:
        raise ProjectionError(
            f"target values span [{lo:.3g}, {hi:.3g}]; expected images in [-1, 1] "
            "(uint8 images: x / 127.5 - 1)"
        )
    return target


def _initial_code(
    G: StyleGAN2Generator, space: str, init: torch.Tensor | None, w_mean: torch.Tensor
) -> torch.Tensor:
    """The starting code: ``[1, 1, w_dim]`` (W) or ``[1, num_ws, w_dim]`` (W+)."""
    if init is None:
        code = w_mean.reshape(1, 1, -1)
    else:
        init = init.detach().float().to(w_mean.device)
        if init.ndim == 2 and init.shape == (1, G.w_dim):
            code = init.unsqueeze(1)
        elif init.ndim == 3 and init.shape == (1, G.num_ws, G.w_dim):
            # W space keeps one code: the layers' mean is the closest single W
            code = init.mean(1, keepdim=True) if space == "w" else init
        else:
            raise ProjectionError(
                f"init must be ws [1, {G.num_ws}, {G.w_dim}] or w [1, {G.w_dim}], "
                f"got {list(init.shape)}"
            )
    if space == "w+" and code.shape[1] == 1:
        code = code.expand(1, G.num_ws, G.w_dim)
    return code.clone().contiguous()


def project(
    G: StyleGAN2Generator,
    target: torch.Tensor,
    space: str = "w+",
    steps: int = 500,
    lr: float = 0.1,
    init: torch.Tensor | None = None,
    perceptual: nn.Module | None = None,
    pixel_weight: float = 1.0,
    ssim_weight: float = 0.0,
    optimize_noise: bool = False,
    noise_regularize: float = 1e5,
    initial_noise_factor: float = 0.05,
    noise_ramp_length: float = 0.75,
    lr_rampup: float = 0.05,
    lr_rampdown: float = 0.25,
    w_stats_samples: int = 10_000,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> ProjectionResult:
    """Optimise a code (and optionally the noise maps) so that ``G`` reproduces ``target``.

    Args:
        G: a StyleGAN2 generator (left unchanged; its weights get no gradients).
        target: ``[1, 3, H, W]`` in [-1, 1] at ``G.img_resolution``, an aligned face.
        space: ``"w"`` (one W for all layers) or ``"w+"`` (one W per layer).
        steps: optimisation steps (Adam).
        lr: peak learning rate (ramped up over ``lr_rampup`` and down, cosine, over the
            last ``lr_rampdown`` fraction of the steps).
        init: start code instead of the average W, e.g. an encoder's ``ws [1, num_ws,
            w_dim]`` (for ``space="w"`` its layers are averaged) or ``w [1, w_dim]``.
        perceptual: a module mapping images in [-1, 1] to a list of feature maps; its
            LPIPS-style distance is added to the pixel loss. ``None``: multiscale MSE.
        pixel_weight: weight of the full-resolution MSE.
        ssim_weight: weight of ``1 - SSIM`` in the multiscale loss (no perceptual net).
        optimize_noise: also optimise the per-layer noise maps (from random starts),
            with the autocorrelation penalty and renormalisation of StyleGAN2's projector;
            otherwise the generator's stored constant noise is used.
        noise_regularize: weight of that penalty.
        initial_noise_factor: Gaussian noise on the code at step 0, times ``w_std``,
            decaying quadratically to zero at ``noise_ramp_length`` of the steps (it
            explores around the start instead of settling in the nearest basin).
        w_stats_samples: z samples used to measure ``w_std``.
        generator: source of all randomness (z samples, code noise, noise maps), for
            reproducible results; ``None`` uses torch's global generator.
        progress: show a tqdm bar with the current loss.

    Returns:
        a :class:`ProjectionResult` (``ws [1, num_ws, w_dim]``, ``img [1, 3, H, W]``,
        losses per step, noise maps when optimised, PSNR).

    Raises:
        ProjectionError: bad target shape or values, bad ``init``, space or steps.
    """
    if not isinstance(G, StyleGAN2Generator):
        hint = " (a pSp/e4e file: pass its .decoder)" if hasattr(G, "decoder") else ""
        raise ProjectionError(f"G must be a StyleGAN2Generator, got a {type(G).__name__}{hint}")
    space = space.lower() if isinstance(space, str) else space
    if space not in SPACES:
        raise ProjectionError(f"space must be one of {SPACES}, got {space!r}")
    if steps < 1:
        raise ProjectionError(f"steps must be >= 1, got {steps}")
    if lr <= 0:
        raise ProjectionError(f"lr must be > 0, got {lr}")
    device = G.w_avg.device
    target = _check_target(G, target).to(device)
    was_training = G.training
    G.eval()
    dist = PerceptualDistance(perceptual).to(device).eval() if perceptual is not None else None

    # the optimisation needs autograd even when the caller runs under torch.no_grad()
    # (evaluation loops do); the generator stays frozen either way
    with (
        torch.enable_grad(),
        _frozen(G),
        _frozen(dist if dist is not None else nn.Identity()),
    ):
        w_mean, w_std = w_stats(G, w_stats_samples, generator)
        code = _initial_code(G, space, init, w_mean).requires_grad_(True)
        noise: list[torch.Tensor] | None = None
        params = [code]
        if optimize_noise:
            noise = []
            for block in G.synthesis.blocks():
                for name in ("conv0", "conv1"):
                    layer = getattr(block, name, None)
                    if layer is not None:
                        r = layer.resolution
                        n = torch.randn(1, 1, r, r, generator=generator).to(device)
                        noise.append(n.requires_grad_(True))
            params += noise
        opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
        target_feats = dist.features(target) if dist is not None else None

        def synth(ws: torch.Tensor) -> torch.Tensor:
            # the shared-weight modulation: its backward needs no weight gradient (the
            # per-sample fused path would compute one conv weight-grad per layer)
            return G.synthesis(ws, noise_mode="const", noise=noise, fused_modconv=False)

        losses: list[float] = []
        bar = tqdm(range(steps), desc=f"projecting ({space})", disable=not progress, leave=False)
        for step in bar:
            t = step / steps
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, steps, lr, lr_rampup, lr_rampdown)
            w_noise_scale = (
                w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
                if noise_ramp_length > 0
                else 0.0
            )
            w_noise = torch.randn(code.shape, generator=generator).to(device) * w_noise_scale
            ws = (code + w_noise).expand(1, G.num_ws, G.w_dim)
            img = synth(ws)
            loss = pixel_weight * (img - target).square().mean()
            if dist is not None:
                from faceedit.losses import feature_distance

                loss = loss + feature_distance(dist.features(img), target_feats).sum()
            else:
                loss = loss + multiscale_loss(img, target, ssim_weight=ssim_weight).sum()
            if noise is not None and noise_regularize:
                loss = loss + noise_regularize * noise_regularization(noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if noise is not None:
                normalize_noise_(noise)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ProjectionError(
                    f"projection diverged at step {step} (loss {value}); try a smaller lr"
                )
            losses.append(value)
            if progress:
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.close()

        with torch.no_grad():
            ws = code.detach().expand(1, G.num_ws, G.w_dim).clone()
            img = synth(ws)
    G.train(was_training)
    return ProjectionResult(
        ws=ws,
        img=img.detach(),
        losses=losses,
        noise=[n.detach().clone() for n in noise] if noise is not None else None,
        psnr=float(psnr(img, target)[0]),
    )
