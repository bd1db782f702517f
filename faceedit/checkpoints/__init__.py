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
from pathlib import Path

from torch import nn

from faceedit.checkpoints.registry import detect_and_load
from faceedit.errors import CheckpointError


def load(path: str | os.PathLike, **options) -> nn.Module:
    """Load any supported checkpoint as a faceedit module in eval mode.

    Args:
        path: a file or directory (see the module docstring for the formats), or the
            name of a model shipped with faceedit (``faceedit.shipped.shipped_models()``).
        **options: format-specific options (e.g. ``setting=`` for AttGAN).

    Raises:
        CheckpointError: the file is missing, unrecognised, truncated or does not fit.
    """
    path = Path(path)
    if not path.exists():
        from faceedit.shipped import shipped_models, shipped_path

        shipped = shipped_path(str(path))
        if shipped is None:
            known = ", ".join(shipped_models()) or "none"
            raise CheckpointError(
                f"{path}: no such file or directory (nor a model shipped with faceedit: {known})"
            )
        path = shipped
    return detect_and_load(path, **options)


__all__ = ["load", "CheckpointError"]
