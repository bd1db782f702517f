"""IR-SE backbone, pSp GradualStyleEncoder and e4e Encoder4Editing.

- IR-SE-50 (ArcFace-style "improved residual" units with squeeze-excitation; Deng et al.,
  CVPR 2019), as the ``Backbone(112, 50, 'ir_se')`` that pSp's identity loss loads from
  ``model_ir_se50.pth``. ``forward`` returns the L2-normalised 512-d embedding.
- pSp (Richardson et al., CVPR 2021, "Encoding in Style"): a feature pyramid over the
  IR-SE-50 body with one ``GradualStyleBlock`` head per style row.
- e4e (Tov et al., SIGGRAPH 2021, "Designing an Encoder for StyleGAN Image
  Manipulation"): the same pyramid, one base code ``w0`` repeated over all rows plus
  per-row deltas, switched on progressively during training.

Module and parameter names follow the official checkpoints (``input_layer``, ``body.N.
res_layer.M``, ``styles.i.convs.j``, ``latlayer1``...), so their state dicts load
strictly once the ``encoder.`` prefix is stripped. The average latent of a pSp/e4e
checkpoint is stored in the ``latent_avg`` buffer ``[n_styles, 512]`` and added to the
output, as the originals do at inference (``start_from_latent_avg``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.nets.base import ConfigModule

# (in_channels, depth, num_units) per stage; the first unit of each stage has stride 2.
_STAGES = {
    50: ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)),
    100: ((64, 64, 3), (64, 128, 13), (128, 256, 30), (256, 512, 3)),
    152: ((64, 64, 3), (64, 128, 8), (128, 256, 36), (256, 512, 3)),
}


def _check_body(num_layers: int, mode: str) -> None:
    if num_layers not in _STAGES:
        raise ValueError(f"num_layers must be one of {sorted(_STAGES)}, got {num_layers}")
    if mode not in ("ir", "ir_se"):
        raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")


class SEModule(nn.Module):
    """Squeeze-excitation: channel gates from the global average (reduction 16)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class _Subsample(nn.Module):
    """Identity shortcut with stride: ``x[..., ::s, ::s]`` (the originals' MaxPool2d(1, s))."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x


class BottleneckIR(nn.Module):
    """BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN [-> SE], plus the shortcut.

    No activation after the sum (the "improved residual" unit).
    """

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = _Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def _input_layer(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
    )


def _body(num_layers: int, mode: str) -> nn.Sequential:
    units: list[nn.Module] = []
    for in_channels, depth, num_units in _STAGES[num_layers]:
        units.append(BottleneckIR(in_channels, depth, 2, mode == "ir_se"))
        units.extend(BottleneckIR(depth, depth, 1, mode == "ir_se") for _ in range(num_units - 1))
    return nn.Sequential(*units)


def _check_images(img: torch.Tensor, channels: int, name: str) -> None:
    if img.ndim != 4 or img.shape[1] != channels:
        raise ValueError(f"{name}: expected img [N, {channels}, H, W], got {tuple(img.shape)}")


# --------------------------------------------------------------------------- IR-SE backbone


@dataclass(frozen=True)
class IRSEConfig:
    """``Backbone(input_size, num_layers, mode, drop_ratio, affine)`` of pSp's ID loss."""

    input_size: int = 112
    num_layers: int = 50
    mode: str = "ir_se"
    drop_ratio: float = 0.6
    affine: bool = True

    def __post_init__(self) -> None:
        _check_body(self.num_layers, self.mode)
        if self.input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {self.input_size}")


class IRSEBackbone(ConfigModule):
    """Face-recognition embedding net (``model_ir_se50.pth``).

    ``forward(img [N,3,S,S] in [-1,1]) -> feat [N,512]`` with unit L2 norm, ``S`` the
    configured ``input_size``. :meth:`extract` applies pSp's ID-loss face pooling to
    256x256 aligned crops first.
    """

    architecture: ClassVar[str] = "ir_se_backbone"
    config_class: ClassVar[type] = IRSEConfig

    def __init__(self, config: IRSEConfig | None = None) -> None:
        super().__init__(config if config is not None else IRSEConfig())
        c = self.config
        side = 7 if c.input_size == 112 else 14
        self.input_layer = _input_layer(3)
        # declared before `body` so that the state-dict order matches the checkpoint
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(c.drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * side * side, 512),
            nn.BatchNorm1d(512, affine=c.affine),
        )
        self.body = _body(c.num_layers, c.mode)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img [N,3,S,S]`` in [-1, 1] -> ``feat [N,512]``, L2-normalised."""
        _check_images(img, 3, type(self).__name__)
        s = self.config.input_size
        if img.shape[-2:] != (s, s):
            raise ValueError(f"IRSEBackbone: expects {s}x{s} images, got {tuple(img.shape)}")
        x = self.output_layer(self.body(self.input_layer(img)))
        return x / x.norm(p=2, dim=1, keepdim=True)

    def extract(self, img: torch.Tensor) -> torch.Tensor:
        """pSp ID-loss features of aligned 256x256 crops ``img [N,3,256,256]`` -> ``[N,512]``.

        Keeps rows 35:223 and columns 32:220 (the inner face) and average-pools them to
        112x112, as pSp's ``IDLoss.extract_feats``.
        """
        _check_images(img, 3, "IRSEBackbone.extract")
        if img.shape[-2:] != (256, 256):
            img = F.adaptive_avg_pool2d(img, (256, 256))
        face = img[:, :, 35:223, 32:220]
        return self(F.adaptive_avg_pool2d(face, (self.config.input_size,) * 2))


# --------------------------------------------------------------------------- style encoders


class GradualStyleBlock(nn.Module):
    """``log2(spatial)`` stride-2 convs with LeakyReLU(0.01), then an equalised linear.

    ``x [N,C,h,w] -> [N,C]``; the convs must bring the map to 1x1 (true for 256x256
    inputs and anything smaller).
    """

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels, channels, 3, 2, 1), nn.LeakyReLU()]
        self.channels = channels
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"style head ends on a {x.shape[-2]}x{x.shape[-1]} map; the encoders take "
                "images of at most 256x256"
            )
        return self.linear(x.reshape(x.shape[0], self.channels))


class EqualLinear(nn.Module):
    """Linear layer with the weight scaled by ``lr_mul / sqrt(in_dim)`` at run time."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


@dataclass(frozen=True)
class StyleEncoderConfig:
    """Shared config of the pSp and e4e encoders.

    ``n_styles`` = ``2*log2(resolution) - 2`` of the target generator (18 at 1024 px).
    ``use_latent_avg`` adds a ``latent_avg [n_styles, 512]`` buffer to the output
    (pSp/e4e ``start_from_latent_avg``).
    """

    n_styles: int = 18
    num_layers: int = 50
    mode: str = "ir_se"
    input_nc: int = 3
    use_latent_avg: bool = True

    def __post_init__(self) -> None:
        _check_body(self.num_layers, self.mode)
        if self.n_styles < 1:
            raise ValueError(f"n_styles must be >= 1, got {self.n_styles}")


@dataclass(frozen=True)
class PSPEncoderConfig(StyleEncoderConfig):
    """pSp ``GradualStyleEncoder``."""


@dataclass(frozen=True)
class E4EEncoderConfig(StyleEncoderConfig):
    """e4e ``Encoder4Editing``."""


class _PyramidStyleEncoder(ConfigModule):
    """IR-SE body with a three-level feature pyramid and one style head per row.

    Rows ``0..2`` read the coarse map (stride 16), rows ``3..6`` the middle one
    (stride 8), rows ``7..`` the fine one (stride 4), as in both originals.
    """

    coarse_ind: ClassVar[int] = 3
    middle_ind: ClassVar[int] = 7

    def __init__(self, config: StyleEncoderConfig) -> None:
        super().__init__(config)
        c = self.config
        self.input_layer = _input_layer(c.input_nc)
        self.body = _body(c.num_layers, c.mode)
        self.styles = nn.ModuleList(
            GradualStyleBlock(512, 16 if i < self.coarse_ind else 32 if i < self.middle_ind else 64)
            for i in range(c.n_styles)
        )
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)
        if c.use_latent_avg:
            self.register_buffer("latent_avg", torch.zeros(c.n_styles, 512))
        else:
            self.latent_avg = None
        # taps after these body units: strides 4, 8, 16 (the last unit of stages 2-4)
        ends = []
        total = 0
        for _, _, n in _STAGES[c.num_layers]:
            total += n
            ends.append(total - 1)
        self._taps = tuple(ends[1:])

    @property
    def num_ws(self) -> int:
        return self.config.n_styles

    def _check_input(self, img: torch.Tensor) -> None:
        _check_images(img, self.config.input_nc, type(self).__name__)
        if img.shape[-1] > 256 or img.shape[-2] > 256:
            raise ValueError(
                f"{type(self).__name__}: expects images of at most 256x256 (resize first), "
                f"got {tuple(img.shape)}"
            )

    def _pyramid(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_input(img)
        x = self.input_layer(img)
        feats = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self._taps:
                feats.append(x)
        c1, c2, c3 = feats
        return c1, c2, c3

    # The inference path (faceedit.nets.fast_encoder): batch norms folded, small style-head
    # convs as GEMMs, optional bfloat16. Used under no_grad/inference mode in eval mode;
    # the plain forward below stays the reference (faceedit.nets.inference.plain_paths).
    fast_kind: ClassVar[str] = ""
    fast_channels_last: ClassVar[bool] = True

    def _fast_path(self, img: torch.Tensor):
        """The cached :class:`~faceedit.nets.fast_encoder.FastStyleEncoder` for the current
        precision, or ``None`` when the plain path must run."""
        from faceedit.nets import inference

        self._check_input(img)
        if not inference.use_fast_path(self, img):
            return None
        dtype = inference.current_dtype()
        signature = inference.weights_signature(self)
        cache = self.__dict__.setdefault("_fast_cache", {})
        entry = cache.get(dtype)
        if entry is None or entry[0] != signature:
            from faceedit.nets.fast_encoder import FastStyleEncoder

            cache.clear()  # one inference copy at a time: a bf16 one holds 0.5 GB
            fast = FastStyleEncoder(self, self.fast_kind, dtype, self.fast_channels_last)
            entry = cache[dtype] = (signature, fast)
        return entry[1]

    def _add_avg(self, codes: torch.Tensor) -> torch.Tensor:
        if self.latent_avg is None:
            return codes
        return codes + self.latent_avg.to(codes.dtype)


class PSPEncoder(_PyramidStyleEncoder):
    """pSp encoder: ``E(img [N,3,256,256] in [-1,1]) -> ws [N,n_styles,512]``."""

    architecture: ClassVar[str] = "psp_encoder"
    config_class: ClassVar[type] = PSPEncoderConfig
    fast_kind: ClassVar[str] = "psp"

    def __init__(self, config: PSPEncoderConfig | None = None) -> None:
        super().__init__(config if config is not None else PSPEncoderConfig())

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img [N,3,H,W]`` in [-1, 1], H, W <= 256 -> ``ws [N,n_styles,512]``."""
        fast = self._fast_path(img)
        if fast is not None:
            return fast(img)
        c1, c2, c3 = self._pyramid(img)
        n = self.config.n_styles
        rows = [self.styles[i](c3) for i in range(min(n, self.coarse_ind))]
        if n > self.coarse_ind:
            p2 = _upsample_add(c3, self.latlayer1(c2))
            rows += [self.styles[i](p2) for i in range(self.coarse_ind, min(n, self.middle_ind))]
            if n > self.middle_ind:
                p1 = _upsample_add(p2, self.latlayer2(c1))
                rows += [self.styles[i](p1) for i in range(self.middle_ind, n)]
        return self._add_avg(torch.stack(rows, dim=1))


class E4EEncoder(_PyramidStyleEncoder):
    """e4e encoder: ``E(img [N,3,256,256] in [-1,1]) -> ws [N,n_styles,512]``.

    ``ws[:, i] = w0 + delta_i`` with ``delta_0 = 0``. ``progressive_stage`` (a run-time
    attribute, not saved) limits the deltas to rows ``1..stage`` as during e4e's
    progressive training; ``None`` (the default, e4e's ``Inference`` stage) adds all.
    """

    architecture: ClassVar[str] = "e4e_encoder"
    config_class: ClassVar[type] = E4EEncoderConfig
    fast_kind: ClassVar[str] = "e4e"

    def __init__(self, config: E4EEncoderConfig | None = None) -> None:
        super().__init__(config if config is not None else E4EEncoderConfig())
        self.progressive_stage: int | None = None

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img [N,3,H,W]`` in [-1, 1], H, W <= 256 -> ``ws [N,n_styles,512]``."""
        fast = self._fast_path(img) if self.progressive_stage is None else None
        if fast is not None:
            return fast(img)
        c1, c2, c3 = self._pyramid(img)
        n = self.config.n_styles
        w0 = self.styles[0](c3)
        stage = n - 1 if self.progressive_stage is None else int(self.progressive_stage)
        rows = [w0]
        features = c3
        p2 = None
        for i in range(1, n):
            if i > stage:
                rows.append(w0)
                continue
            if i == self.coarse_ind:
                p2 = _upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif i == self.middle_ind:
                features = _upsample_add(p2, self.latlayer2(c1))
            rows.append(w0 + self.styles[i](features))
        return self._add_avg(torch.stack(rows, dim=1))


class EncoderWithDecoder(nn.Module):
    """What a pSp/e4e checkpoint holds: the encoder and its StyleGAN2 generator.

    ``forward(img) -> ws`` is the encoder (average latent included);
    :meth:`reconstruct` runs the generator on those codes. Save the two parts with
    their own ``save_pretrained``: ``pair.encoder`` and ``pair.decoder`` are ordinary
    faceedit models.
    """

    def __init__(self, encoder: _PyramidStyleEncoder, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img [N,3,256,256]`` in [-1, 1] -> ``ws [N,n_styles,512]``."""
        return self.encoder(img)

    def reconstruct(self, img: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """``img [N,3,256,256]`` -> generator output ``[N,3,R,R]`` in about [-1, 1]."""
        return self.decoder.synthesis(self.encoder(img), noise_mode=noise_mode)
