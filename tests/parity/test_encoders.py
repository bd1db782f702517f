"""Parity of the IR-SE-50 backbone, pSp and e4e encoders with the reference outputs.

Weights are rebuilt from each fixture's ``init.json`` (checksums checked); every model is
built once per module (they are ~31M parameters). Full-size key lists are compared on
the ``meta`` device, which allocates nothing.
"""

from __future__ import annotations

import pytest
import torch

from faceedit.checkpoints.safe_torch import strip_prefix
from faceedit.nets.base import load_state_dict_checked
from faceedit.nets.encoders import (
    E4EEncoder,
    E4EEncoderConfig,
    IRSEBackbone,
    IRSEConfig,
    PSPEncoder,
    PSPEncoderConfig,
)
from tests.parity.fixtures import load_fixture


def _keys(module: torch.nn.Module, prefix: str = "") -> list[tuple[str, tuple[int, ...], str]]:
    return [
        (prefix + k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in module.state_dict().items()
    ]


def _empty(cls, config):
    """Built without random initialisation: the strict load below sets every tensor."""
    with torch.device("meta"):
        model = cls(config)
    return model.to_empty(device="cpu")


def _small(fixture_name: str, cls, config):
    fx = load_fixture(fixture_name)
    model = _empty(cls, config)
    load_state_dict_checked(model, strip_prefix(fx.weights(), "encoder."), source=fixture_name)
    return fx, model.eval()


@pytest.fixture(scope="module")
def psp():
    return _small("psp_encoder", PSPEncoder, PSPEncoderConfig(n_styles=8, use_latent_avg=False))


@pytest.fixture(scope="module")
def e4e():
    return _small("e4e_encoder", E4EEncoder, E4EEncoderConfig(n_styles=8, use_latent_avg=False))


@pytest.fixture(scope="module")
def irse():
    fx = load_fixture("ir_se50")
    model = _empty(IRSEBackbone, IRSEConfig(**fx.spec["config"]))
    load_state_dict_checked(model, fx.weights(), source="ir_se50")
    return fx, model.eval()


@pytest.mark.parametrize("case", ["x64", "x256"])
def test_psp_encoder_cases(psp, case: str) -> None:
    fx, model = psp
    with torch.no_grad():
        codes = model(fx.io[f"input.{case}"])
    fx.assert_close(case, codes, f"output.{case}.codes")


@pytest.mark.parametrize("case", ["x64", "x256", "x64_stage2"])
def test_e4e_encoder_cases(e4e, case: str) -> None:
    fx, model = e4e
    model.progressive_stage = 2 if case == "x64_stage2" else None
    try:
        with torch.no_grad():
            w = model(fx.io[f"input.{case.split('_')[0]}"])
    finally:
        model.progressive_stage = None
    fx.assert_close(case, w, f"output.{case}.w")
    if case == "x64_stage2":
        # rows past the stage carry no delta: they all equal row 0
        assert torch.equal(w[:, 3:], w[:, :1].expand(-1, 5, -1))


def test_e4e_stage_changes_output(e4e) -> None:
    fx, model = e4e
    x = fx.io["input.x64"]
    with torch.no_grad():
        full = model(x)
        model.progressive_stage = 0
        only_w0 = model(x)
        model.progressive_stage = None
    assert not torch.allclose(full, only_w0)
    assert torch.equal(only_w0, only_w0[:, :1].expand_as(only_w0))


def test_ir_se50_x112(irse) -> None:
    fx, model = irse
    with torch.no_grad():
        feat = model(fx.io["input.x112"])
    fx.assert_close("x112", feat, "output.x112.feat")
    torch.testing.assert_close(feat.norm(dim=1), torch.ones(2))


def test_ir_se50_idloss_extract(irse) -> None:
    fx, model = irse
    with torch.no_grad():
        feat = model.extract(fx.io["input.x256"])
    fx.assert_close("idloss_extract", feat, "output.idloss_extract.feat")


@pytest.mark.parametrize(
    "name, cls, config",
    [
        ("psp_encoder", PSPEncoder, PSPEncoderConfig(n_styles=18, use_latent_avg=False)),
        ("e4e_encoder", E4EEncoder, E4EEncoderConfig(n_styles=18, use_latent_avg=False)),
    ],
)
def test_full_size_encoder_keys(name: str, cls, config) -> None:
    with torch.device("meta"):
        model = cls(config)
    assert _keys(model, "encoder.") == load_fixture(name).full_keys()


def test_full_size_irse_keys(irse) -> None:
    fx, model = irse
    assert _keys(model) == fx.full_keys()


def test_bad_input_shapes(psp, irse) -> None:
    _, model = psp
    with pytest.raises(ValueError, match="256x256"):
        model(torch.zeros(1, 3, 512, 512, device="meta"))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        model(torch.zeros(3, 64, 64))
    _, backbone = irse
    with pytest.raises(ValueError, match="112x112"):
        backbone(torch.zeros(1, 3, 128, 128))
