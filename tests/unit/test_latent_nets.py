"""LatentClassifier, LatentTransformer (per-row and dense) and the batched bank."""

from __future__ import annotations

import pytest
import torch

import faceedit
from faceedit.nets.latent import (
    LatentClassifier,
    LatentClassifierConfig,
    LatentTransformer,
    LatentTransformerBank,
    LatentTransformerConfig,
    classifier_preset,
    get_coeff,
)

TINY = {"num_ws": 4, "w_dim": 8}


def test_presets_match_the_released_and_small_widths() -> None:
    released = classifier_preset("released")
    assert released.widths == (9216, 2048, 512, 40)
    assert (released.activation, released.negative_slope) == ("leakyrelu", 0.2)
    small = classifier_preset("small")
    assert small.widths == (9216, 1024, 256, 40) and small.activation == "relu"
    with pytest.raises(ValueError, match="unknown classifier preset"):
        classifier_preset("huge")


@pytest.mark.parametrize("preset", ["released", "small"])
def test_classifier_shapes_and_flat_input(preset: str) -> None:
    clf = LatentClassifier(classifier_preset(preset, hidden=(16, 8), **TINY)).eval()
    ws = torch.randn(5, 4, 8)
    logits = clf(ws)
    assert logits.shape == (5, 40)
    assert torch.equal(logits, clf(ws.reshape(5, 32)))
    with pytest.raises(ValueError, match=r"expected ws \[N, 4, 8\]"):
        clf(torch.randn(5, 5, 8))


def test_activation_differs_between_presets() -> None:
    a = LatentClassifier(classifier_preset("released", hidden=(16,), **TINY))
    b = LatentClassifier(classifier_preset("small", hidden=(16,), **TINY))
    b.load_state_dict(a.state_dict())
    ws = torch.randn(64, 4, 8)
    assert not torch.allclose(a(ws), b(ws))  # LeakyReLU(0.2) vs ReLU


def test_single_attribute_head_equals_its_column() -> None:
    names = tuple(f"a{i}" for i in range(3))
    clf = LatentClassifier(
        LatentClassifierConfig(hidden=(16,), n_attrs=3, attr_names=names, **TINY)
    )
    head = clf.single(2)
    ws = torch.randn(6, 4, 8)
    assert head.config.attr_names == ("a2",)
    torch.testing.assert_close(head(ws)[:, 0], clf(ws)[:, 2])


def test_dropout_only_in_training() -> None:
    clf = LatentClassifier(LatentClassifierConfig(hidden=(64,), dropout=0.5, **TINY))
    ws = torch.randn(8, 4, 8)
    clf.eval()
    assert torch.equal(clf(ws), clf(ws))
    clf.train()
    assert not torch.equal(clf(ws), clf(ws))


def test_transformer_is_w_plus_alpha_f() -> None:
    t = LatentTransformer(LatentTransformerConfig(**TINY))
    ws = torch.randn(3, 4, 8)
    assert torch.equal(t(ws, 0.0), ws)
    d1 = t(ws, 1.0) - ws
    torch.testing.assert_close(t(ws, 2.5) - ws, 2.5 * d1)
    alpha = torch.tensor([1.0, -2.0, 0.5])
    torch.testing.assert_close(t(ws, alpha) - ws, alpha.view(3, 1, 1) * d1)
    # equalised learning rate: runtime weight = weight / sqrt(512-like fan-in)
    w0, b0 = t.dense[0].weight, t.dense[0].bias
    torch.testing.assert_close(d1[:, 0], ws[:, 0] @ (w0 / 8**0.5).T + b0)
    with pytest.raises(ValueError, match="alpha must be"):
        t(ws, torch.ones(2))


def test_per_row_maps_are_independent_and_dense_is_not() -> None:
    ws = torch.randn(2, 4, 8)
    moved = ws.clone()
    moved[:, 1] += 1.0
    per_row = LatentTransformer(LatentTransformerConfig(**TINY))
    d = per_row.delta(moved) - per_row.delta(ws)
    assert torch.equal(d[:, [0, 2, 3]], torch.zeros_like(d[:, [0, 2, 3]]))
    dense = LatentTransformer(LatentTransformerConfig(dense=True, **TINY))
    assert set(dense.state_dict()) == {"dense.weight", "dense.bias"}
    assert dense.state_dict()["dense.weight"].shape == (32, 32)
    dd = dense.delta(moved) - dense.delta(ws)
    assert dd[:, 0].abs().max() > 0
    assert sorted(per_row.state_dict())[:2] == ["dense.0.bias", "dense.0.weight"]


@pytest.mark.parametrize("dense", [False, True])
def test_bank_matches_separate_transformers(dense: bool) -> None:
    config = LatentTransformerConfig(dense=dense, **TINY)
    ts = [LatentTransformer(config) for _ in range(3)]
    for t in ts:
        with torch.no_grad():
            for p in t.parameters():
                p.normal_()
    bank = LatentTransformerBank.from_transformers(ts)
    ws = torch.randn(5, 4, 8)
    alpha = torch.randn(3, 5)
    out = bank(ws, alpha)
    for k, t in enumerate(ts):
        torch.testing.assert_close(out[k], t(ws, alpha[k]))
        back = bank.transformer(k, attr_name=f"x{k}")
        assert back.config.attr_name == f"x{k}"
        torch.testing.assert_close(back(ws, alpha[k]), out[k])


def test_get_coeff_flips_towards_the_other_class() -> None:
    p = torch.tensor([0.1, 0.4, 0.5, 0.7, 0.99])
    torch.testing.assert_close(get_coeff(p), torch.tensor([0.9, 0.6, 0.0, -0.7, -0.99]))


def test_own_format_round_trip(tmp_path) -> None:
    clf = LatentClassifier(classifier_preset("small", hidden=(16,), **TINY))
    t = LatentTransformer(LatentTransformerConfig(attr_name="Smiling", **TINY))
    clf.save_pretrained(tmp_path / "clf")
    t.save_pretrained(tmp_path / "t")
    clf2, t2 = faceedit.load(tmp_path / "clf"), faceedit.load(tmp_path / "t")
    assert isinstance(clf2, LatentClassifier) and clf2.config == clf.config
    assert isinstance(t2, LatentTransformer) and t2.config.attr_name == "Smiling"
    ws = torch.randn(2, 4, 8)
    torch.testing.assert_close(clf2(ws), clf.eval()(ws))
    torch.testing.assert_close(t2(ws, 0.7), t(ws, 0.7))
