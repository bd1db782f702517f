"""pSp / e4e checkpoints and the IR-SE-50 identity model.

- ``psp_ffhq_encode.pt`` (pixel2style2pixel) and ``e4e_ffhq_encode.pt``
  (encoder4editing): a dict with ``state_dict`` (``encoder.*`` then ``decoder.*``, the
  decoder being a rosinality StyleGAN2 generator), ``opts`` (the training options:
  ``encoder_type``, ``output_size`` / ``stylegan_size``, ``start_from_latent_avg``...)
  and ``latent_avg`` (``[18, 512]``). e4e files saved with training data also hold
  ``optimizer``, ``global_step``, ``discriminator_state_dict``...: ignored.
  Loading gives an :class:`~faceedit.nets.encoders.EncoderWithDecoder`: ``.encoder``
  (:class:`PSPEncoder` / :class:`E4EEncoder`, average latent included in its output)
  and ``.decoder`` (:class:`StyleGAN2Generator`). A file without ``decoder.*`` keys
  gives the encoder alone.
- ``model_ir_se50.pth``: the bare state dict of ``Backbone(112, 50, 'ir_se')``
  (397 keys), loaded as :class:`~faceedit.nets.encoders.IRSEBackbone`.

Options for :func:`faceedit.load`: ``encoder_type="psp"|"e4e"`` for a pSp/e4e file
whose ``opts`` do not name the encoder.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from faceedit.checkpoints.registry import Handler, register
from faceedit.checkpoints.safe_torch import strip_prefix
from faceedit.errors import CheckpointError
from faceedit.nets.base import load_state_dict_checked

_ENCODER_TYPES = {
    "gradualstyleencoder": "psp",
    "psp": "psp",
    "encoder4editing": "e4e",
    "e4e": "e4e",
}
# body units per IR-SE depth (3 + 4 + 14 + 3 for 50 layers, ...)
_UNITS_TO_LAYERS = {24: 50, 49: 100, 50: 152}


def _state(obj: Any) -> dict | None:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    return None


def _is_psp(obj: Any) -> bool:
    state = _state(obj)
    return (
        state is not None
        and "encoder.input_layer.0.weight" in state
        and any(k.startswith("encoder.styles.") for k in state)
    )


def _is_irse(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and "input_layer.0.weight" in obj
        and "output_layer.3.weight" in obj
        and "body.0.res_layer.0.weight" in obj
    )


def _count(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _body_config(state: dict, prefix: str = "") -> tuple[int, str]:
    units = _count(state, re.escape(prefix) + r"body\.(\d+)\.")
    if units not in _UNITS_TO_LAYERS:
        raise CheckpointError(f"an IR-SE body with {units} units is not a 50/100/152-layer net")
    mode = "ir_se" if f"{prefix}body.0.res_layer.5.fc1.weight" in state else "ir"
    return _UNITS_TO_LAYERS[units], mode


def _encoder_kind(obj: dict, option: str | None) -> str:
    opts = obj.get("opts") if isinstance(obj.get("opts"), dict) else {}
    name = option or opts.get("encoder_type")
    if name is None:
        raise CheckpointError(
            "its opts do not say which encoder it holds; pass encoder_type='psp' or 'e4e'"
        )
    kind = _ENCODER_TYPES.get(str(name).lower())
    if kind is None:
        raise CheckpointError(
            f"encoder_type {name!r} is not supported (supported: GradualStyleEncoder, "
            "Encoder4Editing)"
        )
    return kind


def encoder_from_psp(obj: dict, encoder_type: str | None = None) -> nn.Module:
    """Build the pSp / e4e encoder of a checkpoint dict (``state_dict``/``opts``/``latent_avg``).

    The number of style rows comes from the ``encoder.styles.N`` keys; the average latent
    is included when the checkpoint has one and ``opts.start_from_latent_avg`` is not
    false.
    """
    from faceedit.nets.encoders import (
        E4EEncoder,
        E4EEncoderConfig,
        PSPEncoder,
        PSPEncoderConfig,
    )

    state = _state(obj)
    if state is None:
        raise CheckpointError("no state_dict in the checkpoint")
    kind = _encoder_kind(obj, encoder_type)
    opts = obj.get("opts") if isinstance(obj.get("opts"), dict) else {}
    n_styles = _count(state, r"encoder\.styles\.(\d+)\.")
    size = opts.get("output_size" if kind == "psp" else "stylegan_size")
    if size and 2 * int(math.log2(int(size))) - 2 != n_styles:
        raise CheckpointError(
            f"opts give a {size} px generator but the encoder has {n_styles} style heads"
        )
    num_layers, mode = _body_config(state, "encoder.")
    latent_avg = obj.get("latent_avg")
    use_avg = isinstance(latent_avg, torch.Tensor) and opts.get("start_from_latent_avg", True)
    config_class, cls = (
        (PSPEncoderConfig, PSPEncoder) if kind == "psp" else (E4EEncoderConfig, E4EEncoder)
    )
    in_weight = state["encoder.input_layer.0.weight"]
    config = config_class(
        n_styles=n_styles,
        num_layers=num_layers,
        mode=mode,
        input_nc=int(in_weight.shape[1]),
        use_latent_avg=bool(use_avg),
    )
    if kind == "e4e" and config.input_nc != 3:
        raise CheckpointError(f"e4e encoders take 3 input channels, this one {config.input_nc}")
    encoder = _without_weights(cls, config)
    enc_state = strip_prefix(state, "encoder.")
    if use_avg:
        enc_state["latent_avg"] = _latent_rows(latent_avg, n_styles)
    load_state_dict_checked(encoder, enc_state, source="encoder.*", assign=True)
    return encoder.eval()


def _without_weights(cls, config) -> nn.Module:
    """``cls(config)`` on the meta device, to be given the file's tensors by a strict
    ``assign`` load: random initialisation of a 267M-parameter pSp encoder alone takes
    seconds, and empty CPU tensors of its size would sit beside the file's 1 GB, only to
    be copied into (the peak memory of ``faceedit edit`` with pSp was reached there)."""
    with torch.device("meta"):
        return cls(config)


def _latent_rows(latent_avg: torch.Tensor, n_styles: int) -> torch.Tensor:
    """``latent_avg`` as ``[n_styles, 512]``: a ``[512]`` vector is repeated like pSp does."""
    # a copy: the decoder's w_avg is read from the same tensor, and the encoder takes the
    # file's tensors as its own (an in-place change of one must not reach the other)
    avg = latent_avg.detach().float().clone()
    if avg.ndim == 1:
        avg = avg.unsqueeze(0).repeat(n_styles, 1)
    if avg.ndim == 3 and avg.shape[0] == 1:
        avg = avg[0]
    if tuple(avg.shape) != (n_styles, 512):
        raise CheckpointError(
            f"latent_avg has shape {tuple(latent_avg.shape)}, expected [{n_styles}, 512]"
        )
    return avg


def decoder_from_psp(obj: dict) -> nn.Module | None:
    """The StyleGAN2 generator under ``decoder.*``, or ``None`` when the file has none."""
    state = _state(obj) or {}
    dec_state = strip_prefix(state, "decoder.")
    if not dec_state:
        return None
    from faceedit.checkpoints.rosinality import generator_from_rosinality

    latent_avg = obj.get("latent_avg")
    w_avg = None
    if isinstance(latent_avg, torch.Tensor):
        # pSp stores the generator's mean w repeated per row: its rows are all equal
        w_avg = latent_avg.detach().float().reshape(-1, latent_avg.shape[-1]).mean(0)
    return generator_from_rosinality(dec_state, latent_avg=w_avg)


def _build_psp(obj: dict, path=None, encoder_type: str | None = None, **_: Any) -> nn.Module:
    try:
        return _psp_pair(obj, encoder_type)
    except CheckpointError as e:
        # the registry passes CheckpointError through unchanged: name the file here
        raise CheckpointError(f"{path}: pSp/e4e checkpoint, but {e}") from None


def _psp_pair(obj: dict, encoder_type: str | None) -> nn.Module:
    from faceedit.nets.encoders import EncoderWithDecoder

    encoder = encoder_from_psp(obj, encoder_type=encoder_type)
    decoder = decoder_from_psp(obj)
    if decoder is None:
        return encoder
    num_ws = _decoder_attr(decoder, "num_ws")
    if num_ws is not None and num_ws != encoder.config.n_styles:
        raise CheckpointError(
            f"the encoder gives {encoder.config.n_styles} style rows, the decoder takes {num_ws}"
        )
    w_dim = _decoder_attr(decoder, "w_dim")
    if w_dim is not None and w_dim != 512:
        raise CheckpointError(f"the encoder gives 512-d codes, the decoder takes {w_dim}-d")
    return EncoderWithDecoder(encoder, decoder).eval()


def _decoder_attr(decoder: nn.Module, name: str) -> int | None:
    value = getattr(decoder, name, None)
    if value is None:
        value = getattr(getattr(decoder, "config", None), name, None)
    return int(value) if isinstance(value, int) else None


def irse_from_state_dict(state: dict) -> nn.Module:
    """Build :class:`IRSEBackbone` from a bare ``model_ir_se50.pth``-style state dict."""
    from faceedit.nets.encoders import IRSEBackbone, IRSEConfig

    num_layers, mode = _body_config(state)
    flat = int(state["output_layer.3.weight"].shape[1])
    side = int(round(math.sqrt(flat / 512)))
    sizes = {7: 112, 14: 224}
    if side not in sizes or 512 * side * side != flat:
        raise CheckpointError(f"output_layer.3.weight has {flat} inputs, not 512*7*7 or 512*14*14")
    config = IRSEConfig(
        input_size=sizes[side],
        num_layers=num_layers,
        mode=mode,
        affine="output_layer.4.weight" in state,
    )
    model = _without_weights(IRSEBackbone, config)
    load_state_dict_checked(model, state, source="IR-SE state dict", assign=True)
    return model.eval()


def _build_irse(obj: dict, path=None, **_: Any) -> nn.Module:
    try:
        return irse_from_state_dict(obj)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: IR-SE identity model, but {e}") from None


register(Handler(name="pSp/e4e checkpoint", kind="torch", matches=_is_psp, build=_build_psp))
register(Handler(name="IR-SE identity model", kind="torch", matches=_is_irse, build=_build_irse))
