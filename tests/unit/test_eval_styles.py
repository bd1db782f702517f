"""Counting the looks a style controller draws: right for an editor whose looks are known."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import faceedit
from faceedit.data.avatars import counterfactual, edit_attribute, render_record
from faceedit.errors import FaceeditError
from faceedit.eval.avatars import held_out_records
from faceedit.eval.styles import TARGETS, applicable, count_styles, write_styles

NAMES = ["Eyeglasses", "Wearing_Hat", "Bald", "Black_Hair"]
KINDS = ("round", "sunglasses", "wayfarers")  # the glasses the stub's controller picks


class StubEditor:
    """Draws the ground truth of the edit; with controllers, Eyeglasses' first controller
    picks one of :data:`KINDS` (three equal bins of [-1, 1]); without, always the first."""

    size = 64

    def __init__(self, records, style_dim: int) -> None:
        self.records = records
        self.names = NAMES
        self.config = SimpleNamespace(style_dim=style_dim, test_int=1.0, n_attrs=len(NAMES))
        self._shown: list[dict] = []

    def preprocess(self, images):
        by_image = {render_record(r, 64).tobytes(): r for r in self.records}
        self._shown = [by_image[np.asarray(im).tobytes()] for im in images]
        return torch.arange(len(images))

    def current_attrs(self, images, attrs):
        return torch.zeros(len(images), len(NAMES))

    def edit(self, images, edits, current=None, style=None):
        out = []
        for i in range(len(images)):
            record = self._shown[int(images[i])]
            if "Eyeglasses" in edits:
                kind = KINDS[0]
                if style is not None:
                    v = float(style[i, NAMES.index("Eyeglasses"), 0])
                    kind = KINDS[min(int((v + 1) / 2 * 3), 2)]
                record = counterfactual(edit_attribute(record, "Eyeglasses", True),
                                        accessories=kind)  # fmt: skip
            else:
                for a, v in edits.items():
                    record = edit_attribute(record, a, v > 0)
            out.append(render_record(record, 64))
        return SimpleNamespace(image=np.stack(out))


@pytest.fixture(scope="module")
def judge():
    return faceedit.load("avatar-judge")


@pytest.fixture(scope="module")
def records():
    return held_out_records(12, seed=7)


def test_controllers_that_pick_three_glasses_give_three_looks(judge, records, tmp_path):
    editor = StubEditor(records, style_dim=1)
    report, images = count_styles(editor, judge, records, ["glasses"], n_styles=6)
    (r,) = report.results
    assert r.n_avatars == len(applicable(records, TARGETS["glasses"])) > 0
    assert r.n_styles == 6 and images["glasses"][1].shape[:2] == (r.n_avatars, 6)
    # the judge reads rendered glasses well (it misses some): three kinds on most avatars
    assert r.counted >= 0.8
    assert r.distinct_max == 3 and r.distinct_mean >= 2.5 and r.reaching_goal >= 0.6
    assert set(r.values) <= set(KINDS)
    paths = write_styles(report, images, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["results"][0]["distinct_max"] == 3 and "| glasses |" in paths["md"].read_text()


def test_a_model_without_controllers_draws_one_look(judge, records):
    report, images = count_styles(
        StubEditor(records, style_dim=0), judge, records, ["glasses", "hats"], n_styles=6
    )
    for r in report.results:
        assert r.n_styles == 1 and r.distinct_max <= 1 and r.reaching_goal == 0.0
    assert report.results[0].values.keys() <= {KINDS[0]}


def test_an_edit_the_judge_does_not_see_is_not_counted(judge, records):
    class DoNothing(StubEditor):
        def edit(self, images, edits, current=None, style=None):
            return SimpleNamespace(image=np.stack([render_record(r, 64) for r in self._shown]))

    report, _ = count_styles(DoNothing(records, 1), judge, records, ["glasses"], n_styles=4)
    assert report.results[0].counted <= 0.05 and report.results[0].distinct_mean <= 0.1


def test_bad_targets_are_named(judge, records):
    with pytest.raises(FaceeditError, match="unknown style targets"):
        count_styles(StubEditor(records, 1), judge, records, ["moustaches"])


def test_the_cli_on_the_shipped_model(tmp_path, capsys):
    from faceedit.cli import main

    out = tmp_path / "styles"
    args = ["eval", "styles", "--model", "avatar-attgan", "--n", "6", "--targets", "glasses"]
    assert main([*args, "--styles", "3", "-o", str(out), "-q"]) == 0
    assert "| glasses | accessories |" in capsys.readouterr().out
    saved = json.loads((out / "avatar_styles.json").read_text())
    assert saved["style_dim"] == 0 and saved["results"][0]["n_styles"] == 1
    assert saved["judge"] == "avatar-judge"
    assert main([*args, "--styles", "0", "-o", str(tmp_path / "bad"), "-q"]) == 2
    assert "--styles" in capsys.readouterr().err and not (tmp_path / "bad").exists()
