"""Reading ``torch.save`` files without executing anything they contain."""

from __future__ import annotations

import argparse
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from faceedit.errors import CheckpointError

# Classes that old training checkpoints contain and that are safe to construct:
# they only hold attributes (no code runs when they are rebuilt).
_HARMLESS = [argparse.Namespace]


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` plus ``argparse.Namespace``, turned into dicts.

    Raises:
        CheckpointError: the file is truncated or asks for any other global.
    """
    path = Path(path)
    _guard(path)
    try:
        with torch.serialization.safe_globals(_HARMLESS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e).split("\n")[0]
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            glob = _unsupported_global(str(e))
            raise CheckpointError(
                f"{path}: refused: the file asks for {glob}, which is not plain weights"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch file ({msg})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError,
            IndexError, TypeError, AttributeError, OverflowError, RecursionError,
            MemoryError, struct.error) as e:  # fmt: skip
        # torch's own unpickler meets corrupt bytes with whatever error comes first
        first = str(e).split("\n")[0]
        raise CheckpointError(f"{path}: truncated or corrupt PyTorch file ({first})") from None
    return _namespaces_to_dicts(obj)


def _guard(path: Path) -> None:
    # Structure checks first: torch would allocate declared storages while loading.
    from faceedit.checkpoints.guards import check_legacy_torch, check_torch_zip

    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        check_torch_zip(path)
    elif head[:1] == b"\x80":
        check_legacy_torch(path)


def _unsupported_global(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.split("GLOBAL", 1)[-1].split(" was not")[0].strip()
    return "a Python global"


def _namespaces_to_dicts(obj: Any) -> Any:
    if isinstance(obj, argparse.Namespace):
        return {k: _namespaces_to_dicts(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return type(obj)((k, _namespaces_to_dicts(v)) for k, v in obj.items())
    return obj


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys that start with ``prefix``, with it removed (order kept)."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
