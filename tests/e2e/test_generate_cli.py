"""`faceedit generate` and `convert` end to end on tiny generators."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import faceedit
from faceedit.cli import main
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from tests.helpers.nvlabs_pickle import write_generator_pickle


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32)
    G = StyleGAN2Generator(cfg)
    G.estimate_w_avg(num_samples=200)
    path = tmp_path_factory.mktemp("models") / "tiny"
    G.save_pretrained(path)
    return path


def test_generate_grid_and_latents(model_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = main(
        [
            "generate",
            "--model",
            str(model_dir),
            "--seeds",
            "0-3",
            "--truncation",
            "0.7",
            "--perturb",
            "0.5",
            "--save-latents",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape[0] > 4 * 128 and grid.shape[1] > 2 * 128  # 4 rows x 2 columns of cells
    ws = np.load(tmp_path / "grid_ws.npy")
    ws_p = np.load(tmp_path / "grid_ws_perturbed.npy")
    G = faceedit.load(model_dir)
    assert ws.shape == (4, G.num_ws, 32) and ws.dtype == np.float32
    # the saved codes are the seeds' truncated W+, and the perturbation has the asked sigma
    from faceedit.editing.sampling import ws_from_seeds

    torch.testing.assert_close(torch.from_numpy(ws), ws_from_seeds(G, [0, 1, 2, 3], 0.7))
    assert np.std(ws_p - ws) == pytest.approx(0.5, rel=0.05)
    assert "wrote" in capsys.readouterr().out


def test_generate_is_deterministic(model_dir, tmp_path):
    for name in ("a.png", "b.png"):
        assert (
            main(
                [
                    "generate",
                    "--model",
                    str(model_dir),
                    "--seeds",
                    "5,7",
                    "-o",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "3-1"], "--seeds"),
        (["--perturb", "-1"], "sigma"),
        (["-o", "/nonexistent-dir/x.png"], "does not exist"),
    ],
)
def test_generate_bad_input(model_dir, tmp_path, capsys, args, message):
    base = ["generate", "--model", str(model_dir), "-o", str(tmp_path / "g.png")]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


def test_generate_refuses_non_generator(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["generate", "--model", str(bad), "-o", str(tmp_path / "g.png")]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_convert_pickle_to_own_format(model_dir, tmp_path):
    G = faceedit.load(model_dir)
    pkl = write_generator_pickle(G, tmp_path / "snap.pkl")
    out = tmp_path / "converted"
    assert main(["convert", str(pkl), "-o", str(out)]) == 0
    again = faceedit.load(out)
    z = torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(z), G(z))
    assert main(["convert", str(pkl), "-o", str(out)]) == 2  # refuses to overwrite
    assert main(["convert", str(pkl), "-o", str(out), "--overwrite"]) == 0


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "faceedit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for verb in ("demo", "generate", "convert"):
        assert verb in result.stdout
