"""LatentEncoder (faceedit.nets.latent_encoder): shapes, the average-latent start, own-format
round trip through faceedit.load, and FaceEditor.encode feeding it its own resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import faceedit
from faceedit.nets.latent_encoder import LatentEncoder, LatentEncoderConfig


def _encoder(res: int = 32, num_ws: int = 6, w_dim: int = 16) -> LatentEncoder:
    config = LatentEncoderConfig(
        img_resolution=res, num_ws=num_ws, w_dim=w_dim, channel_base=128, channel_max=16,
        head_channels=4,
    )  # fmt: skip
    return LatentEncoder(config)


def test_shapes_and_untrained_output_is_the_average_latent() -> None:
    E = _encoder()
    w_avg = torch.randn(16)
    E.set_w_avg(w_avg)
    ws = E(torch.rand(3, 3, 32, 32) * 2 - 1)
    assert ws.shape == (3, 6, 16)
    assert (E.num_ws, E.w_dim, E.img_resolution) == (6, 16, 32)
    # the head starts at zero: every row of every image is the generator's average latent
    assert torch.equal(ws, w_avg.expand(3, 6, 16))
    # stages halve the resolution down to 4x4: 32 -> 16 -> 8 -> 4
    assert len(E.blocks) == 3
    with pytest.raises(ValueError, match=r"w_avg must be \[16\]"):
        E.set_w_avg(torch.zeros(8))
    with pytest.raises(ValueError, match="expected img"):
        E(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="power of two"):
        LatentEncoderConfig(img_resolution=48)


def test_other_input_sizes_are_resized_to_the_encoders_own() -> None:
    E = _encoder()
    torch.nn.init.normal_(E.head.weight, std=0.1)
    big = torch.rand(2, 3, 64, 64) * 2 - 1
    small = torch.nn.functional.interpolate(
        big, size=(32, 32), mode="bilinear", align_corners=False, antialias=True
    )
    out = E(big)
    assert out.shape == (2, 6, 16)
    torch.testing.assert_close(out, E(small))
    assert not torch.allclose(out, E(big.flip(3)))


def test_own_format_round_trip_through_faceedit_load(tmp_path) -> None:
    E = _encoder()
    torch.nn.init.normal_(E.head.weight, std=0.1)
    E.set_w_avg(torch.randn(16))
    E.eval().save_pretrained(tmp_path / "enc", metadata={"psnr": 20.0})
    loaded = faceedit.load(tmp_path / "enc")
    assert isinstance(loaded, LatentEncoder)
    assert loaded.config == E.config
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), E(x))


def test_face_editor_encodes_at_the_encoders_resolution() -> None:
    from faceedit.editing.latent_pipeline import Inversion, LatentPipeline
    from faceedit.editing.pipeline import FaceEditor
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    G = StyleGAN2Generator(
        StyleGAN2Config(
            z_dim=8, w_dim=16, img_resolution=16, mapping_layers=1, channel_base=32,
            channel_max=8,
        )
    )  # fmt: skip
    E = _encoder(res=32, num_ws=G.num_ws)
    seen = []
    E.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    editor = FaceEditor(LatentPipeline(G, {}, E, inversion=Inversion(invert="encoder")))
    crop = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    ws = editor.invert_crop(crop)
    assert ws.shape == (1, G.num_ws, 16)
    # neither the generator's 16 px nor pSp's 256 px: the encoder's own 32 px
    assert seen == [(1, 3, 32, 32)]
