"""A `faceedit video` run killed with SIGKILL resumes from its frame cache: nothing is lost,
nothing is done twice, and the result equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import av
import numpy as np

from faceedit.cli import main
from faceedit.editing.video import cache_dir_for
from tests.helpers.tiny_edit import latent_bundle, make_video


def frames_of(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_sigkill_then_resume(tmp_path):
    bundle = latent_bundle(tmp_path)
    video = tmp_path / "in.mp4"
    make_video(video, n_frames=24)
    args = ["--attr", "Smiling=1", "--model", str(bundle), "--invert", "optimize", "--steps", "2"]
    full = tmp_path / "full.mp4"
    assert main(["video", str(video), *args, "-o", str(full)]) == 0

    out = tmp_path / "killed.mp4"
    cache = cache_dir_for(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceedit", "video", str(video), *args, "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while len(list(cache.glob("*.png"))) < 3:  # kill it mid-run, a few frames in
            assert proc.poll() is None, "finished before it could be killed: use a longer clip"
            assert time.monotonic() < deadline, "no frame cached in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not out.exists()  # no partial output
    done = len(list(cache.glob("*.png")))
    assert 3 <= done < 24

    assert main(["video", str(video), *args, "-o", str(out)]) == 0
    assert not cache.exists()
    a, b = frames_of(full), frames_of(out)
    assert len(a) == len(b) == 24
    assert max(int(np.abs(x.astype(int) - y).max()) for x, y in zip(a, b, strict=True)) == 0
