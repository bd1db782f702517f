"""Released latent-transformer files (InterDigitalInc/latent-transformer).

- ``models/latent_classifier_epoch_20.pth``: a bare ``LCNet`` state dict
  (``fcs.{i}.weight/bias``; 9216-2048-512-40 with LeakyReLU 0.2);
- ``logs/001/tnet_{k}.pth.tar``: a bare ``F_mapping`` state dict (``dense.{i}.weight
  [512, 512]``, ``dense.{i}.bias``); ``k`` is the CelebA attribute index, which names the
  loaded transformer;
- ``logs/001/checkpoint[_{epoch}]``: training checkpoints holding ``T_net_state_dict``
  (plus optimiser and scheduler states, ignored here).

Options (``faceedit.load(path, **options)``): ``w_dim`` (default 512) for files whose
row width cannot be read from the shapes, ``activation`` (``"leakyrelu"`` or ``"relu"``;
the file does not record it, the released one uses LeakyReLU) and ``attr_name``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from faceedit.checkpoints.registry import Handler, register
from faceedit.errors import CheckpointError

_FCS = re.compile(r"^fcs\.(\d+)\.(weight|bias)$")
_DENSE = re.compile(r"^dense\.(\d+)\.(weight|bias)$")


def _is_state(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _matches_classifier(obj: Any) -> bool:
    return _is_state(obj) and all(_FCS.match(k) for k in obj)


def _build_classifier(obj: dict, path: Path, **options: Any):
    from faceedit.attributes import CELEBA_ATTRS
    from faceedit.nets.base import load_state_dict_checked
    from faceedit.nets.latent import LatentClassifier, LatentClassifierConfig

    n_layers = 1 + max(int(_FCS.match(k).group(1)) for k in obj)
    try:
        widths = [obj[f"fcs.{i}.weight"].shape for i in range(n_layers)]
    except KeyError as e:
        raise CheckpointError(f"{path}: classifier layer {e} is missing") from None
    in_features = int(widths[0][1])
    w_dim = int(options.get("w_dim", 512))
    if in_features % w_dim:
        raise CheckpointError(
            f"{path}: classifier input width {in_features} is not a multiple of w_dim {w_dim}"
        )
    n_attrs = int(widths[-1][0])
    names = CELEBA_ATTRS if n_attrs == len(CELEBA_ATTRS) else ()
    config = LatentClassifierConfig(
        num_ws=in_features // w_dim,
        w_dim=w_dim,
        hidden=tuple(int(s[0]) for s in widths[:-1]),
        n_attrs=n_attrs,
        activation=options.get("activation", "leakyrelu"),
        attr_names=tuple(options.get("attr_names", names)),
    )
    model = LatentClassifier(config)
    load_state_dict_checked(model, obj, source=str(path))
    return model


def _transformer_state(obj: Any) -> dict | None:
    if isinstance(obj, dict) and "T_net_state_dict" in obj:
        obj = obj["T_net_state_dict"]
    if not _is_state(obj):
        return None
    keys = set(obj)
    if keys == {"dense.weight", "dense.bias"} or all(_DENSE.match(k) for k in keys):
        return obj
    return None


def _matches_transformer(obj: Any) -> bool:
    return _transformer_state(obj) is not None


def _attr_from_path(path: Path) -> str:
    from faceedit.attributes import CELEBA_ATTRS

    m = re.match(r"tnet_(\d+)\.pth", path.name)
    if m and int(m.group(1)) < len(CELEBA_ATTRS):
        return CELEBA_ATTRS[int(m.group(1))]
    return ""


def _build_transformer(obj: Any, path: Path, **options: Any):
    from faceedit.nets.base import load_state_dict_checked
    from faceedit.nets.latent import LatentTransformer, LatentTransformerConfig

    state = _transformer_state(obj)
    attr_name = str(options.get("attr_name") or _attr_from_path(path))
    if "dense.weight" in state:
        width = int(state["dense.weight"].shape[1])
        w_dim = int(options.get("w_dim", 512))
        if width % w_dim:
            raise CheckpointError(f"{path}: dense width {width} is not a multiple of {w_dim}")
        config = LatentTransformerConfig(
            num_ws=width // w_dim, w_dim=w_dim, dense=True, attr_name=attr_name
        )
    else:
        num_ws = 1 + max(int(_DENSE.match(k).group(1)) for k in state)
        if "dense.0.weight" not in state:
            raise CheckpointError(f"{path}: dense.0.weight is missing")
        w_dim = int(state["dense.0.weight"].shape[1])
        config = LatentTransformerConfig(num_ws=num_ws, w_dim=w_dim, attr_name=attr_name)
    model = LatentTransformer(config)
    load_state_dict_checked(model, state, source=str(path))
    return model


register(
    Handler(
        name="latent-transformer classifier (LCNet state dict)",
        kind="torch",
        matches=_matches_classifier,
        build=_build_classifier,
    )
)
register(
    Handler(
        name="latent transformer (F_mapping state dict or training checkpoint)",
        kind="torch",
        matches=_matches_transformer,
        build=_build_transformer,
    )
)
