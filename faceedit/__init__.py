"""faceedit: edit facial attributes of photos and videos with GANs.

Two methods: StyleGAN2 + latent transformers (Yao et al., ICCV 2021) and AttGAN
(He et al., IEEE TIP 2019). Importing this package is cheap: every public name is
resolved lazily on first use, so ``import faceedit`` never pulls in heavy modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load": "faceedit.editing.loading",
    "resolve": "faceedit.hub",
    "catalogue": "faceedit.hub",
    "download": "faceedit.checkpoints.download",
    "FaceeditError": "faceedit.errors",
    "CheckpointError": "faceedit.errors",
    "EditError": "faceedit.errors",
    "StyleGAN2Generator": "faceedit.nets.stylegan2",
    "StyleGAN2Config": "faceedit.nets.stylegan2",
    "StyleGAN2Discriminator": "faceedit.nets.stylegan2",
    "preset": "faceedit.configs",
    "read_image": "faceedit.data.images",
    "AttGAN": "faceedit.nets.attgan",
    "AttGANGenerator": "faceedit.nets.attgan",
    "AttGANDiscriminator": "faceedit.nets.attgan",
    "align_face": "faceedit.faces",
    "AlignedFace": "faceedit.faces",
    "LatentClassifier": "faceedit.nets.latent",
    "LatentTransformer": "faceedit.nets.latent",
    "CropEditor": "faceedit.editing.base",
    "CropEdits": "faceedit.editing.base",
    "LatentEditMethod": "faceedit.editing.base",
    "LatentPipeline": "faceedit.editing.latent_pipeline",
    "Inversion": "faceedit.editing.latent_pipeline",
    "LatentEditor": "faceedit.editing.latent",
    "LinearDirections": "faceedit.editing.directions",
    "AttGANEditor": "faceedit.editing.attgan",
    "METHODS": "faceedit.editing.methods",
    "build_editor": "faceedit.editing.pipeline",
    "edit_photo": "faceedit.editing.pipeline",
    "FaceEditor": "faceedit.editing.pipeline",
    "FaceEdit": "faceedit.editing.pipeline",
    "PhotoEditResult": "faceedit.editing.pipeline",
    "edit_video": "faceedit.editing.video",
    "VideoEditor": "faceedit.editing.video",
    "project": "faceedit.editing.projection",
    "ProjectionResult": "faceedit.editing.projection",
}

__all__ = [
    "__version__",
    "load",
    "resolve",
    "catalogue",
    "download",
    "FaceeditError",
    "CheckpointError",
    "EditError",
    "StyleGAN2Generator",
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "preset",
    "read_image",
    "AttGAN",
    "AttGANGenerator",
    "AttGANDiscriminator",
    "align_face",
    "AlignedFace",
    "LatentClassifier",
    "LatentTransformer",
    "CropEditor",
    "CropEdits",
    "LatentEditMethod",
    "LatentPipeline",
    "Inversion",
    "LatentEditor",
    "LinearDirections",
    "AttGANEditor",
    "METHODS",
    "build_editor",
    "edit_photo",
    "FaceEditor",
    "FaceEdit",
    "PhotoEditResult",
    "edit_video",
    "VideoEditor",
    "project",
    "ProjectionResult",
]

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
    from faceedit.checkpoints.download import download
    from faceedit.configs import preset
    from faceedit.data.images import read_image
    from faceedit.editing.attgan import AttGANEditor
    from faceedit.editing.base import CropEditor, CropEdits, LatentEditMethod
    from faceedit.editing.directions import LinearDirections
    from faceedit.editing.latent import LatentEditor
    from faceedit.editing.latent_pipeline import Inversion, LatentPipeline
    from faceedit.editing.loading import load
    from faceedit.editing.methods import METHODS
    from faceedit.editing.pipeline import (
        FaceEdit,
        FaceEditor,
        PhotoEditResult,
        build_editor,
        edit_photo,
    )
    from faceedit.editing.projection import ProjectionResult, project
    from faceedit.editing.video import VideoEditor, edit_video
    from faceedit.errors import CheckpointError, EditError, FaceeditError
    from faceedit.faces import AlignedFace, align_face
    from faceedit.hub import catalogue, resolve
    from faceedit.nets.attgan import AttGAN, AttGANDiscriminator, AttGANGenerator
    from faceedit.nets.latent import LatentClassifier, LatentTransformer
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'faceedit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
