"""rosinality/stylegan2-pytorch generators (also the decoder inside pSp and e4e files).

Files: ``{"g_ema": state_dict, "latent_avg": [512]}`` as written by its weight converter,
or full training checkpoints ``{"g", "d", "g_ema", "g_optim", "d_optim", "args",
"ada_aug_p"}`` (``args`` is an ``argparse.Namespace``, read as data).

The state dict is renamed onto faceedit's generator (the official NVlabs layout):
``style.{i}`` -> ``mapping.fc{i-1}``, ``input.input`` -> ``synthesis.b4.const``,
``conv1`` / ``to_rgb1`` -> ``b4.conv1`` / ``b4.torgb``, ``convs.{2j}``, ``convs.{2j+1}``,
``to_rgbs.{j}`` -> ``b{8*2^j}.conv0``, ``.conv1``, ``.torgb``, ``noises.noise_{i}`` ->
the matching ``noise_const``. Modulated weights lose their leading 1, the noise weight
``[1]`` becomes the scalar ``noise_strength``, the ToRGB bias ``[1,3,1,1]`` becomes
``[3]``. The FIR kernels are constants and are not copied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from faceedit.checkpoints.registry import Handler, register
from faceedit.errors import CheckpointError


def is_rosinality_state(state: Any) -> bool:
    return isinstance(state, dict) and "style.1.weight" in state and "input.input" in state


def rosinality_to_native(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Rename a rosinality generator state dict; return it with the inferred config kwargs."""
    out: dict[str, torch.Tensor] = {}
    n_mlp = 0
    for key, value in state.items():
        m = re.fullmatch(r"style\.(\d+)\.(weight|bias)", key)
        if m:
            out[f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"] = value
            n_mlp = max(n_mlp, int(m.group(1)))
    const = state["input.input"]
    out["synthesis.b4.const"] = const[0]
    _styled_conv(out, state, "conv1", "synthesis.b4.conv1")
    _to_rgb(out, state, "to_rgb1", "synthesis.b4.torgb")
    n_blocks = len({int(k.split(".")[1]) for k in state if k.startswith("to_rgbs.")})
    channels = {4: const.shape[1]}
    for j in range(n_blocks):
        res = 8 * 2**j
        _styled_conv(out, state, f"convs.{2 * j}", f"synthesis.b{res}.conv0")
        _styled_conv(out, state, f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1")
        _to_rgb(out, state, f"to_rgbs.{j}", f"synthesis.b{res}.torgb")
        channels[res] = state[f"convs.{2 * j}.conv.weight"].shape[1]
    layer_names = ["synthesis.b4.conv1"] + [
        f"synthesis.b{8 * 2**j}.conv{k}" for j in range(n_blocks) for k in (0, 1)
    ]
    for i, name in enumerate(layer_names):
        noise = state.get(f"noises.noise_{i}")
        if noise is not None:
            out[f"{name}.noise_const"] = noise.reshape(noise.shape[-2:])
    resolution = 4 * 2**n_blocks
    w_dim = state["style.1.weight"].shape[0]
    config = dict(
        z_dim=state["style.1.weight"].shape[1],
        w_dim=w_dim,
        img_resolution=resolution,
        mapping_layers=n_mlp,
        **channel_table(channels),
    )
    return out, config


def _styled_conv(out: dict, state: dict, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = state[f"{src}.conv.weight"][0]
    out[f"{dst}.noise_strength"] = state[f"{src}.noise.weight"].reshape(())
    out[f"{dst}.bias"] = state[f"{src}.activate.bias"]
    out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
    out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]


def _to_rgb(out: dict, state: dict, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = state[f"{src}.conv.weight"][0]
    out[f"{dst}.bias"] = state[f"{src}.bias"].reshape(-1)
    out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
    out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]


def channel_table(channels: dict[int, int]) -> dict[str, int]:
    """``channel_base`` / ``channel_max`` reproducing ``{res: channels}``, or an error."""
    channel_max = max(channels.values())
    below = [(res, ch) for res, ch in sorted(channels.items()) if ch < channel_max]
    channel_base = below[0][0] * below[0][1] if below else channel_max * max(channels)
    table = {res: min(channel_base // res, channel_max) for res in channels}
    if table != channels:
        raise CheckpointError(
            f"unsupported channel table {channels} (not of the form min(base // res, max))"
        )
    return {"channel_base": channel_base, "channel_max": channel_max}


def generator_from_rosinality(
    state: dict[str, torch.Tensor],
    latent_avg: torch.Tensor | None = None,
    lr_multiplier: float = 0.01,
):
    """Build a :class:`StyleGAN2Generator` from a rosinality (or pSp/e4e ``decoder.``-stripped)
    state dict.

    Args:
        state: the generator's state dict.
        latent_avg: ``[w_dim]`` or ``[num_ws, w_dim]`` average latent stored beside it (a
            W+ average is reduced to its first row, as they are copies). When missing, W's
            mean is estimated from 10,000 fixed-seed samples.
        lr_multiplier: the mapping network's learning-rate multiplier (0.01 in every
            released model).
    """
    from faceedit.nets.base import load_state_dict_checked
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    native, kwargs = rosinality_to_native(state)
    G = StyleGAN2Generator(StyleGAN2Config(mapping_lr_multiplier=lr_multiplier, **kwargs))
    own = G.state_dict()
    for key, value in own.items():  # FIR kernels, and noise maps a file may lack
        native.setdefault(key, value)
    load_state_dict_checked(G, native, source="rosinality generator")
    if latent_avg is not None:
        avg = latent_avg.float().reshape(-1, G.w_dim)[0]
        G.mapping.w_avg.copy_(avg)
    else:
        G.estimate_w_avg()
    return G.eval()


def _matches(obj: Any) -> bool:
    return isinstance(obj, dict) and is_rosinality_state(obj.get("g_ema"))


def _build(obj: dict, path: Path, **_: Any):
    args = obj.get("args") or {}
    lr = float(args.get("lr_mlp", 0.01)) if isinstance(args, dict) else 0.01
    return generator_from_rosinality(obj["g_ema"], obj.get("latent_avg"), lr_multiplier=lr)


register(
    Handler(name="rosinality StyleGAN2 checkpoint", kind="torch", matches=_matches, build=_build)
)
