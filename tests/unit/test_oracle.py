"""The avatar attribute oracle: config checks, shapes, save/load, loss masking and a
tiny training run that must make the loss fall (faceedit.nets.oracle, faceedit.train.oracle)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import faceedit
from faceedit.data import avatars as A
from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig
from faceedit.train.oracle import (
    OracleTrainConfig,
    default_oracle_config,
    evaluate_oracle,
    images_to_tensor,
    oracle_loss,
    train_oracle,
)
from tests.helpers.units import assert_units


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oracle") / "avatars"
    A.write_dataset(root, n=120, size=16, seed=0, workers=1, progress=False)
    return root


def _tiny(arrays, **kw) -> AvatarOracleConfig:
    return default_oracle_config(arrays, channels=(8, 16), hidden=32, **kw)


def test_config_is_checked() -> None:
    names = dict(attr_names=("Smiling",))
    with pytest.raises(ValueError, match="divisible"):
        AvatarOracleConfig(img_size=20, channels=(8, 16, 32), **names)
    with pytest.raises(ValueError, match="at least two values"):
        AvatarOracleConfig(param_names=("eyes",), param_values=(("default",),), **names)
    with pytest.raises(ValueError, match="same length"):
        AvatarOracleConfig(param_names=("eyes",), **names)
    with pytest.raises(ValueError, match="needs attr_names or param_names"):
        AvatarOracleConfig()
    with pytest.raises(ValueError, match="stem_stride"):
        AvatarOracleConfig(stem_stride=3, **names)
    # a full-resolution first stage pools instead of striding: same output size
    for stride in (1, 2):
        cfg = AvatarOracleConfig(
            img_size=16, channels=(4, 8), hidden=8, stem_stride=stride, **names
        )
        assert AvatarOracle(cfg).trunk(torch.zeros(1, 3, 16, 16)).shape == (1, 8, 4, 4)


def test_shapes_predict_and_round_trip(dataset: Path, tmp_path: Path) -> None:
    arrays = A.load_arrays(dataset, "val")
    assert arrays.images.shape == (12, 16, 16, 3) and arrays.images.dtype == np.uint8
    assert arrays.attrs.shape == (12, len(A.ATTRIBUTE_NAMES))
    assert arrays.params.shape == (12, len(arrays.param_names))
    assert "background" not in arrays.param_names  # one value: nothing to predict
    model = AvatarOracle(_tiny(arrays)).eval()
    x = images_to_tensor(arrays.images)
    assert x.shape == (12, 3, 16, 16) and float(x.min()) >= -1 and float(x.max()) <= 1
    out = model(x)
    assert out.attrs.shape == (12, len(A.ATTRIBUTE_NAMES))
    for name, values in zip(model.config.param_names, model.config.param_values, strict=True):
        assert out.params[name].shape == (12, len(values))
    attrs, params = model.predict(x)
    assert set(attrs.unique().tolist()) <= {-1, 1}
    assert all(v in A.PARAMETERS["eyes"] for v in params["eyes"])
    with pytest.raises(ValueError, match=r"expected img \[N, 3, 16, 16\]"):
        model(torch.zeros(2, 3, 32, 32))

    model.save_pretrained(tmp_path / "oracle")
    loaded = faceedit.load(tmp_path / "oracle")
    assert isinstance(loaded, AvatarOracle) and loaded.config == model.config
    assert torch.equal(loaded(x).attrs, out.attrs)


def test_loss_ignores_parameters_that_do_not_show(dataset: Path) -> None:
    arrays = A.load_arrays(dataset, "train", limit=8)
    # hair colour is hidden under hats and bald heads, and so marked -1
    col = arrays.param_names.index("hairColor")
    params = A.read_params(dataset)
    for f, row in zip(arrays.files, arrays.params, strict=True):
        assert (row[col] >= 0) == ("hairColor" in A.visible_parameters(params[f]))
    model = AvatarOracle(_tiny(arrays)).eval()
    out = model(images_to_tensor(arrays.images))
    attrs = torch.from_numpy(arrays.attrs)
    p = torch.from_numpy(arrays.params)
    hidden = p.clone()
    hidden[:, col] = -1
    other = hidden.clone()
    other[0, col] = 3  # a target where none was: the loss must change
    base = oracle_loss(out, attrs, hidden, arrays.param_names)
    assert not torch.allclose(base, oracle_loss(out, attrs, other, arrays.param_names))
    assert torch.isfinite(base)


def test_tiny_training_run_lowers_the_loss_and_reports_accuracy(dataset: Path, tmp_path) -> None:
    arrays = A.load_arrays(dataset, "train")
    config = OracleTrainConfig(epochs=12, batch_size=32, lr=1e-2, seed=1)
    global_state = torch.get_rng_state()
    result = train_oracle(dataset, tmp_path / "o", config, _tiny(arrays), progress=False)
    assert torch.equal(torch.get_rng_state(), global_state)  # a private RNG stream
    losses = result.losses
    assert len(losses) == result.metrics["steps"] == 36
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert_units(metrics, "attr_accuracy", "param_accuracy", "all_attrs_correct", "attrs")
    assert metrics["n"] == 12 and 0.0 <= metrics["attr_accuracy"] <= 1.0
    assert set(metrics["attrs"]) == set(A.ATTRIBUTE_NAMES)
    model = faceedit.load(tmp_path / "o")
    again = evaluate_oracle(model, A.load_arrays(dataset, "val"))
    assert again["attr_accuracy"] == pytest.approx(metrics["attr_accuracy"])
    other = OracleTrainConfig(epochs=12, batch_size=32, lr=1e-3, seed=1)
    before = (tmp_path / "o" / "model.safetensors").read_bytes()
    with pytest.raises(faceedit.FaceeditError, match="lr: 0.01 there, 0.001 here.*--restart"):
        train_oracle(dataset, tmp_path / "o", other, _tiny(arrays), progress=False)
    assert (tmp_path / "o" / "model.safetensors").read_bytes() == before


def test_features_are_the_stages_of_the_trunk_and_make_a_perceptual_distance(
    dataset: Path,
) -> None:
    from faceedit.losses import OracleFeatures, PerceptualDistance

    arrays = A.load_arrays(dataset, "val")
    torch.manual_seed(0)
    # stage sides before pooling: a stride-2 stem halves first; every later stage pools
    for stride, sides in ((1, (16, 8)), (2, (8, 8))):
        model = AvatarOracle(_tiny(arrays, stem_stride=stride, convs=2)).eval()
        x = images_to_tensor(arrays.images)
        before = model(x).attrs
        feats = model.features(x)
        # one map per stage, each the stage's last ReLU (before its pooling)
        assert [tuple(f.shape) for f in feats] == [
            (12, c, s, s) for c, s in zip((8, 16), sides, strict=True)
        ]
        assert all(float(f.detach().min()) >= 0 for f in feats)
        torch.testing.assert_close(torch.nn.functional.max_pool2d(feats[-1], 2), model.trunk(x))
        torch.testing.assert_close(model(x).attrs, before)  # reading features changed nothing
        # any side is resized to the oracle's
        big = torch.nn.functional.interpolate(x, size=(32, 32), mode="nearest")
        assert model.features(big)[0].shape == feats[0].shape

    dist = PerceptualDistance(OracleFeatures(model), size=None)
    assert not any(p.requires_grad for p in dist.parameters())
    d = dist(x, x.flip(0))
    assert d.shape == (12,) and bool((d > 0).all())
    torch.testing.assert_close(dist(x, x), torch.zeros(12), atol=1e-6, rtol=0)
    dist.train()
    assert not model.training  # BatchNorm keeps its running statistics


def test_agreement_is_the_mean_kl_divergence_between_two_readings(dataset: Path) -> None:
    from torch.distributions import Bernoulli, Categorical, kl_divergence

    from faceedit.losses import OracleAgreement

    arrays = A.load_arrays(dataset, "val")
    torch.manual_seed(0)
    model = AvatarOracle(_tiny(arrays)).eval()
    agree = OracleAgreement(model)
    assert not any(p.requires_grad for p in agree.parameters())
    x = images_to_tensor(arrays.images)
    y = x.flip(0)
    # the same divergence written head by head with torch.distributions
    want, got = model(x), model(y)
    heads = [kl_divergence(Bernoulli(logits=want.attrs), Bernoulli(logits=got.attrs)).T]
    heads += [
        kl_divergence(Categorical(logits=want.params[k]), Categorical(logits=got.params[k]))[None]
        for k in want.params
    ]
    expected = torch.cat(heads).mean(0)
    torch.testing.assert_close(agree(y, x), expected, atol=1e-5, rtol=1e-4)
    assert bool((agree(y, x) > 0).all())
    torch.testing.assert_close(agree(x, x), torch.zeros(len(x)), atol=1e-6, rtol=0)
    # the gradient reaches the image being fitted, never the target
    img, target = y.clone().requires_grad_(True), x.clone().requires_grad_(True)
    agree(img, target).sum().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0
    assert target.grad is None
    # any side is resized to the oracle's; train() leaves BatchNorm in eval mode
    big = torch.nn.functional.interpolate(x, size=(32, 32), mode="nearest")
    assert agree(big, big).shape == (len(x),)
    agree.train()
    assert not model.training
