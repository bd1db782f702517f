"""``faceedit train oracle`` on a tiny rendered dataset: files, metrics, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceedit.cli import main
from faceedit.data import avatars as A


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oracle_cli") / "avatars"
    A.write_dataset(root, n=60, size=16, seed=2, workers=1, progress=False)
    return root


def test_train_oracle_writes_a_loadable_model_and_metrics(dataset: Path, tmp_path, capsys) -> None:
    out = tmp_path / "oracle"
    args = ["train", "oracle", "--data", str(dataset), "-o", str(out), "--epochs", "2"]
    args += ["--batch-size", "16", "--channels", "8,16", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "oracle saved to" in printed and "val attribute accuracy" in printed
    model_files = {"config.json", "model.safetensors", "metrics.json"}
    assert {p.name for p in out.iterdir()} == model_files | {"checkpoint.pt", "run.json"}
    header = json.loads((out / "config.json").read_text())
    assert header["architecture"] == "avatar_oracle"
    assert header["config"]["channels"] == [8, 16]
    assert header["metadata"]["train_config"]["epochs"] == 2.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["steps"] == 6  # 48 train images, batch 16, 2 epochs
    assert set(metrics["params"]) == {k for k, v in A.PARAMETERS.items() if len(v) > 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "zero"], "--epochs 'zero': expected a number"),
        (["--epochs", "-1"], "--epochs '-1': must be positive"),
        (["--channels", "8,x"], "--channels '8,x': expected widths"),
        (["--channels", "8,16,32,64,128"], "divisible"),
    ],
)
def test_bad_options_give_one_line(dataset: Path, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "oracle"
    assert main(["train", "oracle", "--data", str(dataset), "-o", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_not_a_dataset_gives_one_line(tmp_path, capsys) -> None:
    assert main(["train", "oracle", "--data", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an avatar dataset" in err[0], err
