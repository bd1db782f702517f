"""The AttGAN release's checkpoints (elvisyjlin/AttGAN-PyTorch).

Layout written by the release: ``output/<experiment>/checkpoint/weights.<epoch>.pth``
holding ``{"G": state_dict}`` (``train.py``) or ``{"G", "D", "optim_G", "optim_D"}``
(``AttGAN.save``), keys prefixed ``module.`` when trained with ``--multi_gpu``; and
``output/<experiment>/setting.txt``, a JSON dump of the argparse fields (plus
``lr_base``, ``n_attrs``, ``betas``).

:func:`load_attgan` finds ``setting.txt`` beside the file, one or two folders up, or
takes it from ``setting=`` (a path or a dict). Without one, the architecture is
inferred from the weight shapes (widths, depths, norms, shortcut and inject layers,
number of attributes; the image size from the discriminator's fc width). Activations
cannot be seen in weights and take the release's defaults.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from faceedit.checkpoints.registry import Handler, register
from faceedit.errors import CheckpointError

SETTING_NAME = "setting.txt"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def _release_view(obj: Any) -> Any:
    """A faceedit training checkpoint (``layout_version``: its nets under ``models``, see
    ``faceedit.train.checkpointing``) seen as the release's ``{"G", "D"}`` plus its
    ``config``; anything else as it is."""
    if isinstance(obj, dict) and "layout_version" in obj and isinstance(obj.get("models"), dict):
        return {**obj["models"], "config": obj.get("config")}
    return obj


def matches(obj: Any) -> bool:
    """A release checkpoint: a dict whose ``G`` is a state dict with ``enc_layers`` keys."""
    obj = _release_view(obj)
    if not isinstance(obj, dict) or not _is_state_dict(obj.get("G")):
        return False
    keys = _strip_module(obj["G"])
    return any(k.startswith("enc_layers.0.") for k in keys) and any(
        k.startswith("dec_layers.") for k in keys
    )


def find_setting(path: Path) -> Path | None:
    """``setting.txt`` beside the weights or in the experiment folder above ``checkpoint/``."""
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        candidate = folder / SETTING_NAME
        if candidate.is_file():
            return candidate
    return None


def read_setting(setting: str | os.PathLike | dict) -> dict[str, Any]:
    if isinstance(setting, dict):
        return dict(setting)
    path = Path(setting)
    if not path.is_file():
        raise CheckpointError(f"{path}: setting file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a JSON setting file ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object of training settings")
    return data


def configs_from_setting(setting: dict[str, Any]):
    """``setting.txt`` fields -> ``(AttGANGeneratorConfig, AttGANDiscriminatorConfig)``.

    Missing fields take ``train.py``'s defaults.
    """
    from faceedit.nets.attgan import (
        DEFAULT_ATTRS,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )

    s = setting
    attrs = tuple(s.get("attrs", DEFAULT_ATTRS))
    n_attrs = int(s.get("n_attrs", len(attrs)))
    img_size = int(s.get("img_size", 128))
    style_dim = int(s.get("style_dim", 0))
    G = AttGANGeneratorConfig(
        enc_dim=int(s.get("enc_dim", 64)),
        enc_layers=int(s.get("enc_layers", 5)),
        enc_norm=str(s.get("enc_norm", "batchnorm")),
        enc_acti=str(s.get("enc_acti", "lrelu")),
        dec_dim=int(s.get("dec_dim", 64)),
        dec_layers=int(s.get("dec_layers", 5)),
        dec_norm=str(s.get("dec_norm", "batchnorm")),
        dec_acti=str(s.get("dec_acti", "relu")),
        n_attrs=n_attrs,
        shortcut_layers=int(s.get("shortcut_layers", 1)),
        inject_layers=int(s.get("inject_layers", 0)),
        img_size=img_size,
        attrs=attrs,
        thres_int=float(s.get("thres_int", 0.5)),
        test_int=float(s.get("test_int", 1.0)),
        style_dim=style_dim,
        conflict_rules=str(s.get("conflict_rules", "release")),
        edit_mask=bool(s.get("edit_mask", False)),
    )
    D = AttGANDiscriminatorConfig(
        dim=int(s.get("dis_dim", 64)),
        norm=str(s.get("dis_norm", "instancenorm")),
        acti=str(s.get("dis_acti", "lrelu")),
        fc_dim=int(s.get("dis_fc_dim", 1024)),
        fc_norm=str(s.get("dis_fc_norm", "none")),
        fc_acti=str(s.get("dis_fc_acti", "relu")),
        n_layers=int(s.get("dis_layers", 5)),
        img_size=img_size,
        n_attrs=n_attrs,
        style_dim=style_dim,
    )
    return G, D


def _norm_of(state: dict[str, torch.Tensor], prefix: str) -> str:
    if f"{prefix}.layers.1.mean_weight" in state:
        return "switchnorm"
    if f"{prefix}.layers.1.running_mean" in state:
        return "batchnorm"
    if f"{prefix}.layers.1.weight" in state:
        return "instancenorm"
    return "none"


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pat.match(k))}
    return max(found) + 1 if found else 0


def infer_setting(
    G_state: dict[str, torch.Tensor], D_state: dict[str, torch.Tensor] | None, source: str
) -> dict[str, Any]:
    """Rebuild the architecture fields of ``setting.txt`` from weight shapes."""
    try:
        n = _count(G_state, "enc_layers")
        enc_w = [G_state[f"enc_layers.{i}.layers.0.weight"].shape[0] for i in range(n)]
        dec_in = [G_state[f"dec_layers.{i}.layers.0.weight"].shape[0] for i in range(n)]
        dec_out = [G_state[f"dec_layers.{i}.layers.0.weight"].shape[1] for i in range(n)]
    except KeyError as e:
        raise CheckpointError(
            f"{source}: AttGAN weights lack {e}; cannot infer the setting"
        ) from None
    n_attrs = dec_in[0] - enc_w[-1]
    shortcut = inject = 0
    for i in range(n - 1):
        extra = dec_in[i + 1] - dec_out[i]
        has_short = extra in (enc_w[n - 2 - i], enc_w[n - 2 - i] + n_attrs)
        has_inj = extra in (n_attrs, enc_w[n - 2 - i] + n_attrs) and extra != enc_w[n - 2 - i]
        if has_short and shortcut == i:
            shortcut = i + 1
        if has_inj and inject == i:
            inject = i + 1
        if extra and not (has_short or has_inj):
            raise CheckpointError(
                f"{source}: decoder layer {i + 1} takes {dec_in[i + 1]} channels, which no "
                "shortcut/inject setting explains; pass setting=PATH"
            )
    if n_attrs < 1:
        raise CheckpointError(f"{source}: cannot infer the number of attributes; pass setting=")
    setting: dict[str, Any] = {
        "enc_dim": enc_w[0],
        "enc_layers": n,
        "dec_layers": n,
        "dec_dim": dec_out[n - 2] // 2 if n >= 2 else 64,
        "enc_norm": _norm_of(G_state, "enc_layers.0"),
        "dec_norm": _norm_of(G_state, "dec_layers.0"),
        "n_attrs": n_attrs,
        "shortcut_layers": shortcut,
        "inject_layers": inject,
    }
    if any(k.startswith("mask_layer.") for k in G_state):  # an edit-mask generator
        setting["edit_mask"] = True
    if D_state is not None:
        n_d = _count(D_state, "conv")
        last = D_state[f"conv.{n_d - 1}.layers.0.weight"].shape[0]
        fc_in = D_state["fc_adv.0.layers.0.weight"].shape[1]
        f = round((fc_in / last) ** 0.5)
        if f * f * last != fc_in:
            raise CheckpointError(f"{source}: discriminator fc width {fc_in} is not C*f*f")
        setting.update(
            dis_dim=D_state["conv.0.layers.0.weight"].shape[0],
            dis_layers=n_d,
            dis_norm=_norm_of(D_state, "conv.0"),
            dis_fc_dim=D_state["fc_adv.0.layers.0.weight"].shape[0],
            dis_fc_norm="none" if "fc_adv.0.layers.0.bias" in D_state else "batchnorm",
            img_size=f * 2**n_d,
        )
    return setting


def build_attgan(
    obj: dict[str, Any],
    path: Path,
    setting: str | os.PathLike | dict | None = None,
    img_size: int | None = None,
    attrs: list[str] | tuple[str, ...] | None = None,
    **_: Any,
):
    """Build an :class:`~faceedit.nets.attgan.AttGAN` (``.D`` is None for G-only files)."""
    from faceedit.nets.attgan import DEFAULT_ATTRS, AttGAN, AttGANConfig
    from faceedit.nets.base import load_state_dict_checked

    obj = _release_view(obj)
    G_state = _strip_module(obj["G"])
    D_state = _strip_module(obj["D"]) if _is_state_dict(obj.get("D")) else None
    if setting is None:
        found = find_setting(path)
        if found is not None:
            setting = found
        elif isinstance(obj.get("config"), dict) and "attrs" in obj["config"]:
            setting = obj["config"]  # faceedit training checkpoints carry their setting
    if setting is not None:
        data = read_setting(setting)
    else:
        data = infer_setting(G_state, D_state, str(path))
        if attrs is None and data["n_attrs"] != len(DEFAULT_ATTRS):
            raise CheckpointError(
                f"{path}: no {SETTING_NAME} beside it and the weights have "
                f"{data['n_attrs']} attributes (not the release's 13), so their names are "
                "unknown; pass setting=PATH/TO/setting.txt (CLI: --setting)"
            )
        if "img_size" not in data:
            data["img_size"] = 128
    if img_size is not None:
        data["img_size"] = int(img_size)
    if attrs is not None:
        data["attrs"] = list(attrs)
        data["n_attrs"] = len(attrs)
    try:
        g_cfg, d_cfg = configs_from_setting(data)
    except ValueError as e:
        raise CheckpointError(
            f"{path}: the setting does not describe a valid AttGAN ({e})"
        ) from None
    # built without weights (the meta device), then given the file's: initialising the
    # 384 px release's 357 M parameters at random only to overwrite them took seconds
    with torch.device("meta"):
        model = AttGAN(AttGANConfig(G=g_cfg, D=d_cfg if D_state is not None else None))
    load_state_dict_checked(model.G, G_state, source=f"{path} [G]", assign=True)
    if D_state is not None:
        load_state_dict_checked(model.D, D_state, source=f"{path} [D]", assign=True)
    return model.eval()


def _build(obj: Any, path: Path, **options: Any):
    return build_attgan(obj, path, **options)


register(
    Handler(
        name="AttGAN release checkpoint (weights.N.pth)",
        kind="torch",
        matches=matches,
        build=_build,
    )
)


def find_latest(folder: str | os.PathLike) -> Path:
    """The ``weights.<N>.pth`` with the largest ``N`` in ``folder`` (the release's "latest")."""
    folder = Path(folder)
    found = []
    for p in folder.glob("weights.*.pth"):
        m = re.fullmatch(r"weights\.(\d+)\.pth", p.name)
        if m:
            found.append((int(m.group(1)), p))
    if not found:
        raise CheckpointError(f"{folder}: no weights.<N>.pth files")
    return max(found)[1]


def load_trained(path: str | os.PathLike, setting: str | None = None):
    """An AttGAN (or its generator) from wherever a run or the release left one.

    ``path`` is a release ``weights.N.pth``, a folder of them (the latest epoch), a
    faceedit model directory, a training run directory (its ``model/``, or the latest
    ``checkpoint.pt`` of a run still training) or a shipped model name.

    Raises:
        CheckpointError: nothing loadable there, or not an AttGAN.
    """
    from faceedit.checkpoints import load
    from faceedit.nets.attgan import AttGAN, AttGANGenerator

    p = Path(path)
    if p.is_dir() and not (p / "config.json").is_file():
        if (p / "model" / "config.json").is_file():
            p = p / "model"
        elif (p / "checkpoint.pt").is_file():  # a run still training: its latest checkpoint
            p = p / "checkpoint.pt"
        else:
            p = find_latest(p / "checkpoint" if (p / "checkpoint").is_dir() else p)
    model = load(p, **({"setting": setting} if setting else {}))
    if not isinstance(model, (AttGAN, AttGANGenerator)):
        raise CheckpointError(f"{path}: holds a {type(model).__name__}, not an AttGAN")
    return model


def save_release_checkpoint(model, path: str | os.PathLike, with_D: bool = True) -> Path:
    """Write ``{"G", ["D"]}`` like the release (for interchange with its ``test.py``)."""
    from faceedit.fileio import atomic_path

    data = {"G": model.G.state_dict()}
    if with_D and model.D is not None:
        data["D"] = model.D.state_dict()
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def setting_from_config(model) -> dict[str, Any]:
    """The ``setting.txt`` fields that describe ``model`` (an AttGAN)."""
    g, d = model.config.G, model.config.D
    out: dict[str, Any] = {
        "attrs": list(g.attrs),
        "img_size": g.img_size,
        "shortcut_layers": g.shortcut_layers,
        "inject_layers": g.inject_layers,
        "enc_dim": g.enc_dim,
        "dec_dim": g.dec_dim,
        "enc_layers": g.enc_layers,
        "dec_layers": g.dec_layers,
        "enc_norm": g.enc_norm,
        "dec_norm": g.dec_norm,
        "enc_acti": g.enc_acti,
        "dec_acti": g.dec_acti,
        "thres_int": g.thres_int,
        "test_int": g.test_int,
        "n_attrs": g.n_attrs,
    }
    if g.style_dim:
        out["style_dim"] = g.style_dim
    if g.conflict_rules != "release":
        out["conflict_rules"] = g.conflict_rules
    if g.edit_mask:
        out["edit_mask"] = True
    if d is not None:
        out.update(
            dis_dim=d.dim,
            dis_fc_dim=d.fc_dim,
            dis_layers=d.n_layers,
            dis_norm=d.norm,
            dis_fc_norm=d.fc_norm,
            dis_acti=d.acti,
            dis_fc_acti=d.fc_acti,
        )
    return out
