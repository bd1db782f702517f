"""StyleGAN2 parity: rosinality and NVlabs fixtures, reproduced case by case."""

from __future__ import annotations

import pytest
import torch

from faceedit.checkpoints.rosinality import generator_from_rosinality, rosinality_to_native
from faceedit.nets.base import load_state_dict_checked
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from tests.parity.fixtures import load_fixture


def nvlabs_config(spec_config: dict, **overrides) -> StyleGAN2Config:
    synth = spec_config["synthesis_kwargs"]
    kwargs = dict(
        z_dim=spec_config["z_dim"],
        w_dim=spec_config["w_dim"],
        img_resolution=spec_config["img_resolution"],
        img_channels=spec_config["img_channels"],
        mapping_layers=spec_config["mapping_kwargs"]["num_layers"],
        channel_base=synth["channel_base"],
        channel_max=synth["channel_max"],
        conv_clamp=synth["conv_clamp"],
    )
    kwargs.update(overrides)
    return StyleGAN2Config(**kwargs)


@pytest.fixture(scope="module")
def nvlabs():
    fx = load_fixture("stylegan2_nvlabs")
    G = StyleGAN2Generator(nvlabs_config(fx.spec["config"]))
    load_state_dict_checked(G, fx.weights(), source="fixture")
    return fx, G.eval()


@pytest.fixture(scope="module")
def rosinality():
    fx = load_fixture("stylegan2_rosinality")
    G = generator_from_rosinality(fx.weights(), latent_avg=fx.io["input.latent_avg"])
    return fx, G


def test_nvlabs_mapping_and_full_generator(nvlabs):
    fx, G = nvlabs
    z = fx.io["input.z"]
    with torch.no_grad():
        for case, psi in (("z_psi1", 1.0), ("z_psi07", 0.7)):
            fx.assert_close(
                case, G(z, truncation_psi=psi, noise_mode="const"), f"output.{case}.img"
            )
            fx.assert_close(case, G.mapping(z, truncation_psi=psi), f"output.{case}.ws")


@pytest.mark.parametrize("fused", [None, True, False])
def test_nvlabs_synthesis_paths(nvlabs, fused):
    fx, G = nvlabs
    ws = fx.io["input.ws"]
    with torch.no_grad():
        fx.assert_close("ws", G.synthesis(ws, fused_modconv=fused), "output.ws.img")
        fx.assert_close("ws_unfused", G.synthesis(ws, fused_modconv=fused), "output.ws_unfused.img")
        fx.assert_close(
            "ws_nonoise",
            G.synthesis(ws, noise_mode="none", fused_modconv=fused),
            "output.ws_nonoise.img",
        )


def test_nvlabs_single_image_fast_path(nvlabs):
    """One image at a time takes the fused channels-last path; it must match too."""
    fx, G = nvlabs
    ws = fx.io["input.ws"]
    with torch.no_grad():
        for i in range(ws.shape[0]):
            img = G.synthesis(ws[i : i + 1])
            ref = fx.io["output.ws.img"][i : i + 1]
            assert torch.allclose(img, ref, atol=fx.atol, rtol=fx.rtol), (img - ref).abs().max()


def test_nvlabs_conv_clamp(nvlabs):
    fx, _ = nvlabs
    G = StyleGAN2Generator(nvlabs_config(fx.spec["config"], conv_clamp=1.0))
    load_state_dict_checked(G, fx.weights(), source="fixture")
    with torch.no_grad():
        fx.assert_close("ws_clamp1", G.eval().synthesis(fx.io["input.ws"]), "output.ws_clamp1.img")


def test_nvlabs_full_size_keys_match():
    fx = load_fixture("stylegan2_nvlabs")
    with torch.device("meta"):
        G = StyleGAN2Generator(nvlabs_config(fx.spec["full_config"]))
    mine = [
        (k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in G.state_dict().items()
    ]
    assert mine == fx.full_keys()


def test_rosinality_cases(rosinality):
    fx, G = rosinality
    io = fx.io
    with torch.no_grad():
        ws = G.mapping(io["input.z"])
        fx.assert_close("z.latent", ws, "output.z.latent")
        fx.assert_close("z.image", G.synthesis(ws), "output.z.image")
        ws_t = G.mapping(io["input.z"], truncation_psi=0.7)
        fx.assert_close("z_trunc.latent", ws_t, "output.z_trunc.latent")
        fx.assert_close("z_trunc.image", G.synthesis(ws_t), "output.z_trunc.image")
        fx.assert_close("mapping.w", G.mapping(io["input.z"])[:, 0], "output.mapping.w")
        fx.assert_close("w.image", G.synthesis(io["input.w"]), "output.w.image")
        fx.assert_close("wplus.image", G.synthesis(io["input.wplus"]), "output.wplus.image")
        mixed = G.mix(G.mapping(io["input.z"]), G.mapping(io["input.z2"]), crossover=1)
        fx.assert_close("mix.latent", mixed, "output.mix.latent")
        fx.assert_close("mix.image", G.synthesis(mixed), "output.mix.image")
        noise = [io[f"input.noise_{i}"] for i in range(3)]
        fx.assert_close(
            "w_explicit_noise",
            G.synthesis(io["input.w"], noise=noise),
            "output.w_explicit_noise.image",
        )


def test_rosinality_full_size_keys_map_completely():
    """Every key of the official 1024 px g_ema maps onto faceedit's generator, and back."""
    fx = load_fixture("stylegan2_rosinality")
    state = {k: torch.empty(shape, device="meta") for k, shape, _ in fx.full_keys()}
    native, kwargs = rosinality_to_native(state)
    with torch.device("meta"):
        G = StyleGAN2Generator(StyleGAN2Config(**kwargs))
    own = G.state_dict()
    fir = {k for k in own if k.endswith("resample_filter")}
    assert kwargs["img_resolution"] == 1024 and G.num_ws == 18
    # nothing missing, nothing unexpected (w_avg comes from latent_avg beside the state dict)
    assert set(native) == set(own) - fir - {"mapping.w_avg"}
    assert all(tuple(native[k].shape) == tuple(own[k].shape) for k in native)
    # every source key was used except the constant FIR kernels
    used_sources = len(state) - sum(k.endswith(".kernel") for k in state)
    assert len(native) == used_sources
