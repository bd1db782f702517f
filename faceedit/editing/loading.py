"""``faceedit.load``: whatever a name or path holds, loaded.

One network (any format :func:`faceedit.checkpoints.load` reads) comes back as a faceedit
module in eval mode; a latent bundle as a
:class:`~faceedit.editing.latent_pipeline.LatentPipeline` (it holds several networks); an
AttGAN bundle as its AttGAN. Names and run directories resolve through
:func:`faceedit.hub.resolve`.
"""

from __future__ import annotations

import os
from typing import Any

from faceedit.errors import CheckpointError
from faceedit.hub import HubError, read_bundle, resolve


def load(path: str | os.PathLike, **options: Any) -> Any:
    """Load a model by path or name.

    Args:
        path: a file, model directory, bundle, training run directory, or a shipped or
            downloaded model name (``faceedit models`` lists them).
        **options: format-specific options (``setting=`` for an AttGAN release file), or
            for a latent bundle :meth:`LatentPipeline.from_pretrained` options.

    Returns:
        ``nn.Module`` in eval mode, or a ``LatentPipeline`` for a latent bundle.

    Raises:
        CheckpointError: nothing loadable there (the message says what was found).
    """
    from faceedit.checkpoints import load as load_network

    try:
        resolved = resolve(path)
    except HubError as e:
        raise CheckpointError(str(e)) from None
    spec = read_bundle(resolved)
    if not spec:
        return load_network(resolved, **options)
    if spec.get("method", "latent") == "attgan":
        if not spec.get("model"):
            raise CheckpointError(f"{path}: an AttGAN bundle names no model")
        return load_network(resolve(spec["model"], "model"), **options)
    from faceedit.editing.latent_pipeline import LatentPipeline

    return LatentPipeline.from_pretrained(resolved, **options)
