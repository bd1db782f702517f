"""Pivotal tuning (PTI; Roich et al., "Pivotal Tuning for Latent-based Editing of Real
Images", ACM TOG 2022): tune a copy of the generator around one image's code.

An encoder or a projection gives a *pivot* code ``ws [1, num_ws, w_dim]`` whose render
is close to the image but not the image. PTI then tunes the synthesis network's weights
(the pivot stays fixed) so that the pivot renders the image itself: a pixel loss plus a
perceptual loss. Its *locality regulariser* keeps the tuned generator's output on random
codes near the pivot equal to the original generator's, so that an edit that moves the
pivot a little still renders what the original generator would draw there, only with
the image's details.

Here:

- the tuned network is a deep copy of ``G.synthesis`` (one per image); the generator
  given is never modified, and its weights get no gradient;
- the locality codes are ``pivot + radius * (w_z - pivot)`` for ``w_z`` the mapping of a
  random ``z``: a fraction of the way to a random code, so that the radius means the
  same for every generator (the paper uses a fixed distance in FFHQ's W space);
- the pivot and the locality code go through the network in one batch of two;
- perceptual network: any module mapping ``img [N, 3, H, W]`` in [-1, 1] to a list of
  feature maps (:mod:`faceedit.losses`: a VGG16 the user provides for photos, an avatar
  oracle's stages for avatars); without one, the multiscale pixel loss
  (:func:`faceedit.losses.multiscale_loss`) stands in for it.

:class:`TunedCode` is the code :meth:`LatentPipeline.invert
<faceedit.editing.latent_pipeline.LatentPipeline.invert>` returns for ``invert="pti"``:
the pivots and the tuned networks, rendering every code row through its own crop's
network.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from faceedit.editing.pti_defaults import (  # noqa: F401  (re-exported)
    AUTO_PERCEPTUAL,
    DEFAULT_LOCALITY,
    DEFAULT_LR,
    DEFAULT_PERCEPTUAL,
    DEFAULT_PERCEPTUAL_WEIGHT,
    DEFAULT_RADIUS,
    DEFAULT_STEPS,
    PIXELS,
)
from faceedit.errors import CheckpointError, EditError
from faceedit.losses import PerceptualDistance, feature_distance, multiscale_loss, psnr


@dataclass(eq=False)
class TuningResult:
    """What :func:`tune_generator` returns.

    Attributes:
        synthesis: the tuned copy of ``G.synthesis`` (frozen, eval mode).
        psnr_pivot: PSNR (dB) of the pivot's render by the original generator.
        psnr_tuned: PSNR (dB) of the pivot's render by the tuned network.
        losses: the total loss at each step.
    """

    synthesis: nn.Module
    psnr_pivot: float
    psnr_tuned: float
    losses: list[float] = field(default_factory=list)


def check_options(
    steps: int,
    lr: float,
    locality: float,
    radius: float,
    perceptual_weight: float = DEFAULT_PERCEPTUAL_WEIGHT,
) -> None:
    """Raise :class:`EditError` for options that cannot tune."""
    if steps < 1:
        raise EditError(f"pti steps must be >= 1, got {steps}")
    if not (lr > 0 and math.isfinite(lr)):
        raise EditError(f"pti lr must be > 0, got {lr}")
    if not (locality >= 0 and math.isfinite(locality)):
        raise EditError(f"pti locality weight must be >= 0, got {locality}")
    if not 0 < radius <= 1:
        raise EditError(f"pti locality radius must be in (0, 1], got {radius}")
    if not (perceptual_weight >= 0 and math.isfinite(perceptual_weight)):
        raise EditError(f"pti perceptual weight must be >= 0, got {perceptual_weight}")


def _distance(
    dist: PerceptualDistance | None, img: torch.Tensor, feats_or_img: list | torch.Tensor
) -> torch.Tensor:
    """Perceptual distance ``[N]`` to precomputed features, or the multiscale pixel loss
    to an image when there is no perceptual network."""
    if dist is None:
        return multiscale_loss(img, feats_or_img)
    return feature_distance(dist.features(img), feats_or_img)


def tune_generator(
    G: nn.Module,
    target: torch.Tensor,
    pivot: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    perceptual: nn.Module | None = None,
    locality: float = DEFAULT_LOCALITY,
    radius: float = DEFAULT_RADIUS,
    generator: torch.Generator | None = None,
    progress: bool = False,
    perceptual_weight: float = DEFAULT_PERCEPTUAL_WEIGHT,
) -> TuningResult:
    """Tune a copy of ``G.synthesis`` so that ``pivot`` renders ``target``.

    Args:
        G: a StyleGAN2 generator (``G.mapping``, ``G.synthesis``); left unchanged.
        target: ``[1, 3, R, R]`` in [-1, 1] at ``G.img_resolution``.
        pivot: ``ws [1, num_ws, w_dim]``, the image's code (kept fixed).
        steps, lr: Adam steps and learning rate (constant, as in the paper).
        perceptual: network for the perceptual terms (see the module docstring), or
            ``None`` for the multiscale pixel loss.
        locality: weight of the locality regulariser (0: off).
        radius: how far towards a random code the locality codes lie (0..1].
        perceptual_weight: weight of the perceptual (or multiscale) terms next to the
            full-resolution pixel MSE.
        generator: source of the locality codes' randomness (reproducible results).
        progress: show a progress bar.

    Returns:
        a :class:`TuningResult`.
    """
    check_options(steps, lr, locality, radius, perceptual_weight)
    device = G.w_avg.device
    target = target.detach().float().to(device)
    pivot = pivot.detach().float().to(device)
    original = G.synthesis
    tuned = copy.deepcopy(original).train(False).requires_grad_(True)
    dist = PerceptualDistance(perceptual).to(device).eval() if perceptual is not None else None
    if dist is not None:
        dist.requires_grad_(False)
    opt = torch.optim.Adam(tuned.parameters(), lr=lr)
    losses: list[float] = []

    def synth(net: nn.Module, ws: torch.Tensor) -> torch.Tensor:
        return net(ws, noise_mode="const")

    # inference callers (eval loops) run under no_grad; tuning needs autograd
    with torch.enable_grad():
        with torch.no_grad():
            start = synth(original, pivot)
            want = dist.features(target) if dist is not None else target
        bar = tqdm(range(steps), desc="pivotal tuning", disable=not progress, leave=False)
        for step in bar:
            ws = pivot
            if locality > 0:
                with torch.no_grad():
                    z = torch.randn(1, G.z_dim, generator=generator).to(device)
                    w_z = G.mapping(z)  # [1, num_ws, w_dim]
                    near = pivot + radius * (w_z - pivot)
                    held = synth(original, near)
                ws = torch.cat([pivot, near])
            img = synth(tuned, ws)
            rec = img[:1]
            loss = (rec - target).square().mean()
            loss = loss + perceptual_weight * _distance(dist, rec, want).sum()
            if locality > 0:
                out = img[1:]
                held_ref = dist.features(held) if dist is not None else held
                reg = (out - held).square().mean()
                reg = reg + perceptual_weight * _distance(dist, out, held_ref).sum()
                loss = loss + locality * reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise EditError(f"pivotal tuning diverged at step {step}; try a smaller pti lr")
            losses.append(value)
            if progress:
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.close()
    tuned.requires_grad_(False)
    for p in tuned.parameters():  # the code keeps the weights, not the last gradients
        p.grad = None
    with torch.no_grad():
        end = synth(tuned, pivot)
    return TuningResult(
        synthesis=tuned,
        psnr_pivot=float(psnr(start.clamp(-1, 1), target)[0]),
        psnr_tuned=float(psnr(end.clamp(-1, 1), target)[0]),
        losses=losses,
    )


@dataclass(eq=False)
class TunedCode:
    """The code of ``N`` crops inverted by pivotal tuning.

    Attributes:
        ws: the pivots ``[N, num_ws, w_dim]``.
        synthesis: one tuned synthesis network per crop (row ``i`` of any code derived
            from ``ws`` renders through ``synthesis[i]``).
        psnr_pivot, psnr_tuned: each crop's reconstruction PSNR (dB) before and after.
        perceptual: the name of the perceptual network tuned with (``"pixels"``: none).

    Not portable as a ``.npy``: the pivots mean the image only with the tuned weights
    (:meth:`tuned_generator` makes a whole generator of one crop's, to save).
    """

    ws: torch.Tensor
    synthesis: list[nn.Module]
    psnr_pivot: list[float]
    psnr_tuned: list[float]
    perceptual: str = "pixels"

    def __post_init__(self) -> None:
        if len(self.synthesis) != self.ws.shape[0]:
            raise EditError(f"{len(self.synthesis)} tuned networks for {self.ws.shape[0]} codes")

    def __len__(self) -> int:
        return int(self.ws.shape[0])

    @torch.no_grad()
    def render(self, ws: torch.Tensor) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` (row ``i`` a code of crop ``i``) -> ``img [N, 3, R, R]``
        in [-1, 1], each row by its crop's tuned network."""
        if ws.shape[0] != len(self):
            raise EditError(f"{ws.shape[0]} codes for {len(self)} tuned networks")
        rows = [
            net(ws[i : i + 1], noise_mode="const").clamp(-1, 1)
            for i, net in enumerate(self.synthesis)
        ]
        return torch.cat(rows)

    def tuned_generator(self, G: nn.Module, index: int = 0) -> nn.Module:
        """A copy of generator ``G`` whose synthesis is crop ``index``'s tuned one (its
        mapping and ``w_avg`` are ``G``'s), e.g. to save beside the pivot."""
        out = copy.copy(G)
        out._modules = dict(G._modules)  # a shallow copy that shares the mapping
        out._modules["synthesis"] = self.synthesis[index]
        return out


def load_perceptual(spec: str, domain: str) -> tuple[nn.Module | None, str]:
    """The perceptual network named by ``spec`` and its name for reports.

    ``"auto"``: :data:`AUTO_PERCEPTUAL` of the domain (pixels for both today);
    ``"pixels"``: none (multiscale pixel loss); a ``.pth``/``.pt`` file: torchvision
    VGG16 weights; anything else: an avatar oracle (a path or shipped name, e.g. the
    training-side ``avatar-oracle``, whose stages respond to the parts of an avatar).

    Raises:
        EditError: unreadable, not such a network, or an evaluation judge (a network
            that judges results must not shape them).
    """
    from faceedit.losses import load_oracle_features, load_vgg16_features

    name = AUTO_PERCEPTUAL.get(domain, "pixels") if spec == "auto" else spec
    if name in PIXELS:
        return None, "pixels"
    try:
        if os.fspath(name).lower().endswith((".pth", ".pt")):
            return load_vgg16_features(name), name
        net = load_oracle_features(name)
    except CheckpointError as e:
        raise EditError(f"pti perceptual network: {e}") from None
    if _is_evaluation_judge(getattr(net.oracle, "metadata", None) or {}):
        raise EditError(
            f"pti perceptual network {name}: an evaluation judge; tune with a training-side "
            "network (avatar-oracle) or pixels, so that the judge stays independent"
        )
    return net, name


def _is_evaluation_judge(meta: dict) -> bool:
    """Whether a model's metadata says it was trained only to judge (``train oracle --role
    judge``): the same reading as :func:`faceedit.eval.avatars.judge_role`, which editing
    may not import (it sits above)."""
    trained_as = (meta.get("train_config") or {}).get("role")
    return trained_as == "judge" or str(meta.get("role") or "").startswith("evaluation judge")
