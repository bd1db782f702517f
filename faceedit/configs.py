"""Every typed config in one place, and named presets of the published models.

Model configs live beside their networks (``faceedit.nets`` imports nothing else of
faceedit) and training configs beside their loops; this module re-exports them so that
``from faceedit.configs import ...`` finds any of them, and names the configurations that
official checkpoints use.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from faceedit.nets.attgan import AttGANConfig, AttGANDiscriminatorConfig, AttGANGeneratorConfig
from faceedit.nets.encoders import E4EEncoderConfig, IRSEConfig, PSPEncoderConfig
from faceedit.nets.latent import LatentClassifierConfig, LatentTransformerConfig, classifier_preset
from faceedit.nets.oracle import AvatarOracleConfig
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2DiscriminatorConfig
from faceedit.train.attgan import AttGANTrainConfig
from faceedit.train.stylegan2 import StyleGAN2TrainConfig


def _attgan_384_hq() -> AttGANConfig:
    from faceedit.checkpoints.attgan import configs_from_setting

    g, d = configs_from_setting({"img_size": 384, "inject_layers": 1, "shortcut_layers": 1})
    return AttGANConfig(G=g, D=d)


def _attgan_128() -> AttGANConfig:
    from faceedit.checkpoints.attgan import configs_from_setting

    g, d = configs_from_setting({})
    return AttGANConfig(G=g, D=d)


_PRESETS = {
    # StyleGAN2 config F at 1024 px (FFHQ): rosinality .pt and NVlabs .pkl alike
    "stylegan2-ffhq-1024": lambda: StyleGAN2Config(),
    # pSp / e4e FFHQ encoders: 18 style rows at 256 px input
    "psp-ffhq": lambda: PSPEncoderConfig(n_styles=18),
    "e4e-ffhq": lambda: E4EEncoderConfig(n_styles=18),
    "ir-se50": lambda: IRSEConfig(),
    # latent-transformer release: classifier 9216-2048-512-40 and per-row transformers
    "latent-classifier-released": lambda: classifier_preset("released"),
    "latent-classifier-small": lambda: classifier_preset("small"),
    "latent-transformer-released": lambda: LatentTransformerConfig(),
    # AttGAN releases: 384_shortcut1_inject1_none_hq and the 128 px default
    "attgan-384-hq": _attgan_384_hq,
    "attgan-128": _attgan_128,
}


def preset(name: str, **overrides: Any) -> Any:
    """A named config, with fields replaced by ``overrides``."""
    if name not in _PRESETS:
        raise KeyError(f"unknown preset {name!r} (known: {', '.join(sorted(_PRESETS))})")
    config = _PRESETS[name]()
    return replace(config, **overrides) if overrides else config


def preset_names() -> list[str]:
    return sorted(_PRESETS)


__all__ = [
    "AttGANConfig",
    "AttGANDiscriminatorConfig",
    "AttGANGeneratorConfig",
    "AttGANTrainConfig",
    "AvatarOracleConfig",
    "E4EEncoderConfig",
    "IRSEConfig",
    "LatentClassifierConfig",
    "LatentTransformerConfig",
    "PSPEncoderConfig",
    "StyleGAN2Config",
    "StyleGAN2DiscriminatorConfig",
    "StyleGAN2TrainConfig",
    "preset",
    "preset_names",
]
