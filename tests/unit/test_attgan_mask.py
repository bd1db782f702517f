"""The AttGAN edit mask: ``m * generated + (1 - m) * input``, the mask from its own head."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import faceedit
from faceedit.data.celeba import TOY_ATTRS
from faceedit.errors import FaceeditError
from faceedit.nets.attgan import (
    AttGAN,
    AttGANConfig,
    AttGANGenerator,
    compose_edit,
    fast_generate,
)
from faceedit.train.attgan import read_losses, train_attgan
from tests.unit.test_attgan_nets import tiny_d, tiny_g
from tests.unit.test_attgan_train import tiny_cfg, toy_data  # noqa: F401  (fixture)


def _images(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _targets(n: int = 3, n_attrs: int = 4) -> torch.Tensor:
    return torch.rand(n, n_attrs, generator=torch.Generator().manual_seed(2)) - 0.5


def _set_mask_logit(G: AttGANGenerator, logit: float) -> None:
    """Make the mask the constant ``sigmoid(logit)``: no weights into it, only its bias."""
    conv = G.mask_layer.layers[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(logit)


@pytest.mark.parametrize("shortcut,inject", [(0, 0), (1, 1), (2, 1)])
def test_masked_generator_shapes_and_mask_range(shortcut: int, inject: int) -> None:
    G = AttGANGenerator(tiny_g(edit_mask=True, shortcut_layers=shortcut, inject_layers=inject))
    x, b = _images(), _targets()
    out, mask = G.forward_with_mask(x, b)
    assert out.shape == x.shape and mask.shape == (3, 1, 32, 32)
    assert mask.min() >= 0 and mask.max() <= 1 and mask.std() > 0  # drawn, not constant
    assert torch.allclose(G(x, b), out)
    generated, mask2 = G.decode_parts(G.encode(x), b)
    assert generated.abs().max() <= 1 and torch.equal(mask, mask2)
    # the output is the mixture of the drawing and the input that the mask says
    assert torch.allclose(out, mask * generated + (1 - mask) * x, atol=1e-6)
    with pytest.raises(ValueError, match="needs the source img"):
        G.decode(G.encode(x), b)


def test_without_the_mask_the_generator_keeps_the_release_layout() -> None:
    plain, masked = AttGANGenerator(tiny_g()), AttGANGenerator(tiny_g(edit_mask=True))
    ps, ms = plain.state_dict(), masked.state_dict()
    # the masked generator has every release key, shaped alike, plus its mask head
    assert all(ms[k].shape == v.shape for k, v in ps.items())
    assert sorted(set(ms) - set(ps)) == ["mask_layer.layers.0.bias", "mask_layer.layers.0.weight"]
    assert ms["mask_layer.layers.0.weight"].shape[1] == 1
    # without the mask, decode needs no image and every pixel is the decoder's
    x, b = _images(), _targets()
    out, mask = plain.forward_with_mask(x, b)
    assert torch.equal(out, plain.decode(plain.encode(x), b))
    assert torch.equal(mask, torch.ones_like(mask))


def test_a_fully_open_mask_computes_the_unmasked_generator() -> None:
    torch.manual_seed(0)
    plain = AttGANGenerator(tiny_g()).eval()
    masked = AttGANGenerator(tiny_g(edit_mask=True)).eval()
    missing = masked.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert all(k.startswith("mask_layer.") for k in missing)
    _set_mask_logit(masked, 1e4)  # sigmoid = 1 exactly
    x, b = _images(), _targets()
    with torch.no_grad():
        assert torch.allclose(masked(x, b), plain(x, b), atol=1e-6)


def test_a_zero_mask_returns_the_input_exactly_on_both_paths() -> None:
    G = AttGANGenerator(tiny_g(edit_mask=True)).eval()
    _set_mask_logit(G, -1e4)  # sigmoid = 0 exactly
    x, b = _images(), _targets()
    with torch.no_grad():
        assert torch.equal(G(x, b), x)
    assert torch.equal(fast_generate(G.inference_copy(), x, b), x)
    gen = torch.rand_like(x)
    assert torch.equal(compose_edit(x, gen, torch.zeros_like(x[:, :1])), x)


def test_masked_fast_path_matches_and_backward_is_finite() -> None:
    G = AttGANGenerator(tiny_g(edit_mask=True, dec_norm="batchnorm"))
    x, b = _images(4).requires_grad_(True), _targets(4)
    out, mask = G.forward_with_mask(x, b)
    (out.square().mean() + mask.mean()).backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    mask_grad = G.mask_layer.layers[0].weight.grad
    assert mask_grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    G.eval()
    x = x.detach()
    with torch.no_grad():
        slow = G(x, b)
    assert torch.allclose(fast_generate(G.inference_copy(), x, b), slow, atol=1e-5)


def test_masked_model_round_trips_through_both_formats(tmp_path) -> None:
    from faceedit.checkpoints.attgan import save_release_checkpoint

    model = AttGAN(AttGANConfig(G=tiny_g(edit_mask=True), D=tiny_d())).eval()
    x, b = _images(), _targets()
    with torch.no_grad():
        want = model(x, b)
    model.save_pretrained(tmp_path / "own")
    cfg = json.loads((tmp_path / "own" / "config.json").read_text())
    assert cfg["config"]["G"]["edit_mask"] is True
    loaded = faceedit.load(tmp_path / "own")
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x, b), want)
    # a release-style file without setting.txt: the mask head's keys tell
    (tmp_path / "rel").mkdir()
    release = save_release_checkpoint(model, tmp_path / "rel" / "weights.0.pth")
    rel = faceedit.load(release, attrs=list(model.attrs), img_size=32)
    assert rel.config.G.edit_mask
    with torch.no_grad():
        assert torch.allclose(rel(x, b), want)
    # and a model saved without the mask records it off, loading as before
    plain = AttGAN(AttGANConfig(G=tiny_g(), D=tiny_d()))
    plain.save_pretrained(tmp_path / "plain")
    assert not faceedit.load(tmp_path / "plain").config.G.edit_mask


def test_init_from_an_unmasked_model_starts_from_its_edits(toy_data, tmp_path) -> None:  # noqa: F811
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.train.attgan import _init_from, build_model

    source = train_attgan(tiny_cfg(toy_data, tmp_path / "src", max_steps=2))
    src = load_trained(source).eval()
    start = build_model(tiny_cfg(toy_data, tmp_path / "x", edit_mask=True))
    _init_from(start, str(source), mask_logit=3.0)
    start.eval()
    x, b = _images(4), _targets(4, len(TOY_ATTRS))
    with torch.no_grad():
        out, mask = start.G.forward_with_mask(x, b)
        want = src.G(x, b)
    m = torch.sigmoid(torch.tensor(3.0))
    assert torch.allclose(mask, m.expand_as(mask))
    # 95% the trained model's edit, 5% the input
    assert torch.allclose(out, m * want + (1 - m) * x, atol=1e-5)
    assert torch.equal(
        start.D.state_dict()["fc_cls.1.layers.0.weight"],
        src.D.state_dict()["fc_cls.1.layers.0.weight"],
    )
    # growing decoder inputs and the mask at once works too
    both = build_model(tiny_cfg(toy_data, tmp_path / "y", edit_mask=True, shortcut_layers=2))
    _init_from(both, str(source), mask_logit=1e4)
    both.eval()
    with torch.no_grad():
        assert torch.allclose(both.G(x, b), want, atol=1e-5)
    # a masked model does not shrink back into an unmasked one
    masked_run = train_attgan(
        tiny_cfg(toy_data, tmp_path / "m", edit_mask=True, init_from=str(source), max_steps=2)
    )
    with pytest.raises(FaceeditError, match="G.edit_mask: True there, False here"):
        train_attgan(tiny_cfg(toy_data, tmp_path / "back", init_from=str(masked_run)))


def test_mask_regulariser_is_logged_and_shrinks_the_mask(toy_data, tmp_path) -> None:  # noqa: F811
    kw = dict(edit_mask=True, n_d=0, max_steps=12, lr=3e-3, lambda_1=0.0, lambda_2=0.0)
    heavy = train_attgan(tiny_cfg(toy_data, tmp_path / "heavy", lambda_mask=100.0, **kw))
    free = train_attgan(tiny_cfg(toy_data, tmp_path / "free", lambda_mask=0.0, **kw))
    rows_h = [r for r in read_losses(heavy) if "g/mask" in r]
    rows_f = [r for r in read_losses(free) if "g/mask" in r]
    assert len(rows_h) == 12 and all("g/mask_tv" in r for r in rows_h)
    assert rows_h[-1]["g/mask"] < 0.7 * rows_h[0]["g/mask"]
    assert rows_h[-1]["g/mask"] < rows_f[-1]["g/mask"]
    # the saved model keeps its mask
    assert faceedit.load(heavy / "model").config.G.edit_mask


def test_masked_run_resumes_exactly(toy_data, tmp_path) -> None:  # noqa: F811
    kw = dict(edit_mask=True, lambda_mask_tv=0.5, max_steps=6)
    full = train_attgan(tiny_cfg(toy_data, tmp_path / "full", **kw))
    part = tiny_cfg(toy_data, tmp_path / "part", **kw)
    train_attgan(part, stop_after=3)
    resumed = train_attgan(part)
    a = {r["step"]: r for r in read_losses(full)}
    b = {r["step"]: r for r in read_losses(resumed)}
    assert all(a[s] == b[s] for s in (4, 5, 6))


def test_the_mask_head_learns_at_its_own_rate(toy_data, tmp_path) -> None:  # noqa: F811
    from faceedit.train.attgan import _generator_groups, build_model

    cfg = tiny_cfg(toy_data, tmp_path / "r", edit_mask=True, mask_lr_mult=10.0, lr=1e-4)
    G = build_model(cfg).G
    rest, mask = _generator_groups(G, cfg)
    assert {id(p) for p in mask["params"]} == {id(p) for p in G.mask_layer.parameters()}
    assert len(rest["params"]) + len(mask["params"]) == len(list(G.parameters()))
    run = train_attgan(dataclasses.replace(cfg, max_steps=2))
    groups = torch.load(run / "checkpoint.pt")["optimizers"]["G"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])


@pytest.mark.parametrize(
    "field,value",
    [
        ("lambda_mask", -1.0),
        ("lambda_mask_tv", -0.1),
        ("mask_init_logit", float("nan")),
        ("mask_lr_mult", 0.0),
    ],
)
def test_mask_settings_are_checked(toy_data, tmp_path, field, value) -> None:  # noqa: F811
    with pytest.raises(FaceeditError, match=field):
        tiny_cfg(toy_data, tmp_path, **{field: value})
