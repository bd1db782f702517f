"""Avatar edit evaluation: its rates are right for editors whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

import faceedit
from faceedit.data.avatars import attributes, edit_attribute, render_record
from faceedit.errors import FaceeditError
from faceedit.eval.avatars import evaluate_avatar_edits, held_out_records, write_report
from tests.helpers.units import assert_units

ATTRS = ["Smiling", "Eyeglasses", "Wearing_Hat", "Blond_Hair"]


@pytest.fixture(scope="module")
def oracle():
    return faceedit.load("avatar-oracle")


@pytest.fixture(scope="module")
def records():
    return held_out_records(24, seed=7)


def test_a_perfect_editor_scores_near_one(oracle, records):
    """Returns the ground-truth counterfactual: every rate must be (almost) 1."""
    by_image = {render_record(r, 64).tobytes(): r for r in records}

    def perfect(image, edits):
        ((name, strength),) = edits.items()
        return render_record(edit_attribute(by_image[image.tobytes()], name, strength > 0), 64)

    report = evaluate_avatar_edits(perfect, ATTRS, oracle, records, size=64, progress=False)
    assert report.target_change >= 0.95
    assert report.preservation >= 0.97 and report.identity >= 0.9
    assert {r.attribute for r in report.rows} == set(ATTRS) and all(r.n == 24 for r in report.rows)
    # pixels agree: every edit is the counterfactual itself, which doing nothing is not
    assert all(r.truth_psnr == pytest.approx(100.0) for r in report.rows)
    assert all(r.unedited_truth_psnr < 40.0 for r in report.rows)
    # the region gain of the truth itself is 1, everywhere; outside the change region the
    # truth differs from the source only by anti-aliasing (at most REGION_THRESHOLD levels)
    for r in report.rows:
        assert r.region_gain == r.region_gain_median == 1.0
        assert r.outside_psnr > 45.0
    assert report.region_gain == report.region_gain_unique == report.region_gain_several == 1.0


def test_a_do_nothing_editor_changes_nothing(oracle, records):
    report = evaluate_avatar_edits(
        lambda image, edits: image,
        ATTRS,
        oracle,
        records,
        size=64,
        reconstruct=lambda image: image,
        progress=False,
    )
    assert report.target_change <= 0.05  # the flipped value never shows
    assert report.identity >= 0.9
    assert report.psnr == pytest.approx(100.0)  # exact reconstruction (capped MSE)
    for r in report.rows:
        assert r.truth_psnr == pytest.approx(r.unedited_truth_psnr)
        # doing nothing gains nothing over doing nothing, and leaves the rest untouched
        assert r.region_gain == r.region_gain_median == 0.0
        assert r.outside_psnr == pytest.approx(100.0)
    assert report.truth_psnr < 40.0
    assert report.region_gain == 0.0


def test_the_worst_edits_are_the_ones_that_did_least(oracle, records, tmp_path):
    """Perfect edits except Eyeglasses, which it leaves undone: the worst edits kept are
    Eyeglasses edits, worst first, each shown as source / edit (= source) / truth."""
    from PIL import Image

    by_image = {render_record(r, 64).tobytes(): r for r in records}

    def all_but_glasses(image, edits):
        ((name, strength),) = edits.items()
        if name == "Eyeglasses":
            return image
        return render_record(edit_attribute(by_image[image.tobytes()], name, strength > 0), 64)

    report = evaluate_avatar_edits(
        all_but_glasses, ATTRS, oracle, records, size=64, progress=False, keep_worst=5
    )
    assert len(report.worst) == 5 and report.worst_images.shape == (5, 3, 64, 64, 3)
    assert all(w["attribute"] == "Eyeglasses" and w["region_gain"] == 0.0 for w in report.worst)
    for w, (source, edit, truth) in zip(report.worst, report.worst_images, strict=True):
        record = records[w["avatar"]]
        assert np.array_equal(source, render_record(record, 64)) and np.array_equal(edit, source)
        assert np.array_equal(truth, render_record(edit_attribute(record, "Eyeglasses",
                                                                  w["turned_on"]), 64))  # fmt: skip
    paths = write_report(report, tmp_path)
    assert Image.open(paths["worst"]).size[1] > 5 * 96
    saved = json.loads(paths["json"].read_text())
    assert "worst_images" not in saved and saved["worst"] == report.worst


def test_region_gain_is_pooled_by_kind_of_ground_truth(oracle, records):
    """An editor that paints the truth only where the edit has one right answer scores 1
    there and 0 on the edits that draw one of several shapes: the summary keeps them apart,
    and the attribute rows say how many of their edits have one answer."""
    from faceedit.data.avatars import has_unique_truth

    by_image = {render_record(r, 64).tobytes(): r for r in records}

    def half(image, edits):
        ((name, strength),) = edits.items()
        record = by_image[image.tobytes()]
        if not has_unique_truth(record, name, strength > 0):
            return image
        return render_record(edit_attribute(record, name, strength > 0), 64)

    report = evaluate_avatar_edits(half, ATTRS, oracle, records, size=64, progress=False)
    assert report.region_gain_unique == 1.0 and report.region_gain_several == 0.0
    assert 0.0 < report.region_gain < 1.0
    expected = {
        a: sum(has_unique_truth(r, a, attributes(r)[a] < 0) for r in records) / len(records)
        for a in ATTRS
    }
    assert {r.attribute: r.unique_share for r in report.rows} == pytest.approx(expected)


def test_unknown_attribute_and_empty_sets(oracle, records):
    with pytest.raises(FaceeditError, match="does not know"):
        evaluate_avatar_edits(lambda i, e: i, ["Young"], oracle, records, size=64)
    with pytest.raises(FaceeditError, match="at least one avatar"):
        held_out_records(0, seed=1)


def test_report_files(oracle, records, tmp_path):
    report = evaluate_avatar_edits(
        lambda image, edits: image, ATTRS[:2], oracle, records[:4], size=64, progress=False
    )
    paths = write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text())["n_avatars"] == 4
    assert paths["csv"].read_text().splitlines()[0].startswith("attribute,n,target_change")
    assert "| **mean** |" in paths["md"].read_text() and paths["png"].stat().st_size > 1000
    assert "PSNR to truth (unedited)" in paths["md"].read_text()
    assert "truth_psnr" in paths["csv"].read_text().splitlines()[0]


def test_cli_on_a_tiny_attgan(tmp_path, capsys):
    from faceedit.cli import main
    from tests.helpers.tiny_edit import attgan_model

    model = attgan_model(tmp_path)
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "avatars",
            "--method",
            "attgan",
            "--model",
            str(model),
            "--n",
            "3",
            "--attrs",
            "Eyeglasses,Bald",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "avatar_eval.json").read_text())
    assert_units(data, "target_change", "preservation", "identity")
    assert data["units"]["psnr"] == "dB"
    assert [r["attribute"] for r in data["rows"]] == ["Eyeglasses", "Bald"]
    assert 0 <= data["psnr"] < 40  # a random tiny AttGAN does not reconstruct avatars
    assert "Reconstruction PSNR" in capsys.readouterr().out
    assert (
        main(
            [
                "eval",
                "avatars",
                "--method",
                "attgan",
                "--model",
                str(model),
                "--n",
                "2",
                "--attrs",
                "Smiling",
                "-o",
                str(out),
            ]
        )
        == 2
    )  # the release's 13 lack Smiling


def test_target_change_is_split_by_direction(oracle, records, tmp_path):
    """An editor that can only put attributes on: 'on' near 1, 'off' near 0."""
    by_image = {render_record(r, 64).tobytes(): r for r in records}

    def only_on(image, edits):
        ((name, strength),) = edits.items()
        if strength < 0:
            return image
        return render_record(edit_attribute(by_image[image.tobytes()], name, True), 64)

    report = evaluate_avatar_edits(only_on, ATTRS, oracle, records, size=64, progress=False)
    for r in report.rows:
        assert r.target_on is not None and r.target_on >= 0.9, r
        assert r.target_off is not None and r.target_off <= 0.1, r
        # the overall rate is the two directions weighted by how many edits each had
        n_on = sum(attributes(x)[r.attribute] < 0 for x in records)
        mixed = (r.target_on * n_on + r.target_off * (r.n - n_on)) / r.n
        assert r.target_change == pytest.approx(mixed)
    paths = write_report(report, tmp_path)
    assert "target changed (on / off)" in paths["md"].read_text()
    assert "target_on,target_off" in paths["csv"].read_text().splitlines()[0]


@pytest.mark.parametrize("command", ["eval", "demo"])
def test_a_wrong_oracle_is_one_line_and_writes_nothing(command, tmp_path, capsys):
    from faceedit.cli import main
    from tests.helpers.tiny_edit import attgan_model

    model = attgan_model(tmp_path)
    out = tmp_path / "out"
    if command == "eval":
        argv = ["eval", "avatars", "--method", "attgan", "--model", str(model), "--n", "2"]
    else:
        argv = ["demo", "--attgan", str(model), "--latent", "avatar-latent"]
    assert main([*argv, "--judge", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceedit: error:") and "\n" not in err, err
    assert "holds AttGAN, not an avatar oracle" in err, err
    assert not out.exists()


@pytest.mark.parametrize("command", ["eval", "demo"])
def test_a_judge_in_the_models_lineage_is_refused(command, tmp_path, capsys):
    """avatar-oracle chose the shipped AttGAN's weights, so it may not judge it, unless
    asked to, and then every output says so."""
    from faceedit.cli import main

    out = tmp_path / "out"
    if command == "eval":
        args = ["eval", "avatars", "--method", "attgan", "--model", "avatar-attgan", "--n", "2"]
    else:
        args = ["demo", "--methods", "attgan", "--n", "1", "--attrs", "Smiling"]
    args += ["--judge", "avatar-oracle", "-o", str(out), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not independent of avatar-attgan" in err
    assert "selection" in err and "--allow-dependent-judge" in err
    assert not out.exists()
    assert main([*args, "--allow-dependent-judge"]) == 0
    printed = capsys.readouterr().out
    assert "not independent of avatar-attgan: selection avatar-oracle" in printed
    if command == "eval":
        report = json.loads((out / "avatar_eval.json").read_text())
        assert report["dependent_judge"] and report["judge_role"] == "training-side judge"
        assert "Not an independent judge" in (out / "avatar_eval.md").read_text()
    else:
        assert "Not an independent judge" in (out / "report.html").read_text()


def test_the_default_judge_is_the_independent_evaluation_judge(tmp_path, capsys):
    from faceedit.cli import main

    args = ["eval", "avatars", "--method", "attgan", "--model", "avatar-attgan", "--n", "2"]
    assert main([*args, "--attrs", "Smiling", "-o", str(tmp_path / "e"), "-q"]) == 0
    report = json.loads((tmp_path / "e" / "avatar_eval.json").read_text())
    assert report["judge"] == "avatar-judge" and report["judge_role"] == "evaluation judge"
    assert report["dependent_judge"] == []


def test_a_change_counts_only_when_the_judge_is_confident(oracle, records):
    """The target counts as changed when the judge gives its new value more than
    CHANGE_CONFIDENCE; an unsure reading in the right direction does not count."""
    import math

    import torch

    from faceedit.eval.avatars import CHANGE_CONFIDENCE, judge_edits
    from faceedit.nets.oracle import AvatarOracle

    record = records[0]
    name = "Smiling"
    want_on = attributes(record)[name] < 0
    image = render_record(record, 64)
    index = list(oracle.config.attr_names).index(name)
    sign = 1.0 if want_on else -1.0

    class Reader(torch.nn.Module):
        """The shipped oracle with the target's logit set to ``logit`` (towards the edit)."""

        def __init__(self, logit: float):
            super().__init__()
            self.inner, self.config, self.logit = oracle, oracle.config, logit

        def forward(self, x):
            out = self.inner(x)
            out.attrs[:, index] = sign * self.logit
            return out

        read = AvatarOracle.read  # the judge's reading, of this forward

    edge = math.log(CHANGE_CONFIDENCE / (1 - CHANGE_CONFIDENCE))
    verdict = {
        p: judge_edits(Reader(logit), [(record, name, want_on)], [image])[0].target_changed
        for p, logit in {"unsure": 0.5 * edge, "sure": 1.5 * edge, "wrong": -edge}.items()
    }
    assert verdict == {"unsure": False, "sure": True, "wrong": False}
    # read at 0.5 instead, the unsure reading would have counted
    assert judge_edits(Reader(0.5 * edge), [(record, name, want_on)], [image], 0.5)[
        0
    ].target_changed
