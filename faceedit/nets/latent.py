"""Latent classifier and latent transformer on StyleGAN2 W+ codes.

Yao et al., "A Latent Transformer for Disentangled Face Editing in Images and Videos",
ICCV 2021 (code: InterDigitalInc/latent-transformer, ``nets.py``):

- :class:`LatentClassifier` is an MLP on the flattened W+ code ``[N, num_ws * w_dim]``
  that predicts attribute logits. Its weights are named ``fcs.{i}.weight/bias`` like the
  released ``latent_classifier_epoch_20.pth`` (9216-2048-512-40, LeakyReLU 0.2).
- :class:`LatentTransformer` is ``T(w, a) = w + a * f(w)`` where ``f`` applies one linear
  map per W+ row (``dense.{i}.weight [w_dim, w_dim]``, weight scaled at run time by
  ``lrmul / sqrt(fan_in)`` = equalised learning rate, bias unscaled) like the released
  ``tnet_{k}.pth.tar``; ``dense=True`` selects the full ``9216 x 9216`` map described in
  the authors' slides (``dense.weight``, ``dense.bias``).
- :class:`LatentTransformerBank` stacks ``K`` transformers into batched tensors so that
  several attributes train together with one ``einsum`` (see ``faceedit.train.latent``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.nets.base import ConfigModule

_ACTIVATIONS = ("leakyrelu", "relu")


@dataclass(frozen=True)
class LatentClassifierConfig:
    """An MLP ``num_ws * w_dim -> hidden... -> n_attrs``.

    ``attr_names`` may be empty: a 40-output classifier then uses CelebA's order
    (``faceedit.attributes.CELEBA_ATTRS``).
    """

    num_ws: int = 18
    w_dim: int = 512
    hidden: tuple[int, ...] = (2048, 512)
    n_attrs: int = 40
    activation: str = "leakyrelu"
    negative_slope: float = 0.2
    dropout: float = 0.0
    attr_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if self.num_ws < 1 or self.w_dim < 1 or self.n_attrs < 1:
            raise ValueError("num_ws, w_dim and n_attrs must be positive")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attr_names and len(self.attr_names) != self.n_attrs:
            raise ValueError(f"{len(self.attr_names)} attr_names for {self.n_attrs} outputs")

    @property
    def in_features(self) -> int:
        return self.num_ws * self.w_dim

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.in_features, *self.hidden, self.n_attrs)


def classifier_preset(name: str, **overrides) -> LatentClassifierConfig:
    """Named classifier configs: ``released`` (9216-2048-512-40, LeakyReLU 0.2, the
    released ``latent_classifier_epoch_20.pth``) and ``small`` (9216-1024-256-40, ReLU).
    ``overrides`` replace fields (e.g. ``num_ws=8, w_dim=32`` for tiny generators)."""
    presets = {
        "released": LatentClassifierConfig(hidden=(2048, 512), activation="leakyrelu"),
        "small": LatentClassifierConfig(hidden=(1024, 256), activation="relu"),
    }
    if name not in presets:
        raise ValueError(f"unknown classifier preset {name!r} (known: {', '.join(presets)})")
    return replace(presets[name], **overrides)


CLASSIFIER_PRESETS = ("released", "small")


class LatentClassifier(ConfigModule):
    """Attribute logits of W+ codes.

    ``forward(ws [N, num_ws, w_dim] or [N, num_ws * w_dim]) -> logits [N, n_attrs]``
    (raw logits; ``sigmoid`` gives probabilities).
    """

    architecture = "latent_classifier"
    config_class = LatentClassifierConfig

    def __init__(self, config: LatentClassifierConfig | None = None) -> None:
        super().__init__(config or LatentClassifierConfig())
        widths = self.config.widths
        self.fcs = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.activation == "relu":
            return F.relu(x)
        return F.leaky_relu(x, self.config.negative_slope)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = flatten_ws(ws, self.config.num_ws, self.config.w_dim, "LatentClassifier")
        for layer in self.fcs[:-1]:
            x = self._act(layer(x))
            if self.config.dropout > 0:
                x = F.dropout(x, self.config.dropout, self.training)
        return self.fcs[-1](x)

    def single(self, index: int) -> LatentClassifier:
        """A copy whose head predicts attribute ``index`` only (``n_attrs = 1``)."""
        names = self.config.attr_names
        config = replace(self.config, n_attrs=1, attr_names=(names[index],) if names else ())
        head = LatentClassifier(config)
        state = {k: v.clone() for k, v in self.state_dict().items()}
        last = len(self.fcs) - 1
        state[f"fcs.{last}.weight"] = state[f"fcs.{last}.weight"][index : index + 1]
        state[f"fcs.{last}.bias"] = state[f"fcs.{last}.bias"][index : index + 1]
        head.load_state_dict(state)
        return head


@dataclass(frozen=True)
class LatentTransformerConfig:
    """``T(w, a) = w + a * f(w)`` on W+ codes ``[N, num_ws, w_dim]``.

    ``dense=False``: ``f`` is one ``w_dim x w_dim`` map per row (the released structure);
    ``dense=True``: one ``(num_ws*w_dim)^2`` map over the whole code.
    """

    num_ws: int = 18
    w_dim: int = 512
    dense: bool = False
    lrmul: float = 1.0
    attr_name: str = ""

    def __post_init__(self) -> None:
        if self.num_ws < 1 or self.w_dim < 1:
            raise ValueError("num_ws and w_dim must be positive")
        if self.lrmul <= 0:
            raise ValueError(f"lrmul must be positive, got {self.lrmul}")

    @property
    def groups(self) -> int:
        """Independent linear maps: one per row, or a single dense one."""
        return 1 if self.dense else self.num_ws

    @property
    def group_dim(self) -> int:
        return self.num_ws * self.w_dim if self.dense else self.w_dim


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: ``x @ (weight * lrmul / sqrt(in)).T + bias``.

    The bias is not scaled, as in the released transformer (its ``lrmul`` is 1 anyway).
    """

    def __init__(self, in_features: int, out_features: int, lrmul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = lrmul / math.sqrt(in_features)
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class LatentTransformer(ConfigModule):
    """One attribute's transformer ``T(w, a) = w + a * f(w)``.

    ``forward(ws [N, num_ws, w_dim] or [N, num_ws * w_dim], alpha [N] or float) -> ws``
    of the input's shape. ``alpha`` may be any real number (beyond [-1, 1] too).
    """

    architecture = "latent_transformer"
    config_class = LatentTransformerConfig

    def __init__(self, config: LatentTransformerConfig | None = None) -> None:
        super().__init__(config or LatentTransformerConfig())
        c = self.config
        if c.dense:
            self.dense = EqualLinear(c.group_dim, c.group_dim, c.lrmul)
        else:
            self.dense = nn.ModuleList(
                EqualLinear(c.w_dim, c.w_dim, c.lrmul) for _ in range(c.num_ws)
            )

    @property
    def scale(self) -> float:
        return self.config.lrmul / math.sqrt(self.config.group_dim)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw parameters as ``weight [groups, out, in]`` and ``bias [groups, out]``."""
        layers = [self.dense] if self.config.dense else list(self.dense)
        return (
            torch.stack([m.weight for m in layers]),
            torch.stack([m.bias for m in layers]),
        )

    def delta(self, ws: torch.Tensor) -> torch.Tensor:
        """``f(w)``: ``ws [N, num_ws, w_dim] -> [N, num_ws, w_dim]``."""
        c = self.config
        n = ws.shape[0]
        weight, bias = self.stacked()
        x = ws.reshape(n, c.groups, c.group_dim)
        out = torch.einsum("ngi,goi->ngo", x, weight * self.scale) + bias
        return out.reshape(n, c.num_ws, c.w_dim)

    def forward(self, ws: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        c = self.config
        flat = ws.dim() == 2
        x = unflatten_ws(ws, c.num_ws, c.w_dim, "LatentTransformer")
        a = _alpha(alpha, x)
        out = x + a.view(-1, 1, 1) * self.delta(x)
        return out.reshape(ws.shape) if flat else out


class LatentTransformerBank(nn.Module):
    """``K`` latent transformers as batched tensors, for training several attributes at once.

    ``forward(ws [N, num_ws, w_dim], alpha [K, N]) -> ws [K, N, num_ws, w_dim]`` with
    ``out[k] = T_k(ws, alpha[k])``. The raw (unscaled) parameters of all transformers are
    stored as ``weight [groups, d_in, K, d_out]`` and ``bias [groups, K, d_out]``: every
    group's input is then multiplied by all ``K`` maps at once, one
    ``[N, d] @ [d, K * d]`` product per group (a single ``bmm``), without copying the
    input ``K`` times or materialising scaled weights (the equalised-lr scale is applied
    to the input instead). Since Adam and weight decay act element-wise, training the
    bank with the sum of per-attribute losses is the same as training the ``K``
    transformers separately on the same batches.
    """

    def __init__(self, config: LatentTransformerConfig, count: int) -> None:
        super().__init__()
        if count < 1:
            raise ValueError("a bank needs at least one transformer")
        self.config = replace(config, attr_name="")
        self.count = count
        g, d = config.groups, config.group_dim
        # xavier_uniform of a square [d, d] matrix: U(-sqrt(3 / d), sqrt(3 / d))
        bound = math.sqrt(3.0 / d)
        self.weight = nn.Parameter(torch.empty(g, d, count, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(g, count, d))
        self.scale = config.lrmul / math.sqrt(d)

    @classmethod
    def from_transformers(cls, transformers: list[LatentTransformer]) -> LatentTransformerBank:
        config = transformers[0].config
        for t in transformers[1:]:
            if replace(t.config, attr_name="") != replace(config, attr_name=""):
                raise ValueError("all transformers in a bank must share num_ws, w_dim, dense")
        bank = cls(config, len(transformers))
        with torch.no_grad():
            for k, t in enumerate(transformers):
                weight, bias = t.stacked()  # [groups, out, in], [groups, out]
                bank.weight[:, :, k, :].copy_(weight.transpose(1, 2))
                bank.bias[:, k, :].copy_(bias)
        return bank

    def delta(self, ws: torch.Tensor) -> torch.Tensor:
        """``f_k(w)`` for every ``k``: ``ws [N, num_ws, w_dim] -> [K, N, num_ws, w_dim]``."""
        c = self.config
        g, d, k, n = c.groups, c.group_dim, self.count, ws.shape[0]
        x = (ws.reshape(n, g, d) * self.scale).transpose(0, 1)  # [G, N, d]
        out = torch.baddbmm(
            self.bias.reshape(g, 1, k * d), x, self.weight.reshape(g, d, k * d)
        )  # [G, N, K * d]
        out = out.reshape(g, n, k, d).permute(2, 1, 0, 3)  # [K, N, G, d]
        return out.reshape(k, n, c.num_ws, c.w_dim)

    def forward(self, ws: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = unflatten_ws(ws, c.num_ws, c.w_dim, "LatentTransformerBank")
        if alpha.shape != (self.count, x.shape[0]):
            raise ValueError(
                f"alpha must be [K={self.count}, N={x.shape[0]}], got {tuple(alpha.shape)}"
            )
        return x.unsqueeze(0) + alpha[:, :, None, None] * self.delta(x)

    def transformer(self, k: int, attr_name: str = "") -> LatentTransformer:
        """Transformer ``k`` as a standalone :class:`LatentTransformer` (copied weights)."""
        t = LatentTransformer(replace(self.config, attr_name=attr_name))
        layers = [t.dense] if self.config.dense else list(t.dense)
        with torch.no_grad():
            for i, m in enumerate(layers):
                m.weight.copy_(self.weight[i, :, k, :].T)
                m.bias.copy_(self.bias[i, k])
        return t.eval()


def flatten_ws(ws: torch.Tensor, num_ws: int, w_dim: int, who: str) -> torch.Tensor:
    """``[N, num_ws, w_dim]`` or ``[N, num_ws * w_dim]`` -> ``[N, num_ws * w_dim]``."""
    if ws.dim() == 3 and tuple(ws.shape[1:]) == (num_ws, w_dim):
        return ws.reshape(ws.shape[0], num_ws * w_dim)
    if ws.dim() == 2 and ws.shape[1] == num_ws * w_dim:
        return ws
    raise ValueError(
        f"{who}: expected ws [N, {num_ws}, {w_dim}] or [N, {num_ws * w_dim}], got {tuple(ws.shape)}"
    )


def unflatten_ws(ws: torch.Tensor, num_ws: int, w_dim: int, who: str) -> torch.Tensor:
    """``[N, num_ws, w_dim]`` or ``[N, num_ws * w_dim]`` -> ``[N, num_ws, w_dim]``."""
    return flatten_ws(ws, num_ws, w_dim, who).reshape(ws.shape[0], num_ws, w_dim)


def _alpha(alpha: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    if a.dim() == 0:
        return a.expand(n)
    a = a.reshape(-1)
    if a.shape[0] != n:
        raise ValueError(f"alpha must be a number or [N={n}], got {a.shape[0]} values")
    return a


def get_coeff(prob: torch.Tensor) -> torch.Tensor:
    """Editing strength from the classifier probability, as in training:
    ``1 - p`` where ``p < 0.5`` (towards 1), ``-p`` where ``p > 0.5``, ``0`` at 0.5."""
    return torch.where(prob < 0.5, 1 - prob, torch.where(prob > 0.5, -prob, torch.zeros_like(prob)))
