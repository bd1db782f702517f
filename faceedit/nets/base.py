"""faceedit's own model format: ``config.json`` + ``model.safetensors`` in a directory.

Every shippable network subclasses :class:`ConfigModule`: it is built from a frozen
dataclass config and names itself with ``architecture``; the registry maps that name
back to the class so that :func:`faceedit.load` can rebuild any saved model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# architecture name -> ConfigModule subclass, filled by __init_subclass__
ARCHITECTURES: dict[str, type[ConfigModule]] = {}


class ConfigError(ValueError):
    """A config dict does not fit its dataclass (unknown or missing fields, bad types)."""


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, data: dict[str, Any]) -> Any:
    """Build ``config_class`` from JSON data: lists become tuples, nested dataclasses recurse."""
    if not isinstance(data, dict):
        raise ConfigError(f"{config_class.__name__}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{config_class.__name__}: unknown fields {unknown}")
    hints = typing.get_type_hints(config_class)
    kwargs = {name: _coerce(hints[name], value) for name, value in data.items()}
    try:
        return config_class(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{config_class.__name__}: {e}") from None


def _coerce(hint: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is type(None) and value is None:
                return None
        for arg in typing.get_args(hint):
            if arg is not type(None):
                return _coerce(arg, value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v) for v in value)
    return value


class ConfigModule(nn.Module):
    """An ``nn.Module`` described completely by ``self.config`` (a frozen dataclass)."""

    architecture: ClassVar[str]
    config_class: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("architecture")
        if name is not None:
            ARCHITECTURES[name] = cls

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config

    @classmethod
    def from_config_dict(cls, data: dict[str, Any]) -> ConfigModule:
        return cls(config_from_dict(cls.config_class, data))

    def save_pretrained(self, directory: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created).

        Files are written under temporary names and renamed, so a crash never leaves a
        half-written model behind.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        header = {
            "format": "faceedit",
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture,
            "config": config_to_dict(self.config),
        }
        if metadata:
            header["metadata"] = metadata
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp_weights = directory / f".{WEIGHTS_NAME}.tmp"
        tmp_config = directory / f".{CONFIG_NAME}.tmp"
        save_file(state, str(tmp_weights), metadata={"architecture": self.architecture})
        tmp_config.write_text(json.dumps(header, indent=2) + "\n")
        os.replace(tmp_weights, directory / WEIGHTS_NAME)
        os.replace(tmp_config, directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> ConfigModule:
        """Rebuild a model saved by :meth:`save_pretrained` (eval mode, CPU, float32)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        header = json.loads((directory / CONFIG_NAME).read_text())
        arch = header.get("architecture")
        target = ARCHITECTURES.get(arch) if cls is ConfigModule else cls
        if target is None or (cls is not ConfigModule and arch != cls.architecture):
            raise ConfigError(
                f"{directory}: holds architecture {arch!r}, expected "
                f"{getattr(cls, 'architecture', 'a known architecture')!r}"
            )
        model = target.from_config_dict(header["config"])
        state = load_file(str(directory / WEIGHTS_NAME))
        load_state_dict_checked(model, state, source=str(directory / WEIGHTS_NAME))
        return model.eval()


class StateDictMismatch(ValueError):
    """Raised when a state dict does not fit a module; the message lists the keys."""


def load_state_dict_checked(
    module: nn.Module, state: dict[str, torch.Tensor], source: str, assign: bool = False
) -> None:
    """Strict ``load_state_dict`` whose error lists missing, unexpected and mis-shaped keys.

    ``assign``: the file's tensors become the module's (no copy), for a module built on
    the ``meta`` device, whose random initialisation would only be overwritten."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 8 else ""
                )
                parts.append(f"{label}: {shown}")
        raise StateDictMismatch(
            f"{source}: weights do not fit {type(module).__name__}; " + "; ".join(parts)
        )
    cast = {k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()}
    module.load_state_dict(cast, strict=True, assign=assign)
