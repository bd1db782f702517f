"""The AttGAN verbs end to end on a tiny model trained on generated images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from faceedit.cli import main
from faceedit.data.celeba import TOY_ATTRS, toy_faces, write_custom_dataset
from tests.helpers.units import assert_units

REPO = Path(__file__).resolve().parents[2]


def _cfg(root: Path, **kw) -> Path:
    imgs, labels = toy_faces(24, 32, seed=3)
    attr = write_custom_dataset(root / "imgs", imgs, labels, TOY_ATTRS)
    data = dict(
        data="custom",
        data_path=str(root / "imgs"),
        attr_path=str(attr),
        attrs=list(TOY_ATTRS),
        img_size=32,
        enc_dim=8,
        dec_dim=8,
        dis_dim=8,
        dis_fc_dim=16,
        enc_layers=3,
        dec_layers=3,
        dis_layers=3,
        inject_layers=1,
        batch_size=4,
        n_d=1,
        lr=1e-3,
        n_samples=2,
        save_interval=1000,
        sample_interval=1000,
        log_interval=1,
        out_dir=str(root / "run"),
        tensorboard=False,
        max_steps=6,
        progress=False,
    )
    data.update(kw)
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("attgan_cli")
    cfg = _cfg(root, style_dim=1)
    assert main(["train", "attgan", "--config", str(cfg), "-q"]) == 0
    return root, cfg


def test_train_writes_a_loadable_model_and_resumes(trained) -> None:
    root, cfg = trained
    run = root / "run"
    assert (run / "model" / "config.json").is_file()
    assert torch.load(run / "checkpoint.pt")["step"] == 6
    # re-running a finished run with a later max_steps continues from step 6
    args = ["train", "attgan", "--config", str(cfg), "--max-steps", "8", "-q"]
    assert main(args) == 0
    assert torch.load(run / "checkpoint.pt")["step"] == 8


EDIT = ["edit", "--method", "attgan"]
GRID = [*EDIT, "--mode", "grid"]


def _faces(root: Path, n: int = 2) -> list[str]:
    imgs, _ = toy_faces(n, 48, seed=9)
    paths = []
    for i, im in enumerate(imgs):
        p = root / f"face{i}.jpg"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    return paths


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_edit_modes_write_grids(trained, tmp_path) -> None:
    root, _ = trained
    faces = _faces(tmp_path)
    model = str(root / "run")
    outs = {}
    for name, extra in {
        "flip": ["--mode", "grid"],
        "slide": [
            "--mode",
            "slide",
            "--attr",
            "Eyeglasses",
            "--strength-range=-1,1",
            "--num-strengths",
            "4",
        ],  # fmt: skip
        "attr": [
            "--mode",
            "grid",
            "--attr",
            "Eyeglasses=1",
            "--attr",
            "Bangs=-0.5",
            "--current",
            "Bangs=1",
        ],  # fmt: skip
        "style": ["--mode", "style", "--attr", "Eyeglasses", "--num-styles", "3"],
    }.items():
        out = tmp_path / f"{name}.png"
        assert main([*EDIT, *faces, "--model", model, *extra, "-o", str(out)]) == 0
        outs[name] = _png(out)
    # grids of 2 rows, 96-px cells; columns: input+recon+3 flips, input+4 steps,
    # input+edited, input+3 styles
    widths = {k: v.shape[1] for k, v in outs.items()}
    assert widths["flip"] == widths["slide"] > widths["style"] > widths["attr"]
    assert widths["flip"] >= 5 * 96 and outs["flip"].shape[0] > 2 * 96


def test_edit_modes_match_the_deprecated_attgan_edit(trained, tmp_path, capsys) -> None:
    """Every ``attgan-edit`` mode and ``edit --method attgan --mode ...`` write the same grid."""
    root, _ = trained
    faces = _faces(tmp_path)
    model = ["--model", str(root / "run")]
    pairs = {
        "flip": (["--flip-all", "--test-int", "0.8"], ["--mode", "grid", "--test-int", "0.8"]),
        "slide": (
            ["--slide", "Eyeglasses", "--min", "-0.5", "--max", "1", "--steps", "3"],
            [
                "--mode",
                "slide",
                "--attr",
                "Eyeglasses",
                "--strength-range=-0.5,1",
                "--num-strengths",
                "3",
            ],
        ),  # fmt: skip
        "attr": (
            ["--attr", "Eyeglasses=1", "--current", "Bangs=1"],
            ["--mode", "grid", "--attr", "Eyeglasses=1", "--current", "Bangs=1"],
        ),
        "style": (
            ["--style", "Eyeglasses", "--n-styles", "2", "--seed", "3"],
            ["--mode", "style", "--attr", "Eyeglasses", "--num-styles", "2", "--seed", "3"],
        ),
    }
    for name, (old_args, new_args) in pairs.items():
        old, new = tmp_path / f"old_{name}.png", tmp_path / f"new_{name}.png"
        assert main(["attgan-edit", *faces, *model, *old_args, "-o", str(old)]) == 0
        err = capsys.readouterr().err
        assert "faceedit: attgan-edit is deprecated, use faceedit edit --method attgan" in err
        assert main([*EDIT, *faces, *model, *new_args, "-o", str(new)]) == 0
        assert "deprecated" not in capsys.readouterr().err
        assert np.array_equal(_png(old), _png(new)), name


def test_edit_mode_needs_attgan_and_one_attribute(trained, tmp_path, capsys) -> None:
    root, _ = trained
    faces = _faces(tmp_path, 1)
    out = tmp_path / "x.png"
    model = ["--model", str(root / "run")]
    assert main(["edit", *faces, *model, "--mode", "grid", "-o", str(out)]) == 2
    assert "--method attgan" in capsys.readouterr().err
    assert main([*EDIT, *faces, *model, "--mode", "slide", "-o", str(out)]) == 2
    assert "exactly one --attr" in capsys.readouterr().err
    assert main([*GRID, *faces, *model, "--compare", "-o", str(out)]) == 2
    assert "--compare" in capsys.readouterr().err
    assert main([*GRID, *faces, *model, "--transformers", "t", "-o", str(out)]) == 2
    assert "takes no --transformers" in capsys.readouterr().err
    assert not out.exists()


def test_edit_errors_are_one_line(trained, tmp_path, capsys) -> None:
    root, _ = trained
    faces = _faces(tmp_path, 1)
    out = str(tmp_path / "x.png")
    assert (
        main([*GRID, *faces, "--model", str(root / "run"), "--attr", "Smiling=1", "-o", out]) == 2
    )
    assert "Smiling" in capsys.readouterr().err
    assert main([*GRID, str(tmp_path / "nope.jpg"), "--model", str(root / "run"), "-o", out]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert not Path(out).exists()


def test_eval_writes_table_and_chart(trained, tmp_path) -> None:
    root, cfg = trained
    out = tmp_path / "ev"
    assert (
        main(
            [
                "eval",
                "attgan",
                "--model",
                str(root / "run"),
                "--config",
                str(cfg),
                "--split",
                "all",
                "--max-images",
                "8",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "attgan_eval.json").read_text())
    assert_units(report, "accuracy", "mean_accuracy")
    assert set(report["accuracy"]) == set(TOY_ATTRS) and report["n_images"] == 8
    assert 0 <= report["mean_accuracy"] <= 1 and report["psnr"] > 0
    assert "| Eyeglasses |" in (out / "attgan_eval.md").read_text()
    assert _png(out / "attgan_eval.png").shape[0] > 100
    assert report["classifier"].startswith("the model's own head")
    # judged by a given classifier (here a release-style copy of the same model)
    from faceedit.checkpoints import load
    from faceedit.checkpoints.attgan import save_release_checkpoint, setting_from_config

    model = load(root / "run" / "model")
    clf = tmp_path / "clf" / "weights.1.pth"
    clf.parent.mkdir()
    (clf.parent / "setting.txt").write_text(json.dumps(setting_from_config(model)))
    save_release_checkpoint(model, clf)
    out2 = tmp_path / "ev2"
    assert (
        main(
            [
                "eval",
                "attgan",
                "--model",
                str(root / "run"),
                "--config",
                str(cfg),
                "--split",
                "all",
                "--max-images",
                "8",
                "--classifier",
                str(clf),
                "-o",
                str(out2),
            ]
        )
        == 0
    )
    report2 = json.loads((out2 / "attgan_eval.json").read_text())
    assert report2["classifier"] == "given classifier"
    assert report2["accuracy"] == report["accuracy"]


def test_release_checkpoint_through_the_cli(trained, tmp_path) -> None:
    from faceedit.checkpoints import load
    from faceedit.checkpoints.attgan import save_release_checkpoint, setting_from_config

    root, _ = trained
    model = load(root / "run" / "model")
    # the release's layout: output/<exp>/setting.txt + checkpoint/weights.N.pth with module.
    exp = tmp_path / "exp"
    (exp / "checkpoint").mkdir(parents=True)
    (exp / "setting.txt").write_text(json.dumps(setting_from_config(model)))
    ck = {
        "G": {"module." + k: v for k, v in model.G.state_dict().items()},
        "D": {"module." + k: v for k, v in model.D.state_dict().items()},
    }
    torch.save(ck, exp / "checkpoint" / "weights.7.pth")
    save_release_checkpoint(model, exp / "checkpoint" / "weights.2.pth")
    out = tmp_path / "r.png"
    faces = _faces(tmp_path, 1)
    assert main([*GRID, *faces, "--model", str(exp), "-o", str(out)]) == 0
    assert out.is_file()


def test_torchrun_two_processes_gloo(tmp_path) -> None:
    cfg = _cfg(tmp_path, max_steps=4, batch_size=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "faceedit",
            "train",
            "attgan",
            "--config",
            str(cfg),
            "-q",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ck = torch.load(tmp_path / "run" / "checkpoint.pt")
    assert ck["step"] == 4 and ck["world_size"] == 2
