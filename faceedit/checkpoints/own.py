"""faceedit's own format: a directory with ``config.json`` + ``model.safetensors``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from safetensors import SafetensorError
from torch import nn

from faceedit.checkpoints.registry import Handler, register
from faceedit.errors import CheckpointError

# Every module that defines a ConfigModule; imported so that its architecture registers.
NET_MODULES: list[str] = [
    "faceedit.nets.stylegan2",
    "faceedit.nets.attgan",
    "faceedit.nets.latent",
    "faceedit.nets.encoders",
    "faceedit.nets.oracle",
    "faceedit.nets.latent_encoder",
]


def _matches(path: Path) -> bool:
    return (path / "config.json").is_file()


def _build(subject: Path, path: Path, **_: object) -> nn.Module:
    from faceedit.nets.base import ARCHITECTURES, CONFIG_NAME, WEIGHTS_NAME, ConfigModule

    for module in NET_MODULES:
        importlib.import_module(module)
    try:
        header = json.loads((path / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path / CONFIG_NAME}: not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "faceedit":
        raise CheckpointError(f"{path / CONFIG_NAME}: not a faceedit model config")
    arch = header.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{path}: unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})"
        )
    if not (path / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"{path}: {WEIGHTS_NAME} is missing beside {CONFIG_NAME}")
    from faceedit.checkpoints.guards import check_safetensors

    check_safetensors(path / WEIGHTS_NAME)
    try:
        return ConfigModule.from_pretrained(path)
    except (OSError, RuntimeError, SafetensorError) as e:
        # safetensors raises these for truncated or corrupt files
        raise CheckpointError(f"{path / WEIGHTS_NAME}: unreadable weights ({e})") from None


register(Handler(name="faceedit model directory", kind="dir", matches=_matches, build=_build))
