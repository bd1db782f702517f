"""Every model format in and out, behind one entry point: :func:`load`.

Formats are recognised by content, not by file name:

- a directory with ``config.json`` + ``model.safetensors``: faceedit's own format;
- a ``torch.save`` file (zip or legacy): read with ``weights_only=True`` (plus a few
  harmless classes such as ``argparse.Namespace``), then offered to each registered
  handler, which claims it by its keys (rosinality/pSp/e4e, AttGAN, latent transformer...);
- an NVlabs ``.pkl``: read by a restricted unpickler that never runs embedded code.

A handler module registers itself with :func:`faceedit.checkpoints.registry.register`;
the modules to import are listed in ``registry.HANDLER_MODULES``.
"""

from __future__ import annotations

import os

from torch import nn

from faceedit.checkpoints.registry import detect_and_load
from faceedit.errors import CheckpointError


def load(path: str | os.PathLike, **options) -> nn.Module:
    """Load one network (any supported format) as a faceedit module in eval mode.

    Args:
        path: a file or directory (see the module docstring for the formats), or anything
            :func:`faceedit.hub.resolve` understands (a shipped or downloaded model name,
            a training run directory). Bundles hold several networks: load them with
            :func:`faceedit.load`.
        **options: format-specific options (e.g. ``setting=`` for AttGAN).

    Raises:
        CheckpointError: the file is missing, unrecognised, truncated or does not fit.
    """
    from faceedit.hub import HubError, is_bundle, resolve

    try:
        resolved = resolve(path)
    except HubError as e:
        raise CheckpointError(str(e)) from None
    if is_bundle(resolved):
        raise CheckpointError(
            f"{path}: a bundle of several models; load it with faceedit.load (a LatentPipeline)"
        )
    return detect_and_load(resolved, **options)


def load_generator(source: str | os.PathLike, what: str = "generator") -> nn.Module:
    """The StyleGAN2 generator that ``source`` names: a generator (any format), a pSp/e4e
    file (its decoder), a latent bundle (its generator) or a run directory.

    Raises:
        CheckpointError: nothing loadable there, or no generator in it (the message
            starts with ``what``).
    """
    from faceedit.hub import HubError, is_model_dir, read_bundle, resolve
    from faceedit.nets.stylegan2 import StyleGAN2Generator

    try:
        path = resolve(source, what)
        spec = read_bundle(path)
        if spec:
            part = spec.get("generator") or spec.get("encoder") or spec.get("model")
            if not part:
                raise CheckpointError(f"{what} {source}: the bundle names no generator")
            path = resolve(part, what)
        if path.is_dir() and not is_model_dir(path):
            raise CheckpointError(
                f"{what} {source}: not a generator directory, run directory or latent bundle"
            )
        model = detect_and_load(path)
    except (HubError, CheckpointError) as e:
        text = str(e)
        raise CheckpointError(text if text.startswith(what) else f"{what}: {text}") from None
    G = model if isinstance(model, StyleGAN2Generator) else getattr(model, "decoder", None)
    if not isinstance(G, StyleGAN2Generator):
        raise CheckpointError(
            f"{what} {source}: holds a {type(model).__name__}, not a StyleGAN2 generator"
        )
    return G.eval()


__all__ = ["load", "load_generator", "CheckpointError"]
