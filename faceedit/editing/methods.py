"""The editing methods by name: one line each in :data:`METHODS`.

A method is a function ``(model, device=, **options) -> CropEditor``. ``faceedit edit
--method NAME``, ``video``, ``serve``, ``demo`` and ``eval avatars`` all build their editor
here, so a new method is one module (its :class:`~faceedit.editing.base.CropEditor`, or a
:class:`~faceedit.editing.base.LatentEditMethod` that a
:class:`~faceedit.editing.latent_pipeline.LatentPipeline` renders) plus one line below.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faceedit.errors import CheckpointError, EditError
from faceedit.hub import read_bundle, resolve

if TYPE_CHECKING:  # this module stays light: the CLI reads METHODS before torch loads
    import torch

    from faceedit.editing.base import CropEditor

# FaceEditor options that mean nothing to a method without inversion (AttGAN)
INVERSION_OPTIONS = (
    "invert",
    "steps",
    "space",
    "lr",
    "encoder_size",
    "seed",
    "progress",
    "pti_steps",
    "pti_lr",
    "pti_locality",
    "pti_radius",
    "pti_perceptual",
    "pti_perceptual_weight",
)


def latent_editor(
    model: str | os.PathLike | None = None, device: str | torch.device = "cpu", **options: Any
) -> CropEditor:
    """The latent transformers of a bundle (Yao et al., ICCV 2021)."""
    from faceedit.editing.latent_pipeline import LatentPipeline

    return LatentPipeline.from_pretrained(model, device=device, **options)


def linear_editor(
    model: str | os.PathLike | None = None, device: str | torch.device = "cpu", **options: Any
) -> CropEditor:
    """The linear directions of a bundle (InterFaceGAN, Shen et al. CVPR 2020)."""
    from faceedit.editing.latent_pipeline import LatentPipeline

    pipe = LatentPipeline.from_pretrained(model, device=device, **options)
    return pipe.using(pipe.directions, "linear")


def attgan_editor(
    model: str | os.PathLike | None = None, device: str | torch.device = "cpu", **options: Any
) -> CropEditor:
    """An AttGAN (He et al., IEEE TIP 2019) from a file, directory, bundle or training run
    (its ``model/``, or the latest ``checkpoint.pt`` while it still trains)."""
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.editing.attgan import AttGANEditor

    unknown = [k for k, v in options.items() if v is not None and k not in INVERSION_OPTIONS]
    if unknown:
        raise EditError(f"method attgan has no option {', '.join(unknown)}")
    if model is None:
        raise EditError(
            "method attgan needs --model: an AttGAN file, directory or bundle (e.g. the "
            "shipped avatar-attgan for avatars; `faceedit models` lists every model)"
        )
    path = resolve(model, "--model")
    spec = read_bundle(path)
    domain = spec.get("domain")
    if spec:
        if spec.get("method") != "attgan" or not spec.get("model"):
            raise EditError(f"{path}: not an AttGAN bundle (needs method attgan and model)")
        path = resolve(spec["model"], "model")
    try:
        net = load_trained(path)
    except CheckpointError as e:
        raise EditError(str(e)) from None
    # the aligned crop is already square: resize it, do not crop it again
    return AttGANEditor(net.to(device), crop="none", domain=domain or model_domain(path))


def model_domain(path: str | os.PathLike) -> str:
    """The domain a faceedit model directory records (``metadata.domain``), else ``ffhq``."""
    from faceedit.hub import model_metadata

    return str(model_metadata(path).get("domain", "ffhq"))


#: method name -> how to build its crop editor
METHODS: dict[str, Callable[..., CropEditor]] = {
    "latent": latent_editor,
    "linear": linear_editor,
    "attgan": attgan_editor,
}


def build_crop_editor(
    method: str, model: str | os.PathLike | None = None, **options: Any
) -> CropEditor:
    """The :class:`~faceedit.editing.base.CropEditor` of ``method`` on ``model``.

    Raises:
        EditError: an unknown method (the message lists the known ones), or what the
            method's loader raises.
    """
    try:
        build = METHODS[method]
    except KeyError:
        raise EditError(f"method {method!r}: choose from {', '.join(METHODS)}") from None
    return build(model, **options)
