"""Inference settings and fast paths: flush-to-zero around editing, the encoders'
inference path against their plain modules, the bf16 path against float32.

Parity of a fast path with its plain module: atol = rtol = 1e-4 (the parity fixtures').
The bf16 paths are compared with float32 at a stated, looser tolerance (bfloat16 keeps
8 significant bits): the encoders' codes within 4% of their largest magnitude, AttGAN
and the synthesis images within 0.1 (on [-1, 1]) per pixel and >= 30 dB PSNR.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from faceedit.nets import fast_encoder, inference
from faceedit.nets.encoders import E4EEncoder, E4EEncoderConfig, PSPEncoder, PSPEncoderConfig

ATOL = RTOL = 1e-4
needs_bf16 = pytest.mark.skipif(not inference.bf16_supported(), reason="no native bf16 on CPU")


def _with_statistics(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Batch norms with non-trivial statistics (fresh ones fold to the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(0.25 + torch.randn(m.weight.shape, generator=g) * 0.05)
        if getattr(model, "latent_avg", None) is not None:
            model.latent_avg.copy_(torch.randn(model.latent_avg.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def encoders():
    torch.manual_seed(0)
    psp = _with_statistics(PSPEncoder(PSPEncoderConfig(n_styles=8)))
    e4e = _with_statistics(E4EEncoder(E4EEncoderConfig(n_styles=8)), seed=1)
    return {"psp": psp, "e4e": e4e}


def _plain(model, x):
    with torch.no_grad(), inference.plain_paths():
        return model(x)


def _close(mine: torch.Tensor, ref: torch.Tensor) -> None:
    diff = (mine - ref).abs().max().item()
    assert torch.allclose(mine, ref, atol=ATOL, rtol=RTOL), f"max |diff| {diff:.2e}"


@pytest.mark.parametrize("kind", ["psp", "e4e"])
@pytest.mark.parametrize("size", [64, 256])
def test_fast_encoder_matches_plain(encoders, kind: str, size: int) -> None:
    model = encoders[kind]
    x = torch.rand(
        2 if size == 64 else 1, 3, size, size, generator=torch.Generator().manual_seed(size)
    )
    x = x * 2 - 1
    ref = _plain(model, x)
    with torch.no_grad():
        fast = model(x)
    assert model._fast_cache, "the inference path did not run"
    _close(fast, ref)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("gemm_max", [0, 10_000])
def test_fast_encoder_layouts_and_head_gemm(encoders, monkeypatch, channels_last, gemm_max):
    """Both memory layouts, and every head conv as a convolution (0) or as a GEMM."""
    monkeypatch.setattr(fast_encoder, "GEMM_MAX_POSITIONS", gemm_max)
    model = encoders["psp"]
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(3)) * 2 - 1
    fast = fast_encoder.FastStyleEncoder(model, "psp", torch.float32, channels_last)
    with torch.inference_mode():
        _close(fast(x), _plain(model, x))


def test_fast_path_follows_new_weights(encoders) -> None:
    """A cached inference copy is rebuilt once the weights change in place."""
    model = E4EEncoder(E4EEncoderConfig(n_styles=4)).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        before = model(x)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["styles.0.linear.bias"] += 1.0
        model.load_state_dict(state)
        after = model(x)
    _close(after, _plain(model, x))
    assert not torch.allclose(before, after)


def test_plain_path_when_training_or_with_grad(encoders) -> None:
    model = E4EEncoder(E4EEncoderConfig(n_styles=4)).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    out = model(x)  # autograd on: the plain modules, so training can differentiate it
    assert out.requires_grad
    assert not model.__dict__.get("_fast_cache")
    model.progressive_stage = 1  # a training stage: the plain path too
    with torch.no_grad():
        model(x)
    assert not model.__dict__.get("_fast_cache")


# ----------------------------------------------------------------- flush-to-zero


def test_inference_context_flushes_denormals_and_restores() -> None:
    torch.set_flush_denormal(False)
    assert not inference.flush_denormal_enabled()
    with inference.inference_context("float32") as dtype:
        assert dtype == torch.float32
        assert inference.flush_denormal_enabled()
        assert torch.tensor([1e-39]).mul(1.0).item() == 0.0
    assert not inference.flush_denormal_enabled()
    torch.set_flush_denormal(True)  # a caller that had it on keeps it on
    try:
        with inference.inference_context():
            pass
        assert inference.flush_denormal_enabled()
    finally:
        torch.set_flush_denormal(False)


def test_flush_restored_after_an_error() -> None:
    torch.set_flush_denormal(False)
    with pytest.raises(RuntimeError), inference.inference_context():
        raise RuntimeError("boom")
    assert not inference.flush_denormal_enabled()
    assert inference.current_dtype() == torch.float32


def test_editing_runs_with_denormals_flushed(tmp_path) -> None:
    """FaceEditor runs the models with flush-to-zero on and restores the mode after."""
    from faceedit.editing.pipeline import build_editor
    from tests.helpers.tiny_edit import ATTRS, GRACE, latent_bundle

    editor = build_editor("latent", latent_bundle(tmp_path))
    seen = []
    inner = editor.editor
    invert, edit_codes = inner.invert, inner.edit_codes

    def spy_invert(*a, **k):
        seen.append(("invert", inference.flush_denormal_enabled()))
        return invert(*a, **k)

    def spy_edit(*a, **k):
        seen.append(("edit", inference.flush_denormal_enabled()))
        return edit_codes(*a, **k)

    inner.invert, inner.edit_codes = spy_invert, spy_edit
    torch.set_flush_denormal(False)
    result = editor.edit_photo(str(GRACE), {ATTRS[0]: 1.0})
    assert result.image.shape == result.original.shape
    assert seen == [("invert", True), ("edit", True)]
    assert not inference.flush_denormal_enabled()


# ----------------------------------------------------------------- precision switch


def test_unknown_precision_is_one_clear_error(tmp_path) -> None:
    from faceedit.editing.pipeline import build_editor
    from faceedit.errors import FaceeditError
    from tests.helpers.tiny_edit import latent_bundle

    with pytest.raises(inference.PrecisionError, match="precision 'half'"):
        inference.resolve_precision("half")
    with pytest.raises(FaceeditError, match="precision 'float16'"):
        build_editor("latent", latent_bundle(tmp_path), precision="float16")


def test_bf16_refused_without_native_support(monkeypatch) -> None:
    monkeypatch.setattr(inference, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.raises(inference.PrecisionError, match="no native bfloat16"):
        inference.resolve_precision("bf16")
    monkeypatch.setattr(inference, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert inference.resolve_precision("bf16") == torch.bfloat16


def test_cli_precision_flag_reaches_the_editor(tmp_path) -> None:
    from faceedit.cli.edit import add_model_arguments, build_editor
    from tests.helpers.tiny_edit import latent_bundle

    p = argparse.ArgumentParser()
    add_model_arguments(p)
    bundle = str(latent_bundle(tmp_path))
    args = p.parse_args(["--attr", "Smiling=1", "--model", bundle])
    assert build_editor(args)[0].precision == "float32"
    with pytest.raises(SystemExit):
        p.parse_args(["--attr", "Smiling=1", "--precision", "fp8"])
    if inference.bf16_supported():
        args = p.parse_args(["--attr", "Smiling=1", "--model", bundle, "--precision", "bf16"])
        assert build_editor(args)[0].precision == "bf16"


# ----------------------------------------------------------------- bf16 paths


@needs_bf16
@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_bf16_encoder_against_float32(encoders, kind: str) -> None:
    model = encoders[kind]
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(5)) * 2 - 1
    ref = _plain(model, x)
    with torch.no_grad(), inference.inference_context("bf16"):
        low = model(x)
    assert low.dtype == torch.float32
    assert torch.bfloat16 in model._fast_cache
    err = (low - ref).abs().max().item() / ref.abs().max().item()
    assert err < 0.04, f"bf16 codes differ by {err:.3f} of the largest code"
    assert not torch.equal(low, ref)  # the bf16 arithmetic did run


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).mean().item()
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


@needs_bf16
def test_bf16_attgan_against_float32() -> None:
    from faceedit.nets.attgan import AttGANGenerator, AttGANGeneratorConfig, fast_generate

    torch.manual_seed(0)
    G = _with_statistics(
        AttGANGenerator(AttGANGeneratorConfig(enc_dim=16, dec_dim=16, img_size=64))
    )
    fast = G.inference_copy()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    a = (torch.rand(2, 13) > 0.5).float() - 0.5
    ref = fast_generate(fast, x, a)
    with inference.inference_context("bf16"):
        low = fast_generate(fast, x, a)
    assert low.dtype == torch.float32 and not torch.equal(low, ref)
    assert (low - ref).abs().max().item() < 0.1
    assert _psnr(low, ref) >= 30


@needs_bf16
def test_bf16_synthesis_against_float32() -> None:
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(img_resolution=64, channel_max=64)).eval()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim))
        ref = G.synthesis(ws)
        with inference.inference_context("bf16"):
            low = G.synthesis(ws)
    assert low.dtype == torch.float32 and not torch.equal(low, ref)
    assert (low - ref).abs().max().item() < 0.1 * max(1.0, ref.abs().max().item())
    assert _psnr(low, ref) >= 30


def test_importing_builds_and_compiles_nothing() -> None:
    """The inference paths are built on first use; nothing at import compiles."""
    import subprocess
    import sys

    code = (
        "import sys, faceedit, faceedit.nets.encoders, faceedit.editing.pipeline, "
        "faceedit.nets.stylegan2, faceedit.nets.attgan; "
        "bad = [m for m in sys.modules if m == 'faceedit.nets.fast_encoder' "
        "or m.startswith(('torch._dynamo', 'torch._inductor'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
