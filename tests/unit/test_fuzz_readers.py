"""Fuzzing the image reader and the checkpoint readers with mutated files (hypothesis).

Every outcome must be a successful read or a :class:`FaceeditError` subclass: never another
exception type (a bug that would print a traceback), never a hang. The budget is bounded
(a fixed number of examples, an alarm per example) so the test fits in CI.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import faceedit
from faceedit.data.images import read_image
from faceedit.errors import FaceeditError

# FACEEDIT_FUZZ_EXAMPLES=5000 runs a longer, randomised campaign by hand.
_LONG = int(os.environ.get("FACEEDIT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_LONG or 120,
    deadline=None,
    derandomize=not _LONG,  # CI sees the same inputs every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@contextlib.contextmanager
def _time_limit(seconds: float):
    def expire(signum, frame):
        raise TimeoutError(f"a reader hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@st.composite
def mutations(draw, data: bytes) -> bytes:
    """A truncation, byte flips, an inserted or deleted run, or several of them."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "flip", "insert", "delete"]))
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        if kind == "truncate":
            del out[at:]
        elif kind == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del out[at : at + draw(st.integers(1, 64))]
    return bytes(out)


def _image_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


PNG, JPEG = _image_bytes("PNG"), _image_bytes("JPEG")


@FUZZ
@given(data=st.one_of(mutations(PNG), mutations(JPEG)))
def test_read_image_on_mutated_files(data: bytes) -> None:
    with _time_limit(10), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rgb = read_image(data)
        except FaceeditError:
            return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def _checkpoint_files() -> dict[str, bytes]:
    """Small files of each container faceedit reads: torch zip, legacy torch, pickle,
    and the weights of an own-format directory."""
    from faceedit.nets.latent import LatentClassifier, LatentClassifierConfig
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
    from tests.helpers.nvlabs_pickle import write_generator_pickle

    torch.manual_seed(0)
    state = {"w": torch.randn(3, 4), "b": torch.arange(5), "v": torch.ones(6)[2:]}
    zip_buf, legacy_buf = io.BytesIO(), io.BytesIO()
    torch.save(state, zip_buf)
    torch.save(state, legacy_buf, _use_new_zipfile_serialization=False)
    plain = pickle.dumps({"G_ema": {"class_name": "Generator", "state": {}}}, protocol=4)
    with tempfile.TemporaryDirectory() as tmp:
        model = LatentClassifier(LatentClassifierConfig(num_ws=2, w_dim=4, hidden=(4,), n_attrs=2))
        directory = model.save_pretrained(Path(tmp) / "m")
        weights = (directory / "model.safetensors").read_bytes()
        config = (directory / "config.json").read_bytes()
        # an NVlabs network pickle with real tensors (storages nested as legacy torch bytes)
        G = StyleGAN2Generator(
            StyleGAN2Config(z_dim=4, w_dim=4, img_resolution=8, channel_base=32, channel_max=4)
        )
        network = write_generator_pickle(G.eval(), Path(tmp) / "G.pkl").read_bytes()
    return {
        "G.pkl": network,
        "zip.pt": zip_buf.getvalue(),
        "legacy.pth": legacy_buf.getvalue(),
        "net.pkl": plain,
        "model.safetensors": weights,
        "config.json": config,
    }


FILES = _checkpoint_files()


@FUZZ
@given(data=st.data())
def test_load_on_mutated_checkpoints(data) -> None:
    name = data.draw(st.sampled_from(sorted(FILES)))
    mutated = data.draw(mutations(FILES[name]))
    with tempfile.TemporaryDirectory() as tmp:
        if name in ("model.safetensors", "config.json"):
            # an own-format directory with one of its two files mutated
            target = Path(tmp) / "model"
            target.mkdir()
            for other in ("model.safetensors", "config.json"):
                (target / other).write_bytes(mutated if other == name else FILES[other])
        else:
            target = Path(tmp) / name
            target.write_bytes(mutated)
        with _time_limit(10), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = faceedit.load(target)
            except FaceeditError:
                return
    assert isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("name", sorted(FILES))
def test_unmutated_files_give_expected_outcome(name: str, tmp_path: Path) -> None:
    # the seeds themselves: the directory and the network pickle load, the bare
    # containers are clear refusals
    if name == "G.pkl":
        (tmp_path / name).write_bytes(FILES[name])
        assert isinstance(faceedit.load(tmp_path / name), torch.nn.Module)
    elif name in ("model.safetensors", "config.json"):
        for other in ("model.safetensors", "config.json"):
            (tmp_path / other).write_bytes(FILES[other])
        assert isinstance(faceedit.load(tmp_path), torch.nn.Module)
    else:
        (tmp_path / name).write_bytes(FILES[name])
        with pytest.raises(FaceeditError, match=name):
            faceedit.load(tmp_path / name)
