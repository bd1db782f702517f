"""Classifier and transformer training on a random linear labelling of random W+ codes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceedit.data.latents import LatentDataset
from faceedit.errors import FaceeditError
from faceedit.nets.latent import LatentClassifier, LatentTransformerBank, LatentTransformerConfig
from faceedit.train.latent import (
    ClassifierTrainConfig,
    TransformerTrainConfig,
    attribute_loss,
    correlation_masks,
    train_classifier,
    train_transformers,
    transformer_losses,
)

N, L, C, A = 1200, 4, 8, 6


def synthetic(seed: int = 0) -> LatentDataset:
    """Random codes labelled by random hyperplanes: learnable, so a correct model must."""
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((N, L, C)).astype(np.float32)
    normals = rng.standard_normal((L * C, A)).astype(np.float32)
    labels = (codes.reshape(N, -1) @ normals > 0).astype(np.float32)
    return LatentDataset(codes, labels, tuple(f"attr{i}" for i in range(A)))


@pytest.fixture(scope="module")
def data() -> LatentDataset:
    return synthetic()


@pytest.fixture(scope="module")
def classifier(data, tmp_path_factory) -> LatentClassifier:
    out = tmp_path_factory.mktemp("clf")
    config = ClassifierTrainConfig(
        preset="small", hidden=(64, 32), epochs=8, lr=3e-3, batch_size=64
    )
    result = train_classifier(data, out, config, progress=False)
    # a correct classifier learns the hyperplanes (chance is ~0.5)
    assert result.metrics.accuracy.mean() > 0.88, result.metrics.accuracy
    assert result.losses[-1] < 0.5 * result.losses[0]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "attribute,accuracy,precision,recall,positives" and len(rows) == A + 1
    assert (out / "metrics.png").stat().st_size > 1000 and (out / "loss.png").is_file()
    assert (out / "classifier" / "model.safetensors").is_file()
    return result.model


def test_classifier_metrics_are_per_attribute(classifier, data) -> None:
    from faceedit.train.latent import classifier_metrics

    m = classifier_metrics(classifier, data.codes[1080:], data.labels[1080:], data.attr_names)
    with torch.no_grad():
        pred = (classifier(torch.from_numpy(data.codes[1080:])) > 0).numpy()
    truth = data.labels[1080:] > 0.5
    k = 3
    tp = (pred[:, k] & truth[:, k]).sum()
    assert m.accuracy[k] == pytest.approx((pred[:, k] == truth[:, k]).mean())
    assert m.precision[k] == pytest.approx(tp / pred[:, k].sum())
    assert m.recall[k] == pytest.approx(tp / truth[:, k].sum())


def test_attribute_loss_is_class_balanced_bce() -> None:
    logits = torch.randn(2, 8)
    target = torch.tensor([[1.0, 0, 0, 0, 1, 0, 0, 0], [1.0, 1, 1, 0, 1, 1, 1, 1]])
    out = attribute_loss(logits, target)
    for k in range(2):
        t = target[k]
        w = t * (8 / t.sum()) + (1 - t) * (8 / (8 - t.sum()))
        ref = (F.binary_cross_entropy_with_logits(logits[k], t, reduction="none") * w).mean()
        torch.testing.assert_close(out[k], ref)


def test_correlation_mask_excludes_the_target(data) -> None:
    masks = correlation_masks(data.labels, [1, 4])
    assert masks.shape == (2, A)
    assert masks[0, 1].item() == pytest.approx(0, abs=1e-6)
    assert masks[1, 4].item() == pytest.approx(0, abs=1e-6)
    rho = np.corrcoef(data.labels.T)[1, 2]
    assert masks[0, 2].item() == pytest.approx(1 - abs(rho), abs=1e-6)


def test_batched_attributes_equal_separate_runs(classifier, data) -> None:
    """Training K attributes together gives each exactly what training it alone gives."""
    config = TransformerTrainConfig()
    t_config = LatentTransformerConfig(num_ws=L, w_dim=C)
    attrs = [0, 3]
    torch.manual_seed(1)
    joint = LatentTransformerBank(t_config, 2)
    alone = [LatentTransformerBank(t_config, 1) for _ in attrs]
    with torch.no_grad():
        for k, b in enumerate(alone):
            b.weight.copy_(joint.weight[:, :, k : k + 1])
            b.bias.copy_(joint.bias[:, k : k + 1])
    masks = correlation_masks(data.labels, attrs)

    def adam(bank):
        return torch.optim.Adam(bank.parameters(), lr=1e-2, weight_decay=5e-4)

    opts = [adam(joint)] + [adam(b) for b in alone]
    codes = torch.from_numpy(data.codes)
    for step in range(3):
        w0 = codes[step * 32 : (step + 1) * 32]
        losses = transformer_losses(joint, classifier, w0, torch.tensor(attrs), masks, config)
        opts[0].zero_grad()
        losses["total"].sum().backward()
        opts[0].step()
        for k, b in enumerate(alone):
            single = transformer_losses(
                b, classifier, w0, torch.tensor([attrs[k]]), masks[k : k + 1], config
            )
            torch.testing.assert_close(single["total"][0], losses["total"][k].detach())
            opts[k + 1].zero_grad()
            single["total"].sum().backward()
            opts[k + 1].step()
    for k, b in enumerate(alone):
        torch.testing.assert_close(b.weight[:, :, 0], joint.weight[:, :, k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.bias[:, 0], joint.bias[:, k], rtol=1e-5, atol=1e-6)


def test_transformers_learn_to_flip_and_preserve(classifier, data, tmp_path) -> None:
    config = TransformerTrainConfig(epochs=4, lr=1e-2)
    result = train_transformers(data, classifier, [0, 2], tmp_path, config, progress=False)
    val = torch.from_numpy(data.codes[1080:])
    with torch.no_grad():
        p0 = torch.sigmoid(classifier(val))
        for k, name in ((0, "attr0"), (2, "attr2")):
            h = result.history[name]["attr"]
            assert h[-1] < 0.7 * h[0], h
            t = result.transformers[name]
            alpha = torch.where(p0[:, k] < 0.5, 1.0, -1.0)
            p1 = torch.sigmoid(classifier(t(val, alpha)))
            flipped = ((p1[:, k] > 0.5) != (p0[:, k] > 0.5)).float().mean()
            others = [j for j in range(A) if j != k]
            kept = ((p1[:, others] > 0.5) == (p0[:, others] > 0.5)).float().mean()
            assert flipped > 0.5, flipped
            assert kept > 0.7, kept
    assert (tmp_path / "plots" / "loss_attr0.png").stat().st_size > 1000
    assert set(json.loads((tmp_path / "history.json").read_text())) == {"attr0", "attr2"}
    assert (tmp_path / "tnet_attr2" / "config.json").is_file()


def test_resume_continues_exactly(classifier, data, tmp_path) -> None:
    small = data.subset(slice(0, 300))
    straight = train_transformers(
        small, classifier, [1], tmp_path / "a", TransformerTrainConfig(epochs=2), progress=False
    )
    train_transformers(
        small, classifier, [1], tmp_path / "b", TransformerTrainConfig(epochs=1), progress=False
    )
    resumed = train_transformers(
        small,
        classifier,
        [1],
        tmp_path / "b",
        TransformerTrainConfig(epochs=2),  # the same run with a larger budget: it resumes
        progress=False,
    )
    a, b = straight.transformers["attr1"], resumed.transformers["attr1"]
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    assert len(resumed.history["attr1"]["total"]) == len(straight.history["attr1"]["total"])
    with pytest.raises(
        FaceeditError, match="attrs: \\['attr1'\\] there, \\['attr2'\\] here.*--restart"
    ):
        train_transformers(
            small,
            classifier,
            [2],
            tmp_path / "b",
            TransformerTrainConfig(epochs=3),
            progress=False,
        )


def test_resume_refuses_a_different_structure(classifier, data, tmp_path) -> None:
    small = data.subset(slice(0, 100))
    train_transformers(
        small, classifier, [1], tmp_path, TransformerTrainConfig(epochs=1), progress=False
    )
    with pytest.raises(FaceeditError, match="dense: False there, True here.*--restart"):
        train_transformers(
            small,
            classifier,
            [1],
            tmp_path,
            TransformerTrainConfig(epochs=2, dense=True),
            progress=False,
        )
    with pytest.raises(FaceeditError, match="needs about .* GiB; train fewer attributes"):
        train_transformers(
            small, classifier, [1, 2], tmp_path / "x", TransformerTrainConfig(), max_bank_bytes=1000
        )


def test_classifier_resume_continues_exactly(data, tmp_path) -> None:
    small = data.subset(slice(0, 200))
    cfg = ClassifierTrainConfig(preset="small", hidden=(16,), epochs=2, lr=3e-3, batch_size=64)
    straight = train_classifier(small, tmp_path / "a", cfg, progress=False)
    train_classifier(small, tmp_path / "b", replace(cfg, epochs=1), progress=False)
    resumed = train_classifier(small, tmp_path / "b", cfg, progress=False)
    for va, vb in zip(
        straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb)
    assert resumed.losses == straight.losses
    with pytest.raises(FaceeditError, match="hidden: \\[16\\] there, \\[8\\] here.*--restart"):
        train_classifier(small, tmp_path / "b", replace(cfg, hidden=(8,), epochs=3), progress=False)


def test_edit_targets_continuous_and_fixed() -> None:
    from faceedit.train.latent import edit_targets

    p = torch.tensor([0.2, 0.8, 0.45])
    alpha, target = edit_targets(p)
    torch.testing.assert_close(alpha, torch.tensor([0.8, -0.8, 0.55]))
    assert target.tolist() == [1.0, 0.0, 1.0]  # the flipped labels
    alpha, target = edit_targets(p, fixed_alpha=True)
    assert alpha.tolist() == [1.0, -1.0, 1.0] and target.tolist() == [1.0, 0.0, 1.0]


def test_dense_transformers_train_and_reload(classifier, data, tmp_path) -> None:
    import faceedit

    config = TransformerTrainConfig(epochs=1, dense=True, fixed_alpha=True)
    result = train_transformers(
        data.subset(slice(0, 200)), classifier, [0, 5], tmp_path, config, progress=False
    )
    t = faceedit.load(tmp_path / "tnet_attr5")
    assert t.config.dense and set(t.state_dict()) == {"dense.weight", "dense.bias"}
    ws = torch.from_numpy(data.codes[:4])
    torch.testing.assert_close(t(ws, 1.0), result.transformers["attr5"](ws, 1.0))
    assert result.history["attr0"]["total"][0] > 0
