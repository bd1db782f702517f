"""Load an avatar oracle (:class:`faceedit.nets.oracle.AvatarOracle`) and refuse any other
kind of model, so that a judge or labeller given the wrong path fails with one line."""

from __future__ import annotations

import os

from faceedit.checkpoints import load
from faceedit.errors import CheckpointError
from faceedit.hub import model_metadata
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
    model.metadata = {**model_metadata(path), "name": str(path)}
    return model
