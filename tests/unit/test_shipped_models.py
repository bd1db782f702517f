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


def _shipped_edit_report(method: str, name: str, attrs: list[str], strength: float):
    from faceedit.editing.pipeline import build_editor
    from faceedit.eval.avatars import editor_functions, evaluate_avatar_edits, held_out_records

    editor = build_editor(method, name, invert="encoder" if method == "latent" else "auto")
    edit, reconstruct = editor_functions(editor)
    return evaluate_avatar_edits(
        edit,
        attrs,
        faceedit.load("avatar-oracle"),
        held_out_records(24, seed=7),  # neither the training seed (0) nor the card's (1)
        size=editor.crop_size,
        strength=strength,
        reconstruct=reconstruct,
        method=method,
        model=name,
    )


def test_shipped_attgan_edits_avatars_it_never_saw():
    """The shipped AttGAN's strongest edits work on fresh avatars and keep the rest (its
    model card reports 90-99% target change and 95-97% kept for these at strength 2)."""
    report = _shipped_edit_report(
        "attgan", "avatar-attgan", ["Eyeglasses", "Smiling", "Mouth_Slightly_Open"], 2.0
    )
    assert report.target_change >= 0.8
    assert report.preservation >= 0.85
    assert report.psnr is not None and report.psnr >= 25.0


def test_shipped_latent_bundle_moves_colour_and_glasses():
    """The shipped latent bundle inverts with its encoder and its transformers change the
    attributes its card says they change (92-99% at strength 1, 84-88% of the others kept)."""
    report = _shipped_edit_report(
        "latent", "avatar-latent", ["Blond_Hair", "Eyeglasses", "Pale_Skin"], 1.0
    )
    assert report.target_change >= 0.8
    assert report.preservation >= 0.75
    assert report.psnr is not None and report.psnr >= 17.0


def test_latent_eval_by_optimisation_inverts_each_avatar_once():
    """``faceedit eval avatars --invert optimize``: the projection runs (the evaluation
    loop holds no gradients) once per avatar, shared by its reconstruction and edits."""
    from faceedit.editing.pipeline import build_editor
    from faceedit.eval.avatars import editor_functions, evaluate_avatar_edits, held_out_records

    editor = build_editor("latent", "avatar-latent", invert="optimize", steps=3)
    calls = []
    invert = editor.editor.invert
    editor.editor.invert = lambda crops, **kw: calls.append(1) or invert(crops, **kw)
    edit, reconstruct = editor_functions(editor)
    attrs = ["Blond_Hair", "Eyeglasses", "Pale_Skin"]
    report = evaluate_avatar_edits(
        edit, attrs, faceedit.load("avatar-oracle"), held_out_records(2, seed=7),
        size=editor.crop_size, reconstruct=reconstruct, progress=False,
    )  # fmt: skip
    assert len(calls) == 2
    assert [r.n for r in report.rows] == [2, 2, 2] and report.psnr is not None
