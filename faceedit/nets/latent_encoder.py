"""A small, fast CNN encoder into StyleGAN2's W+ space, for low-resolution domains.

The idea is pSp's (Richardson et al., "Encoding in Style: a StyleGAN Encoder for
Image-to-Image Translation", CVPR 2021) and e4e's (Tov et al., SIGGRAPH 2021): a
feed-forward network predicts the whole ``ws [N, num_ws, w_dim]`` code of an image as
an offset from the generator's average latent, trained on the generator's own samples
(where the true code is known) and on real images (through a reconstruction loss).
pSp's IR-SE-50 pyramid is far too heavy for 64 px avatars on a CPU, so this one is a
plain stack of strided residual blocks (64 -> 32 -> 16 -> 8 -> 4 at 64 px) followed by
a linear head; training lives in :mod:`faceedit.train.encoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.nets.base import ConfigModule


@dataclass(frozen=True)
class LatentEncoderConfig:
    """Encoder hyper-parameters.

    ``num_ws`` and ``w_dim`` come from the generator the encoder inverts. Stage widths
    follow StyleGAN2's table: ``min(channel_base // res, channel_max)`` channels at
    resolution ``res``; ``head_channels`` is the width of the 4x4 map the linear head reads.
    """

    img_resolution: int = 64
    num_ws: int = 10
    w_dim: int = 128
    channel_base: int = 1024
    channel_max: int = 256
    head_channels: int = 64

    def __post_init__(self) -> None:
        res = self.img_resolution
        if res < 8 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 8, got {res}")
        if min(self.num_ws, self.w_dim, self.channel_base, self.channel_max) < 1:
            raise ValueError("num_ws, w_dim, channel_base and channel_max must be >= 1")
        if self.head_channels < 1:
            raise ValueError(f"head_channels must be >= 1, got {self.head_channels}")

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))


class _DownBlock(nn.Module):
    """Residual block that halves the resolution: ``[N, c_in, r, r] -> [N, c_out, r/2, r/2]``.

    Main path: 3x3 conv (stride 2), LeakyReLU, 3x3 conv; shortcut: 2x2 average pool and a
    1x1 conv. The sum is scaled by 1/sqrt(2) so that activations keep their scale without
    normalisation layers (which would make small-batch training and inference differ).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        s = self.skip(F.avg_pool2d(x, 2))
        return F.leaky_relu((y + s) * (1 / math.sqrt(2)), 0.2)


class LatentEncoder(ConfigModule):
    """``E(img [N, 3, S, S] in [-1, 1]) -> ws [N, num_ws, w_dim]`` (average latent included).

    ``S`` is ``img_resolution``; other sizes are resized (bilinear, antialiased) first.
    ``w_avg [w_dim]`` is a buffer copied from the generator (:meth:`set_w_avg`); the
    network predicts the offset from it, and its last layer starts at zero, so an
    untrained encoder returns the average face's code.
    """

    architecture = "latent_encoder"
    config_class = LatentEncoderConfig

    def __init__(self, config: LatentEncoderConfig | None = None) -> None:
        super().__init__(config or LatentEncoderConfig())
        c = self.config
        self.num_ws, self.w_dim, self.img_resolution = c.num_ws, c.w_dim, c.img_resolution
        res = c.img_resolution
        self.stem = nn.Conv2d(3, c.channels(res), 3, padding=1)
        blocks = []
        while res > 4:
            blocks.append(_DownBlock(c.channels(res), c.channels(res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = nn.Conv2d(c.channels(4), c.head_channels, 1)
        self.head = nn.Linear(c.head_channels * 16, c.num_ws * c.w_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("w_avg", torch.zeros(c.w_dim))

    @torch.no_grad()
    def set_w_avg(self, w_avg: torch.Tensor) -> None:
        """Copy the generator's average latent ``[w_dim]``."""
        if tuple(w_avg.shape) != (self.w_dim,):
            raise ValueError(f"w_avg must be [{self.w_dim}], got {list(w_avg.shape)}")
        self.w_avg.copy_(w_avg.to(self.w_avg))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"expected img [N, 3, S, S], got {list(img.shape)}")
        x = img.to(self.w_avg.dtype)
        if x.shape[-2:] != (self.img_resolution, self.img_resolution):
            size = (self.img_resolution, self.img_resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = F.leaky_relu(self.stem(x), 0.2)
        x = self.blocks(x)
        x = F.leaky_relu(self.head_conv(x), 0.2)
        offset = self.head(x.flatten(1)).view(-1, self.num_ws, self.w_dim)
        return self.w_avg + offset
