"""pSp / e4e / IR-SE-50 files through ``faceedit.load``.

Real pSp files are 1.2 GB; these tests use the official layout with fewer style rows
(4, for an 8 px decoder). The pSp/e4e dicts are handed to the loader in memory (the
reading of torch files is tested elsewhere); the IR-SE-50 file goes through the disk.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import faceedit
from faceedit.checkpoints import psp as psp_handler
from faceedit.errors import CheckpointError
from faceedit.nets.encoders import (
    E4EEncoder,
    EncoderWithDecoder,
    IRSEBackbone,
    PSPEncoder,
    PSPEncoderConfig,
)
from faceedit.nets.stylegan2 import StyleGAN2Generator
from tests.parity.fixtures import PARITY, load_fixture

N_STYLES = 4  # an 8 px generator has 2*log2(8)-2 = 4 style rows


def _random_like(module: torch.nn.Module, prefix: str, g: torch.Generator) -> dict:
    out = {}
    for key, t in module.state_dict().items():
        if t.is_floating_point():
            out[prefix + key] = torch.randn(t.shape, generator=g) * 0.05 + (
                1.0 if key.endswith("running_var") else 0.0
            )
        else:
            out[prefix + key] = torch.zeros(t.shape, dtype=t.dtype)
    return out


def _rosinality_decoder(g: torch.Generator) -> dict:
    """A rosinality generator state dict (size 8, 512-d styles, 8 mapping layers).

    Built from the stylegan2_rosinality fixture's keys, whose style dimension (64) is
    widened to the 512 the encoders produce.
    """
    small = load_file(str(PARITY / "stylegan2_rosinality" / "weights.safetensors"))
    out = {}
    for key, t in small.items():
        shape = tuple(512 if d == 64 else d for d in t.shape)
        if key.endswith("kernel"):
            out[key] = t.float()
        elif key.startswith("style."):
            out[key] = torch.randn(shape, generator=g) * (100.0 if "weight" in key else 0.0)
        else:
            out[key] = torch.randn(shape, generator=g) * 0.2 + (
                1.0 if "modulation.bias" in key else 0.0
            )
    return out


@pytest.fixture(scope="module")
def checkpoint() -> dict:
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shape_model = PSPEncoder(PSPEncoderConfig(n_styles=N_STYLES, use_latent_avg=False))
    state = _random_like(shape_model, "encoder.", g)
    for key, value in _rosinality_decoder(g).items():
        state["decoder." + key] = value
    latent_avg = torch.randn(512, generator=g).repeat(N_STYLES, 1)
    return {
        "state_dict": state,
        "opts": {"encoder_type": "GradualStyleEncoder", "start_from_latent_avg": True},
        "latent_avg": latent_avg,
    }


@pytest.fixture
def load_dict(monkeypatch, tmp_path):
    """``faceedit.load`` on a file whose content is the given dict (read skipped)."""

    def run(obj: dict, **options):
        path = tmp_path / "psp_ffhq_encode.pt"
        torch.save({}, path)
        monkeypatch.setattr("faceedit.checkpoints.safe_torch.safe_torch_load", lambda p: obj)
        return faceedit.load(path, **options)

    return run


def test_psp_file_gives_encoder_and_decoder(checkpoint, load_dict) -> None:
    pair = load_dict(checkpoint)
    assert isinstance(pair, EncoderWithDecoder) and not pair.training
    assert isinstance(pair.encoder, PSPEncoder) and isinstance(pair.decoder, StyleGAN2Generator)
    assert pair.encoder.config.n_styles == N_STYLES == pair.decoder.num_ws
    for key, value in pair.encoder.state_dict().items():
        expected = (
            checkpoint["latent_avg"]
            if key == "latent_avg"
            else checkpoint["state_dict"]["encoder." + key]
        )
        assert torch.equal(value, expected.to(value.dtype)), key
    torch.testing.assert_close(pair.decoder.w_avg, checkpoint["latent_avg"][0])
    x = torch.rand(1, 3, 16, 16) * 2 - 1  # the smallest input the IR-SE body takes
    with torch.no_grad():
        ws = pair(x)
        pair.encoder.latent_avg.zero_()
        without = pair.encoder(x)
        pair.encoder.latent_avg.copy_(checkpoint["latent_avg"])
        img = pair.reconstruct(x)
    assert ws.shape == (1, N_STYLES, 512)
    torch.testing.assert_close(ws - without, checkpoint["latent_avg"].expand_as(ws))
    assert img.shape == (1, 3, 8, 8) and torch.isfinite(img).all()


def test_e4e_file_and_encoder_type_option(checkpoint, load_dict) -> None:
    e4e = dict(checkpoint, opts={"encoder_type": "Encoder4Editing", "stylegan_size": 8})
    e4e["global_step"] = 1000  # saved with training data: ignored
    assert isinstance(load_dict(e4e).encoder, E4EEncoder)
    no_opts = {k: v for k, v in checkpoint.items() if k != "opts"}
    with pytest.raises(CheckpointError, match=r"psp_ffhq_encode\.pt: .*encoder_type"):
        load_dict(no_opts)
    assert isinstance(load_dict(no_opts, encoder_type="e4e").encoder, E4EEncoder)


def test_bad_psp_files_are_clear_errors(checkpoint, load_dict) -> None:
    wrong_size = dict(checkpoint, opts={"encoder_type": "GradualStyleEncoder", "output_size": 1024})
    with pytest.raises(CheckpointError, match=r"psp_ffhq_encode\.pt: .*1024 px generator"):
        load_dict(wrong_size)
    other = dict(checkpoint, opts={"encoder_type": "BackboneEncoderUsingLastLayerIntoW"})
    with pytest.raises(CheckpointError, match="not supported"):
        load_dict(other)
    state = dict(checkpoint["state_dict"])
    del state["encoder.latlayer1.weight"]
    with pytest.raises(CheckpointError, match=r"psp_ffhq_encode\.pt: .*latlayer1\.weight"):
        load_dict(dict(checkpoint, state_dict=state))


def test_encoder_only_file_gives_the_encoder(checkpoint, load_dict) -> None:
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("encoder.")}
    no_avg = {"state_dict": state, "opts": {"encoder_type": "GradualStyleEncoder"}}
    encoder = load_dict(no_avg)
    assert isinstance(encoder, PSPEncoder) and encoder.latent_avg is None
    # a [512] average latent is repeated per row, as pSp does
    encoder = psp_handler.encoder_from_psp(dict(no_avg, latent_avg=torch.ones(512)))
    assert torch.equal(encoder.latent_avg, torch.ones(N_STYLES, 512))


def test_ir_se50_file_through_the_disk(tmp_path) -> None:
    fx = load_fixture("ir_se50")
    state = {k: v.half() if v.is_floating_point() else v for k, v in fx.weights().items()}
    path = tmp_path / "model_ir_se50.pth"
    torch.save(state, path)
    net = faceedit.load(path)
    assert isinstance(net, IRSEBackbone) and not net.training
    assert net.config.input_size == 112 and net.config.mode == "ir_se"
    with torch.no_grad():
        feat = net(fx.io["input.x112"])
    # float16-rounded weights: close to the reference, not equal
    torch.testing.assert_close(feat, fx.io["output.x112.feat"], atol=2e-3, rtol=0)
    del state["body.5.res_layer.1.weight"]
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"model_ir_se50\.pth: .*body\.5\.res_layer\.1\.weight"
    ):
        faceedit.load(path)


def test_the_encoder_takes_the_files_tensors_without_a_copy(checkpoint, load_dict) -> None:
    # a second copy of a 1 GB encoder beside the file's tensors was faceedit edit's peak
    pair = load_dict(checkpoint)
    for key, value in pair.encoder.state_dict().items():
        if key != "latent_avg":
            assert value.data_ptr() == checkpoint["state_dict"]["encoder." + key].data_ptr(), key
    assert pair.encoder.latent_avg.data_ptr() != checkpoint["latent_avg"].data_ptr()
