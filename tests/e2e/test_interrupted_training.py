"""Training killed with SIGKILL at an arbitrary moment resumes into a valid run (issue 7).

A tiny AttGAN run is started in a child process and killed without warning some time
after its first checkpoint. The checkpoint on disk must be whole (written atomically),
hold at most one save interval less than the work done, and resuming must finish the run
with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from faceedit.data.celeba import TOY_ATTRS, toy_faces, write_custom_dataset
from faceedit.train.attgan import AttGANTrainConfig, train_attgan
from faceedit.train.checkpointing import load_training_checkpoint

ROOT = Path(__file__).resolve().parents[2]
STEPS, INTERVAL = 100, 4


def _config(data: Path, attr: Path, out: Path) -> AttGANTrainConfig:
    return AttGANTrainConfig(
        data="custom", data_path=str(data), attr_path=str(attr), attrs=TOY_ATTRS, img_size=32,
        enc_dim=8, dec_dim=8, dis_dim=8, dis_fc_dim=16, enc_layers=3, dec_layers=3,
        dis_layers=3, batch_size=8, n_d=1, lr=1e-3, n_samples=2, save_interval=INTERVAL,
        sample_interval=1000, log_interval=1, out_dir=str(out), progress=False,
        tensorboard=False, max_steps=STEPS, device="cpu",
    )  # fmt: skip


def _logged_steps(run: Path) -> list[int]:
    # a line cut by the kill is not a logged step
    steps = []
    for line in (run / "losses.jsonl").read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError):
            steps.append(int(json.loads(line)["step"]))
    return steps


def test_sigkill_then_resume(tmp_path):
    torch.set_num_threads(1)
    imgs, labels = toy_faces(32, 32, seed=0)
    attr = write_custom_dataset(tmp_path / "imgs", imgs, labels, TOY_ATTRS)
    killed = _config(tmp_path / "imgs", attr, tmp_path / "killed")
    child = (
        "import torch, dataclasses\n"
        "from faceedit.train.attgan import AttGANTrainConfig, train_attgan\n"
        "torch.set_num_threads(1)\n"
        f"train_attgan(AttGANTrainConfig(**{killed.__dict__!r}))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, env=env)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.02)
        time.sleep(random.Random(os.getpid()).uniform(0.0, 0.3))  # an arbitrary moment
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    ck = load_training_checkpoint(checkpoint)  # whole: atomic writes leave no torn one
    done = max(_logged_steps(tmp_path / "killed"), default=0)
    print(f"killed at step {done}, checkpoint at step {ck.step}")
    assert 1 <= ck.step < STEPS, "the run ended before the kill: nothing was tested"
    assert done - ck.step < INTERVAL + 1, (done, ck.step)  # at most one interval lost
    assert not [p for p in checkpoint.parent.iterdir() if p.name.endswith(".tmp")]

    resumed = train_attgan(killed)  # the same command again resumes
    # whatever temporary file the kill left beside the checkpoint is gone
    assert not [p for p in resumed.iterdir() if p.name.startswith(".checkpoint.")]
    assert load_training_checkpoint(resumed / "checkpoint.pt").step == STEPS
    full = train_attgan(_config(tmp_path / "imgs", attr, tmp_path / "full"))
    a = load_training_checkpoint(full / "checkpoint.pt").models
    b = load_training_checkpoint(resumed / "checkpoint.pt").models
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after the resume"
