"""``faceedit data avatars`` end to end: real files, determinism, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceedit.cli import COMMAND_MODULES, main
from faceedit.data import avatars as A
from faceedit.data.images import read_image


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_verb_is_registered() -> None:
    assert "faceedit.cli.data" in COMMAND_MODULES


def test_avatars_cli_writes_a_deterministic_dataset(tmp_path: Path, capsys) -> None:
    args = ["data", "avatars", "--n", "40", "--size", "32", "--seed", "0"]
    # the installed entry point, in a fresh process, with 2 rendering processes
    run = subprocess.run(
        [sys.executable, "-m", "faceedit", *args, "-o", str(tmp_path / "a"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 40 avatars (32x32)" in run.stdout
    assert "avatars: 100%" in run.stderr  # the progress bar

    assert main([*args, "-o", str(tmp_path / "b"), "--workers", "1", "--quiet"]) == 0
    assert "wrote 40 avatars" in capsys.readouterr().out
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len([k for k in a if k.startswith("images/")]) == 40
    assert {
        "list_attr_celeba.txt",
        "list_eval_partition.txt",
        "params.jsonl",
        "dataset.json",
    } <= set(a)
    assert a == b, "outputs depend on the number of workers"

    # the images are the records' renders, and the labels are the records' attributes
    params = A.read_params(tmp_path / "a")
    name, record = next(iter(params.items()))
    img = read_image(tmp_path / "a" / "images" / name)
    assert np.array_equal(img, A.render_record(record, 32))
    names, rows = A.read_attributes(tmp_path / "a")
    assert rows[name] == [A.attributes(record)[n] for n in names]

    assert main([*args[:-1], "1", "-o", str(tmp_path / "c"), "--workers", "1", "--quiet"]) == 0
    c = _files(tmp_path / "c")
    assert c["images/000000.png"] != a["images/000000.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "0"], "--n '0': must be at least 1"),
        (["--n", "abc"], "--n 'abc': expected an integer"),
        (["--n", "-5"], "--n '-5': must be at least 1"),
        (["--size", "2"], "--size '2': must be at least 8"),
        (["--workers", "0"], "--workers '0': must be at least 1"),
        (["--split-fractions", "0.8,0.2"], "--split-fractions '0.8,0.2': expected three fractions"),
    ],
)
def test_bad_numbers_give_one_line(tmp_path: Path, capsys, extra, message) -> None:
    out = tmp_path / "ds"
    assert main(["data", "avatars", "-o", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_missing_parent_and_non_empty_output_give_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "missing" / "ds"
    assert main(["data", "avatars", "--n", "5", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"parent directory {out.parent} does not exist" in err[0], err

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    assert main(["data", "avatars", "--n", "5", "-o", str(tmp_path / "used"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists and is a non-empty directory" in err[0], err
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
