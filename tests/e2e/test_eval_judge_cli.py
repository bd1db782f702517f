"""``faceedit eval judge``: the report it writes, and its one-line refusals."""

from __future__ import annotations

import json

import pytest

from faceedit.cli import main
from faceedit.eval.fakes import CONTROL_KINDS, FAKE_KINDS


def test_eval_judge_writes_the_report_of_two_judges(tmp_path, capsys) -> None:
    out = tmp_path / "judge"
    args = ["eval", "judge", "--judge", "avatar-judge", "--second", "avatar-oracle"]
    assert main([*args, "--n", "2", "--seed", "11", "--quiet", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "blend25" in printed and "disagree" in printed
    report = json.loads((out / "judge_eval.json").read_text())
    assert report["n_avatars"] == 2 and len(report["judges"]) == 2
    first = report["judges"][0]
    assert set(first["fakes"]) == set(FAKE_KINDS) | set(CONTROL_KINDS)
    n_edits = 2 * len(report["attributes"])
    assert all(r["n"] == n_edits for r in first["fakes"].values())
    # the counterfactual itself is a change and doing nothing is not, for a working judge
    assert first["fakes"]["truth"]["rate"] >= 0.9 and first["fakes"]["source"]["rate"] == 0
    assert set(report["disagreement"]["verdicts"]) == set(first["fakes"])
    assert (out / "judge_eval.md").read_text().startswith("# Judges on fake edits")


def test_confidences_read_the_same_fakes_at_other_thresholds(tmp_path, capsys) -> None:
    """--confidences: the rate at the verdict's own confidence is the verdict's rate, and
    asking for more confidence never lets more fakes pass."""
    from faceedit.eval.avatars import CHANGE_CONFIDENCE

    out = tmp_path / "judge"
    sweep = f"0.5,{CHANGE_CONFIDENCE:g},0.95"
    args = ["eval", "judge", "--judge", "avatar-judge", "--confidences", sweep]
    assert main([*args, "--n", "3", "--seed", "11", "--quiet", "-o", str(out)]) == 0
    assert "pass rate by the confidence a change needs" in capsys.readouterr().out
    judge = json.loads((out / "judge_eval.json").read_text())["judges"][0]
    table = judge["by_confidence"]
    assert list(table) == ["0.5", f"{CHANGE_CONFIDENCE:g}", "0.95"]
    for kind, r in judge["fakes"].items():
        assert table[f"{CHANGE_CONFIDENCE:g}"][kind] == pytest.approx(r["rate"])
        assert table["0.5"][kind] >= table[f"{CHANGE_CONFIDENCE:g}"][kind] >= table["0.95"][kind]
    # a stricter reading does reject some true counterfactuals on 39 edits
    assert table["0.5"]["truth"] > table["0.95"]["truth"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--judge", "avatar-judge", "--seed", "7"], "trained on avatars of that seed"),
        (["--judge", "avatar-judge", "--second", "avatar-judge"], "same judge"),
        (["--judge", "avatar-judge", "--n", "0"], "--n"),
        (["--judge", "avatar-attgan"], "not an avatar oracle"),
        (["--judge", "avatar-judge", "--confidences", "0.7,1"], "not a probability"),
        (["--judge", "avatar-judge", "--confidences", "high"], "not a number"),
    ],
)
def test_bad_requests_get_one_line(extra, message, tmp_path, capsys) -> None:
    out = tmp_path / "judge"
    assert main(["eval", "judge", *extra, "--quiet", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
