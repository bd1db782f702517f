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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--judge", "avatar-judge", "--seed", "7"], "trained on avatars of that seed"),
        (["--judge", "avatar-judge", "--second", "avatar-judge"], "same judge"),
        (["--judge", "avatar-judge", "--n", "0"], "--n"),
        (["--judge", "avatar-attgan"], "not an avatar oracle"),
    ],
)
def test_bad_requests_get_one_line(extra, message, tmp_path, capsys) -> None:
    out = tmp_path / "judge"
    assert main(["eval", "judge", *extra, "--quiet", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
