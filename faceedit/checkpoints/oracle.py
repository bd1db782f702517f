"""Load an avatar oracle (:class:`faceedit.nets.oracle.AvatarOracle`) and refuse any other
kind of model, so that a judge or labeller given the wrong path fails with one line."""

from __future__ import annotations

import os

from faceedit.checkpoints import load
from faceedit.errors import CheckpointError, FaceeditError
from faceedit.nets.oracle import AvatarOracle


def load_avatar_oracle(path: str | os.PathLike) -> AvatarOracle:
    """The avatar oracle at ``path`` (a directory, file or shipped name such as
    ``avatar-oracle``).

    Raises:
        CheckpointError: unreadable, or a model of another kind.
    """
    model = load(path)
    if not isinstance(model, AvatarOracle):
        raise CheckpointError(
            f"{path}: holds {type(model).__name__}, not an avatar oracle "
            "('faceedit train oracle', or the shipped avatar-oracle)"
        )
    # reports name the judge and say what it is for (its metadata's role)
    model.metadata = {**_metadata(path), "name": str(path)}
    return model


def _metadata(path: str | os.PathLike) -> dict:
    import json

    from faceedit.hub import resolve

    try:
        header = json.loads((resolve(path) / "config.json").read_text())
    except (OSError, ValueError, FaceeditError):
        return {}
    return header.get("metadata") or {} if isinstance(header, dict) else {}
