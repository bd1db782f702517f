"""Optimisation projection (Image2StyleGAN / StyleGAN2 projector) on a tiny generator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faceedit.editing.projection import (
    ProjectionError,
    learning_rate,
    noise_regularization,
    normalize_noise_,
    project,
)
from faceedit.errors import CheckpointError, FaceeditError
from faceedit.eval.metrics import psnr, ssim
from faceedit.losses import (
    VGG16Features,
    feature_distance,
    load_vgg16_features,
    multiscale_loss,
)
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

STEPS = 60


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32)
    G = StyleGAN2Generator(cfg).eval()
    G.estimate_w_avg(num_samples=500)
    return G


@pytest.fixture(scope="module")
def known(G):
    """A W the generator maps to, and its image (the target with an exact answer)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=g))
        img = G.synthesis(ws, noise_mode="const")
    return ws, img


def _run(G, target, **kw):
    kw.setdefault("steps", STEPS)
    kw.setdefault("w_stats_samples", 500)
    return project(G, target, generator=torch.Generator().manual_seed(0), progress=False, **kw)


def _psnr_of_average(G, target):
    with torch.no_grad():
        return float(psnr(G.synthesis(G.w_avg[None], noise_mode="const"), target)[0])


@pytest.mark.parametrize("space", ["w", "w+"])
def test_projection_reduces_loss_and_approaches_target(G, known, space):
    ws_true, target = known
    before = {n: p.detach().clone() for n, p in G.named_parameters()}
    r = _run(G, target, space=space)
    assert r.ws.shape == (1, G.num_ws, G.w_dim) and r.img.shape == target.shape
    assert len(r.losses) == STEPS and r.noise is None
    # the loss falls by an order of magnitude and the image is far closer than the start
    assert r.losses[-1] < 0.1 * r.losses[0]
    assert r.psnr > _psnr_of_average(G, target) + 10
    # the reported image and PSNR are what the code renders
    with torch.no_grad():
        again = G.synthesis(r.ws, noise_mode="const")
    torch.testing.assert_close(again, r.img, atol=1e-5, rtol=1e-5)
    assert abs(float(psnr(again, target)[0]) - r.psnr) < 1e-3
    if space == "w":
        assert torch.equal(r.ws, r.ws[:, :1].expand_as(r.ws))  # one W in every layer
    else:
        assert not torch.equal(r.ws[:, 0], r.ws[:, -1])
    # the generator is untouched and still trainable
    for n, p in G.named_parameters():
        assert torch.equal(p, before[n]) and p.requires_grad


def test_deterministic_under_a_seed(G, known):
    _, target = known
    a = _run(G, target, space="w+", steps=15)
    b = _run(G, target, space="w+", steps=15)
    assert torch.equal(a.ws, b.ws) and a.losses == b.losses
    c = project(
        G, target, steps=15, w_stats_samples=500, progress=False,
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    assert not torch.equal(a.ws, c.ws)


def test_works_inside_a_no_grad_block(G, known):
    """Evaluation loops call it under torch.no_grad(); it must still optimise."""
    _, target = known
    free = _run(G, target, space="w+", steps=15)
    with torch.no_grad():
        inside = _run(G, target, space="w+", steps=15)
    assert torch.equal(free.ws, inside.ws) and free.losses == inside.losses
    assert inside.losses[-1] < inside.losses[0]


def test_init_from_a_code_starts_close(G, known):
    ws_true, target = known
    r = _run(G, target, space="w+", steps=5, init=ws_true, lr=1e-3, initial_noise_factor=0.0)
    assert r.losses[0] < 1e-6  # started at the answer
    assert r.psnr > 40  # Adam moves ~lr per step whatever the gradient
    w = _run(G, target, space="w", steps=5, init=ws_true[:, 0], lr=1e-3, initial_noise_factor=0)
    assert w.psnr > 40


def test_noise_optimisation_returns_regularised_normalised_maps(G, known):
    _, target = known
    r = _run(G, target, space="w", optimize_noise=True)
    n_layers = sum(b.num_conv for b in G.synthesis.blocks())
    assert r.noise is not None and len(r.noise) == n_layers
    assert [n.shape[-1] for n in r.noise] == [4, 8, 8, 16, 16]
    for n in r.noise:
        assert abs(float(n.mean())) < 1e-4 and abs(float(n.std(unbiased=False)) - 1) < 1e-3
    with torch.no_grad():
        again = G.synthesis(r.ws, noise=r.noise)
    torch.testing.assert_close(again, r.img, atol=1e-5, rtol=1e-5)
    assert r.losses[-1] < 0.1 * r.losses[0]


def test_perceptual_network_is_used(G, known):
    _, target = known
    calls = []

    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            calls.append(x.shape)
            y = torch.relu(self.conv(x))
            return [y, nn.functional.avg_pool2d(y, 2)]

    net = Features()
    r = _run(G, target, space="w+", perceptual=net, steps=20)
    assert len(calls) == 21  # the target once, then each step
    assert r.losses[-1] < 0.5 * r.losses[0]
    assert all(p.requires_grad for p in net.parameters())  # restored afterwards


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(3, 16, 16), r"\[1, 3, 16, 16\].*got \[3, 16, 16\]"),
        (torch.zeros(2, 3, 16, 16), r"got \[2, 3, 16, 16\]"),
        (torch.zeros(1, 3, 32, 32), r"generator's resolution.*\[1, 3, 32, 32\]"),
        (torch.full((1, 3, 16, 16), 200.0), r"\[-1, 1\]"),
        (torch.full((1, 3, 16, 16), float("nan")), "NaN"),
    ],
)
def test_bad_targets_have_clear_errors(G, bad, message):
    with pytest.raises(ProjectionError, match=message):
        project(G, bad, steps=1, progress=False)


def test_bad_options_have_clear_errors(G, known):
    _, target = known
    assert issubclass(ProjectionError, FaceeditError)
    with pytest.raises(ProjectionError, match="space"):
        project(G, target, space="z", progress=False)
    with pytest.raises(ProjectionError, match="StyleGAN2Generator, got a Linear"):
        project(nn.Linear(2, 2), target, progress=False)
    assert (
        project(G, target, space="W+", steps=1, w_stats_samples=10, progress=False).ws.shape[1] == 6
    )
    with pytest.raises(ProjectionError, match="steps"):
        project(G, target, steps=0, progress=False)
    with pytest.raises(ProjectionError, match=r"init must be ws \[1, 6, 32\]"):
        project(G, target, init=torch.zeros(1, 5, 32), steps=1, progress=False)


def test_schedule_and_noise_helpers():
    lrs = [learning_rate(s, 100, 0.1) for s in range(100)]
    assert lrs[0] == 0 and max(lrs) == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.1) and lrs[99] < 0.001
    assert all(a <= b for a, b in zip(lrs[:5], lrs[1:5], strict=False))  # ramps up
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(1, 1, 32, 32, generator=g)]
    smooth = [torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4, generator=g), 32)]
    normalize_noise_(smooth)
    assert float(noise_regularization(smooth)) > 100 * float(noise_regularization(white))


def test_image_distances():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    b = a + 0.1 * torch.randn(2, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert (ssim(a, b) < 0.999).all()
    assert torch.allclose(multiscale_loss(a, a), torch.zeros(2))
    assert (multiscale_loss(a, b) > 0).all()
    assert (multiscale_loss(a, b, ssim_weight=1.0) > multiscale_loss(a, b)).all()
    assert float(psnr(a, b)[0]) == pytest.approx(
        float(10 * torch.log10(4 / (a[0] - b[0]).square().mean())), rel=1e-5
    )
    f = [a, a[:, :, ::2, ::2]]
    assert torch.allclose(feature_distance(f, f), torch.zeros(2))
    with pytest.raises(ValueError):
        feature_distance(f, f[:1])


def test_vgg16_features_load_from_a_torchvision_layout_file(tmp_path):
    net = VGG16Features(width_divisor=16)
    state = {k: v for k, v in net.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full vgg16() file: ignored
    torch.save(state, tmp_path / "vgg.pth")
    loaded = load_vgg16_features(tmp_path / "vgg.pth")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = loaded(x)
    assert [f.shape[1] for f in feats] == [4, 8, 16, 32, 32]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    for a, b in zip(feats, net(x), strict=True):
        torch.testing.assert_close(a, b)
    del state["features.28.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad.pth: .*features.28.bias"):
        load_vgg16_features(tmp_path / "bad.pth")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a VGG16"):
        load_vgg16_features(tmp_path / "other.pth")
