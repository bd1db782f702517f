"""StyleGAN2 training: losses, a tiny run that learns, exact resume, D shapes."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import faceedit
from faceedit.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig
from faceedit.train.stylegan2 import StyleGAN2TrainConfig, r1_penalty, train_stylegan2


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Flat-coloured squares on a grey background: an easy distribution to start learning."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(24):
        img = np.full((20, 20, 3), 128, np.uint8)
        x, y = rng.integers(0, 10, size=2)
        img[y : y + 10, x : x + 10] = rng.integers(0, 256, size=3)
        Image.fromarray(img).save(root / f"{i:03d}.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def tiny_config(image_dir, out, **kw) -> StyleGAN2TrainConfig:
    base = dict(
        data=str(image_dir),
        out=str(out),
        resolution=16,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        channel_base=128,
        channel_max=16,
        batch_size=4,
        steps=40,
        r1_interval=4,
        lr=0.002,
        sample_every=20,
        checkpoint_every=20,
        ema_kimg=0.01,
    )
    base.update(kw)
    return StyleGAN2TrainConfig(**base)


def test_discriminator_shapes_and_keys():
    D = StyleGAN2Discriminator(
        StyleGAN2DiscriminatorConfig(img_resolution=32, channel_base=256, channel_max=32)
    )
    assert D(torch.randn(4, 3, 32, 32)).shape == (4, 1)
    keys = list(D.state_dict())
    assert keys[:2] == ["b32.resample_filter", "b32.fromrgb.weight"]
    assert {"b4.conv.weight", "b4.fc.weight", "b4.out.weight", "b8.skip.weight"} <= set(keys)


def test_r1_is_zero_for_a_constant_critic():
    D = StyleGAN2Discriminator(
        StyleGAN2DiscriminatorConfig(img_resolution=8, channel_base=64, channel_max=8)
    )
    for p in D.parameters():
        if p.ndim > 1:
            p.data.zero_()
    assert r1_penalty(D, torch.randn(2, 3, 8, 8)).item() == 0.0


def test_tiny_run_trains_logs_and_exports(image_dir, tmp_path, capsys):
    out = tmp_path / "run"
    export = train_stylegan2(tiny_config(image_dir, out), progress=False)
    assert "skipped 1 unreadable image" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all(np.isfinite(r["loss/D"]) for r in rows)
    first = np.mean([r["loss/D"] for r in rows[:3]])
    last = np.mean([r["loss/D"] for r in rows[-10:]])
    assert last < first  # the critic learns to tell real from fake
    assert (out / "samples" / "step_000040.png").is_file() and (out / "losses.png").is_file()
    G = faceedit.load(export)
    assert G(torch.randn(2, 16)).shape == (2, 3, 16, 16)


def test_resume_continues_exactly(image_dir, tmp_path):
    straight = tmp_path / "straight"
    train_stylegan2(tiny_config(image_dir, straight, steps=8, checkpoint_every=4), progress=False)
    split = tmp_path / "split"
    train_stylegan2(tiny_config(image_dir, split, steps=4, checkpoint_every=4), progress=False)
    with open(split / "losses.jsonl", "a") as f:  # a run killed after logging step 5
        f.write(json.dumps({"step": 5, "loss/D": 9.0}) + "\n")
    train_stylegan2(tiny_config(image_dir, split, steps=8, checkpoint_every=4), progress=False)
    steps = [json.loads(line)["step"] for line in (split / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # the redone step is logged once
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(split / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    for part, key in (("models", "G"), ("models", "D"), ("ema", "G")):
        for name, value in a[part][key].items():
            torch.testing.assert_close(
                value, b[part][key][name], rtol=0, atol=0, msg=f"{part}.{key}.{name}"
            )


def test_init_from_continues_a_generator_with_d_warmup(image_dir, tmp_path):
    first = tmp_path / "first"
    train_stylegan2(tiny_config(image_dir, first, steps=6), progress=False)
    trained = faceedit.load(first / "generator").state_dict()

    # D-only warm-up: after 4 of 4 + 2 steps, G and G_ema are still the trained generator
    run = tmp_path / "continued"
    cfg = tiny_config(
        image_dir, run, steps=6, init_from=str(first), d_warmup_steps=4, checkpoint_every=4
    )
    train_stylegan2(dataclasses.replace(cfg, steps=4), progress=False)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    for weights in (ckpt["models"]["G"], ckpt["ema"]["G"]):
        for name, value in trained.items():
            torch.testing.assert_close(weights[name], value, rtol=0, atol=0)
    rows = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all("loss/G" not in r for r in rows)

    # after the warm-up G learns, starting from the trained weights; the resumed run takes
    # G from its own checkpoint, so the source may be gone by then
    shutil.rmtree(first)
    train_stylegan2(cfg, progress=False)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 6
    assert any(not torch.equal(ckpt["models"]["G"][k], v) for k, v in trained.items())


def test_init_from_errors(image_dir, tmp_path):
    with pytest.raises(faceedit.FaceeditError, match="not a generator directory"):
        train_stylegan2(
            tiny_config(image_dir, tmp_path / "a", init_from=str(tmp_path)), progress=False
        )
    assert not (tmp_path / "a").exists()  # nothing written for a run that cannot start
    first = tmp_path / "first"
    train_stylegan2(tiny_config(image_dir, first, steps=2), progress=False)
    wider = tiny_config(image_dir, tmp_path / "b", channel_max=32, init_from=str(first))
    with pytest.raises(faceedit.FaceeditError, match="channel_max 16 != 32"):
        train_stylegan2(wider, progress=False)
    shipped = tiny_config(image_dir, tmp_path / "c", init_from="avatar-latent")  # its bundle.json
    with pytest.raises(faceedit.FaceeditError, match="img_resolution 64 != 16"):
        train_stylegan2(shipped, progress=False)
    with pytest.raises(faceedit.FaceeditError, match="d_warmup_steps"):
        tiny_config(image_dir, tmp_path, d_warmup_steps=-1)


def test_config_errors(image_dir, tmp_path):
    with pytest.raises(faceedit.FaceeditError, match="power of two"):
        tiny_config(image_dir, tmp_path, resolution=24)
    with pytest.raises(faceedit.FaceeditError, match="no such data directory"):
        train_stylegan2(tiny_config(tmp_path / "nope", tmp_path / "o"), progress=False)
    assert not (tmp_path / "o").exists()
    cfg = tiny_config(image_dir, tmp_path / "r", steps=2, checkpoint_every=2)
    train_stylegan2(cfg, progress=False)
    other = dataclasses.replace(cfg, resolution=8, steps=4)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(
        faceedit.FaceeditError, match="other settings \\(resolution: 16 there, 8 here\\).*--restart"
    ):
        train_stylegan2(other, progress=False)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


def test_cli_with_yaml_config_and_overrides(image_dir, tmp_path, capsys):
    from faceedit.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "resolution: 16\nz_dim: 16\nw_dim: 16\nmapping_layers: 2\nchannel_base: 128\n"
        "channel_max: 16\nbatch_size: 4\nsteps: 50\nsample_every: 2\ncheckpoint_every: 2\n"
    )
    out = tmp_path / "run"
    args = ["train", "stylegan2", "--config", str(cfg), "--data", str(image_dir), "-o", str(out)]
    assert main(args + ["--steps", "2"]) == 0  # the option wins over the file
    assert json.loads((out / "config.json").read_text())["steps"] == 2
    assert "generator written to" in capsys.readouterr().out
    cfg.write_text("resolution: 16\nunknown_setting: 1\n")
    assert main(args) == 2
    assert "unknown fields ['unknown_setting']" in capsys.readouterr().err


def test_torchrun_two_processes(image_dir, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "faceedit",
        "train",
        "stylegan2",
        "--data",
        str(image_dir),
        "-o",
        str(out),
        "--resolution",
        "16",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--channel-base",
        "128",
        "--channel-max",
        "16",
        "--sample-every",
        "3",
        "--checkpoint-every",
        "3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    # one sampler state per process
    assert ckpt["step"] == 3 and len(ckpt["rng"]["generators"]["sampler"]) == 2
    assert (out / "generator" / "model.safetensors").is_file()
