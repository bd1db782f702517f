"""The models that ship with faceedit load by name and do their job on fresh data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import faceedit
from faceedit.data.avatars import attributes, render_record, sample_records
from faceedit.errors import CheckpointError
from faceedit.shipped import SHIPPED_DIR, shipped_models
from faceedit.train.oracle import images_to_tensor


def test_every_shipped_model_has_a_card_and_metrics():
    assert "avatar-oracle" in shipped_models()
    for name in shipped_models():
        folder = SHIPPED_DIR / name
        card = (folder / "MODEL_CARD.md").read_text()
        assert "faceedit train" in card and "## Results" in card  # command and figures
        metrics = json.loads((folder / "metrics.json").read_text())
        assert isinstance(metrics, dict) and metrics
        if (folder / "bundle.json").is_file():  # several parts: they load as an editor
            from faceedit.editing.pipeline import build_editor

            method = json.loads((folder / "bundle.json").read_text())["method"]
            assert build_editor(method, name).attributes
            continue
        model = faceedit.load(name)
        assert not model.training


def test_avatar_oracle_reads_avatars_it_never_saw():
    """Avatars from a seed other than the training data's: the shipped oracle must name
    their attributes (the ground truth comes from the rendering parameters)."""
    oracle = faceedit.load("avatar-oracle")
    records = sample_records(120, seed=2026)
    images = np.stack([render_record(r, 64) for r in records])
    truth = np.array([[attributes(r)[a] for a in oracle.config.attr_names] for r in records])
    with torch.no_grad():
        pred, _ = oracle.predict(images_to_tensor(images))
    correct = pred.numpy() == np.where(truth > 0, 1, -1)
    assert correct.mean() >= 0.98  # 99.9% on the held-out split; tiny margin for 120 images
    assert correct.all(axis=1).mean() >= 0.9


def test_unknown_name_lists_the_shipped_models():
    with pytest.raises(CheckpointError, match="avatar-oracle"):
        faceedit.load("no-such-model")
