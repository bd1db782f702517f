"""AttGAN networks and the release-checkpoint loader on tiny configurations."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import faceedit
from faceedit.errors import CheckpointError
from faceedit.nets.attgan import (
    AttGAN,
    AttGANConfig,
    AttGANDiscriminator,
    AttGANDiscriminatorConfig,
    AttGANGenerator,
    AttGANGeneratorConfig,
    fast_generate,
)

ATTRS = ("Bald", "Bangs", "Eyeglasses", "Male")


def tiny_g(**kw) -> AttGANGeneratorConfig:
    base = dict(
        enc_dim=4,
        enc_layers=3,
        dec_dim=4,
        dec_layers=3,
        n_attrs=4,
        attrs=ATTRS,
        img_size=32,
        shortcut_layers=1,
        inject_layers=1,
    )
    base.update(kw)
    return AttGANGeneratorConfig(**base)


def tiny_d(**kw) -> AttGANDiscriminatorConfig:
    base = dict(dim=4, n_layers=3, fc_dim=8, img_size=32, n_attrs=4)
    base.update(kw)
    return AttGANDiscriminatorConfig(**base)


@pytest.mark.parametrize("norm", ["batchnorm", "instancenorm", "switchable", "none"])
@pytest.mark.parametrize("shortcut,inject", [(0, 0), (2, 1), (1, 2)])
def test_generator_shapes_and_backward(norm: str, shortcut: int, inject: int) -> None:
    G = AttGANGenerator(
        tiny_g(
            enc_norm=norm,
            dec_norm=norm,
            shortcut_layers=shortcut,
            inject_layers=inject,
            enc_dim=4,
            dec_dim=6,
        )
    )
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    a = torch.rand(2, 4) - 0.5
    feats = G.encode(x)
    assert [f.shape[1] for f in feats] == [4, 8, 16]
    out = G.decode(feats, a)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    # any size the depth allows: 48 = 6 * 2**3
    assert G(torch.randn(1, 3, 48, 40), a[:1]).shape == (1, 3, 48, 40)


def test_bad_inputs_get_clear_errors() -> None:
    G = AttGANGenerator(tiny_g())
    with pytest.raises(ValueError, match="multiple of 8"):
        G(torch.randn(1, 3, 30, 32), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="attrs must be"):
        G(torch.randn(1, 3, 32, 32), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="must equal dec_layers"):
        tiny_g(dec_layers=4)
    with pytest.raises(ValueError, match="unknown norm"):
        tiny_g(enc_norm="groupnorm")


def test_discriminator_heads_follow_n_attrs() -> None:
    D = AttGANDiscriminator(tiny_d(n_attrs=7, dim=8))
    adv, cls = D(torch.randn(3, 3, 32, 32))
    assert adv.shape == (3, 1) and cls.shape == (3, 7)
    # fc width follows the real trunk width (8 * 4 = 32 channels, 4 x 4)
    assert D.fc_adv[0].layers[0].in_features == 32 * 4 * 4
    with pytest.raises(ValueError, match="expects"):
        D(torch.randn(1, 3, 16, 16))


def test_folded_batchnorm_equals_eval_module() -> None:
    torch.manual_seed(1)
    G = AttGANGenerator(tiny_g())
    # non-trivial running statistics
    G.train()
    for _ in range(3):
        G(torch.randn(4, 3, 32, 32), torch.rand(4, 4) - 0.5)
    G.eval()
    x, a = torch.randn(2, 3, 32, 32), torch.rand(2, 4) - 0.5
    with torch.no_grad():
        ref = G(x, a)
    fast = G.inference_copy()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert torch.allclose(fast_generate(fast, x, a), ref, atol=1e-4, rtol=0)


def test_style_controllers_change_the_output() -> None:
    G = AttGANGenerator(tiny_g(style_dim=2)).eval()
    D = AttGANDiscriminator(tiny_d(style_dim=2))
    x, a = torch.randn(1, 3, 32, 32), torch.full((1, 4), 0.5)
    s = torch.ones(1, 4, 2)
    with torch.no_grad():
        assert not torch.allclose(G(x, a, s), G(x, a, -s))
    assert D.predict_style(torch.randn(2, 3, 32, 32)).shape == (2, 4, 2)


def test_the_style_head_stays_alive_when_its_hidden_units_go_negative() -> None:
    # with a ReLU, a head whose hidden pre-activations are all negative outputs its bias
    # whatever the image, and no gradient can revive it (the avatar style runs' failure)
    D = AttGANDiscriminator(tiny_d(style_dim=1))
    linear = D.fc_style[0].layers[0]
    with torch.no_grad():
        linear.bias.fill_(-1e3)
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    assert not torch.allclose(D.predict_style(a), D.predict_style(b))
    img = torch.randn(2, 3, 32, 32, requires_grad=True)
    D.predict_style(img).sum().backward()
    assert img.grad.abs().sum() > 0
    relu = AttGANDiscriminator(dataclasses.replace(tiny_d(style_dim=1), style_acti="relu"))
    relu.load_state_dict(D.state_dict())
    assert torch.allclose(relu.predict_style(a), relu.predict_style(b))


def _prefixed(state, prefix: str):
    if not prefix:
        return state
    out = type(state)((prefix + k, v) for k, v in state.items())
    out._metadata = type(state._metadata)((prefix + k, v) for k, v in state._metadata.items())
    return out


def _write_release(tmp_path, model: AttGAN, *, with_D: bool, prefix: str = "", setting=None):
    ckdir = tmp_path / "exp" / "checkpoint"
    ckdir.mkdir(parents=True)
    # real state_dict() OrderedDicts (with their _metadata) as the release saves them
    data = {"G": _prefixed(model.G.state_dict(), prefix)}
    if with_D:
        data["D"] = _prefixed(model.D.state_dict(), prefix)
        data["optim_G"] = {"state": {}, "param_groups": []}
    path = ckdir / "weights.3.pth"
    torch.save(data, path)
    if setting is not None:
        (tmp_path / "exp" / "setting.txt").write_text(json.dumps(setting, indent=4))
    return path


def test_load_release_checkpoint_with_setting_and_module_prefix(tmp_path) -> None:
    from faceedit.checkpoints.attgan import setting_from_config

    model = AttGAN(AttGANConfig(G=tiny_g(enc_acti="relu"), D=tiny_d())).eval()
    setting = setting_from_config(model)
    path = _write_release(tmp_path, model, with_D=True, prefix="module.", setting=setting)
    loaded = faceedit.load(path)
    assert isinstance(loaded, AttGAN) and loaded.D is not None
    assert loaded.config == model.config
    x, a = torch.randn(1, 3, 32, 32), torch.rand(1, 4)
    with torch.no_grad():
        assert torch.equal(loaded.G(x, a), model.G(x, a))
        assert torch.equal(loaded.D(x)[1], model.D(x)[1])
    # built on the meta device and given the file's tensors: nothing is left without data,
    # and the parameters still train
    tensors = list(loaded.parameters()) + list(loaded.buffers())
    assert all(t.device.type == "cpu" for t in tensors)
    assert all(p.requires_grad for p in loaded.parameters())
    loaded.G(x, a).square().mean().backward()
    assert all(p.grad is not None for p in loaded.G.parameters() if p.requires_grad)


def test_setting_inferred_from_weights_when_missing(tmp_path) -> None:
    cfg = tiny_g(
        n_attrs=13,
        attrs=tuple(f"a{i}" for i in range(13)),
        shortcut_layers=2,
        inject_layers=1,
        enc_norm="instancenorm",
    )
    model = AttGAN(AttGANConfig(G=cfg, D=tiny_d(n_attrs=13, img_size=64))).eval()
    path = _write_release(tmp_path, model, with_D=True)
    loaded = faceedit.load(path)
    g = loaded.config.G
    assert (g.enc_dim, g.enc_layers, g.shortcut_layers, g.inject_layers) == (4, 3, 2, 1)
    assert g.enc_norm == "instancenorm" and g.dec_norm == "batchnorm"
    assert g.img_size == 64 and loaded.config.D.img_size == 64
    assert g.attrs[6] == "Eyeglasses"  # the release's 13 names


def test_missing_setting_with_unknown_attribute_count_is_a_clear_error(tmp_path) -> None:
    model = AttGAN(AttGANConfig(G=tiny_g(), D=None))
    path = _write_release(tmp_path, model, with_D=False)
    with pytest.raises(CheckpointError, match="pass setting="):
        faceedit.load(path)
    # given explicitly, it loads
    loaded = faceedit.load(
        path,
        setting={
            "attrs": list(ATTRS),
            "enc_dim": 4,
            "dec_dim": 4,
            "enc_layers": 3,
            "dec_layers": 3,
            "inject_layers": 1,
            "img_size": 32,
        },
    )
    assert loaded.D is None and loaded.attrs == ATTRS


def test_wrong_setting_names_the_mismatch(tmp_path) -> None:
    model = AttGAN(AttGANConfig(G=tiny_g(), D=None))
    path = _write_release(tmp_path, model, with_D=False)
    bad = tmp_path / "setting.txt"
    bad.write_text(
        json.dumps(
            {"attrs": list(ATTRS), "enc_dim": 8, "enc_layers": 3, "dec_layers": 3, "img_size": 32}
        )
    )
    with pytest.raises(CheckpointError, match="shape"):
        faceedit.load(path, setting=bad)


def test_own_format_round_trip(tmp_path) -> None:
    model = AttGAN(AttGANConfig(G=tiny_g(), D=tiny_d())).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = faceedit.load(tmp_path / "m")
    assert isinstance(loaded, AttGAN) and loaded.config == model.config
    for (k, v), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2)


@pytest.mark.parametrize("gemm_max", [0, 10**9])
def test_fast_layers_equal_torch_layers(monkeypatch, gemm_max: int) -> None:
    from faceedit.nets import attgan

    monkeypatch.setattr(attgan, "GEMM_MAX_POSITIONS", gemm_max)
    torch.manual_seed(2)
    convt = torch.nn.ConvTranspose2d(5, 7, 4, 2, 1)
    conv = torch.nn.Conv2d(5, 7, 4, 2, 1)
    x = torch.randn(2, 5, 6, 10)
    with torch.inference_mode():
        assert torch.allclose(attgan.SubPixelConvTranspose(convt)(x), convt(x), atol=1e-5)
        assert torch.allclose(attgan.FastConv2d(conv)(x), conv(x), atol=1e-5)


def test_fast_generator_batch_nonsquare_and_style() -> None:
    torch.manual_seed(3)
    G = AttGANGenerator(tiny_g(style_dim=2, shortcut_layers=2, inject_layers=2)).eval()
    x, a, s = torch.randn(3, 3, 48, 40), torch.rand(3, 4) - 0.5, torch.rand(3, 4, 2)
    with torch.no_grad():
        ref = G(x, a, s)
    assert torch.allclose(fast_generate(G.inference_copy(), x, a, s), ref, atol=1e-4, rtol=0)
