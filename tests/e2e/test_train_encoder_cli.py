"""``faceedit train encoder`` and ``faceedit data latents`` on a tiny generator and a tiny
rendered avatar dataset: training lowers the loss, writes encoder + metrics + grids,
resumes exactly, encodes a dataset row by row, and bad inputs give one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import faceedit
from faceedit.cli import main
from faceedit.data import avatars as A
from faceedit.nets.latent_encoder import LatentEncoder
from tests.helpers.tiny_generator import tiny_generator
from tests.helpers.units import assert_units

# a tiny encoder for a tiny generator at 16 px
TINY = ["--steps", "24", "--batch-size", "4", "--eval-every", "12", "-q"]
TINY += ["--channel-base", "64", "--channel-max", "16", "--head-channels", "4"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("encoder_cli") / "avatars"
    A.write_dataset(root, n=32, size=32, seed=1, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return tiny_generator(tmp_path_factory.mktemp("encoder_cli") / "G")


def _train(generator: Path, dataset: Path, out: Path, *extra: str) -> int:
    args = ["train", "encoder", "--generator", str(generator), "--data", str(dataset)]
    return main([*args, "-o", str(out), *TINY, *extra])


def _losses(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/total" in r]


@pytest.fixture(scope="module")
def trained(generator: Path, dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encoder_cli") / "run"
    assert _train(generator, dataset, out, "--lr", "3e-3") == 0
    return out


def test_training_lowers_the_loss_and_writes_encoder_metrics_and_grids(
    trained: Path, generator: Path
) -> None:
    rows = _losses(trained)
    assert [r["step"] for r in rows] == list(range(1, 25))
    first = np.mean([r["loss/total"] for r in rows[:4]])
    last = np.mean([r["loss/total"] for r in rows[-4:]])
    assert last < 0.8 * first, (first, last)

    enc = trained / "encoder"
    assert {p.name for p in enc.iterdir()} == {"config.json", "model.safetensors", "metrics.json"}
    E = faceedit.load(enc)
    G = faceedit.load(generator)
    assert isinstance(E, LatentEncoder)
    assert (E.num_ws, E.w_dim, E.img_resolution) == (G.num_ws, G.w_dim, G.img_resolution)
    assert torch.equal(E.w_avg, G.w_avg)  # the generator's average latent came along
    metrics = json.loads((enc / "metrics.json").read_text())
    assert metrics["units"]["psnr"] == "dB"
    header = json.loads((enc / "config.json").read_text())
    assert metrics["steps"] == header["metadata"]["steps"] == 24
    assert metrics["psnr"] == pytest.approx(header["metadata"]["psnr"])
    assert metrics["split"] == "val"

    # the reported PSNR is the one of the saved encoder on the validation split
    from faceedit.train.encoder import dataset_files, evaluate, evaluate_generated, load_images

    data = Path(header["metadata"]["train_config"]["data"])
    val = load_images(data, dataset_files(data, "val"), G.img_resolution)
    assert metrics["n"] == len(val.files)
    assert evaluate(E, G, val.images)["psnr"] == pytest.approx(metrics["psnr"], abs=1e-4)
    # and better than the untrained encoder's (the average face for every image)
    untrained = LatentEncoder(E.config)
    untrained.set_w_avg(G.w_avg)
    assert metrics["psnr"] > evaluate(untrained, G, val.images)["psnr"] + 0.5
    # on the generator's own samples too, where the true code is known
    gen = evaluate_generated(E, G)
    assert gen["psnr_generated"] == pytest.approx(metrics["psnr_generated"], abs=1e-4)
    assert gen["latent_mse"] == pytest.approx(metrics["latent_mse"], rel=1e-4)
    before = evaluate_generated(untrained, G)
    assert gen["latent_mse"] < before["latent_mse"]

    for name in ("reconstructions.png", "losses.png", "samples/step_000012.png"):
        assert (trained / name).is_file(), name
    from faceedit.data.images import read_image

    grid = read_image(trained / "reconstructions.png")
    assert grid.ndim == 3 and grid.shape[1] > 4 * 16


def test_an_interrupted_run_resumes_to_the_same_encoder(
    generator: Path, dataset: Path, tmp_path, monkeypatch
) -> None:
    from faceedit.train import encoder as T

    straight = tmp_path / "straight"
    assert _train(generator, dataset, straight, "--steps", "12") == 0

    calls = []
    real_step = T.encoder_step

    def dying_step(*args, **kwargs):
        calls.append(1)
        if len(calls) > 7:  # checkpoint at step 5 (every 5 below), killed during step 8
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "encoder_step", dying_step)
    resumed = tmp_path / "resumed"
    every = ["--steps", "12", "--checkpoint-every", "5"]
    assert _train(generator, dataset, resumed, *every) == 130
    assert not (resumed / "encoder").exists()
    monkeypatch.setattr(T, "encoder_step", real_step)
    assert _train(generator, dataset, resumed, *every) == 0
    # the steps after the checkpoint were trained again and logged once
    assert [r["step"] for r in _losses(resumed)] == list(range(1, 13))
    a, b = faceedit.load(straight / "encoder"), faceedit.load(resumed / "encoder")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_data_latents_writes_codes_and_labels_in_the_datasets_row_order(
    trained: Path, dataset: Path, tmp_path, capsys
) -> None:
    from faceedit.data.latents import load_latent_dataset
    from faceedit.train.encoder import dataset_files, load_images, to_model_range

    out = tmp_path / "latents"
    args = ["data", "latents", "--encoder", str(trained / "encoder"), "--data", str(dataset)]
    assert main([*args, "-o", str(out), "--batch-size", "5", "-q"]) == 0
    assert "wrote 32 W+ codes" in capsys.readouterr().out
    E = faceedit.load(trained / "encoder")
    ds = load_latent_dataset(out / "codes.npy", out / "list_attr_celeba.txt")
    assert ds.codes.shape == (32, E.num_ws, E.w_dim) and ds.codes.dtype == np.float32
    names, rows = A.read_attributes(dataset)
    files = (out / "files.txt").read_text().split()
    assert files == [A.image_name(i) for i in range(32)]
    assert ds.attr_names == tuple(names)
    np.testing.assert_array_equal(ds.labels, (np.array([rows[f] for f in files]) > 0))
    # row i is the code of image i (batches of 5 do not shuffle anything)
    pick = [0, 7, 31]
    imgs = load_images(dataset, [files[i] for i in pick], E.img_resolution).images
    with torch.no_grad():
        expect = E(to_model_range(imgs)).numpy()
    np.testing.assert_allclose(ds.codes[pick], expect, atol=1e-5)

    # one split: only its rows, in order, and the latent-transformer tools take them as they are
    val = tmp_path / "val"
    assert main([*args, "-o", str(val), "--split", "val", "-q"]) == 0
    val_files = dataset_files(dataset, "val")
    assert (val / "files.txt").read_text().split() == val_files
    codes = np.load(val / "codes.npy")
    np.testing.assert_allclose(codes, ds.codes[[files.index(f) for f in val_files]], atol=1e-5)
    clf = tmp_path / "clf"
    cargs = ["train", "classifier", "--codes", str(out / "codes.npy")]
    cargs += ["--labels", str(out / "list_attr_celeba.txt"), "-o", str(clf)]
    assert main([*cargs, "--preset", "small", "--epochs", "1", "-q"]) == 0


def test_data_latents_can_label_each_code_by_reading_its_reconstruction(
    trained: Path, generator: Path, dataset: Path, tmp_path, capsys
) -> None:
    from faceedit.data.images import tensor_to_uint8
    from faceedit.data.latents import load_latent_dataset
    from faceedit.eval.avatars import oracle_read
    from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig

    torch.manual_seed(3)  # a 32 px reader of the 16 px reconstructions
    reader = AvatarOracle(
        AvatarOracleConfig(img_size=32, channels=(4, 8), hidden=8, attr_names=("Smiling", "Bald"))
    )
    reader.save_pretrained(tmp_path / "reader")
    out = tmp_path / "latents"
    args = ["data", "latents", "--encoder", str(trained / "encoder"), "--data", str(dataset)]
    args += ["--generator", str(generator), "--labeller", str(tmp_path / "reader")]
    assert main([*args, "-o", str(out), "--batch-size", "5", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "reading of the reconstructions" in printed
    ds = load_latent_dataset(out / "codes.npy", out / "list_attr_celeba.txt")
    assert ds.attr_names == ("Smiling", "Bald")  # the reader's attributes, not the dataset's
    meta = json.loads((out / "labels.json").read_text())
    assert_units(meta, "on_rate")
    assert meta["n"] == 32 and meta["labeller"] == str(tmp_path / "reader")
    assert meta["on_rate"] == pytest.approx(
        {a: round(float(r), 4) for a, r in zip(ds.attr_names, ds.labels.mean(0), strict=True)}
    )
    assert f"Smiling {meta['on_rate']['Smiling']:.0%}" in printed
    # each row is the reader's verdict on the image its code draws
    G = faceedit.load(generator)
    with torch.no_grad():
        drawn = tensor_to_uint8(G.synthesis(torch.from_numpy(ds.codes), noise_mode="const"))
    verdict, _ = oracle_read(reader.eval(), drawn)
    np.testing.assert_array_equal(ds.labels, verdict > 0)
    files = (out / "files.txt").read_text().split()
    rows = (out / "list_attr_celeba.txt").read_text().splitlines()[2:]
    assert [r.split()[0] for r in rows] == files
    # half of the pair is not enough
    assert main([*args[:-2], "-o", str(tmp_path / "half"), "-q"]) == 2
    assert "needs both --generator G and --labeller L" in capsys.readouterr().err
    assert not (tmp_path / "half").exists()
    wrong = [*args[:-3], str(trained / "encoder"), "--labeller", str(tmp_path / "reader")]
    assert main([*wrong, "-o", str(tmp_path / "wrong"), "-q"]) == 2
    assert "holds a LatentEncoder, not a StyleGAN2 generator" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists()


def test_a_perceptual_oracle_adds_its_weighted_feature_loss(
    generator: Path, dataset: Path, tmp_path: Path
) -> None:
    from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig

    torch.manual_seed(0)  # a 32 px reader: the 16 px reconstructions are resized for it
    config = AvatarOracleConfig(img_size=32, channels=(4, 8), hidden=8, attr_names=("Smiling",))
    AvatarOracle(config).save_pretrained(tmp_path / "oracle")
    runs = {}
    for weight in ("1", "0.25"):
        out = tmp_path / f"run{weight}"
        extra = ["--perceptual", str(tmp_path / "oracle"), "--lambda-perceptual", weight]
        assert _train(generator, dataset, out, *extra, "--steps", "4") == 0
        for r in _losses(out):
            assert r["loss/perceptual"] > 0
            parts = r["loss/latent"] + r["loss/image_synthetic"] + r["loss/image_real"]
            assert r["loss/total"] == pytest.approx(parts + float(weight) * r["loss/perceptual"])
        runs[weight] = faceedit.load(out / "encoder")
    plain = tmp_path / "plain"
    assert _train(generator, dataset, plain, "--steps", "4") == 0
    assert all("loss/perceptual" not in r for r in _losses(plain))
    # the feature loss steers the training: same seed, other weights
    weights = [
        dict(m.named_parameters()) for m in (*runs.values(), faceedit.load(plain / "encoder"))
    ]
    for other in weights[1:]:
        assert any(not torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_the_identity_loss_compares_the_oracles_readings(
    generator: Path, dataset: Path, tmp_path: Path
) -> None:
    from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig

    torch.manual_seed(0)
    config = AvatarOracleConfig(
        img_size=16,
        channels=(4, 8),
        hidden=8,
        attr_names=("Smiling", "Eyeglasses"),
        param_names=("top",),
        param_values=(("a", "b", "c"),),
    )
    AvatarOracle(config).save_pretrained(tmp_path / "oracle")
    out = tmp_path / "run"
    extra = ["--perceptual", str(tmp_path / "oracle"), "--lambda-perceptual", "0"]
    assert _train(generator, dataset, out, *extra, "--lambda-identity", "0.5", "--steps", "3") == 0
    for r in _losses(out):
        # the oracle's features are off (weight 0); its reading is compared
        assert "loss/perceptual" not in r and r["loss/identity"] > 0
        parts = r["loss/latent"] + r["loss/image_synthetic"] + r["loss/image_real"]
        assert r["loss/total"] == pytest.approx(parts + 0.5 * r["loss/identity"])


def test_the_config_checks_the_identity_weight() -> None:
    from faceedit.errors import FaceeditError
    from faceedit.train.encoder import EncoderTrainConfig

    paths = {"generator": "g", "data": "d", "out": "o"}
    with pytest.raises(FaceeditError, match="lambda_identity must be >= 0"):
        EncoderTrainConfig(**paths, perceptual="p", lambda_identity=-1)
    with pytest.raises(FaceeditError, match="lambda_identity needs perceptual"):
        EncoderTrainConfig(**paths, lambda_identity=1)
    assert EncoderTrainConfig(**paths, perceptual="p", lambda_identity=1).lambda_identity == 1


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        ("train", ["--generator", "{tmp}/missing"], "missing: not found"),
        ("train", ["--generator", "{enc}"], "holds a LatentEncoder, not a StyleGAN2 generator"),
        ("train", ["--data", "{tmp}"], "no images/ directory"),
        ("train", ["--steps", "0"], "--steps '0': must be at least 1"),
        ("train", ["--lr", "fast"], "--lr 'fast': expected a number"),
        ("train", ["-o", "{full}"], "is not empty and holds no faceedit run"),
        ("train", ["--perceptual", "{gen}"], "holds StyleGAN2Generator, not an avatar oracle"),
        ("train", ["--perceptual", "{tmp}/none"], "perceptual network:"),
        ("train", ["--lambda-perceptual", "-1"], "--lambda-perceptual '-1'"),
        ("train", ["--lambda-identity", "1"], "--lambda-identity needs --perceptual ORACLE"),
        ("train", ["--lambda-identity", "x"], "--lambda-identity 'x': expected a number"),
        ("latents", ["--encoder", "{gen}"], "holds a StyleGAN2Generator, not a latent encoder"),
        ("latents", ["-o", "{full}"], "already exists and is a non-empty directory"),
        ("latents", ["--data", "{nosplit}", "--split", "val"], "list_eval_partition.txt: no such"),
        ("latents", ["--batch-size", "x"], "--batch-size 'x': expected an integer"),
    ],
)
def test_bad_inputs_give_one_line_errors(
    which, extra, message, trained: Path, generator: Path, dataset: Path, tmp_path, capsys
) -> None:
    import shutil

    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    nosplit = tmp_path / "nosplit"
    shutil.copytree(dataset, nosplit)
    (nosplit / A.SPLIT_FILE).unlink()
    fill = {
        "tmp": str(tmp_path),
        "enc": str(trained / "encoder"),
        "gen": str(generator),
        "full": str(full),
        "nosplit": str(nosplit),
    }
    extra = [e.format(**fill) for e in extra]
    if which == "train":
        base = {"--generator": str(generator), "--data": str(dataset), "-o": str(tmp_path / "o")}
        cmd = ["train", "encoder", *TINY]
    else:
        base = {"--encoder": fill["enc"], "--data": str(dataset), "-o": str(tmp_path / "o")}
        cmd = ["data", "latents", "-q"]
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        base[flag] = value
    for flag, value in base.items():
        cmd += [flag, value]
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceedit: error:") and "\n" not in err, err
    assert message in err, err
    assert not (tmp_path / "o").exists()


def test_data_latents_without_labels_encodes_the_sorted_images(
    trained: Path, dataset: Path, tmp_path, capsys
) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(dataset / "images", plain / "images")
    out = tmp_path / "codes"
    args = ["data", "latents", "--encoder", str(trained / "encoder"), "--data", str(plain)]
    assert main([*args, "-o", str(out), "-q"]) == 0
    assert "the dataset has no labels" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"codes.npy", "files.txt", "lineage.json"}
    files = (out / "files.txt").read_text().split()
    assert files == sorted(p.name for p in (plain / "images").iterdir())
    assert np.load(out / "codes.npy").shape[0] == len(files) == 32
