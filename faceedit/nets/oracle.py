"""Attribute oracle for the avatar domain: a small CNN that reads an avatar's labels.

It predicts every binary attribute (``Smiling``, ``Eyeglasses``, ...) and every
rendering parameter with more than one value (``eyes``, ``top``, ``skinColor``, ...;
see :mod:`faceedit.data.avatars`) from an image ``img [N, 3, H, W] in [-1, 1]``. An edit
is then judged by the oracle: the target attribute changed, the other attributes and
the identity parameters preserved (issue 5, points 2 and 6).

Architecture: ``len(channels)`` stages of (3x3 conv, BatchNorm, ReLU) x ``convs`` that
each halve the resolution (the first by a stride-2 conv unless ``stem_stride`` is 1,
the others by 2x2 max pooling), then the ``[C, h, w]`` map is flattened (positions matter:
eyes and mouth live in fixed places) into a hidden layer shared by all heads: one
linear layer of attribute logits and one linear layer of logits per parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.nets.base import ConfigModule


@dataclass(frozen=True)
class AvatarOracleConfig:
    """Sizes and label names of an :class:`AvatarOracle`.

    ``param_values[i]`` lists the values of parameter ``param_names[i]``, in the order
    of its logits, so a saved oracle names its own outputs.
    """

    img_size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 192)
    convs: int = 1
    hidden: int = 512
    dropout: float = 0.1
    stem_stride: int = 2
    attr_names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    param_values: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels) or self.convs < 1:
            raise ValueError(f"channels must be positive widths, got {self.channels}")
        if self.img_size % (2 ** len(self.channels)) != 0:
            raise ValueError(
                f"img_size {self.img_size} must be divisible by 2**{len(self.channels)} "
                "(each stage halves it)"
            )
        if len(self.param_names) != len(self.param_values):
            raise ValueError("param_names and param_values must have the same length")
        if any(len(v) < 2 for v in self.param_values):
            raise ValueError("every parameter head needs at least two values")
        if not self.attr_names and not self.param_names:
            raise ValueError("an oracle needs attr_names or param_names")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_size(self) -> int:
        side = self.img_size // (2 ** len(self.channels))
        return self.channels[-1] * side * side


@dataclass
class OracleOutput:
    """Logits of an oracle for a batch of ``N`` images.

    ``attrs [N, n_attrs]`` (sigmoid > 0.5 means the attribute is on) and
    ``params[name] [N, n_values]`` (softmax over the parameter's values).
    """

    attrs: torch.Tensor
    params: dict[str, torch.Tensor]


class AvatarOracle(ConfigModule):
    """CNN ``img [N, 3, H, W] in [-1, 1] -> OracleOutput`` (see the module docstring)."""

    architecture = "avatar_oracle"
    config_class = AvatarOracleConfig

    def __init__(self, config: AvatarOracleConfig) -> None:
        super().__init__(config)
        layers: list[nn.Module] = []
        width = 3
        # index in the trunk of each stage's last ReLU: where features() reads
        self._stage_ends: list[int] = []
        for stage, out in enumerate(config.channels):
            for j in range(config.convs):
                # the first conv strides instead of pooling: full-resolution feature
                # maps are what makes a CNN slow on a CPU
                stride = config.stem_stride if stage == 0 and j == 0 else 1
                layers += [
                    nn.Conv2d(width, out, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                ]
                width = out
            self._stage_ends.append(len(layers) - 1)
            if stage > 0 or config.stem_stride == 1:
                layers.append(nn.MaxPool2d(2))
        self.trunk = nn.Sequential(*layers)
        self.fc = nn.Linear(config.feature_size, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.attr_head = nn.Linear(config.hidden, len(config.attr_names))
        self.param_heads = nn.ModuleDict(
            {
                name: nn.Linear(config.hidden, len(values))
                for name, values in zip(config.param_names, config.param_values, strict=True)
            }
        )

    def forward(self, img: torch.Tensor) -> OracleOutput:
        """Args: ``img [N, 3, img_size, img_size]`` in [-1, 1]. Returns the logits."""
        size = self.config.img_size
        if img.ndim != 4 or img.shape[1] != 3 or img.shape[2:] != (size, size):
            raise ValueError(f"expected img [N, 3, {size}, {size}], got {list(img.shape)}")
        h = self.trunk(img).flatten(1)
        h = self.drop(F.relu(self.fc(h)))
        return OracleOutput(
            attrs=self.attr_head(h),
            params={name: head(h) for name, head in self.param_heads.items()},
        )

    def resized(self, img: torch.Tensor) -> torch.Tensor:
        """``img [N, 3, H, W]`` at the oracle's input side (bilinear, antialiased)."""
        size = self.config.img_size
        if img.shape[-1] != size or img.shape[-2] != size:
            img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True)
        return img

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output before pooling, ``[N, C_k, H_k, W_k]``, for ``img [N, 3, H,
        W]`` in [-1, 1] at any side (resized to ``img_size``).

        An oracle's features make a perceptual distance for the avatar domain (see
        :mod:`faceedit.losses`): they respond to what the labels depend on
        (a mouth, glasses, an eye shape) that a per-pixel error hardly sees.
        """
        out, x = [], self.resized(img)
        for i, layer in enumerate(self.trunk):
            # the trunk's ReLUs work in place: keep the tapped maps out of their way
            x = F.relu(x) if isinstance(layer, nn.ReLU) else layer(x)
            if i in self._stage_ends:
                out.append(x)
        return out

    @torch.no_grad()
    def read(self, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[str]]]:
        """``(attribute logits [N, n_attrs], {param: [most likely value per image]})``."""
        out = self(img)
        params = {
            name: [values[i] for i in out.params[name].argmax(1).tolist()]
            for name, values in zip(self.config.param_names, self.config.param_values, strict=True)
        }
        return out.attrs, params

    def predict(self, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[str]]]:
        """Hard labels: ``(attrs [N, n_attrs] in {-1, 1}, {param: [value per image]})``."""
        logits, params = self.read(img)
        return torch.where(logits > 0, 1, -1), params
