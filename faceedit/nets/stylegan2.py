"""StyleGAN2 generator (config F, "skip" outputs) in plain PyTorch.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020.
Parameter names and order follow the official PyTorch port (stylegan2-ada-pytorch,
``training/networks.py``), so its ``G_ema`` state dict loads as it is; rosinality-style
files are renamed onto it by :mod:`faceedit.checkpoints.rosinality`.

Shapes: ``z [N, z_dim]``, ``ws [N, num_ws, w_dim]`` with ``num_ws = 2*log2(res) - 2``,
``img [N, 3, res, res]`` nominally in [-1, 1] (not clamped).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from faceedit.nets.base import ConfigModule
from faceedit.nets.layers import (
    SQRT2,
    FullyConnected,
    fir_filter_2d,
    modulated_conv2d,
    normalize_2nd_moment,
    upsample2d,
)

NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class StyleGAN2Config:
    """Generator hyper-parameters (defaults: FFHQ config F at 1024 px).

    Channels per resolution are ``min(channel_base // res, channel_max)``; rosinality's
    table with ``channel_multiplier=cm`` equals ``channel_base = 16384 * cm``.
    ``conv_clamp`` clamps activations (NVlabs training pickles use 256).
    """

    z_dim: int = 512
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        res = self.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")
        if min(self.z_dim, self.w_dim, self.img_channels, self.mapping_layers) < 1:
            raise ValueError("z_dim, w_dim, img_channels and mapping_layers must be >= 1")

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.img_resolution)) - 2

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


class MappingNetwork(nn.Module):
    """``z [N, z_dim] -> ws [N, num_ws, w_dim]``: pixel norm, MLP, broadcast, truncation."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int, lr_multiplier: float):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        for i in range(num_layers):
            fc = FullyConnected(z_dim if i == 0 else w_dim, w_dim, "lrelu", lr_multiplier)
            setattr(self, f"fc{i}", fc)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up) + noise + bias + lrelu (+ clamp).

    Speed detail: the official layer ends with ``* sqrt(2)``; here that gain is left out of
    the (large) activations and folded into the (small) modulated weights of whoever
    consumes them (``input_gain``), which saves a full pass over every feature map. The
    clamp is scaled to match, so results are unchanged.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        w_dim: int,
        resolution: int,
        up: bool,
        conv_clamp: float | None,
        input_gain: float = SQRT2,
    ):
        super().__init__()
        self.up, self.resolution, self.conv_clamp = up, resolution, conv_clamp
        self.input_gain = input_gain
        # registration order = official state-dict order: params, buffers, children
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("resample_filter", fir_filter_2d())
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "const",
        noise: torch.Tensor | None = None,
        fused: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``x [N, in, H, W]`` (without its sqrt(2) gain), ``w [N, w_dim]`` ->
        ``[N, out, H', W']``, also without the gain."""
        styles = self.affine(w)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            True,
            self.up,
            self.resample_filter,
            self.bias,
            fused,
            self.input_gain,
        )
        if noise is None:
            if noise_mode == "const":
                noise = self.noise_const
            elif noise_mode == "random":
                shape = (x.shape[0], 1, self.resolution, self.resolution)
                noise = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        if noise is not None:
            x.add_(noise.to(x.dtype) * self.noise_strength)  # x is fresh: in place is safe
        x = torch.nn.functional.leaky_relu_(x, 0.2)
        if self.conv_clamp is not None:
            # official: clamp(sqrt(2) * act, +-conv_clamp); the gain is applied downstream
            x = x.clamp_(-self.conv_clamp / SQRT2, self.conv_clamp / SQRT2)
        return x


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB, no demodulation."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, conv_clamp: float | None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_ch)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """``x [N, in, H, W]`` (without the sqrt(2) gain of the layer before) -> ``[N, C, H, W]``."""
        styles = self.affine(w) * (self.weight_gain * SQRT2)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, bias=self.bias, fused=fused)
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class SynthesisBlock(nn.Module):
    """One resolution: (const | up-conv) + conv + ToRGB, RGB summed over resolutions."""

    def __init__(
        self, in_ch: int, out_ch: int, w_dim: int, resolution: int, img_channels: int, conv_clamp
    ):
        super().__init__()
        self.resolution = resolution
        self.num_conv = 1 if in_ch == 0 else 2
        if in_ch == 0:
            self.const = nn.Parameter(torch.randn(out_ch, resolution, resolution))
        self.register_buffer("resample_filter", fir_filter_2d())
        if in_ch != 0:
            self.conv0 = SynthesisLayer(in_ch, out_ch, w_dim, resolution, True, conv_clamp)
        # the first layer reads the learned constant, which carries no sqrt(2) gain
        first_gain = 1.0 if in_ch == 0 else SQRT2
        self.conv1 = SynthesisLayer(
            out_ch, out_ch, w_dim, resolution, False, conv_clamp, first_gain
        )
        self.torgb = ToRGBLayer(out_ch, img_channels, w_dim, conv_clamp)

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str,
        noises: list[torch.Tensor | None],
        fused: bool | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws [N, num_conv + 1, w_dim]`` -> (features, rgb) at this resolution."""
        if self.num_conv == 1:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            # channels-last runs the oneDNN convolutions without layout conversions
            x = x.contiguous(memory_format=torch.channels_last)
            x = self.conv1(x, ws[:, 0], noise_mode, noises[0], fused, generator)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, noises[0], fused, generator)
            x = self.conv1(x, ws[:, 1], noise_mode, noises[1], fused, generator)
        y = self.torgb(x, ws[:, self.num_conv], fused)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


@contextlib.contextmanager
def _precision_scope(module: nn.Module, ws: torch.Tensor):
    """bfloat16 autocast around the synthesis when inference runs at bf16 precision
    (:func:`faceedit.nets.inference.inference_context`); yields whether it is on. The
    per-sample modulated weights are made in float32 and cast per convolution."""
    from faceedit.nets import inference

    bf16 = inference.current_dtype() == torch.bfloat16 and inference.use_fast_path(module, ws)
    if not bf16:
        yield False
        return
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield True


class SynthesisNetwork(nn.Module):
    """``ws [N, num_ws, w_dim]`` (or one ``w [N, w_dim]``) -> ``img [N, C, res, res]``."""

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.num_ws = config.num_ws
        self.resolutions = [2**i for i in range(2, int(math.log2(config.img_resolution)) + 1)]
        for res in self.resolutions:
            in_ch = 0 if res == 4 else config.channels(res // 2)
            block = SynthesisBlock(
                in_ch,
                config.channels(res),
                config.w_dim,
                res,
                config.img_channels,
                config.conv_clamp,
            )
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.resolutions]

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        noise: list[torch.Tensor] | None = None,
        fused_modconv: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Synthesise images.

        Args:
            ws: ``[N, num_ws, w_dim]`` (W+) or ``[N, w_dim]`` (one W for every layer).
            noise_mode: ``"const"`` (stored noise maps, reproducible), ``"random"`` (drawn
                with ``generator``) or ``"none"``.
            noise: explicit noise maps, one per conv layer in order (4x4 first), each
                broadcastable to ``[N, 1, res, res]``; overrides ``noise_mode``.
            fused_modconv: see :func:`faceedit.nets.layers.modulated_conv2d`.

        Returns:
            ``img [N, C, res, res]``, nominally in [-1, 1].
        """
        ws = self._check_ws(ws)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        blocks = self.blocks()
        n_layers = sum(b.num_conv for b in blocks)
        if noise is not None and len(noise) != n_layers:
            raise ValueError(
                f"noise: expected {n_layers} maps (one per conv layer), got {len(noise)}"
            )
        x = img = None
        w_idx = layer_idx = 0
        with _precision_scope(self, ws) as bf16:
            for block in blocks:
                block_ws = ws[:, w_idx : w_idx + block.num_conv + 1]
                block_noise = (
                    list(noise[layer_idx : layer_idx + block.num_conv])
                    if noise is not None
                    else [None] * block.num_conv
                )
                x, img = block(x, img, block_ws, noise_mode, block_noise, fused_modconv, generator)
                w_idx += block.num_conv
                layer_idx += block.num_conv
        return img.float().contiguous() if bf16 else img.contiguous()

    def _check_ws(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.ndim == 2 and ws.shape[1] == self.w_dim:
            return ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim):
            return ws
        raise ValueError(
            f"ws must be [N, {self.num_ws}, {self.w_dim}] or [N, {self.w_dim}], got {list(ws.shape)}"
        )


class StyleGAN2Generator(ConfigModule):
    """Mapping + synthesis: ``G(z) -> img``; ``G.mapping`` and ``G.synthesis`` separately."""

    architecture = "stylegan2_generator"
    config_class = StyleGAN2Config

    def __init__(self, config: StyleGAN2Config | None = None):
        super().__init__(config or StyleGAN2Config())
        c = self.config
        self.z_dim, self.w_dim = c.z_dim, c.w_dim
        self.img_resolution, self.img_channels = c.img_resolution, c.img_channels
        self.num_ws = c.num_ws
        self.synthesis = SynthesisNetwork(c)
        self.mapping = MappingNetwork(
            c.z_dim, c.w_dim, c.num_ws, c.mapping_layers, c.mapping_lr_multiplier
        )

    @property
    def w_avg(self) -> torch.Tensor:
        """``[w_dim]``: the average W (truncation centre) stored with the model."""
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``z [N, z_dim] -> img [N, C, res, res]``."""
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, generator=generator)

    @staticmethod
    def mix(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
        """Style mixing: rows ``[:crossover]`` from ``ws_a``, the rest from ``ws_b``."""
        if ws_a.shape != ws_b.shape:
            raise ValueError(
                f"style mixing needs equal shapes, got {list(ws_a.shape)} and {list(ws_b.shape)}"
            )
        if not 0 <= crossover <= ws_a.shape[1]:
            raise ValueError(f"crossover must be in [0, {ws_a.shape[1]}], got {crossover}")
        return torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1)

    @torch.no_grad()
    def estimate_w_avg(self, num_samples: int = 10_000, seed: int = 0) -> torch.Tensor:
        """Mean of the mapping output over ``num_samples`` z drawn with ``seed``; stored as w_avg."""
        g = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.w_dim, dtype=torch.float64)
        for start in range(0, num_samples, 1000):
            n = min(1000, num_samples - start)
            z = torch.randn(n, self.z_dim, generator=g).to(self.w_avg.device)
            total += self.mapping(z)[:, 0].double().sum(0).cpu()
        w_avg = (total / num_samples).float()
        self.mapping.w_avg.copy_(w_avg)
        return w_avg


def seed_to_z(seed: int, z_dim: int) -> torch.Tensor:
    """``z [1, z_dim]`` for an integer seed, the same on every machine (NumPy RandomState)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


# ---------------------------------------------------------------------------------------
# Discriminator ("resnet" architecture of config F), for training faceedit's own models.


@dataclass(frozen=True)
class StyleGAN2DiscriminatorConfig:
    """Discriminator hyper-parameters; channels follow the generator's table."""

    img_resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        res = self.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


class Conv2dLayer(nn.Module):
    """Equalised-lr conv with optional FIR down-sampling (filter, then stride 2)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: bool = False,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.act_gain = SQRT2 if activation == "lrelu" else 1.0
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.register_buffer("resample_filter", fir_filter_2d())

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        from faceedit.nets.layers import bias_act, upfirdn2d

        w = self.weight * self.weight_gain
        if self.down:
            k = self.weight.shape[-1]
            fw = self.resample_filter.shape[-1]
            if k == 1:  # filter + decimate, then a 1x1 conv
                p0, p1 = (fw - 1) // 2, (fw - 2) // 2
                x = upfirdn2d(x, self.resample_filter, down=2, pad=(p0, p1, p0, p1))
                x = torch.nn.functional.conv2d(x, w)
            else:  # filter with the conv's padding folded in, then a strided conv
                p0 = self.padding + (fw - 1) // 2
                p1 = self.padding + (fw - 2) // 2
                x = upfirdn2d(x, self.resample_filter, pad=(p0, p1, p0, p1))
                x = torch.nn.functional.conv2d(x, w, stride=2)
        else:
            x = torch.nn.functional.conv2d(x, w, padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, self.act_gain * gain, clamp)


class DiscriminatorBlock(nn.Module):
    """fromrgb (first block only), two 3x3 convs (the second halves the size), 1x1 skip."""

    def __init__(self, in_ch: int, tmp_ch: int, out_ch: int, img_channels: int, conv_clamp):
        super().__init__()
        self.in_ch = in_ch
        self.register_buffer("resample_filter", fir_filter_2d())
        if in_ch == 0:
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_ch, 1, activation="lrelu", conv_clamp=conv_clamp
            )
        self.conv0 = Conv2dLayer(tmp_ch, tmp_ch, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(
            tmp_ch, out_ch, 3, activation="lrelu", down=True, conv_clamp=conv_clamp
        )
        self.skip = Conv2dLayer(tmp_ch, out_ch, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_ch == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class MinibatchStd(nn.Module):
    """Appends the std of features across groups of samples (Karras et al. 2018)."""

    def __init__(self, group_size: int, num_channels: int):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size else n
        if n % g:
            g = math.gcd(n, g)
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n/g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch std, 3x3 conv, fully connected, score."""

    def __init__(
        self, in_ch: int, resolution: int, mbstd_group: int, mbstd_channels: int, conv_clamp
    ):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels)
        self.conv = Conv2dLayer(
            in_ch + mbstd_channels, in_ch, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnected(in_ch * resolution**2, in_ch, activation="lrelu")
        self.out = FullyConnected(in_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class StyleGAN2Discriminator(ConfigModule):
    """``D(img [N, C, res, res]) -> logits [N, 1]`` (real > fake)."""

    architecture = "stylegan2_discriminator"
    config_class = StyleGAN2DiscriminatorConfig

    def __init__(self, config: StyleGAN2DiscriminatorConfig | None = None):
        super().__init__(config or StyleGAN2DiscriminatorConfig())
        c = self.config
        self.img_resolution = c.img_resolution
        self.resolutions = [2**i for i in range(int(math.log2(c.img_resolution)), 2, -1)]
        for res in self.resolutions:
            in_ch = c.channels(res) if res < c.img_resolution else 0
            block = DiscriminatorBlock(
                in_ch, c.channels(res), c.channels(res // 2), c.img_channels, c.conv_clamp
            )
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(
            c.channels(4), 4, c.mbstd_group_size, c.mbstd_num_channels, c.conv_clamp
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = None
        for res in self.resolutions:
            x = getattr(self, f"b{res}")(x, img)
        return self.b4(x)
