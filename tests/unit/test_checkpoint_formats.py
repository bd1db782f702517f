"""faceedit.load: format detection, round trips, and clear errors for bad files."""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile

import pytest
import torch

import faceedit
from faceedit.errors import CheckpointError
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from tests.helpers.nvlabs_pickle import write_generator_pickle
from tests.parity.fixtures import load_fixture


def tiny() -> StyleGAN2Generator:
    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32)
    G = StyleGAN2Generator(cfg)
    G.mapping.w_avg.normal_()
    return G.eval()


def same_output(a, b) -> None:
    z = torch.randn(2, a.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(a(z, truncation_psi=0.7), b(z, truncation_psi=0.7))


def test_own_format_round_trip(tmp_path):
    G = tiny()
    G.save_pretrained(tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors"]
    loaded = faceedit.load(tmp_path / "m")
    assert isinstance(loaded, StyleGAN2Generator) and not loaded.training
    assert loaded.config == G.config
    same_output(G, loaded)
    again = StyleGAN2Generator.from_pretrained(tmp_path / "m")
    same_output(G, again)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_nvlabs_pickle_loads_without_running_code(tmp_path, protocol):
    G = tiny()
    path = write_generator_pickle(G, tmp_path / "network-snapshot.pkl", protocol=protocol)
    loaded = faceedit.load(path)
    assert loaded.config == G.config
    same_output(G, loaded)


def test_nvlabs_pickle_with_foreign_global_is_refused_without_side_effect(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = write_generator_pickle(tiny(), tmp_path / "evil.pkl", extra_globals=Evil())
    with pytest.raises(CheckpointError, match=r"refused global (posix|os)\.system"):
        faceedit.load(path)
    assert not marker.exists()


def test_plain_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Evil()}))
    with pytest.raises(CheckpointError, match="builtins.eval"):
        faceedit.load(path)
    assert not marker.exists()


def test_rosinality_converted_and_training_checkpoints(tmp_path):
    fx = load_fixture("stylegan2_rosinality")
    state = fx.weights()
    avg = fx.io["input.latent_avg"]
    torch.save({"g_ema": state, "latent_avg": avg}, tmp_path / "converted.pt")
    training = {
        "g": state,
        "d": {},
        "g_ema": state,
        "g_optim": {},
        "d_optim": {},
        "args": argparse.Namespace(size=8, latent=64, n_mlp=8, channel_multiplier=2, lr_mlp=0.01),
        "ada_aug_p": 0.0,
    }
    torch.save(training, tmp_path / "100000.pt")
    a = faceedit.load(tmp_path / "converted.pt")
    b = faceedit.load(tmp_path / "100000.pt")
    torch.testing.assert_close(a.w_avg, avg)
    with torch.no_grad():
        ws = a.mapping(fx.io["input.z"])
        fx.assert_close("converted", a.synthesis(ws), "output.z.image")
        fx.assert_close("training", b.synthesis(b.mapping(fx.io["input.z"])), "output.z.image")


def test_torch_file_with_code_global_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"g_ema": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        faceedit.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_truncated_empty_and_junk_files(tmp_path):
    G = tiny()
    torch.save({"g_ema": {}, "latent_avg": torch.zeros(3)}, tmp_path / "x.pt")
    data = (tmp_path / "x.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "junk.bin").write_bytes(os.urandom(1000))
    write_generator_pickle(G, tmp_path / "g.pkl")
    pkl = (tmp_path / "g.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(pkl[: len(pkl) // 3])
    cases = {
        "cut.pt": "truncated or corrupt",
        "empty.pt": "empty",
        "junk.bin": "not a recognised checkpoint",
        "cut.pkl": "truncated or corrupt",
        "missing.pt": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            faceedit.load(tmp_path / name)
        assert name in str(info.value)


def test_unknown_torch_content_is_described(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"not a known model .*'weights'"):
        faceedit.load(tmp_path / "other.pt")


def test_shape_mismatch_lists_offending_keys(tmp_path):
    G = tiny()
    G.save_pretrained(tmp_path / "m")
    cfg = (tmp_path / "m" / "config.json").read_text().replace('"w_dim": 32', '"w_dim": 16')
    (tmp_path / "m" / "config.json").write_text(cfg)
    with pytest.raises(
        CheckpointError, match=r"shape: .*affine\.weight: file \(32, 32\) vs model \(32, 16\)"
    ):
        faceedit.load(tmp_path / "m")


def test_truncated_safetensors_in_model_dir(tmp_path):
    tiny().save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        faceedit.load(tmp_path / "m")


def test_zip_that_is_not_torch(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError, match="not a recognised checkpoint"):
        faceedit.load(tmp_path / "a.zip")
