"""Format detection: which handler claims a checkpoint, and the error when none does."""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from faceedit.errors import CheckpointError

# Modules that define handlers; imported on first use so `import faceedit` stays cheap.
HANDLER_MODULES = [
    "faceedit.checkpoints.own",
    "faceedit.checkpoints.attgan",
    "faceedit.checkpoints.nvlabs",
    "faceedit.checkpoints.rosinality",
    "faceedit.checkpoints.latent",
    "faceedit.checkpoints.psp",
]


@dataclass(frozen=True)
class Handler:
    """One checkpoint format.

    ``kind`` says what ``matches`` and ``build`` receive: ``"dir"`` gets the path,
    ``"torch"`` gets the object read by :func:`safe_torch_load`, ``"pickle"`` gets the
    raw path of a non-torch pickle file.
    """

    name: str
    kind: str
    matches: Callable[[Any], bool]
    build: Callable[..., nn.Module]


_HANDLERS: list[Handler] = []
_imported = False


def register(handler: Handler) -> Handler:
    _HANDLERS.append(handler)
    return handler


def handlers(kind: str) -> list[Handler]:
    global _imported
    if not _imported:
        for module in HANDLER_MODULES:
            importlib.import_module(module)
        _imported = True
    return [h for h in _HANDLERS if h.kind == kind]


def sniff(path: Path) -> str:
    """Return ``"dir"``, ``"torch"``, ``"pickle"``, ``"safetensors"`` or ``"unknown"``."""
    if path.is_dir():
        return "dir"
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"{path}: file is empty")
    if head[:4] == b"PK\x03\x04":
        return "torch" if _is_torch_zip(path) else "unknown"
    if head[:1] == b"\x80":
        # torch's legacy format starts with a pickled magic number; NVlabs .pkl is a dict.
        return "legacy_torch" if head[2:3] == b"\x8a" else "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _is_torch_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        # a cut-off or damaged zip (bad names, bad sizes): the torch reader reports it
        return True


def detect_and_load(path: Path, **options) -> nn.Module:
    kind = sniff(path)
    if kind == "legacy_torch":
        kind = "torch"
    if kind == "torch":
        from faceedit.checkpoints.safe_torch import safe_torch_load

        obj = safe_torch_load(path)
        candidates = [h for h in handlers("torch") if h.matches(obj)]
        if not candidates:
            raise CheckpointError(
                f"{path}: a PyTorch file, but not a known model ({describe(obj)})"
            )
        return _build(candidates[0], path, obj, options)
    if kind in ("dir", "pickle"):
        subject = path
        candidates = [h for h in handlers(kind) if h.matches(subject)]
        if not candidates:
            what = "a directory" if kind == "dir" else "a pickle file"
            raise CheckpointError(
                f"{path}: {what}, but not a known model format"
                + (" (expected config.json + model.safetensors)" if kind == "dir" else "")
            )
        return _build(candidates[0], path, subject, options)
    if kind == "safetensors":
        raise CheckpointError(
            f"{path}: a bare safetensors file; faceedit models are a directory with "
            "config.json beside model.safetensors"
        )
    raise CheckpointError(
        f"{path}: not a recognised checkpoint (not torch, pickle or a faceedit directory)"
    )


def _build(handler: Handler, path: Path, subject: Any, options: dict) -> nn.Module:
    from faceedit.nets.base import ConfigError, StateDictMismatch

    try:
        model = handler.build(subject, path=path, **options)
    except CheckpointError as e:
        if str(path) in str(e):
            raise
        # every message names the file, even when a handler's helper did not know it
        raise CheckpointError(f"{path}: {e}") from None
    except (StateDictMismatch, ConfigError) as e:
        raise CheckpointError(f"{path}: recognised as {handler.name}, but {e}") from None
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: recognised as {handler.name}, but it could not be loaded: {e}"
        ) from None
    return model.eval()


def describe(obj: Any) -> str:
    """A short description of a loaded object, for error messages."""
    if isinstance(obj, dict):
        keys = list(obj)[:6]
        return f"a dict with keys {keys}" + (" ..." if len(obj) > 6 else "")
    return f"a {type(obj).__name__}"
