"""Parity with the release (elvisyjlin/AttGAN-PyTorch) through the ``attgan`` fixture."""

from __future__ import annotations

import torch

from faceedit.nets.attgan import (
    AttGAN,
    AttGANConfig,
    AttGANDiscriminator,
    AttGANDiscriminatorConfig,
    AttGANGenerator,
    AttGANGeneratorConfig,
)
from faceedit.nets.base import load_state_dict_checked
from tests.parity.fixtures import load_fixture


def _g_config(cfg: dict) -> AttGANGeneratorConfig:
    return AttGANGeneratorConfig(
        enc_dim=cfg["enc_dim"],
        enc_layers=cfg["enc_layers"],
        enc_norm=cfg["enc_norm_fn"],
        enc_acti=cfg["enc_acti_fn"],
        dec_dim=cfg["dec_dim"],
        dec_layers=cfg["dec_layers"],
        dec_norm=cfg["dec_norm_fn"],
        dec_acti=cfg["dec_acti_fn"],
        n_attrs=cfg["n_attrs"],
        shortcut_layers=cfg["shortcut_layers"],
        inject_layers=cfg["inject_layers"],
        img_size=cfg["img_size"],
    )


def _d_config(cfg: dict, n_attrs: int = 13) -> AttGANDiscriminatorConfig:
    return AttGANDiscriminatorConfig(
        dim=cfg["dim"],
        norm=cfg["norm_fn"],
        acti=cfg["acti_fn"],
        fc_dim=cfg["fc_dim"],
        fc_norm=cfg["fc_norm_fn"],
        fc_acti=cfg["fc_acti_fn"],
        n_layers=cfg["n_layers"],
        img_size=cfg["img_size"],
        n_attrs=n_attrs,
    )


def _models():
    fx = load_fixture("attgan")
    state = fx.weights()
    G = AttGANGenerator(_g_config(fx.spec["config"]["G"]))
    D = AttGANDiscriminator(_d_config(fx.spec["config"]["D"]))
    load_state_dict_checked(G, {k[2:]: v for k, v in state.items() if k.startswith("G.")}, "G")
    load_state_dict_checked(D, {k[2:]: v for k, v in state.items() if k.startswith("D.")}, "D")
    return fx, G.eval(), D.eval()


def test_every_case_matches_the_release() -> None:
    fx, G, D = _models()
    io = fx.io
    with torch.no_grad():
        fx.assert_close("enc_dec", G(io["input.x"], io["input.att_b_"]), "output.enc_dec.img")
        feats = G.encode(io["input.x"])
        assert len(feats) == 5
        for i, f in enumerate(feats):
            fx.assert_close(f"enc.z{i}", f, f"output.enc.z{i}")
        fx.assert_close(
            "enc_dec_test_int",
            G(io["input.x"], io["input.att_test"]),
            "output.enc_dec_test_int.img",
        )
        adv, cls = D(io["input.x16"])
        fx.assert_close("dis.adv", adv, "output.dis.adv")
        fx.assert_close("dis.cls", cls, "output.dis.cls")


def test_folded_inference_path_matches_the_release() -> None:
    from faceedit.nets.attgan import fast_generate

    fx, G, _ = _models()
    fast = G.inference_copy()
    out = fast_generate(fast, fx.io["input.x"], fx.io["input.att_b_"])
    fx.assert_close("enc_dec (folded)", out, "output.enc_dec.img")


def test_full_size_keys_match_full_keys_json() -> None:
    fx = load_fixture("attgan")
    full = fx.spec["full_config"]
    # meta device: the two 151M-parameter fc layers would cost 1.2 GB to allocate
    with torch.device("meta"):
        model = AttGAN(AttGANConfig(G=_g_config(full["G"]), D=_d_config(full["D"])))
    mine = [
        (k, tuple(v.shape), str(v.dtype).replace("torch.", ""))
        for k, v in model.state_dict().items()
    ]
    assert mine == fx.full_keys()


def test_hq_384_setting_txt_gives_the_full_config() -> None:
    """``setting.txt`` of 384_shortcut1_inject1_none_hq (train.py defaults + its flags)."""
    from faceedit.checkpoints.attgan import configs_from_setting

    fx = load_fixture("attgan")
    setting = dict(fx.spec["setting_txt"]["fields_with_train_py_defaults"])
    setting.update(img_size=384, shortcut_layers=1, inject_layers=1, data="CelebA-HQ")
    g, d = configs_from_setting(setting)
    full = fx.spec["full_config"]
    assert g == _g_config(full["G"])
    assert d == _d_config(full["D"])
    assert g.attrs[6] == "Eyeglasses" and g.thres_int == 0.5 and g.test_int == 1.0
    # and those configs give exactly the full-size key list
    with torch.device("meta"):
        model = AttGAN(AttGANConfig(G=g, D=d))
    assert [k for k, *_ in fx.full_keys()] == list(model.state_dict())
