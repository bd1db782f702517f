"""The latent verbs end to end on tiny data: stats, train classifier/transformer (also
under torchrun with 2 gloo processes), edit CODES.npy (codes and rendered strips) and eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit.cli import main
from tests.helpers.units import assert_units

REPO = Path(__file__).resolve().parents[2]
N, L, C = 600, 6, 16  # L=6 rows: a 16 px StyleGAN2


def _write_data(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((N, L, C)).astype(np.float32)
    normals = rng.standard_normal((L * C, 40)).astype(np.float32)
    labels = (codes.reshape(N, -1) @ normals > 0).astype(np.int64) * 2 - 1  # {-1, 1}
    np.save(root / "codes.npy", codes)
    np.save(root / "labels.npy", labels)
    return root / "codes.npy", root / "labels.npy"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("latent")
    codes, labels = _write_data(root)
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    G = StyleGAN2Generator(
        StyleGAN2Config(
            img_resolution=16, z_dim=C, w_dim=C, mapping_layers=2, channel_base=128, channel_max=16
        )
    )
    assert G.num_ws == L
    G.save_pretrained(root / "G")
    assert main(["train", "classifier", "--codes", str(codes), "--labels", str(labels), "-o", str(root / "clf"),
                 "--preset", "small", "--hidden", "64,32", "--epochs", "6", "--lr", "3e-3",
                 "--batch-size", "64", "-q"]) == 0  # fmt: skip
    assert main(["train", "transformer", "--codes", str(codes), "--labels", str(labels),
                 "--classifier", str(root / "clf" / "classifier"), "--attrs", "Smiling,Eyeglasses",
                 "-o", str(root / "tn"), "--epochs", "2", "--lr", "1e-2", "-q"]) == 0  # fmt: skip
    return root


def test_stats_prints_counts_and_plots(work, capsys) -> None:
    out = work / "stats.png"
    assert (
        main(
            ["stats", str(work / "labels.npy"), "--codes", str(work / "codes.npy"), "-o", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    labels = np.load(work / "labels.npy") > 0
    line = next(ln for ln in text.splitlines() if ln.startswith("Smiling "))
    assert line.split()[1:3] == [str(int((~labels[:, 31]).sum())), str(int(labels[:, 31].sum()))]
    assert "strongest correlation" in text
    assert Image.open(out).size[0] > 500


def test_training_outputs(work) -> None:
    metrics = (work / "clf" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 41
    acc = np.mean([float(r.split(",")[1]) for r in metrics[1:]])
    assert acc > 0.65, acc  # chance is 0.5
    for name in ("Smiling", "Eyeglasses"):
        assert (work / "tn" / f"tnet_{name}" / "model.safetensors").is_file()
        assert (work / "tn" / "plots" / f"loss_{name}.png").is_file()
    history = json.loads((work / "tn" / "history.json").read_text())
    assert history["Smiling"]["attr"][-1] < history["Smiling"]["attr"][0]


def test_edit_codes_and_strip(work, capsys) -> None:
    out = work / "edited.npy"
    args = [
        "edit",
        str(work / "codes.npy"),
        "--attr",
        "Smiling=1",
        "--transformers",
        str(work / "tn"),
    ]
    assert main([*args, "-o", str(out), "--layers", "0-2"]) == 0
    edited, codes = np.load(out), np.load(work / "codes.npy")
    assert edited.shape == codes.shape
    assert np.array_equal(edited[:, 3:], codes[:, 3:])  # rows outside 0-2 come from the input
    assert not np.allclose(edited[:, :3], codes[:, :3])
    strip = work / "strip.png"
    assert main([*args, "--attr", "Eyeglasses=-0.5", "--generator", str(work / "G"), "-o", str(strip),
                 "--max-codes", "2", "--num-strengths", "5"]) == 0  # fmt: skip
    img = np.asarray(Image.open(strip))
    assert img.shape[0] > 2 * 16 and img.shape[1] > 5 * 16
    assert "2 x 5 images" in capsys.readouterr().out


def test_eval_latent_writes_results_with_baseline(work, capsys) -> None:
    out = work / "eval"
    assert main(["eval", "latent", "--codes", str(work / "codes.npy"), "--labels", str(work / "labels.npy"),
                 "--classifier", str(work / "clf" / "classifier"), "--transformers", str(work / "tn"),
                 "--attrs", "Smiling,Eyeglasses", "-o", str(out), "--num-strengths", "3",
                 "--orthogonal-to", "Male"]) == 0  # fmt: skip
    data = json.loads((out / "results.json").read_text())
    assert_units(data, "target_change", "preservation")
    methods = {r["method"] for r in data["rows"]}
    assert methods == {"latent transformer", "linear (InterFaceGAN)"}
    assert len(data["rows"]) == 2 * 2 * 3
    top = [r for r in data["rows"] if r["strength"] == 2.0 and r["method"] == "latent transformer"]
    assert all(r["target_change"] > 0.3 for r in top), top
    assert (out / "curves.png").stat().st_size > 1000 and (out / "results.csv").is_file()
    assert "latent transformer: at strength 2" in capsys.readouterr().out


def test_clear_errors(work, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((4, L, C), np.nan, np.float32))
    assert main(["train", "classifier", "--codes", str(bad), "--labels", str(work / "labels.npy"),
                 "-o", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "NaN" in capsys.readouterr().err
    assert main(["train", "transformer", "--codes", str(work / "codes.npy"), "--labels",
                 str(work / "labels.npy"), "--classifier", str(work / "clf" / "classifier"),
                 "--attrs", "Smile", "-o", str(tmp_path / "y")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown attribute 'Smile'" in err
    assert main(["edit", str(work / "codes.npy"), "--attr", "Smiling=1", "--transformers",
                 str(work / "tn"), "-o", str(tmp_path / "s.png")]) == 2  # fmt: skip
    assert "needs --generator" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "x").exists()
    code = main(
        ["eval", "latent", "--codes", str(work / "codes.npy"), "--classifier",
         str(work / "clf" / "classifier"), "--attrs", "Smiling", "-o", str(tmp_path / "e"),
         "--identity", str(work / "G")]
    )  # fmt: skip
    assert code == 2 and "--identity needs --generator" in capsys.readouterr().err


def test_torchrun_two_gloo_processes(work, tmp_path) -> None:
    """DDP over 2 CPU processes: both ranks end with the same weights, rank 0 writes."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, "worker", str(work), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert w0["world_size"] == 2 and w1["rank"] == 1
    for k in w0["state"]:
        assert torch.equal(w0["state"][k], w1["state"][k]), k
    assert (tmp_path / "out" / "tnet_Smiling" / "config.json").is_file()
    assert (tmp_path / "out" / "checkpoint.pt").is_file()


def _worker(work: Path, out: Path) -> None:
    from faceedit.checkpoints import load
    from faceedit.data.latents import load_latent_dataset
    from faceedit.train.common import cleanup_distributed, setup_distributed
    from faceedit.train.latent import TransformerTrainConfig, train_transformers

    dist = setup_distributed()
    data = load_latent_dataset(work / "codes.npy", work / "labels.npy")
    clf = load(work / "clf" / "classifier")
    result = train_transformers(
        data, clf, [31], out / "out", TransformerTrainConfig(epochs=1), progress=False, dist=dist
    )
    state = result.transformers["Smiling"].state_dict()
    torch.save(
        {"rank": dist.rank, "world_size": dist.world_size, "state": state},
        out / f"rank{dist.rank}.pt",
    )
    cleanup_distributed(dist)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    _worker(Path(sys.argv[2]), Path(sys.argv[3]))


def test_single_attribute_classifier(work, tmp_path) -> None:
    out = tmp_path / "one"
    assert main(["train", "classifier", "--codes", str(work / "codes.npy"), "--labels",
                 str(work / "labels.npy"), "--attrs", "Smiling", "--hidden", "16", "--epochs", "1",
                 "-o", str(out), "-q"]) == 0  # fmt: skip
    from faceedit.checkpoints import load

    clf = load(out / "classifier")
    assert clf.config.n_attrs == 1 and clf.config.attr_names == ("Smiling",)
    assert (out / "metrics.csv").read_text().splitlines()[1].startswith("Smiling,")


def test_edit_latent_reads_the_original_logs_layout(work, tmp_path, monkeypatch) -> None:
    """Without --transformers, logs/001/tnet_<k>.pth.tar (the original's layout) is used."""
    from faceedit.checkpoints import load

    mine = load(work / "tn" / "tnet_Smiling")
    (tmp_path / "logs" / "001").mkdir(parents=True)
    # exactly what the original writes: torch.save(T_net.state_dict()) (an OrderedDict)
    torch.save(mine.state_dict(), tmp_path / "logs" / "001" / "tnet_31.pth.tar")
    monkeypatch.chdir(tmp_path)
    assert (
        main(["edit-latent", str(work / "codes.npy"), "--attr", "Smiling=0.7", "-o", "a.npy"]) == 0
    )
    assert main(["edit-latent", str(work / "codes.npy"), "--attr", "Smiling=0.7", "-o", "b.npy",
                 "--transformers", str(work / "tn")]) == 0  # fmt: skip
    assert np.array_equal(np.load("a.npy"), np.load("b.npy"))


def test_edit_codes_matches_the_deprecated_edit_latent(work, tmp_path, capsys) -> None:
    """``edit CODES.npy`` writes what ``edit-latent`` wrote; the old verb says it is old."""
    codes = str(work / "codes.npy")
    common = [
        "--attr",
        "Smiling=1",
        "--attr",
        "Eyeglasses=-0.5",
        "--transformers",
        str(work / "tn"),
    ]
    old, new = tmp_path / "old.npy", tmp_path / "new.npy"
    assert main(["edit-latent", codes, *common, "--layers", "0-2", "-o", str(old)]) == 0
    err = capsys.readouterr().err
    assert "faceedit: edit-latent is deprecated, use faceedit edit CODES.npy" in err
    assert main(["edit", codes, *common, "--layers", "0-2", "-o", str(new)]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert np.array_equal(np.load(old), np.load(new))
    assert not np.array_equal(np.load(new), np.load(codes))
    old, new = tmp_path / "old.png", tmp_path / "new.png"
    assert main(["edit-latent", codes, *common, "--model", str(work / "G"), "--steps", "3",
                 "--range", "1", "--max-codes", "2", "-o", str(old)]) == 0  # fmt: skip
    assert main(["edit", codes, *common, "--generator", str(work / "G"), "--num-strengths", "3",
                 "--strength-range=-1,1", "--max-codes", "2", "-o", str(new)]) == 0  # fmt: skip
    assert np.array_equal(np.asarray(Image.open(old)), np.asarray(Image.open(new)))
    # the same strip from an explicit list of strengths
    listed = tmp_path / "listed.png"
    assert main(["edit", codes, *common, "--generator", str(work / "G"), "--strengths=-1,0,1",
                 "--max-codes", "2", "-o", str(listed)]) == 0  # fmt: skip
    assert np.array_equal(np.asarray(Image.open(old)), np.asarray(Image.open(listed)))


def test_edit_codes_refuses_photo_options(work, tmp_path, capsys) -> None:
    out = tmp_path / "x.npy"
    args = [
        "edit",
        str(work / "codes.npy"),
        "--attr",
        "Smiling=1",
        "--transformers",
        str(work / "tn"),
    ]
    assert main([*args, "--compare", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--compare" in err
    assert main([*args, "--method", "attgan", "-o", str(out)]) == 2
    assert "--method latent" in capsys.readouterr().err
    assert not out.exists()
