"""One way to train and resume, for every training loop (faceedit.train.checkpointing).

Each loop runs tiny: killed right after its first checkpoint, the same call again must
finish exactly where an uninterrupted run ends; a finished run re-run stays as it is;
other settings are refused (naming --restart) with nothing written; restart starts over
(as a fresh run would) and keeps what is not the run's; stray temporary files go; the
checkpoint has the same keys for every loop; checkpoints in the layouts the loops wrote
before still resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit.errors import FaceeditError
from faceedit.train import checkpointing as ckpt
from tests.helpers.tiny_generator import tiny_generator

# --------------------------------------------------------------------------- tiny loops


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    from faceedit.data import avatars as A
    from faceedit.data.celeba import TOY_ATTRS, toy_faces, write_custom_dataset

    root = tmp_path_factory.mktemp("resume_assets")
    imgs, labels = toy_faces(16, 32, seed=0)
    attr = write_custom_dataset(root / "toy", imgs, labels, TOY_ATTRS)
    rng = np.random.default_rng(0)
    (root / "squares").mkdir()
    for i in range(8):
        img = np.full((16, 16, 3), 128, np.uint8)
        img[4:12, 4:12] = rng.integers(0, 256, size=3)
        Image.fromarray(img).save(root / "squares" / f"{i}.png")
    A.write_dataset(root / "avatars", n=40, size=16, seed=0, workers=1, progress=False)
    return {
        "toy": root / "toy",
        "toy_attr": attr,
        "squares": root / "squares",
        "avatars": root / "avatars",
        "generator": tiny_generator(root / "G"),
    }


def _latent_data():
    from faceedit.data.latents import LatentDataset

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((80, 2, 4)).astype(np.float32)
    labels = (codes.reshape(80, -1) @ rng.standard_normal((8, 3)) > 0).astype(np.float32)
    return LatentDataset(codes, labels, ("a0", "a1", "a2"))


def _latent_classifier():
    from faceedit.nets.latent import LatentClassifier, classifier_preset

    torch.manual_seed(0)
    cfg = classifier_preset("small", num_ws=2, w_dim=4, n_attrs=3, hidden=(8,))
    return LatentClassifier(cfg).eval()


def train_attgan_tiny(assets, out: Path, restart: bool = False, **kw) -> None:
    from faceedit.data.celeba import TOY_ATTRS
    from faceedit.train.attgan import AttGANTrainConfig, train_attgan

    base = dict(
        data="custom", data_path=str(assets["toy"]), attr_path=str(assets["toy_attr"]),
        attrs=TOY_ATTRS, img_size=32, enc_dim=4, dec_dim=4, dis_dim=4, dis_fc_dim=8,
        enc_layers=2, dec_layers=2, dis_layers=2, batch_size=4, n_d=1, lr=1e-3, n_samples=2,
        save_interval=2, sample_interval=2, log_interval=1, out_dir=str(out),
        progress=False, tensorboard=False, max_steps=4,
    )  # fmt: skip
    train_attgan(AttGANTrainConfig(**{**base, **kw}), restart=restart)


def train_stylegan2_tiny(assets, out: Path, restart: bool = False, **kw) -> None:
    from faceedit.train.stylegan2 import StyleGAN2TrainConfig, train_stylegan2

    base = dict(
        data=str(assets["squares"]), out=str(out), resolution=8, z_dim=8, w_dim=8,
        mapping_layers=1, channel_base=32, channel_max=8, batch_size=2, steps=4,
        r1_interval=2, sample_every=2, checkpoint_every=2, ema_kimg=0.01,
    )  # fmt: skip
    train_stylegan2(StyleGAN2TrainConfig(**{**base, **kw}), restart=restart, progress=False)


def train_encoder_tiny(assets, out: Path, restart: bool = False, **kw) -> None:
    from faceedit.train.encoder import EncoderTrainConfig, train_encoder

    base = dict(
        generator=str(assets["generator"]), data=str(assets["avatars"]), out=str(out),
        steps=4, batch_size=2, eval_every=2, checkpoint_every=2, channel_base=32,
        channel_max=8, head_channels=4, max_val=4,
    )  # fmt: skip
    train_encoder(EncoderTrainConfig(**{**base, **kw}), progress=False, restart=restart)


def train_classifier_tiny(assets, out: Path, restart: bool = False, **kw) -> None:
    from faceedit.train.latent import ClassifierTrainConfig, train_classifier

    base = dict(preset="small", hidden=(8,), epochs=2, batch_size=16, lr=3e-3)
    config = ClassifierTrainConfig(**{**base, **kw})
    train_classifier(_latent_data(), out, config, restart=restart, progress=False)


def train_transformer_tiny(assets, out: Path, restart: bool = False, **kw) -> None:
    from faceedit.train.latent import TransformerTrainConfig, train_transformers

    config = TransformerTrainConfig(**{**dict(epochs=2, batch_size=16), **kw})
    train_transformers(
        _latent_data(), _latent_classifier(), [1], out, config, restart=restart, progress=False
    )


def train_oracle_tiny(assets, out: Path, restart: bool = False, **kw) -> None:
    from faceedit.data import avatars as A
    from faceedit.train.oracle import OracleTrainConfig, default_oracle_config, train_oracle

    probe = A.load_arrays(assets["avatars"], "train", limit=1)
    model_config = default_oracle_config(probe, channels=(4, 8), hidden=8)
    config = OracleTrainConfig(**{**dict(epochs=0.5, batch_size=4, checkpoint_every=2), **kw})
    train_oracle(assets["avatars"], out, config, model_config, progress=False, restart=restart)


@dataclass(frozen=True)
class Loop:
    kind: str
    module: str  # where the loop looks up save_training_checkpoint
    train: Callable[..., None]
    other: dict  # a setting that makes it another run
    longer: dict  # a larger step budget (None: the loop's budget cannot grow)


LOOPS = [
    Loop("attgan", "faceedit.train.attgan", train_attgan_tiny, {"lr": 2e-3}, {"max_steps": 6}),
    Loop("stylegan2", "faceedit.train.stylegan2", train_stylegan2_tiny, {"lr": 1e-3}, {"steps": 6}),
    Loop("encoder", "faceedit.train.encoder", train_encoder_tiny, {"lr": 2e-3}, {"steps": 6}),
    Loop(
        "latent_classifier",
        "faceedit.train.latent",
        train_classifier_tiny,
        {"hidden": (6,)},
        {"epochs": 3},
    ),
    Loop(
        "latent_transformer",
        "faceedit.train.latent",
        train_transformer_tiny,
        {"lambda_rec": 5.0},
        {"epochs": 3},
    ),
    Loop("oracle", "faceedit.train.oracle", train_oracle_tiny, {"lr": 1e-3}, {}),
]
IDS = [loop.kind for loop in LOOPS]


class _Killed(BaseException):
    """A kill right after the first checkpoint reached the disk."""


def _kill_after_first_checkpoint(monkeypatch, loop: Loop) -> None:
    import importlib

    module = importlib.import_module(loop.module)
    real = ckpt.save_training_checkpoint

    def save_then_die(path, checkpoint):
        real(path, checkpoint)
        raise _Killed

    monkeypatch.setattr(module, "save_training_checkpoint", save_then_die)


def _load(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)


def _assert_same_models(a: dict, b: dict) -> None:
    for part in ("models", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            for k, v in a[part][name].items():
                assert torch.equal(v, b[part][name][k]), f"{part}.{name}.{k}"


def _snapshot(run: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(run)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(assets, tmp_path_factory) -> dict[str, Path]:
    """One uninterrupted run per loop."""
    root = tmp_path_factory.mktemp("finished")
    runs = {}
    for loop in LOOPS:
        runs[loop.kind] = root / loop.kind
        loop.train(assets, runs[loop.kind])
    return runs


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("loop", LOOPS, ids=IDS)
def test_a_killed_run_resumes_to_the_uninterrupted_result(
    loop, assets, finished, tmp_path, monkeypatch
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _kill_after_first_checkpoint(m, loop)
        with pytest.raises(_Killed):
            loop.train(assets, run)
    first = _load(run)
    assert 0 < first["step"] < _load(finished[loop.kind])["step"]
    loop.train(assets, run)  # the same call again
    done = _load(run)
    assert done["step"] == _load(finished[loop.kind])["step"]
    _assert_same_models(done, _load(finished[loop.kind]))


@pytest.mark.parametrize("loop", LOOPS, ids=IDS)
def test_a_finished_run_rerun_stays_as_it_was_and_a_longer_budget_extends_it(
    loop, assets, finished, tmp_path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[loop.kind], run)
    before = _load(run)
    loop.train(assets, run)
    after = _load(run)
    assert after["step"] == before["step"]
    _assert_same_models(before, after)
    if loop.longer:
        loop.train(assets, run, **loop.longer)
        assert _load(run)["step"] > before["step"]


@pytest.mark.parametrize("loop", LOOPS, ids=IDS)
def test_other_settings_are_refused_naming_the_flag_and_nothing_is_written(
    loop, assets, finished, tmp_path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[loop.kind], run)
    before = _snapshot(run)
    with pytest.raises(FaceeditError, match="with other settings .*--restart") as err:
        loop.train(assets, run, **loop.other)
    assert "\n" not in str(err.value)
    assert _snapshot(run) == before


@pytest.mark.parametrize("loop", LOOPS, ids=IDS)
def test_restart_starts_over_like_a_fresh_run_and_keeps_what_is_not_the_runs(
    loop, assets, finished, tmp_path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[loop.kind], run)
    (run / "notes.txt").write_text("mine")
    stale = run / "samples" / "step_99999999.png"  # an output of the old run
    if (run / "samples").is_dir():
        stale.write_bytes(b"old")
    loop.train(assets, run, restart=True, **loop.other)
    fresh = tmp_path / "fresh"
    loop.train(assets, fresh, **loop.other)
    _assert_same_models(_load(run), _load(fresh))
    assert _load(run)["step"] == _load(fresh)["step"]
    assert (run / "notes.txt").read_text() == "mine"
    assert not stale.exists()


@pytest.mark.parametrize("loop", LOOPS, ids=IDS)
def test_stray_temporary_files_of_a_killed_run_are_removed(
    loop, assets, finished, tmp_path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[loop.kind], run)
    strays = [run / ".checkpoint.k3x9_q2z.pt", run / ".run.abcdefgh.json"]
    if (run / "samples").is_dir():
        strays.append(run / "samples" / ".step_00000002.zz99yy88.png")
    model_dir = next((p.parent for p in run.rglob("model.safetensors")), None)
    strays.append(model_dir / ".model.safetensors.tmp")
    for p in strays:
        p.write_bytes(b"torn")
    kept = run / ".hidden-notes"
    kept.write_text("mine")
    loop.train(assets, run)
    assert [p for p in strays if p.exists()] == []
    assert kept.read_text() == "mine"


def test_every_loop_writes_the_same_checkpoint_layout(finished) -> None:
    layouts = {}
    for kind, run in finished.items():
        raw = _load(run)  # weights_only: tensors and plain containers only
        assert tuple(raw) == ckpt.CHECKPOINT_KEYS, kind
        assert raw["kind"] == kind and raw["layout_version"] == ckpt.LAYOUT_VERSION
        for part in ("models", "ema", "optimizers", "schedulers", "extra", "config"):
            assert isinstance(raw[part], dict), (kind, part)
        assert set(raw["rng"]) == {"torch", "cuda", "generators"}, kind
        assert set(raw["optimizers"]) <= set(raw["models"]), kind  # named by what they update
        assert set(raw["ema"]) <= set(raw["models"]), kind
        assert isinstance(raw["faceedit_version"], str) and raw["faceedit_version"]
        layouts[kind] = tuple(raw)
        record = __import__("json").loads((run / "run.json").read_text())
        assert record["faceedit_run"] == kind and record["config"] == _plain(raw["config"])
    assert len(set(layouts.values())) == 1, layouts


def _plain(value):
    import json

    return json.loads(json.dumps(value))


# --------------------------------------------------------------------------- refusals


def test_a_directory_with_other_files_or_another_kind_of_run_is_refused(
    assets, finished, tmp_path
) -> None:
    import shutil

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "photo.png").write_bytes(b"x")
    for restart in (False, True):
        with pytest.raises(FaceeditError, match="holds no faceedit run.*--restart"):
            train_attgan_tiny(assets, foreign, restart=restart)
    assert [p.name for p in foreign.iterdir()] == ["photo.png"]

    other = tmp_path / "stylegan2_run"
    shutil.copytree(finished["stylegan2"], other)
    before = _snapshot(other)
    for restart in (False, True):
        with pytest.raises(FaceeditError, match="holds a stylegan2 run, not an attgan run"):
            train_attgan_tiny(assets, other, restart=restart)
    assert _snapshot(other) == before


def test_a_directory_holding_only_a_stray_temporary_file_starts_a_run(assets, tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".checkpoint.abcd1234.pt").write_bytes(b"torn")
    train_attgan_tiny(assets, run)
    assert _load(run)["step"] == 4
    assert not (run / ".checkpoint.abcd1234.pt").exists()


# --------------------------------------------------------------------------- older layouts


def _to_legacy(raw: dict) -> dict:
    """The checkpoint as the loops wrote it before layout version 1."""
    kind, m, o, rng = raw["kind"], raw["models"], raw["optimizers"], raw["rng"]
    if kind == "attgan":
        return {
            "G": m["G"], "D": m["D"], "optim_G": o["G"], "optim_D": o["D"],
            "step": raw["step"], "config": {**raw["config"], "n_attrs": 5},
            "model_config": raw["model_config"], "rng": {"torch": rng["torch"]},
            "world_size": 1, "faceedit_version": "0.0",
        }  # fmt: skip
    if kind == "stylegan2":
        return {
            "G": m["G"], "D": m["D"], "G_ema": raw["ema"]["G"], "opt_g": o["G"],
            "opt_d": o["D"], "pl_mean": raw["extra"]["pl_mean"], "step": raw["step"],
            "rng": {"torch": rng["torch"]}, "sampler_rng": rng["generators"]["sampler"],
            "config": raw["config"], "faceedit_version": "0.0",
        }  # fmt: skip
    if kind == "encoder":
        return {
            "E": m["E"], "opt": o["E"], "step": raw["step"], "rng": rng["torch"],
            "sampler_rng": rng["generators"]["sampler"][0], "config": raw["config"],
            "encoder_config": raw["model_config"],
        }  # fmt: skip
    if kind == "latent_classifier":
        return {
            "kind": kind, "epoch": raw["epoch"] - 1, "model": m["classifier"],
            "optimizer": o["classifier"], "scheduler": raw["schedulers"]["classifier"],
            "model_config": raw["model_config"], "train_config": raw["config"],
            "losses": raw["extra"]["losses"], "rng": {"torch": rng["torch"]},
            "faceedit_version": "0.0",
        }  # fmt: skip
    assert kind == "latent_transformer"
    return {
        "kind": kind, "epoch": raw["epoch"] - 1, "attrs": raw["extra"]["attrs"],
        "bank": m["transformers"], "optimizer": o["transformers"],
        "scheduler": raw["schedulers"]["transformers"], "train_config": raw["config"],
        "history": raw["extra"]["history"], "rng": {"torch": rng["torch"]},
        "faceedit_version": "0.0",
    }  # fmt: skip


@pytest.mark.parametrize("loop", [lp for lp in LOOPS if lp.kind != "oracle"], ids=IDS[:-1])
def test_a_checkpoint_in_the_older_layout_resumes(
    loop, assets, finished, tmp_path, monkeypatch
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _kill_after_first_checkpoint(m, loop)
        with pytest.raises(_Killed):
            loop.train(assets, run)
    torch.save(_to_legacy(_load(run)), run / "checkpoint.pt")
    (run / "run.json").unlink()  # older runs had none
    with pytest.raises(FaceeditError, match="with other settings .*--restart"):
        loop.train(assets, run, **loop.other)  # its settings are still known
    loop.train(assets, run)
    _assert_same_models(_load(run), _load(finished[loop.kind]))


def test_the_attgan_loader_reads_a_training_checkpoint_of_either_layout(finished) -> None:
    import faceedit

    raw = _load(finished["attgan"])
    model = faceedit.load(finished["attgan"] / "checkpoint.pt")
    for k, v in model.G.state_dict().items():
        assert torch.equal(v, raw["models"]["G"][k]), k


# --------------------------------------------------------------------------- the CLI


def _attgan_yaml(assets, tmp_path: Path) -> Path:
    import yaml

    from faceedit.data.celeba import TOY_ATTRS

    cfg = dict(
        data="custom", data_path=str(assets["toy"]), attr_path=str(assets["toy_attr"]),
        attrs=list(TOY_ATTRS), img_size=32, enc_dim=4, dec_dim=4, dis_dim=4, dis_fc_dim=8,
        enc_layers=2, dec_layers=2, dis_layers=2, batch_size=4, n_d=1, n_samples=2,
        save_interval=2, sample_interval=2, out_dir=str(tmp_path / "run"),
        tensorboard=False, max_steps=2,
    )  # fmt: skip
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_attgan_resumes_by_default_and_takes_resume_as_a_deprecated_no_op(
    assets, tmp_path, capsys
) -> None:
    from faceedit.cli import main

    cfg = _attgan_yaml(assets, tmp_path)
    base = ["train", "attgan", "--config", str(cfg), "-q"]
    assert main(base) == 0
    assert main([*base, "--max-steps", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "--resume is deprecated and does nothing" in err and len(err.splitlines()) == 1
    assert _load(tmp_path / "run")["step"] == 4
    assert main([*base, "-o", str(tmp_path / "run"), "--max-steps", "4"]) == 0
    assert _load(tmp_path / "run")["step"] == 4  # finished: nothing more to do
    # the old run is there: another config is refused in one line that names the flag
    cfg.write_text(cfg.read_text().replace("n_d: 1", "n_d: 2"))
    before = _snapshot(tmp_path / "run")
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_d: 1 there, 2 here" in err[0] and "--restart" in err[0]
    assert _snapshot(tmp_path / "run") == before
    assert main([*base, "--restart"]) == 0
    assert _load(tmp_path / "run")["step"] == 2 and _load(tmp_path / "run")["config"]["n_d"] == 2
    assert main([*base, "--restart", "--resume"]) == 2
    assert main([*base, "--resume", str(tmp_path / "elsewhere.pt")]) == 2
    assert "resumes only from its own" in capsys.readouterr().err


def test_cli_latent_and_stylegan2_deprecated_flags(assets, tmp_path, capsys) -> None:
    from faceedit.cli import main

    data = _latent_data()
    np.save(tmp_path / "codes.npy", data.codes)
    np.save(tmp_path / "labels.npy", data.labels)
    args = ["train", "classifier", "--codes", str(tmp_path / "codes.npy"), "--labels"]
    args += [str(tmp_path / "labels.npy"), "-o", str(tmp_path / "clf"), "--preset", "small"]
    args += ["--hidden", "8", "--epochs", "1", "-q"]
    assert main([*args, "--resume"]) == 0
    assert "--resume is deprecated" in capsys.readouterr().err
    assert main([*args, "--epochs", "2"]) == 0
    assert _load(tmp_path / "clf")["epoch"] == 2
    assert main([*args, "--lr", "0.5"]) == 2
    assert "lr: 0.0001 there, 0.5 here" in capsys.readouterr().err

    sg = ["train", "stylegan2", "--data", str(assets["squares"]), "--out", str(tmp_path / "sg")]
    sg += ["--resolution", "8", "--steps", "2", "--batch-size", "2", "--channel-base", "32"]
    sg += ["--channel-max", "8", "--sample-every", "2", "--checkpoint-every", "2"]
    assert main(sg) == 0
    assert main([*sg, "--steps", "3", "--no-resume"]) == 0
    assert "--no-resume is deprecated: use --restart" in capsys.readouterr().err
    assert _load(tmp_path / "sg")["step"] == 3


def test_restart_is_explained_in_every_training_verbs_help(capsys) -> None:
    from faceedit.cli import main

    for verb in ("attgan", "stylegan2", "encoder", "classifier", "transformer", "oracle"):
        with pytest.raises(SystemExit):
            main(["train", verb, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--restart" in text and "delete the run found in the output directory" in text


def test_plan_run_checks_the_directory_before_anything_is_written(tmp_path) -> None:
    from faceedit.train.stylegan2 import MAY_CHANGE, OUTPUTS, StyleGAN2TrainConfig

    config = StyleGAN2TrainConfig(data="d", out=str(tmp_path / "x"))
    spec = ckpt.RunSpec("stylegan2", config, MAY_CHANGE, OUTPUTS)
    with pytest.raises(FaceeditError, match="parent directory .* does not exist"):
        ckpt.plan_run(tmp_path / "no" / "such", spec)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FaceeditError, match="exists and is not a directory"):
        ckpt.plan_run(tmp_path / "file", spec)
    plan = ckpt.plan_run(tmp_path / "x", spec)
    assert plan.checkpoint is None and not (tmp_path / "x").exists()
    with pytest.raises(TypeError, match="must be a dataclass"):
        ckpt.config_dict(__import__("argparse").Namespace(a=1))
    assert dataclasses.asdict(config) == ckpt.config_dict(config)


def test_a_checkpoint_that_does_not_fit_gives_one_line(tmp_path) -> None:
    net = torch.nn.Linear(2, 2)
    empty = ckpt.TrainingCheckpoint(kind="encoder", step=1, config={}, models={})
    with pytest.raises(FaceeditError, match=r"x.pt: does not fit this run \(it holds no models"):
        ckpt.load_states(empty, "x.pt", models={"E": net})
    wrong = dataclasses.replace(empty, models={"E": torch.nn.Linear(3, 2).state_dict()})
    with pytest.raises(FaceeditError, match="does not fit this run .*size mismatch"):
        ckpt.load_states(wrong, "x.pt", models={"E": net})
    path = ckpt.save_training_checkpoint(tmp_path / "c.pt", wrong)
    with pytest.raises(FaceeditError, match="c.pt: an encoder checkpoint, not an oracle one"):
        ckpt.load_training_checkpoint(path, kind="oracle")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(FaceeditError, match="unreadable checkpoint"):
        ckpt.load_training_checkpoint(tmp_path / "torn.pt")
