"""StyleGAN2 building blocks in plain PyTorch: equalised layers, FIR resampling,
modulated convolution.

Follows Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020)
and the arithmetic of its official PyTorch port (stylegan2-ada-pytorch): equalised
learning rate, ``lrelu`` = ``leaky_relu(x + b, 0.2) * sqrt(2)``, the [1, 3, 3, 1] FIR
filter with gain 4 around 2x up-sampling. Everything here runs on any device with no
compiled extension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along ``dim`` (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def fir_filter_2d(taps: tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable FIR filter ``[k, k]`` from 1-D taps, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer (weights stored at ``1/lr_multiplier`` scale).

    ``y = act(x @ (W * lr_mul / sqrt(in)).T + b * lr_mul)``; ``act`` is ``"linear"`` or
    ``"lrelu"`` (leaky ReLU 0.2 times sqrt(2)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addmm(self.bias * self.bias_gain, x, (self.weight * self.weight_gain).t())
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2) * SQRT2
        return x


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Up-sample by zero insertion, pad, FIR-filter, down-sample (reference semantics).

    Args:
        x: ``[N, C, H, W]``.
        f: ``[kh, kw]`` filter (applied as a convolution, i.e. flipped correlation).
        up, down: integer factors.
        pad: ``(x0, x1, y0, y1)`` padding after up-sampling; negative values crop.
        gain: the filter is multiplied by ``gain`` (``up**2`` keeps the mean).

    Returns:
        ``[N, C, H', W']``.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, (max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)))
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x up-sampling with the FIR filter ``f`` (gain 4), as StyleGAN2's skip branch.

    Runs as one depthwise transposed convolution, which equals zero insertion, padding
    ``((k+1)//2, (k-2)//2)`` and filtering (checked against :func:`upfirdn2d` in tests).
    """
    c, k = x.shape[1], f.shape[-1]
    if k % 2:
        p0, p1 = (k + 1) // 2, (k - 2) // 2
        return upfirdn2d(x, f, up=2, pad=(p0, p1, p0, p1), gain=4.0)
    weight = (f * 4.0).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, -1, -1)
    return F.conv_transpose2d(x, weight, stride=2, padding=k // 2 - 1, groups=c)


def _blur(x: torch.Tensor, f: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """FIR filter with gain 4 and no padding (the caller padded); adds ``bias``."""
    c = x.shape[1]
    weight = (f * 4.0).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, -1, -1)
    return F.conv2d(x, weight.contiguous(), bias=bias, groups=c)


def _transposed_conv_padded(x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Stride-2 transposed 3x3 conv whose output comes with one zero row/column on each side.

    ``[N, in, H, W] -> [N, out, 2H+3, 2W+3]``: padding the small input by one pixel and
    cropping one output pixel gives exactly the zero border the FIR filter needs, without a
    padding pass over the (4x larger) output.
    """
    x = F.pad(x, (1, 1, 1, 1))
    return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=groups)


def _fused_single(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    up: bool,
    resample_filter: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """One sample: ``weight [out, in, k, k] * scale [out, in]`` and a plain convolution.

    The modulated weight is written straight into the contiguous layout each kernel wants
    (``[in, out, k, k]`` for the transposed conv), and a 1x1 conv on a channels-last input
    runs as one matrix product, which is what oneDNN would do, minus its set-up cost.
    """
    out_ch, in_ch, kh, kw = weight.shape
    if up:
        scale_t = scale.t().reshape(in_ch, out_ch, 1, 1)
        if torch.is_grad_enabled() and (weight.requires_grad or scale.requires_grad):
            wt = (weight.transpose(0, 1) * scale_t).contiguous()  # out= has no autograd
        else:
            wt = torch.empty(in_ch, out_ch, kh, kw, dtype=weight.dtype, device=weight.device)
            torch.mul(weight.transpose(0, 1), scale_t, out=wt)
        return _blur(_transposed_conv_padded(x, wt, groups=1), resample_filter, bias)
    w = weight * scale.reshape(out_ch, in_ch, 1, 1)
    if kh == 1 and kw == 1 and x.is_contiguous(memory_format=torch.channels_last):
        _, _, h, width = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(h * width, in_ch)
        w2 = w.reshape(out_ch, in_ch).t()
        y = rows @ w2 if bias is None else torch.addmm(bias, rows, w2)
        return y.reshape(1, h, width, out_ch).permute(0, 3, 1, 2)
    return F.conv2d(x, w, bias=bias, padding=kh // 2)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: bool = False,
    resample_filter: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    fused: bool | None = None,
    input_gain: float = 1.0,
) -> torch.Tensor:
    """StyleGAN2 modulated (and demodulated) convolution, optionally with 2x up-sampling.

    Args:
        x: ``[N, in, H, W]``.
        weight: ``[out, in, k, k]``.
        styles: ``[N, in]`` per-sample input-channel scales.
        demodulate: normalise each output filter to unit norm (not for ToRGB).
        up: transposed stride-2 conv followed by ``resample_filter`` (gain 4).
        bias: ``[out]`` added to the result (for free inside the last conv).
        fused: modulate the weights per sample (one grouped conv) instead of scaling the
            activations (one shared conv). Equal results; ``None`` picks the faster one:
            fused for a single sample, shared for batches.
        input_gain: ``x`` is taken as ``input_gain * x``; applied after demodulation, on
            the (small) weights rather than on the activations.

    Returns:
        ``[N, out, H', W']`` with ``H' = 2H`` when ``up`` else ``H``.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if fused is None:
        fused = n == 1
    dcoefs = None
    if demodulate:
        # sum_{i,k} (w[o,i,k] s[i])^2 = (s^2 @ sum_k w[o,i,k]^2) : no [N, out, in, k, k] temporary
        wsq = weight.square().sum(dim=[2, 3])  # [out, in]
        dcoefs = (styles.square() @ wsq.t() + 1e-8).rsqrt()  # [N, out]
    if fused:
        scale = styles.reshape(n, 1, in_ch) * input_gain  # [N, out|1, in]
        if dcoefs is not None:
            scale = scale * dcoefs.reshape(n, out_ch, 1)
        scale = scale.expand(n, out_ch, in_ch)
        if n == 1:
            return _fused_single(x, weight, scale[0], up, resample_filter, bias)
        # a batch: one grouped convolution with a modulated weight per sample
        w = weight.unsqueeze(0) * scale.reshape(n, out_ch, in_ch, 1, 1)
        x = x.reshape(1, n * in_ch, *x.shape[2:])
        b = None if bias is None else bias.repeat(n)
        if up:
            wt = w.transpose(1, 2).reshape(n * in_ch, out_ch, kh, kw).contiguous()
            x = _blur(_transposed_conv_padded(x, wt, groups=n), resample_filter, b)
        else:
            x = F.conv2d(x, w.reshape(n * out_ch, in_ch, kh, kw), bias=b, padding=kh // 2, groups=n)
        return x.reshape(n, out_ch, *x.shape[2:])
    # shared-weight path: scale activations before, demodulation coefficients after
    x = x * (styles * input_gain).reshape(n, in_ch, 1, 1).to(x.dtype)
    if up:
        x = _transposed_conv_padded(x, weight.transpose(0, 1).contiguous(), groups=1)
        x = _blur(x, resample_filter, None)
    else:
        x = F.conv2d(x, weight, padding=kh // 2)
    if dcoefs is not None:
        x = x * dcoefs.reshape(n, out_ch, 1, 1)
    if bias is not None:
        x = x + bias.reshape(1, -1, 1, 1)
    return x


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + bias) * gain)`` with StyleGAN's conventions (lrelu has slope 0.2)."""
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
