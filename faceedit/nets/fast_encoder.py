"""Inference path of the pSp / e4e encoders: the same function as their ``forward``, faster.

:class:`FastStyleEncoder` is built from a :class:`~faceedit.nets.encoders.PSPEncoder` or
:class:`~faceedit.nets.encoders.E4EEncoder` (see ``_PyramidStyleEncoder.fast_forward``)
and computes its codes with

- every batch norm that follows a convolution folded into that convolution (the second
  conv of each IR-SE unit, the input layer, the projection shortcuts), and the batch norm
  that opens each unit as one fused multiply-add;
- the squeeze-excitation gate and the residual sum as one ``addcmul``;
- style-head convolutions on small maps as one matrix product over unfolded patches
  (they are bound by reading the 9.4 MB weight, which a GEMM reads once), larger ones
  through oneDNN;
- optionally channels-last activations and bfloat16 arithmetic.

Memory: in float32 the style heads (236 M of the 267 M parameters) are *shared* with the
plain module, not copied; only the folded body (~23 M parameters) is new. A bfloat16
path holds a bfloat16 copy of everything (half the plain module's size).

The plain ``forward`` stays the reference; the parity tests compare the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Style-head convolutions with at most this many output positions (batch x height x
# width) run as unfold + GEMM; larger ones as convolutions. Measured on a 2-core AVX-512
# CPU (an 8x8 -> 4x4 head conv: 1.0 ms as a GEMM, 4.0 ms as a convolution).
GEMM_MAX_POSITIONS = 256


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``y = x * scale + shift`` (``[C]`` each, float32)."""
    scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
    shift = bn.bias.detach().float() - bn.running_mean.float() * scale
    return scale, shift


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(conv(x))`` as one convolution: ``(weight, bias)``."""
    scale, shift = _bn_affine(bn)
    w = conv.weight.detach().float() * scale[:, None, None, None]
    b = shift if conv.bias is None else conv.bias.detach().float() * scale + shift
    return w, b


def _cast(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``t`` in ``dtype``; the same tensor (no copy) when it already is."""
    return None if t is None else t.detach().to(dtype)


class _FoldedUnit(nn.Module):
    """One IR(-SE) bottleneck unit with its batch norms folded (see the module docstring)."""

    def __init__(self, unit: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        bn1, conv1, prelu, conv2, bn2, *se = unit.res_layer
        scale, shift = _bn_affine(bn1)
        self.pre_scale = scale.to(dtype)[None, :, None, None]
        self.pre_shift = shift.to(dtype)[None, :, None, None]
        self.w1 = _cast(conv1.weight, dtype)
        self.prelu = _cast(prelu.weight, dtype)
        w2, b2 = _fold(conv2, bn2)
        self.w2, self.b2 = w2.to(dtype), b2.to(dtype)
        self.stride = conv2.stride[0]
        if se:
            self.fc1 = _cast(se[0].fc1.weight.flatten(1), dtype)
            self.fc2 = _cast(se[0].fc2.weight.flatten(1), dtype)
        else:
            self.fc1 = self.fc2 = None
        shortcut = unit.shortcut_layer
        if isinstance(shortcut, nn.Sequential):  # conv1x1(stride) + BN
            ws, bs = _fold(shortcut[0], shortcut[1])
            self.ws, self.bs = ws.to(dtype), bs.to(dtype)
        else:
            self.ws = self.bs = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N,C,H,W] -> [N,D,H/s,W/s]``."""
        r = torch.addcmul(self.pre_shift, x, self.pre_scale)
        r = F.prelu(F.conv2d(r, self.w1, None, 1, 1), self.prelu)
        r = F.conv2d(r, self.w2, self.b2, self.stride, 1)
        if self.ws is not None:
            sc = F.conv2d(x, self.ws, self.bs, self.stride)
        elif self.stride > 1:
            sc = x[:, :, :: self.stride, :: self.stride]
        else:
            sc = x
        if self.fc1 is None:
            return r + sc
        gate = torch.sigmoid(F.linear(F.relu(F.linear(r.mean(dim=(2, 3)), self.fc1)), self.fc2))
        return torch.addcmul(sc, r, gate[:, :, None, None])


class _FastHead(nn.Module):
    """A ``GradualStyleBlock``: stride-2 3x3 convs with LeakyReLU(0.01), then the linear."""

    def __init__(self, head: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        convs = [m for m in head.convs if isinstance(m, nn.Conv2d)]
        self.weights = [_cast(c.weight, dtype) for c in convs]
        self.biases = [_cast(c.bias, dtype) for c in convs]
        lin = head.linear
        self.lin_w = (lin.weight.detach().float() * lin.scale).to(dtype)
        self.lin_b = (lin.bias.detach().float() * lin.lr_mul).to(dtype)
        self.channels = head.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N,C,h,w] -> [N,C]`` (the convs must reach 1x1, as the plain block checks)."""
        n = x.shape[0]
        for w, b in zip(self.weights, self.biases, strict=True):
            ho, wo = (x.shape[2] + 1) // 2, (x.shape[3] + 1) // 2
            if n * ho * wo <= GEMM_MAX_POSITIONS:
                # one GEMM over all images' patches: [N*ho*wo, C*9] @ [C*9, D]
                cols = F.unfold(x, 3, padding=1, stride=2).transpose(1, 2)
                y = torch.addmm(b, cols.reshape(n * ho * wo, -1), w.flatten(1).t())
                x = y.view(n, ho, wo, -1).permute(0, 3, 1, 2)
            else:
                x = F.conv2d(x, w, b, 2, 1)
            x = F.leaky_relu_(x, 0.01)
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"style head ends on a {x.shape[-2]}x{x.shape[-1]} map; the encoders take "
                "images of at most 256x256"
            )
        return F.linear(x.reshape(n, self.channels), self.lin_w, self.lin_b)


class FastStyleEncoder(nn.Module):
    """The inference path of a pSp or e4e encoder (``kind`` ``"psp"`` / ``"e4e"``).

    ``forward(img [N,3,H,W] in [-1,1], H, W <= 256) -> ws [N,n_styles,512]`` float32,
    the plain encoder's codes (within float rounding; e4e at its inference stage).
    Its tensors are plain attributes, not parameters: it is built for one call pattern
    and never saved or trained.
    """

    def __init__(
        self,
        encoder: nn.Module,
        kind: str,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ("psp", "e4e"):
            raise ValueError(f"kind must be 'psp' or 'e4e', got {kind!r}")
        self.kind = kind
        self.dtype = dtype
        self.channels_last = channels_last
        self.coarse_ind, self.middle_ind = encoder.coarse_ind, encoder.middle_ind
        self.n_styles = encoder.config.n_styles
        conv, bn, prelu = encoder.input_layer
        w, b = _fold(conv, bn)
        self.in_w, self.in_b = w.to(dtype), b.to(dtype)
        self.in_prelu = _cast(prelu.weight, dtype)
        self.units = [_FoldedUnit(u, dtype) for u in encoder.body]
        self.taps = encoder._taps
        self.heads = [_FastHead(h, dtype) for h in encoder.styles]
        self.lat1 = (_cast(encoder.latlayer1.weight, dtype), _cast(encoder.latlayer1.bias, dtype))
        self.lat2 = (_cast(encoder.latlayer2.weight, dtype), _cast(encoder.latlayer2.bias, dtype))
        avg = encoder.latent_avg
        self.latent_avg = None if avg is None else avg.detach().float().clone()

    def _pyramid(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = img.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.prelu(F.conv2d(x, self.in_w, self.in_b, 1, 1), self.in_prelu)
        feats = []
        for i, unit in enumerate(self.units):
            x = unit(x)
            if i in self.taps:
                feats.append(x)
        return feats

    def _lateral(self, top: torch.Tensor, side: torch.Tensor, lat) -> torch.Tensor:
        y = F.conv2d(side, lat[0], lat[1])
        return F.interpolate(top, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img [N,3,H,W]`` in [-1, 1] -> ``ws [N,n_styles,512]`` float32."""
        c1, c2, c3 = self._pyramid(img)
        n = self.n_styles
        levels = [c3]
        if n > self.coarse_ind:
            levels.append(self._lateral(c3, c2, self.lat1))
            if n > self.middle_ind:
                levels.append(self._lateral(levels[1], c1, self.lat2))
        rows = []
        for i in range(n):
            level = 0 if i < self.coarse_ind else 1 if i < self.middle_ind else 2
            rows.append(self.heads[i](levels[level]).float())
        if self.kind == "e4e":
            rows = [rows[0]] + [rows[0] + r for r in rows[1:]]
        codes = torch.stack(rows, dim=1)
        return codes if self.latent_avg is None else codes + self.latent_avg
