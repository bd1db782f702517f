"""StyleGAN2 generator behaviour on tiny configurations."""

from __future__ import annotations

import pytest
import torch

from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def tiny(res: int = 16, **kw) -> StyleGAN2Generator:
    cfg = StyleGAN2Config(
        z_dim=32, w_dim=32, img_resolution=res, channel_base=256, channel_max=32, **kw
    )
    return StyleGAN2Generator(cfg).eval()


@pytest.mark.parametrize("res", [4, 8, 32])
def test_any_resolution_shapes(res):
    G = tiny(res)
    ws = G.mapping(torch.randn(2, 32))
    assert ws.shape == (2, G.num_ws, 32) and G.num_ws == 2 * res.bit_length() - 4
    assert G.synthesis(ws).shape == (2, 3, res, res)


def test_w_and_wplus_inputs_agree():
    G = tiny()
    w = G.mapping(torch.randn(3, 32))[:, 0]
    with torch.no_grad():
        a = G.synthesis(w)
        b = G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1))
    torch.testing.assert_close(a, b)


def test_bad_ws_shape_is_rejected_with_expected_shape():
    G = tiny()
    with pytest.raises(ValueError, match=r"\[N, 6, 32\]"):
        G.synthesis(torch.randn(1, 5, 32))


def test_truncation_pulls_towards_w_avg():
    G = tiny()
    G.estimate_w_avg(num_samples=500)
    z = torch.randn(4, 32)
    with torch.no_grad():
        far = (G.mapping(z) - G.w_avg).norm()
        near = (G.mapping(z, truncation_psi=0.5) - G.w_avg).norm()
        assert near.item() == pytest.approx(0.5 * far.item(), rel=1e-4)
        cut = G.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
        torch.testing.assert_close(cut[:, :2], G.w_avg.expand(4, 2, -1))
        torch.testing.assert_close(cut[:, 2:], G.mapping(z)[:, 2:])


def test_style_mixing_takes_rows_from_each_side():
    G = tiny()
    a, b = G.mapping(torch.randn(2, 32)), G.mapping(torch.randn(2, 32))
    mixed = G.mix(a, b, crossover=3)
    torch.testing.assert_close(mixed[:, :3], a[:, :3])
    torch.testing.assert_close(mixed[:, 3:], b[:, 3:])
    with pytest.raises(ValueError):
        G.mix(a, b, crossover=99)


def test_noise_modes():
    G = tiny()
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    ws = G.mapping(torch.randn(1, 32))
    with torch.no_grad():
        const1, const2 = G.synthesis(ws), G.synthesis(ws)
        none = G.synthesis(ws, noise_mode="none")
        r1 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
        r1b = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
        r2 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(const1, const2)
    torch.testing.assert_close(r1, r1b)
    assert (r1 - r2).abs().max() > 1e-3 and (const1 - none).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="loud")


def test_fused_and_shared_modconv_agree_for_batches():
    G = tiny(32)
    ws = G.mapping(torch.randn(3, 32))
    with torch.no_grad():
        torch.testing.assert_close(
            G.synthesis(ws, fused_modconv=True),
            G.synthesis(ws, fused_modconv=False),
            atol=1e-5,
            rtol=1e-4,
        )


@pytest.mark.parametrize("batch", [1, 2])
def test_backward_has_no_nans(batch):
    """Both paths (fused single image, shared-weight batch) support autograd."""
    G = tiny().train()
    img = G(torch.randn(batch, 32))
    img.square().mean().backward()
    grads = [p.grad for p in G.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_single_image_gradients_match_shared_path():
    G = tiny()
    ws = G.mapping(torch.randn(1, 32)).detach()
    grads = []
    for fused in (True, False):
        w = ws.clone().requires_grad_(True)
        G.synthesis(w, fused_modconv=fused).square().sum().backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-3)


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(img_resolution=48)
