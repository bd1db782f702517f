"""Pivotal tuning (``invert="pti"``) on a tiny random StyleGAN2: it reconstructs better
than its pivot, never changes the given generator, edits render through the tuned copy,
and the locality term keeps the tuned copy near the original around the pivot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceedit.data.images import tensor_to_uint8
from faceedit.editing import pti
from faceedit.editing.latent_pipeline import LatentPipeline
from faceedit.errors import EditError
from faceedit.nets.latent import LatentTransformer, LatentTransformerConfig
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

FAST = {"pti_steps": 40, "pti_lr": 3e-3}


def _uint8_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def pipe() -> LatentPipeline:
    torch.manual_seed(0)
    G = StyleGAN2Generator(
        StyleGAN2Config(z_dim=16, w_dim=16, img_resolution=16, channel_base=128, channel_max=16)
    ).eval()
    G.estimate_w_avg(num_samples=200)
    t = LatentTransformer(LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name="A"))
    with torch.no_grad():  # large enough that an edit shows on a random generator
        for p in t.parameters():
            p.mul_(4.0)
    return LatentPipeline(G, {"A": t.eval()}, layers=None)


@pytest.fixture(scope="module")
def case(pipe):
    """Two crops the generator draws, with a shading it does not draw added, and pivots
    that are near their codes but not at them."""
    G = pipe.generator
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=g))
        img = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
        shading = 0.3 * torch.linspace(-1, 1, 16).reshape(1, 1, 16, 1)
        crops = tensor_to_uint8((img + shading).clamp(-1, 1))
        pivots = ws + 0.3 * (G.w_avg - ws)
    return crops, pivots


def test_tuning_raises_reconstruction_psnr_over_the_pivot(pipe, case):
    crops, pivots = case
    tuned = pipe.with_options(invert="pti", **FAST)
    code = tuned.invert(crops, init=pivots)
    assert isinstance(code, pti.TunedCode) and len(code) == 2
    before = pipe.render(pivots)  # the pivots by the original generator
    after = tuned.reconstruct(code)
    for i in range(2):
        assert _uint8_psnr(after[i], crops[i]) > _uint8_psnr(before[i], crops[i]) + 2.0
        assert code.psnr_tuned[i] > code.psnr_pivot[i] + 2.0
    # one tuned copy per crop, each its own
    assert code.synthesis[0] is not code.synthesis[1]
    assert code.synthesis[0] is not pipe.generator.synthesis


def test_the_given_generator_is_never_changed(pipe, case):
    crops, pivots = case
    before = {k: v.clone() for k, v in pipe.generator.state_dict().items()}
    flags = [p.requires_grad for p in pipe.generator.parameters()]
    tuned = pipe.with_options(invert="pti", **FAST)
    code = tuned.invert(crops[:1], init=pivots[:1])
    tuned.edit_codes(code, {"A": 1.0})
    after = pipe.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in pipe.generator.parameters()] == flags
    assert all(p.grad is None for p in pipe.generator.parameters())
    assert all(p.grad is None for p in code.synthesis[0].parameters())  # memory: no grads kept
    changed = code.synthesis[0].state_dict()
    assert any(not torch.equal(changed[k], after[f"synthesis.{k}"]) for k in changed)


def test_edit_codes_render_through_the_tuned_generator(pipe, case):
    crops, pivots = case
    tuned = pipe.with_options(invert="pti", **FAST)
    code = tuned.invert(crops, init=pivots)
    out = tuned.edit_codes(code, {"A": 1.0})
    edited = pipe.edit_latents(pivots, {"A": 1.0})
    torch.testing.assert_close(out.codes, edited)  # the pivots were edited
    with torch.no_grad():
        by_tuned = [
            tensor_to_uint8(net(edited[i : i + 1], noise_mode="const").clamp(-1, 1))[0]
            for i, net in enumerate(code.synthesis)
        ]
    assert np.array_equal(out.images, np.stack(by_tuned))
    assert not np.array_equal(out.images, pipe.render(edited))  # not the original's
    assert not np.array_equal(out.images, tuned.reconstruct(code))  # and it is an edit


def test_locality_keeps_the_tuned_generator_near_the_original(pipe, case):
    crops, pivots = case
    G = pipe.generator
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # codes around the pivot the tuning never saw
        w_z = G.mapping(torch.randn(8, G.z_dim, generator=g))
        near = pivots[:1] + pti.DEFAULT_RADIUS * (w_z - pivots[:1])
        original = G.synthesis(near, noise_mode="const")

    def drift(locality: float) -> float:
        opts = {**FAST, "pti_steps": 60, "pti_locality": locality}
        code = pipe.with_options(invert="pti", **opts).invert(crops[:1], init=pivots[:1])
        with torch.no_grad():
            out = code.synthesis[0](near, noise_mode="const")
        return float((out - original).square().mean())

    free, held = drift(0.0), drift(1.0)
    assert held < 0.5 * free


def test_settings_lineage_and_bad_options(pipe):
    tuned = pipe.with_options(invert="pti", pti_steps=5)
    settings = tuned.settings()
    assert settings["invert"] == "pti" and settings["pti"]["steps"] == 5
    assert settings["pti"]["perceptual"] == "pixels"  # photos: no network by default
    assert settings["pti"]["pivot"] == "optimize"  # no encoder
    assert tuned.lineage() == [] and not tuned.chains_codes
    assert "pti" not in pipe.settings()
    for bad in ({"pti_steps": 0}, {"pti_lr": 0.0}, {"pti_locality": -1.0}, {"pti_radius": 2.0}):
        with pytest.raises(EditError):
            pipe.with_options(invert="pti", **bad)


def test_an_oracle_perceptual_network_is_recorded_and_a_judge_refused(pipe):
    avatars = pipe.with_options(invert="pti", pti_perceptual="avatar-oracle")
    assert avatars.settings()["pti"]["perceptual"] == "avatar-oracle"
    assert [e["name"] for e in avatars.lineage()][:1] == ["avatar-oracle"]
    assert avatars.lineage()[0]["role"] == "loss network"
    assert avatars.perceptual_network() is not None
    judged = pipe.with_options(invert="pti", pti_perceptual="avatar-judge")
    with pytest.raises(EditError, match="evaluation judge"):
        judged.perceptual_network()
    for judge in ("avatar-judge", "avatar-judge-b"):  # both shipped evaluation judges
        with pytest.raises(EditError, match="evaluation judge"):
            pti.load_perceptual(judge, "avatar")


def test_a_tuned_generator_saves_as_a_whole_generator(pipe, case, tmp_path):
    from faceedit.checkpoints import load

    crops, pivots = case
    code = pipe.with_options(invert="pti", **FAST).invert(crops[:1], init=pivots[:1])
    whole = code.tuned_generator(pipe.generator)
    whole.save_pretrained(tmp_path / "g")
    back = load(tmp_path / "g")
    with torch.no_grad():
        torch.testing.assert_close(back.synthesis(pivots[:1]).clamp(-1, 1), code.render(pivots[:1]))
        torch.testing.assert_close(back.mapping.w_avg, pipe.generator.w_avg)
    assert pipe.generator.synthesis is not whole.synthesis
