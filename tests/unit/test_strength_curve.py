"""The intensity curve: one evaluation per strength, on the same avatars and judge."""

from __future__ import annotations

import json

import numpy as np
import pytest

import faceedit
from faceedit.data.avatars import edit_attribute, render_record
from faceedit.errors import FaceeditError
from faceedit.eval.avatars import evaluate_avatar_edits, held_out_records
from faceedit.eval.strength_curve import strength_curve, write_curve

ATTRS = ["Smiling", "Eyeglasses", "Pale_Skin"]


@pytest.fixture(scope="module")
def judge():
    return faceedit.load("avatar-judge")


@pytest.fixture(scope="module")
def records():
    return held_out_records(8, seed=7)


def _blending_editor(records):
    """Blends the source towards its ground truth by ``min(|strength| / 2, 1)``: at
    strength 2 and above it returns the truth; below, a partial (faint) edit."""
    by_image = {render_record(r, 64).tobytes(): r for r in records}

    def edit(image, edits):
        ((name, strength),) = edits.items()
        truth = render_record(edit_attribute(by_image[image.tobytes()], name, strength > 0), 64)
        alpha = min(abs(strength) / 2, 1.0)
        mixed = (1 - alpha) * image.astype(np.float64) + alpha * truth.astype(np.float64)
        return np.round(mixed).astype(np.uint8)

    return edit


def test_each_point_is_the_evaluation_at_that_strength(judge, records):
    edit = _blending_editor(records)
    curve = strength_curve(
        edit, ATTRS, judge, records, size=64, strengths=[3, 0.5, 1], operating_strength=2,
        progress=False,
    )  # fmt: skip
    # sorted, with the operating point added
    assert [p.strength for p in curve.points] == [0.5, 1.0, 2.0, 3.0]
    alone = evaluate_avatar_edits(edit, ATTRS, judge, records, size=64, strength=1.0,
                                  progress=False)  # fmt: skip
    one = curve.point(1.0)
    assert one.target_change == alone.target_change and one.identity == alone.identity
    assert one.by_attribute["Smiling"]["region_gain"] == alone.rows[0].region_gain
    # the blend reaches the truth at 2: gain 1 there and beyond, and below it the gain
    # grows with the strength (1 - (1 - alpha)^2 for a blend of alpha)
    assert curve.point(2.0).region_gain == pytest.approx(1.0, abs=1e-3)
    assert curve.point(3.0).region_gain == pytest.approx(1.0, abs=1e-3)
    assert curve.point(0.5).region_gain < curve.point(1.0).region_gain < 1.0
    assert curve.point(0.5).target_change <= curve.point(2.0).target_change
    assert (curve.judge, curve.judge_role) == (alone.judge, alone.judge_role)


def test_the_files_and_the_plot(judge, records, tmp_path):
    curve = strength_curve(
        _blending_editor(records), ATTRS[:1], judge, records[:2], size=64, strengths=[1],
        operating_strength=2, reconstruct=lambda image: image, progress=False,
    )  # fmt: skip
    paths = write_curve(curve, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert [p["strength"] for p in saved["points"]] == [1.0, 2.0]
    assert saved["operating_strength"] == 2.0 and saved["psnr"] == pytest.approx(100.0)
    md = paths["md"].read_text()
    assert "| 2 (operating point) |" in md and "| Smiling |" in md
    from PIL import Image

    assert Image.open(paths["png"]).size[0] > 300


def test_strengths_must_be_positive(judge, records):
    with pytest.raises(FaceeditError, match="positive"):
        strength_curve(lambda i, e: i, ATTRS, judge, records, 64, [0, 1], 2, progress=False)


def test_the_cli_writes_the_curve_of_an_attgan_model(tmp_path, capsys):
    from faceedit.cli import main

    out = tmp_path / "curve"
    args = ["eval", "avatars", "--method", "attgan", "--model", "avatar-attgan", "--n", "2"]
    args += ["--attrs", "Smiling", "--strengths", "1,3", "--strength", "2"]
    assert main([*args, "-o", str(out), "-q"]) == 0
    assert "Operating point: strength 2" in capsys.readouterr().out
    saved = json.loads((out / "avatar_strengths.json").read_text())
    assert [p["strength"] for p in saved["points"]] == [1.0, 2.0, 3.0]
    assert saved["judge_role"] == "evaluation judge"
    # a negative strength is one line and writes nothing
    bad = tmp_path / "bad"
    assert main([*args[:-4], "--strengths=-1,2", "-o", str(bad), "-q"]) == 2
    assert "positive" in capsys.readouterr().err and not bad.exists()
