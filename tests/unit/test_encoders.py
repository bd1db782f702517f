"""pSp / e4e encoders and IR-SE backbone beyond parity: configs, training, own format."""

from __future__ import annotations

import pytest
import torch

import faceedit
from faceedit.nets.encoders import (
    E4EEncoder,
    E4EEncoderConfig,
    IRSEConfig,
    PSPEncoder,
    PSPEncoderConfig,
)


@pytest.fixture(scope="module")
def e4e_one_row() -> E4EEncoder:
    torch.manual_seed(0)
    model = E4EEncoder(E4EEncoderConfig(n_styles=1, use_latent_avg=True))
    with torch.no_grad():
        model.latent_avg.normal_()
    return model.eval()


def test_save_and_load_own_format(e4e_one_row, tmp_path) -> None:
    e4e_one_row.save_pretrained(tmp_path / "e4e")
    loaded = faceedit.load(tmp_path / "e4e")
    assert type(loaded) is E4EEncoder and loaded.config == e4e_one_row.config
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), e4e_one_row(x), rtol=0, atol=0)
    assert torch.equal(loaded.latent_avg, e4e_one_row.latent_avg)


def test_backward_in_training_mode(e4e_one_row) -> None:
    model = e4e_one_row.train()
    try:
        ws = model(torch.rand(2, 3, 16, 16) * 2 - 1)
        ws.square().mean().backward()
        # with one style row the middle and fine pyramid levels are never computed
        grads = {k: p.grad for k, p in model.named_parameters() if not k.startswith("latlayer")}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
        assert model.latlayer1.weight.grad is None
        assert model.styles[0].linear.weight.grad.abs().sum() > 0
        assert model.input_layer[0].weight.grad.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        PSPEncoderConfig(num_layers=34)
    with pytest.raises(ValueError, match="mode"):
        E4EEncoderConfig(mode="se")
    with pytest.raises(ValueError, match="n_styles"):
        PSPEncoderConfig(n_styles=0)
    with pytest.raises(ValueError, match="input_size"):
        IRSEConfig(input_size=128)
    with pytest.raises(TypeError, match="PSPEncoderConfig"):
        PSPEncoder(E4EEncoderConfig())


def test_psp_style_rows_and_input_channels() -> None:
    # four input channels (pSp's segmentation/sketch variants) and rows past the coarse ones
    with torch.device("meta"):
        model = PSPEncoder(PSPEncoderConfig(n_styles=5, input_nc=4, use_latent_avg=False))
        assert model.num_ws == 5
        assert tuple(model.input_layer[0].weight.shape) == (64, 4, 3, 3)
        ws = model(torch.zeros(2, 4, 64, 64))
    assert tuple(ws.shape) == (2, 5, 512)
    # rows 3-4 read the middle pyramid level: 5 stride-2 convs in their heads
    assert len(model.styles[4].convs) == 10 and len(model.styles[2].convs) == 8
