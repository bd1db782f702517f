"""The losses that training, editing and evaluation share: pixel, multiscale, perceptual
and identity (one home, below ``train``, ``editing`` and ``eval``; judges stay in ``eval``).

Pixel: :func:`psnr` and :func:`ssim` (Wang et al., IEEE TIP 2004; Gaussian window 11,
sigma 1.5), differentiable, on any device; ``data_range`` is 2 for images in [-1, 1] and
1 for images in [0, 1]. :mod:`faceedit.eval.metrics` reports them under the same names.

Perceptual: a *perceptual network* here is any ``nn.Module`` that maps
``img [N, 3, H, W]`` in [-1, 1] to a list of feature maps ``[N, C_k, H_k, W_k]`` (e.g. the
conv stages of a VGG16 built from weights the user provides: none ship offline, see
ASSETS.md). The distance follows LPIPS without learned heads (Zhang et al., CVPR 2018):
unit-normalise each feature vector along channels, then average the squared differences.

Identity: for the avatar domain, an avatar oracle's conv stages serve as that network
(:class:`OracleFeatures`): they respond to the mouth, glasses and eye shapes the labels
depend on, which cover a few pixels each and which a per-pixel loss hardly sees. This is
the role pSp gives a face-recognition network (its identity loss), which
:class:`OracleAgreement` plays on the oracle's readings. Use an oracle other than the one
that judges the results (``faceedit train oracle --seed 1``), so that an inverter is not
tuned to the evaluator's own features.

Multiscale: without such a network, :func:`multiscale_loss` (mean squared error over an
image pyramid, plus optional SSIM) stands in for it: coarse levels weigh overall shape and
colour, which plain per-pixel error under-weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.errors import CheckpointError

# torchvision's VGG16 "features" layout (Simonyan & Zisserman, ICLR 2015): conv widths,
# "M" = 2x2 max pool; LPIPS reads relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, which
# are these indices in the Sequential.
VGG16_LAYERS: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)  # fmt: skip
VGG16_TAPS = (3, 8, 15, 22, 29)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- pixel


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-image PSNR in dB of ``[N, C, H, W]`` images (range 2 for [-1, 1]) -> ``[N]``."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(data_range**2 / mse)


def ssim(
    a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 2.0
) -> torch.Tensor:
    """Differentiable SSIM of ``[N, C, H, W]`` images -> ``[N]`` (Gaussian window).

    ``data_range`` is 2 for images in [-1, 1]. The window shrinks for tiny images.
    """
    window = min(window, a.shape[-1], a.shape[-2])
    coords = torch.arange(window, dtype=a.dtype, device=a.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(a.shape[1], 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=a.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a**2
    s_bb = blur(b * b) - mu_b**2
    s_ab = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return (num / den).flatten(1).mean(1)


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=1, keepdim=True) + eps)


def feature_distance(
    feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]
) -> torch.Tensor:
    """LPIPS-style distance between two lists of ``[N, C, H, W]`` feature maps -> ``[N]``."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(
            f"feature lists must be equally long and non-empty, got {len(feats_a)} and "
            f"{len(feats_b)}"
        )
    total = 0
    for a, b in zip(feats_a, feats_b, strict=True):
        d = (_unit(a) - _unit(b)).square().sum(dim=1)  # [N, H, W]
        total = total + d.flatten(1).mean(1)
    return total


class PerceptualDistance(nn.Module):
    """``(img_a, img_b) -> [N]``: feature distance through a user-given network.

    Images larger than ``size`` are area-downsampled first (a VGG sees 224-256 px faces
    best, and it keeps the cost independent of the generator's resolution).

    Args:
        net: module mapping ``img [N, 3, H, W]`` in [-1, 1] to a list of feature maps.
        size: the side the images are reduced to before ``net`` (``None``: never).
    """

    def __init__(self, net: nn.Module, size: int | None = 256):
        super().__init__()
        self.net = net
        self.size = size

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        if self.size is not None and img.shape[-1] > self.size:
            img = F.interpolate(img, size=(self.size, self.size), mode="area")
        feats = self.net(img)
        if isinstance(feats, torch.Tensor):
            feats = [feats]
        return list(feats)

    def forward(self, img_a: torch.Tensor, img_b: torch.Tensor) -> torch.Tensor:
        return feature_distance(self.features(img_a), self.features(img_b))


class VGG16Features(nn.Module):
    """``img [N, 3, H, W]`` in [-1, 1] -> the five LPIPS feature maps of a VGG16.

    Parameters are named as torchvision's ``vgg16().features`` (``features.{i}.weight``),
    so its ImageNet state dict (``vgg16-397923af.pth``, which faceedit does not ship)
    loads with :func:`load_vgg16_features`. ``width_divisor`` narrows every layer (tests).
    """

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in VGG16_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out_ch = int(item) // width_divisor
                layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).reshape(1, 3, 1, 1))

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = ((img + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_TAPS:
                out.append(x)
        return out


class _FrozenOracle(nn.Module):
    """An avatar oracle held frozen and in eval mode, whatever the caller's mode."""

    def __init__(self, oracle: nn.Module):
        super().__init__()
        self.oracle = oracle.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> _FrozenOracle:
        # BatchNorm must keep its running statistics whatever the caller's mode
        return self


class OracleFeatures(_FrozenOracle):
    """``img [N, 3, H, W]`` in [-1, 1] -> an avatar oracle's stage maps (frozen, eval mode).

    See :meth:`faceedit.nets.oracle.AvatarOracle.features`.
    """

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        return self.oracle.features(img)


class OracleAgreement(_FrozenOracle):
    """``(img, target) -> [N]``: how differently an avatar oracle reads two images.

    pSp's identity loss compares a face-recognition network's embeddings of the input
    and its reconstruction; in the avatar domain the identity *is* what the oracle reads
    (the attributes and the rendering parameters), so this compares the readings: the
    Kullback-Leibler divergence from the oracle's reading of ``target`` (soft labels, no
    gradient) to its reading of ``img``, averaged over every head: each attribute (a
    Bernoulli) and each parameter (a categorical). A per-pixel or feature distance
    barely sees a mouth drawn a few pixels wrong; this term sees nothing else. Frozen,
    eval mode, any image side (resized to the oracle's ``img_size``).
    """

    def forward(self, img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: ``img, target [N, 3, H, W]`` in [-1, 1]. Returns ``[N]``, >= 0."""
        with torch.no_grad():
            want = self.oracle(self.oracle.resized(target))
        got = self.oracle(self.oracle.resized(img))
        # Bernoulli KL per attribute, written with logits so that it stays finite
        p = torch.sigmoid(want.attrs)
        kl_attrs = (
            p * (F.logsigmoid(want.attrs) - F.logsigmoid(got.attrs))
            + (1 - p) * (F.logsigmoid(-want.attrs) - F.logsigmoid(-got.attrs))
        ).sum(1)
        kl_params = sum(
            F.kl_div(
                F.log_softmax(got.params[k], 1),
                F.log_softmax(want.params[k], 1),
                log_target=True,
                reduction="none",
            ).sum(1)
            for k in got.params
        )
        heads = want.attrs.shape[1] + len(want.params)
        return (kl_attrs + kl_params) / heads


def load_oracle_features(path: str | os.PathLike) -> OracleFeatures:
    """An avatar oracle (a path or shipped name) as a perceptual network.

    Raises:
        CheckpointError: unreadable, or not an avatar oracle.
    """
    from faceedit.checkpoints.oracle import load_avatar_oracle

    return OracleFeatures(load_avatar_oracle(path))


def load_vgg16_features(path: str | os.PathLike) -> VGG16Features:
    """Build :class:`VGG16Features` from a torchvision VGG16 state dict file (``.pth``).

    The classifier weights, if present, are ignored. The width is read from the file.

    Raises:
        CheckpointError: unreadable file or not a VGG16 ``features`` state dict.
    """
    from faceedit.checkpoints.safe_torch import safe_torch_load
    from faceedit.nets.base import StateDictMismatch, load_state_dict_checked

    state = safe_torch_load(path)
    if not isinstance(state, dict) or "features.0.weight" not in state:
        raise CheckpointError(f"{path}: not a VGG16 state dict (no features.0.weight)")
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    first = state["features.0.weight"].shape[0]
    if first < 1 or 64 % first:
        raise CheckpointError(f"{path}: first conv has {first} filters, expected 64")
    model = VGG16Features(width_divisor=64 // first)
    try:
        load_state_dict_checked(model, {**state, "mean": model.mean, "std": model.std}, str(path))
    except StateDictMismatch as e:
        raise CheckpointError(f"{path}: not a VGG16 features state dict ({e})") from None
    return model.eval()


def image_pyramid(img: torch.Tensor, min_size: int = 8) -> list[torch.Tensor]:
    """``img [N, C, H, W]`` followed by 2x average-pooled copies down to ``min_size``."""
    levels = [img]
    while levels[-1].shape[-1] >= 2 * min_size and levels[-1].shape[-2] >= 2 * min_size:
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels


def multiscale_loss(
    img: torch.Tensor, target: torch.Tensor, min_size: int = 8, ssim_weight: float = 0.0
) -> torch.Tensor:
    """Mean over pyramid levels of the MSE, plus ``ssim_weight * (1 - SSIM)`` -> ``[N]``.

    Args:
        img, target: ``[N, C, H, W]`` in [-1, 1].
        min_size: the smallest pyramid level.
        ssim_weight: weight of the structural term at full resolution (0: off).
    """
    levels_a, levels_b = image_pyramid(img, min_size), image_pyramid(target, min_size)
    loss = sum(
        (a - b).square().flatten(1).mean(1) for a, b in zip(levels_a, levels_b, strict=True)
    ) / len(levels_a)
    if ssim_weight:
        loss = loss + ssim_weight * (1 - ssim(img, target))
    return loss
