"""faceedit: edit facial attributes of photos and videos with GANs.

Two methods: StyleGAN2 + latent transformers (Yao et al., ICCV 2021) and AttGAN
(He et al., IEEE TIP 2019). Importing this package is cheap: every public name is
resolved lazily on first use, so ``import faceedit`` never pulls in heavy modules.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load": "faceedit.checkpoints",
    "FaceeditError": "faceedit.errors",
    "CheckpointError": "faceedit.errors",
    "StyleGAN2Generator": "faceedit.nets.stylegan2",
    "StyleGAN2Config": "faceedit.nets.stylegan2",
    "StyleGAN2Discriminator": "faceedit.nets.stylegan2",
    "preset": "faceedit.configs",
    "read_image": "faceedit.data.images",
    "AttGAN": "faceedit.nets.attgan",
    "AttGANGenerator": "faceedit.nets.attgan",
    "AttGANDiscriminator": "faceedit.nets.attgan",
    "AttGANEditor": "faceedit.editing.attgan",
    "align_face": "faceedit.faces",
    "AlignedFace": "faceedit.faces",
    "LatentClassifier": "faceedit.nets.latent",
    "LatentTransformer": "faceedit.nets.latent",
    "LatentEditor": "faceedit.editing.latent",
    "edit_photo": "faceedit.editing.pipeline",
    "FaceEditor": "faceedit.editing.pipeline",
    "PhotoEditResult": "faceedit.editing.pipeline",
    "edit_video": "faceedit.editing.video",
    "VideoEditor": "faceedit.editing.video",
    "project": "faceedit.editing.projection",
    "ProjectionResult": "faceedit.editing.projection",
    "download": "faceedit.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'faceedit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
