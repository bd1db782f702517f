"""AttGAN generator and discriminator (He et al., "AttGAN: Facial Attribute Editing by
Only Changing What You Want", IEEE TIP 2019).

Parameter names and shapes follow the PyTorch release (elvisyjlin/AttGAN-PyTorch,
``attgan.py``: ``Generator`` / ``Discriminators``) so its ``weights.N.pth`` files load
strictly. Known problems of the release are fixed without changing any key:

- the discriminator's fc input width follows the real last conv width and image size
  (the release hard-codes ``1024 * f * f``), and the classification head has
  ``n_attrs`` outputs (the release hard-codes 13);
- shortcut widths come from the real encoder features (the release assumes
  ``enc_dim == dec_dim``);
- attributes are tiled to the actual feature size, so one generator runs at any input
  size divisible by ``2 ** enc_layers``.

Extension (paper, Sec. III-D "attribute style"): with ``style_dim > 0`` the generator
also takes per-attribute style controllers ``theta [N, n_attrs, style_dim]`` tiled like
the attributes, and the discriminator gets a third head ``fc_style`` that predicts them
(the InfoGAN-style mutual-information term). ``style_dim = 0`` gives the release's keys.

Extension (not in the paper): with ``edit_mask`` the decoder also draws a mask
``m [N, 1, H, W]`` in [0, 1]: a second last layer ``mask_layer`` (a transposed conv + sigmoid
beside the RGB one, reading the same features), and the output is ``m * generated + (1 -
m) * img``: pixels the mask leaves out are the input's, exactly, so the generator only
redraws where it chooses to (spatial attention, as GANimation and attention-guided AttGAN
variants do). Every release key stays as it is; the mask adds ``mask_layer.*``.

Images are ``[N, 3, H, W]`` in ``[-1, 1]``; attribute inputs are the scaled vector
``att_ = (att * 2 - 1) * thres_int`` (``[N, n_attrs]``).

Inference: :meth:`AttGANGenerator.inference_copy` + :func:`fast_generate` compute the
same function with batch norm folded into the convolutions, transposed convolutions in
sub-pixel form and GEMMs for small feature maps (``benchmarks/bench_attgan.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.nets.base import ConfigModule

MAX_DIM = 1024

# The 13 attributes of the released models, in their order.
DEFAULT_ATTRS: tuple[str, ...] = (
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "No_Beard",
    "Pale_Skin",
    "Young",
)

NORMS = ("batchnorm", "instancenorm", "switchnorm", "none")
ACTIVATIONS = ("relu", "lrelu", "sigmoid", "tanh", "none")
_NORM_ALIASES = {"switchable": "switchnorm", "batch": "batchnorm", "instance": "instancenorm"}


def _norm_name(name: str) -> str:
    name = _NORM_ALIASES.get(name, name)
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r} (choose from {', '.join(NORMS)}, switchable)")
    return name


def _check_acti(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (choose from {', '.join(ACTIVATIONS)})")
    return name


@dataclass(frozen=True)
class AttGANGeneratorConfig:
    """Generator hyper-parameters (names follow the release's ``setting.txt``)."""

    enc_dim: int = 64
    enc_layers: int = 5
    enc_norm: str = "batchnorm"
    enc_acti: str = "lrelu"
    dec_dim: int = 64
    dec_layers: int = 5
    dec_norm: str = "batchnorm"
    dec_acti: str = "relu"
    n_attrs: int = 13
    shortcut_layers: int = 1
    inject_layers: int = 0
    img_size: int = 128
    attrs: tuple[str, ...] = DEFAULT_ATTRS
    thres_int: float = 0.5
    test_int: float = 1.0
    style_dim: int = 0
    # which attributes an edit switches off with the one it switches on: a name in
    # faceedit.attributes.CONFLICT_RULES ("release": the release's rules for CelebA)
    conflict_rules: str = "release"
    # a learned edit mask: the output keeps the input where the mask is 0 (off: the release)
    edit_mask: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "enc_norm", _norm_name(self.enc_norm))
        object.__setattr__(self, "dec_norm", _norm_name(self.dec_norm))
        _check_acti(self.enc_acti)
        _check_acti(self.dec_acti)
        if self.enc_layers < 1 or self.dec_layers < 1:
            raise ValueError("enc_layers and dec_layers must be at least 1")
        if self.enc_layers != self.dec_layers:
            # every layer halves or doubles the size: other depths cannot give back H x W
            raise ValueError(
                f"enc_layers ({self.enc_layers}) must equal dec_layers ({self.dec_layers})"
            )
        if self.n_attrs < 1:
            raise ValueError("n_attrs must be at least 1")
        if len(self.attrs) != self.n_attrs:
            if self.attrs == DEFAULT_ATTRS:
                object.__setattr__(self, "attrs", tuple(f"attr_{i}" for i in range(self.n_attrs)))
            else:
                raise ValueError(f"{len(self.attrs)} attribute names for n_attrs={self.n_attrs}")
        object.__setattr__(self, "attrs", tuple(self.attrs))
        if len(set(self.attrs)) != len(self.attrs):
            raise ValueError(f"attribute names repeat: {self.attrs}")
        step = 2**self.enc_layers
        if self.img_size < step or self.img_size % step:
            raise ValueError(
                f"img_size {self.img_size} must be a multiple of 2**enc_layers = {step}"
            )
        if self.style_dim < 0:
            raise ValueError("style_dim must be >= 0")

    @property
    def cond_dim(self) -> int:
        """Channels of the tiled condition: attributes plus style controllers."""
        return self.n_attrs * (1 + self.style_dim)


@dataclass(frozen=True)
class AttGANDiscriminatorConfig:
    """Discriminator / classifier hyper-parameters (``dis_*`` fields of ``setting.txt``)."""

    dim: int = 64
    norm: str = "instancenorm"
    acti: str = "lrelu"
    fc_dim: int = 1024
    fc_norm: str = "none"
    fc_acti: str = "relu"
    n_layers: int = 5
    img_size: int = 128
    n_attrs: int = 13
    style_dim: int = 0
    # the style head's hidden activation: leaky, because with the release's ReLU every
    # hidden unit of the head died within the first steps of each avatar style run (its
    # output a constant, the recovery error stuck at 1/3, no gradient left to revive it)
    style_acti: str = "lrelu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", _norm_name(self.norm))
        object.__setattr__(self, "fc_norm", _norm_name(self.fc_norm))
        _check_acti(self.acti)
        _check_acti(self.fc_acti)
        _check_acti(self.style_acti)
        step = 2**self.n_layers
        if self.n_layers < 1 or self.img_size < step or self.img_size % step:
            raise ValueError(f"img_size {self.img_size} must be a multiple of 2**n_layers = {step}")

    @property
    def f_size(self) -> int:
        return self.img_size // 2**self.n_layers

    @property
    def trunk_dim(self) -> int:
        return min(self.dim * 2 ** (self.n_layers - 1), MAX_DIM)


@dataclass(frozen=True)
class AttGANConfig:
    """Both networks of one experiment (a released ``weights.N.pth`` + ``setting.txt``)."""

    G: AttGANGeneratorConfig = field(default_factory=AttGANGeneratorConfig)
    D: AttGANDiscriminatorConfig | None = field(default_factory=AttGANDiscriminatorConfig)


class SwitchNorm2d(nn.Module):
    """Switchable normalisation (Luo et al. 2018): a learned softmax mix of instance,
    layer and batch statistics. Parameter and buffer names follow the release's copy
    (``weight``, ``bias``, ``mean_weight``, ``var_weight``, ``running_mean``,
    ``running_var``) so switchnorm checkpoints load.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.register_buffer("running_mean", torch.zeros(1, num_features, 1))
        self.register_buffer("running_var", torch.zeros(1, num_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, -1)
        mean_in = flat.mean(-1, keepdim=True)
        var_in = flat.var(-1, keepdim=True)
        second = var_in + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = second.mean(1, keepdim=True) - mean_ln**2
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = second.mean(0, keepdim=True) - mean_bn**2
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean_bn)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var_bn)
        else:
            mean_bn, var_bn = self.running_mean, self.running_var
        mw = torch.softmax(self.mean_weight, 0)
        vw = torch.softmax(self.var_weight, 0)
        mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
        var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
        out = (flat - mean) / (var + self.eps).sqrt()
        return out.reshape(n, c, h, w) * self.weight + self.bias


def _norm2d(name: str, channels: int) -> nn.Module | None:
    if name == "batchnorm":
        return nn.BatchNorm2d(channels)
    if name == "instancenorm":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "switchnorm":
        return SwitchNorm2d(channels)
    return None


def _acti(name: str) -> nn.Module | None:
    return {
        "relu": nn.ReLU,
        "lrelu": nn.LeakyReLU,  # slope 0.01, as in the release
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
    }.get(name, lambda: None)()


class _Block(nn.Module):
    """``layers = Sequential(conv/linear, [norm], [activation])``; bias only without norm."""

    def __init__(self, core: nn.Module, norm: nn.Module | None, acti: nn.Module | None) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[m for m in (core, norm, acti) if m is not None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def conv_block(n_in: int, n_out: int, norm: str, acti: str, transpose: bool = False) -> _Block:
    conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    conv = conv_cls(n_in, n_out, 4, stride=2, padding=1, bias=norm == "none")
    return _Block(conv, _norm2d(norm, n_out), _acti(acti))


def linear_block(n_in: int, n_out: int, norm: str, acti: str) -> _Block:
    norm_mod: nn.Module | None = None
    if norm == "batchnorm":
        norm_mod = nn.BatchNorm1d(n_out)
    elif norm == "instancenorm":
        # the release's LinearBlock maps instancenorm to a per-sample feature norm
        norm_mod = nn.LayerNorm(n_out)
    elif norm == "switchnorm":
        raise ValueError("switchnorm is not available for fully connected layers")
    return _Block(nn.Linear(n_in, n_out, bias=norm == "none"), norm_mod, _acti(acti))


def _tile(cond: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return cond[:, :, None, None].expand(-1, -1, h, w)


class AttGANGenerator(ConfigModule):
    """Encoder-decoder generator.

    ``G(img, attrs)`` = ``G.decode(G.encode(img), attrs)``; ``img [N, 3, H, W]`` in
    [-1, 1] with H, W multiples of ``2 ** enc_layers``; ``attrs [N, n_attrs]`` scaled
    (``+-thres_int`` for training labels); output in [-1, 1].
    """

    architecture = "attgan-generator"
    config_class = AttGANGeneratorConfig

    def __init__(self, config: AttGANGeneratorConfig | None = None) -> None:
        super().__init__(config or AttGANGeneratorConfig())
        c = self.config
        n = c.enc_layers
        self.shortcut_layers = min(c.shortcut_layers, n - 1)
        self.inject_layers = min(c.inject_layers, n - 1)
        enc_widths = [min(c.enc_dim * 2**i, MAX_DIM) for i in range(n)]
        self.enc_widths = enc_widths
        layers = []
        n_in = 3
        for w in enc_widths:
            layers.append(conv_block(n_in, w, c.enc_norm, c.enc_acti))
            n_in = w
        self.enc_layers = nn.ModuleList(layers)
        layers = []
        n_in = enc_widths[-1] + c.cond_dim
        for i in range(n):
            if i < n - 1:
                n_out = min(c.dec_dim * 2 ** (n - i - 1), MAX_DIM)
                layers.append(conv_block(n_in, n_out, c.dec_norm, c.dec_acti, transpose=True))
                n_in = n_out
                if i < self.shortcut_layers:
                    n_in += enc_widths[n - 2 - i]
                if i < self.inject_layers:
                    n_in += c.cond_dim
            else:
                layers.append(conv_block(n_in, 3, "none", "tanh", transpose=True))
        self.dec_layers = nn.ModuleList(layers)
        if c.edit_mask:  # reads what the RGB layer reads
            self.mask_layer = conv_block(n_in, 1, "none", "sigmoid", transpose=True)

    def encode(self, img: torch.Tensor) -> list[torch.Tensor]:
        """``img [N, 3, H, W]`` -> feature maps, finest first (``[N, C_i, H/2^(i+1), ...]``)."""
        self._check_img(img)
        feats = []
        x = img
        for layer in self.enc_layers:
            x = layer(x)
            feats.append(x)
        return feats

    def decode(
        self,
        feats: list[torch.Tensor],
        attrs: torch.Tensor,
        style: torch.Tensor | None = None,
        img: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Features from :meth:`encode` + ``attrs [N, n_attrs]`` (+ ``style [N, n_attrs,
        style_dim]`` when ``style_dim > 0``, zeros if omitted) -> ``img [N, 3, H, W]``.

        With ``edit_mask`` the source ``img [N, 3, H, W]`` is required: the output is
        ``m * generated + (1 - m) * img`` (:meth:`decode_parts`, :func:`compose_edit`)."""
        generated, mask = self.decode_parts(feats, attrs, style)
        if mask is None:
            return generated
        if img is None:
            raise ValueError("a generator with an edit mask needs the source img to decode")
        return compose_edit(img, generated, mask)

    def decode_parts(
        self,
        feats: list[torch.Tensor],
        attrs: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(generated [N, 3, H, W] in [-1, 1], mask [N, 1, H, W] in [0, 1] or None)``:
        the decoder's drawing and, with ``edit_mask``, where it is to replace the input."""
        cond = self.condition(attrs, style, feats[-1].shape[0])
        z = torch.cat([feats[-1], _tile(cond, *feats[-1].shape[2:])], dim=1)
        n = len(self.dec_layers)
        for i, layer in enumerate(self.dec_layers[:-1]):
            z = layer(z)
            if i < self.shortcut_layers:
                z = torch.cat([z, feats[n - 2 - i]], dim=1)
            if i < self.inject_layers:
                z = torch.cat([z, _tile(cond, *z.shape[2:])], dim=1)
        generated = self.dec_layers[-1](z)
        if not self.config.edit_mask:
            return generated, None
        return generated, self.mask_layer(z)

    def forward(
        self, img: torch.Tensor, attrs: torch.Tensor, style: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.decode(self.encode(img), attrs, style, img=img)

    def forward_with_mask(
        self, img: torch.Tensor, attrs: torch.Tensor, style: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(output [N, 3, H, W], mask [N, 1, H, W])``; without ``edit_mask`` the mask is
        all ones (every pixel is the decoder's)."""
        generated, mask = self.decode_parts(self.encode(img), attrs, style)
        if mask is None:
            return generated, torch.ones_like(generated[:, :1])
        return compose_edit(img, generated, mask), mask

    def condition(
        self, attrs: torch.Tensor, style: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """The vector that is tiled into the decoder: ``[N, n_attrs * (1 + style_dim)]``."""
        c = self.config
        if attrs.ndim != 2 or attrs.shape[1] != c.n_attrs or attrs.shape[0] != batch:
            raise ValueError(f"attrs must be [{batch}, {c.n_attrs}], got {list(attrs.shape)}")
        if c.style_dim == 0:
            if style is not None:
                raise ValueError("this generator has no style controllers (style_dim=0)")
            return attrs
        if style is None:
            style = attrs.new_zeros(batch, c.n_attrs, c.style_dim)
        if tuple(style.shape) != (batch, c.n_attrs, c.style_dim):
            raise ValueError(
                f"style must be [{batch}, {c.n_attrs}, {c.style_dim}], got {list(style.shape)}"
            )
        return torch.cat([attrs, style.reshape(batch, -1)], dim=1)

    def _check_img(self, img: torch.Tensor) -> None:
        step = 2 ** len(self.enc_layers)
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be [N, 3, H, W], got {list(img.shape)}")
        if img.shape[2] % step or img.shape[3] % step:
            raise ValueError(
                f"image size {img.shape[2]}x{img.shape[3]} is not a multiple of {step} "
                f"(2**enc_layers)"
            )

    def inference_copy(self) -> AttGANGenerator:
        """A copy for fast inference: batch norm folded into the convs, transposed convs
        computed as sub-pixel ordinary convs (:class:`SubPixelConvTranspose`).

        The result computes the same function as ``self.eval()`` (within float
        rounding), has no norm layers to run, and must be called under
        ``torch.inference_mode()`` (see :func:`fast_generate`). Its state dict no longer
        matches the release's keys, so it is not meant to be saved.
        """
        folded = copy.deepcopy(self).eval()
        blocks = list(folded.enc_layers) + list(folded.dec_layers)
        if self.config.edit_mask:
            blocks.append(folded.mask_layer)
        for block in blocks:
            _fold_block(block)
            first = block.layers[0]
            if isinstance(first, nn.ConvTranspose2d):
                block.layers[0] = SubPixelConvTranspose(first)
            elif isinstance(first, nn.Conv2d):
                block.layers[0] = FastConv2d(first)
            for m in block.layers:
                if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
                    m.inplace = True  # the conv output is a fresh tensor nobody else reads
        for p in folded.parameters():
            p.requires_grad_(False)
        return folded


def compose_edit(img: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask * generated + (1 - mask) * img``: ``img, generated [N, 3, H, W]``, ``mask
    [N, 1, H, W]`` in [0, 1]. Where the mask is exactly 0 the input comes back bit for bit."""
    return mask * generated + (1 - mask) * img


def _fold_block(block: _Block) -> None:
    mods = list(block.layers)
    if len(mods) < 2 or not isinstance(mods[1], nn.BatchNorm2d):
        return
    conv, bn = mods[0], mods[1]
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() - bn.running_mean * scale
    with torch.no_grad():
        w = conv.weight.detach().clone()
        if isinstance(conv, nn.ConvTranspose2d):  # weight [in, out, k, k]
            w = w * scale[None, :, None, None]
        else:  # weight [out, in, k, k]
            w = w * scale[:, None, None, None]
        bias = shift if conv.bias is None else conv.bias.detach() * scale + shift
        new = copy.deepcopy(conv)
        new.weight = nn.Parameter(w, requires_grad=False)
        new.bias = nn.Parameter(bias.clone(), requires_grad=False)
    block.layers = nn.Sequential(new, *mods[2:])


# Output positions (batch x height x width) up to which a convolution runs as patches +
# one matrix product: small feature maps with wide layers are bound by reading the
# weights, and a plain GEMM reads them once, where the convolution kernels spend far
# longer re-arranging them.
GEMM_MAX_POSITIONS = 1024


def _conv_nhwc(
    x: torch.Tensor, weight: torch.Tensor, wmat: torch.Tensor, bias, stride: int, padding: int
) -> torch.Tensor:
    """``conv2d(x, weight)`` returned as ``[n, ho, wo, c_out]`` (channels-last memory).

    ``wmat [k * k * c_in, c_out]`` is ``weight`` in (kh, kw, c_in) row order, matching
    patches gathered from the channels-last input.
    """
    n, _, h, w = x.shape
    k = weight.shape[-1]
    ho = (h + 2 * padding - k) // stride + 1
    wo = (w + 2 * padding - k) // stride + 1
    if n * ho * wo <= GEMM_MAX_POSITIONS:
        xh = x.permute(0, 2, 3, 1)  # NHWC view (no copy for channels-last inputs)
        if padding:
            xh = F.pad(xh, (0, 0, padding, padding, padding, padding))
        patches = xh.unfold(1, k, stride).unfold(2, k, stride)  # [n, ho, wo, c, kh, kw]
        cols = patches.permute(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, -1)
        out = cols @ wmat if bias is None else torch.addmm(bias, cols, wmat)
        return out.view(n, ho, wo, -1)
    x = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight, bias, stride=stride, padding=padding).permute(0, 2, 3, 1)


def _gemm_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[c_out, c_in, kh, kw]`` -> ``[kh * kw * c_in, c_out]``."""
    return weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous()


class FastConv2d(nn.Module):
    """Inference-only ``Conv2d`` (no grad, square kernel, equal stride/padding) that
    picks a GEMM for small outputs and the channels-last convolution otherwise."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.stride, self.padding = conv.stride[0], conv.padding[0]
        w = conv.weight.detach()
        self.register_buffer("weight", w.clone())
        self.register_buffer("wmat", _gemm_weight(w))
        b = conv.bias.detach().clone() if conv.bias is not None else None
        self.register_buffer("bias", b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _conv_nhwc(x, self.weight, self.wmat, self.bias, self.stride, self.padding)
        return y.permute(0, 3, 1, 2)


class SubPixelConvTranspose(nn.Module):
    """``ConvTranspose2d(k=4, stride=2, padding=1)`` computed as one ordinary 2x2
    convolution with four output phases, interleaved into the doubled grid.

    Why: CPU backends have fast kernels for ordinary convolutions (and GEMMs) but a slow
    path for transposed ones. Output pixel ``(2i + ry, 2j + rx)`` only sees a 2x2 input
    window, so phase ``(ry, rx)`` is a 2x2 convolution whose taps are the transposed
    kernel's entries ``k(r, t) = ((3, 1), (2, 0))[r][t]``; the phases are taken from one
    ``padding=1`` convolution at offsets ``(ry, rx)``.
    """

    _TAP = ((3, 1), (2, 0))

    def __init__(self, convt: nn.ConvTranspose2d) -> None:
        super().__init__()
        if convt.kernel_size != (4, 4) or convt.stride != (2, 2) or convt.padding != (1, 1):
            raise ValueError("only ConvTranspose2d(kernel 4, stride 2, padding 1) is supported")
        w = convt.weight.detach()  # [in, out, 4, 4]
        self.out_channels = w.shape[1]
        phases = []
        for ry in (0, 1):
            for rx in (0, 1):
                rows = [w[:, :, self._TAP[ry][ty]] for ty in (0, 1)]  # each [in, out, 4]
                k = torch.stack(
                    [torch.stack([r[:, :, self._TAP[rx][tx]] for tx in (0, 1)], -1) for r in rows],
                    -2,
                )  # [in, out, 2, 2]
                phases.append(k.transpose(0, 1))
        weight = torch.cat(phases, 0).contiguous()  # [4 * out, in, 2, 2], phase-major
        self.register_buffer("weight", weight)
        self.register_buffer("wmat", _gemm_weight(weight))
        self.register_buffer(
            "bias", convt.bias.detach().clone() if convt.bias is not None else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.out_channels
        # [n, h+1, w+1, 4, c]: channels-last, so each phase is copied in runs of c floats
        o = _conv_nhwc(x, self.weight, self.wmat, None, 1, 1).reshape(n, h + 1, w + 1, 4, c)
        y = x.new_empty(n, h, 2, w, 2, c)
        y[:, :, 0, :, 0] = o[:, :h, :w, 0]
        y[:, :, 0, :, 1] = o[:, :h, 1:, 1]
        y[:, :, 1, :, 0] = o[:, 1:, :w, 2]
        y[:, :, 1, :, 1] = o[:, 1:, 1:, 3]
        if self.bias is not None:
            y += self.bias
        return y.view(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)  # NCHW view, NHWC memory


def fast_generate(
    G_fast: AttGANGenerator, img: torch.Tensor, attrs: torch.Tensor, style=None
) -> torch.Tensor:
    """Run an :meth:`AttGANGenerator.inference_copy` without autograd bookkeeping.

    At bf16 precision (:func:`faceedit.nets.inference.inference_context`) a bfloat16 copy
    of ``G_fast`` (made once, kept on it) computes the image; the result is float32.
    """
    from faceedit.nets import inference

    dtype = inference.current_dtype()
    with torch.inference_mode():
        if dtype != torch.float32 and img.device.type == "cpu":
            low = G_fast.__dict__.get("_low_precision")
            if low is None or low[0] != dtype:
                low = (dtype, copy.deepcopy(G_fast).to(dtype))
                G_fast.__dict__["_low_precision"] = low
            x = img.to(dtype).contiguous(memory_format=torch.channels_last)
            style = None if style is None else style.to(dtype)
            return low[1](x, attrs.to(dtype), style).float().contiguous()
        out = G_fast(img.contiguous(memory_format=torch.channels_last), attrs, style)
        return out.contiguous()


class AttGANDiscriminator(ConfigModule):
    """Shared conv trunk + adversarial head ``fc_adv`` + attribute head ``fc_cls``
    (+ ``fc_style`` when ``style_dim > 0``).

    ``D(img [N, 3, S, S]) -> (adv [N, 1], cls_logits [N, n_attrs])`` with ``S = img_size``.
    """

    architecture = "attgan-discriminator"
    config_class = AttGANDiscriminatorConfig

    def __init__(self, config: AttGANDiscriminatorConfig | None = None) -> None:
        super().__init__(config or AttGANDiscriminatorConfig())
        c = self.config
        layers = []
        n_in = 3
        for i in range(c.n_layers):
            n_out = min(c.dim * 2**i, MAX_DIM)
            layers.append(conv_block(n_in, n_out, c.norm, c.acti))
            n_in = n_out
        self.conv = nn.Sequential(*layers)
        flat = c.trunk_dim * c.f_size * c.f_size
        self.fc_adv = nn.Sequential(
            linear_block(flat, c.fc_dim, c.fc_norm, c.fc_acti),
            linear_block(c.fc_dim, 1, "none", "none"),
        )
        self.fc_cls = nn.Sequential(
            linear_block(flat, c.fc_dim, c.fc_norm, c.fc_acti),
            linear_block(c.fc_dim, c.n_attrs, "none", "none"),
        )
        if c.style_dim > 0:
            self.fc_style = nn.Sequential(
                linear_block(flat, c.fc_dim, c.fc_norm, c.style_acti),
                linear_block(c.fc_dim, c.n_attrs * c.style_dim, "none", "none"),
            )

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """Flattened trunk features ``[N, trunk_dim * f * f]``."""
        c = self.config
        if img.ndim != 4 or img.shape[1] != 3 or img.shape[2:] != (c.img_size, c.img_size):
            raise ValueError(
                f"discriminator expects [N, 3, {c.img_size}, {c.img_size}], got {list(img.shape)}"
            )
        return self.conv(img).flatten(1)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(img)
        return self.fc_adv(h), self.fc_cls(h)

    def classify(self, img: torch.Tensor) -> torch.Tensor:
        """Attribute logits only: ``[N, n_attrs]``."""
        return self.fc_cls(self.features(img))

    def predict_style(self, img: torch.Tensor) -> torch.Tensor:
        """Style controllers recovered from an image: ``[N, n_attrs, style_dim]``."""
        c = self.config
        if c.style_dim == 0:
            raise ValueError("this discriminator has no style head (style_dim=0)")
        return self.fc_style(self.features(img)).reshape(-1, c.n_attrs, c.style_dim)


class AttGAN(ConfigModule):
    """Both networks of one experiment: ``.G`` and ``.D`` (``None`` for G-only files).

    State-dict keys are ``G.*`` and ``D.*``, the top-level names of the release's
    checkpoint.
    """

    architecture = "attgan"
    config_class = AttGANConfig

    def __init__(self, config: AttGANConfig | None = None) -> None:
        super().__init__(config or AttGANConfig())
        self.G = AttGANGenerator(self.config.G)
        self.D = AttGANDiscriminator(self.config.D) if self.config.D is not None else None

    @property
    def attrs(self) -> tuple[str, ...]:
        return self.config.G.attrs

    def forward(self, img: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        return self.G(img, attrs)


def scale_attrs(att: torch.Tensor, thres_int: float) -> torch.Tensor:
    """Binary labels ``{0, 1} [N, n_attrs]`` -> generator input ``(2 * att - 1) * thres_int``."""
    return (att.float() * 2 - 1) * thres_int


def resize_for(img: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``[N, 3, H, W]`` to ``size x size`` (identity when it already fits)."""
    if img.shape[-2:] == (size, size):
        return img
    return F.interpolate(
        img, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


__all__ = [
    "AttGAN",
    "AttGANConfig",
    "AttGANDiscriminator",
    "AttGANDiscriminatorConfig",
    "AttGANGenerator",
    "AttGANGeneratorConfig",
    "DEFAULT_ATTRS",
    "SwitchNorm2d",
    "compose_edit",
    "fast_generate",
    "scale_attrs",
]
