"""Named presets build the official full-size models (checked on the meta device)."""

from __future__ import annotations

import pytest
import torch

from faceedit.configs import preset, preset_names
from tests.parity.fixtures import load_fixture


def keys_of(module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


@pytest.mark.parametrize(
    "name, fixture, build",
    [
        ("stylegan2-ffhq-1024", "stylegan2_nvlabs", "faceedit.nets.stylegan2:StyleGAN2Generator"),
        ("ir-se50", "ir_se50", "faceedit.nets.encoders:IRSEBackbone"),
    ],
)
def test_presets_match_official_key_lists(name, fixture, build):
    import importlib

    module_name, cls_name = build.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    with torch.device("meta"):
        model = cls(preset(name))
    official = [(k, s) for k, s, _ in load_fixture(fixture).full_keys()]
    assert keys_of(model) == official


def test_attgan_384_preset_matches_release_keys():
    from faceedit.nets.attgan import AttGAN

    with torch.device("meta"):
        model = AttGAN(preset("attgan-384-hq"))
    official = [(k, s) for k, s, _ in load_fixture("attgan").full_keys()]
    assert keys_of(model) == official


def test_preset_overrides_and_unknown_names():
    assert preset("stylegan2-ffhq-1024", img_resolution=256).num_ws == 14
    assert preset("latent-classifier-released").hidden == (2048, 512)
    with pytest.raises(KeyError, match="known: "):
        preset("stylegan2-ffhq-2048")
    assert {"stylegan2-ffhq-1024", "attgan-384-hq", "psp-ffhq"} <= set(preset_names())
