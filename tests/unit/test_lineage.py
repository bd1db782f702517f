"""Lineage (faceedit.lineage): every model faceedit trains and every dataset built from
models records which models made it, and a judge found there is refused.

The documented pipeline on tiny models (a generator, an oracle that labels its samples,
``data latents``, ``train classifier``, ``train transformer``) must end with transformers
whose lineage names the labeller without the user doing anything; the shipped models must
name avatar-oracle; fingerprints follow the weights, not the files' place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import faceedit
from faceedit.cli import main
from faceedit.lineage import (
    ALLOW_FLAG,
    DependentJudgeError,
    LineageError,
    check_judge_independent,
    fingerprint,
    fingerprint_set,
    lineage_of,
)
from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig
from faceedit.shipped import shipped_path
from tests.helpers.tiny_generator import tiny_generator

ATTRS = ("Smiling", "Eyeglasses")


def _tiny_oracle(path: Path, G_path: Path, seed: int) -> Path:
    """A random 16 px oracle whose thresholds sit at the median logit on G's samples (so
    every attribute is on for some samples and off for others)."""
    torch.manual_seed(seed)
    oracle = AvatarOracle(
        AvatarOracleConfig(img_size=16, channels=(4, 8), hidden=8, attr_names=ATTRS)
    ).eval()
    G = faceedit.load(G_path)
    with torch.no_grad():
        img = G.synthesis(G.mapping(torch.randn(64, G.z_dim)), noise_mode="const")
        oracle.attr_head.bias -= oracle(img).attrs.median(0).values
    oracle.save_pretrained(path)
    return path


def _roles(entries: list[dict], sha: str) -> set[str]:
    return {e["role"] for e in entries if sha in fingerprint_set(e.get("sha256"))}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    """The documented latent pipeline, on tiny models, through the CLI."""
    root = tmp_path_factory.mktemp("lineage")
    G = tiny_generator(root / "G")
    labeller = _tiny_oracle(root / "labeller", G, seed=4)
    other = _tiny_oracle(root / "other", G, seed=5)  # a network that took no part
    samples = root / "samples"
    assert main(["data", "latents", "--generator", str(G), "--labeller", str(labeller),
                 "--n", "64", "-o", str(samples), "-q"]) == 0  # fmt: skip
    data = ["--codes", str(samples / "codes.npy"), "--labels",
            str(samples / "list_attr_celeba.txt")]  # fmt: skip
    assert main(["train", "classifier", *data, "-o", str(root / "clf"), "--preset", "small",
                 "--epochs", "1", "-q"]) == 0  # fmt: skip
    assert main(["train", "transformer", *data, "--classifier", str(root / "clf"),
                 "--attrs", "all", "--epochs", "1", "-o", str(root / "tr"), "-q"]) == 0  # fmt: skip
    return {"G": G, "labeller": labeller, "other": other, "samples": samples,
            "classifier": root / "clf" / "classifier", "transformers": root / "tr"}  # fmt: skip


def test_the_pipeline_records_the_labeller_at_every_step(pipeline) -> None:
    labeller_sha = fingerprint(pipeline["labeller"])
    g_sha = fingerprint(pipeline["G"])
    clf_sha = fingerprint(pipeline["classifier"])
    written = json.loads((pipeline["samples"] / "lineage.json").read_text())["lineage"]
    assert _roles(written, labeller_sha) == {"labeller"}
    assert _roles(written, g_sha) == {"generator"}
    # the classifier's config.json holds the dataset's lineage, read without following
    meta = json.loads((pipeline["classifier"] / "config.json").read_text())["metadata"]
    assert _roles(meta["lineage"], labeller_sha) == {"labeller"}
    assert _roles(meta["lineage"], fingerprint(pipeline["samples"])) == {"data"}
    # each transformer: its classifier, and through it and the data, the labeller
    tnet = pipeline["transformers"] / "tnet_Smiling"
    stored = json.loads((tnet / "config.json").read_text())["metadata"]["lineage"]
    assert _roles(stored, clf_sha) == {"classifier"}
    assert _roles(stored, labeller_sha) == {"labeller"}
    # closed when written: the chain survives when the intermediate runs are deleted
    copy = pipeline["samples"].parent / "kept_tnet"
    shutil.copytree(tnet, copy)
    assert _roles(lineage_of(copy), labeller_sha) == {"labeller"}
    assert _roles(lineage_of(pipeline["transformers"]), labeller_sha) == {"labeller"}


def test_the_labeller_is_refused_as_judge_and_another_network_is_not(pipeline) -> None:
    tnets = pipeline["transformers"]
    with pytest.raises(DependentJudgeError) as err:
        check_judge_independent(tnets, pipeline["labeller"])
    message = str(err.value)
    assert "\n" not in message and str(pipeline["labeller"]) in message
    assert "labeller" in message and ALLOW_FLAG in message
    allowed = check_judge_independent(tnets, pipeline["labeller"], allow=True)
    assert {e["role"] for e in allowed} == {"labeller"}
    assert check_judge_independent(tnets, pipeline["other"]) == []
    # the classifier the transformers were trained against is no judge of them either
    roles = {e["role"] for e in check_judge_independent(tnets, pipeline["classifier"], True)}
    assert roles == {"classifier"}


def test_a_judge_that_is_part_of_the_model_is_refused(pipeline) -> None:
    with pytest.raises(DependentJudgeError, match="part of the model"):
        check_judge_independent(pipeline["classifier"], pipeline["classifier"])


def test_joined_and_edited_sets_keep_their_sources_lineage(pipeline, tmp_path) -> None:
    labeller_sha = fingerprint(pipeline["labeller"])
    other = tmp_path / "more"
    assert main(["data", "latents", "--generator", str(pipeline["G"]), "--labeller",
                 str(pipeline["other"]), "--n", "16", "-o", str(other), "-q"]) == 0  # fmt: skip
    joined = tmp_path / "joined"
    assert main(["data", "latents", "--join", str(pipeline["samples"]), str(other),
                 "-o", str(joined), "-q"]) == 0  # fmt: skip
    entries = lineage_of(joined)
    assert _roles(entries, labeller_sha) == {"labeller"}
    assert _roles(entries, fingerprint(pipeline["other"])) == {"labeller"}
    edits = tmp_path / "edits"
    assert main(["data", "latents", "--transformers", str(pipeline["transformers"]),
                 "--codes", str(pipeline["samples"]), "--generator", str(pipeline["G"]),
                 "--labeller", str(pipeline["labeller"]), "--n", "8", "-o", str(edits),
                 "-q"]) == 0  # fmt: skip
    entries = lineage_of(edits)
    assert _roles(entries, labeller_sha) == {"hardening", "labeller"}
    tnet_sha = fingerprint(pipeline["transformers"] / "tnet_Smiling")
    assert _roles(entries, tnet_sha) == {"transformer"}


def test_train_directions_records_the_codes_lineage(pipeline, tmp_path) -> None:
    out = tmp_path / "directions.npz"
    samples = pipeline["samples"]
    assert main(["train", "directions", "--codes", str(samples / "codes.npy"), "--labels",
                 str(samples / "list_attr_celeba.txt"), "-o", str(out)]) == 0  # fmt: skip
    assert _roles(lineage_of(out), fingerprint(pipeline["labeller"])) == {"labeller"}
    with np.load(out) as z:  # the file still holds what it held
        assert {"attr_names", "directions", "scale"} <= set(z.files)


# --------------------------------------------------------------------------- shipped


def test_shipped_models_name_avatar_oracle_and_not_a_fresh_oracle(pipeline) -> None:
    oracle = shipped_path("avatar-oracle")
    oracle_sha = fingerprint(oracle)
    # the fingerprint is the weights file's sha256, computed here independently
    import hashlib

    assert oracle_sha == hashlib.sha256((oracle / "model.safetensors").read_bytes()).hexdigest()
    latent = lineage_of("avatar-latent")
    assert {"labeller", "hardening", "selection"} <= _roles(latent, oracle_sha)
    assert _roles(lineage_of("avatar-attgan"), oracle_sha) == {"selection"}
    # the encoder's perception oracle (seed 1) is named, with no fingerprint
    perception = [e for e in latent if e["role"] == "loss network"]
    assert perception and all(e["sha256"] is None and e.get("note") for e in perception)
    assert lineage_of("avatar-oracle") == []
    for model in ("avatar-latent", "avatar-attgan"):
        with pytest.raises(DependentJudgeError, match="avatar-oracle"):
            check_judge_independent(model, "avatar-oracle")
        assert check_judge_independent(model, pipeline["labeller"]) == []


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_follows_the_weights_not_the_place(pipeline, tmp_path) -> None:
    source = pipeline["labeller"]
    copy = tmp_path / "elsewhere" / "oracle"
    shutil.copytree(source, copy)
    assert fingerprint(copy) == fingerprint(source)
    # metadata is not the weights: editing config.json keeps the fingerprint
    header = json.loads((copy / "config.json").read_text())
    header["metadata"] = {"note": "edited"}
    (copy / "config.json").write_text(json.dumps(header))
    assert fingerprint(copy) == fingerprint(source)
    model = faceedit.load(copy)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    model.save_pretrained(copy)
    assert fingerprint(copy) != fingerprint(source)
    # a bundle: one fingerprint per part; a foreign file: the file itself
    parts = fingerprint(shipped_path("avatar-latent"))
    assert isinstance(parts, dict) and "classifier" in parts and "transformers/tnet_Bald" in parts
    assert parts["classifier"] == fingerprint(shipped_path("avatar-latent") / "classifier")
    with pytest.raises(LineageError):
        fingerprint(tmp_path)


def test_a_malformed_lineage_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "codes.npy").write_bytes(b"")
    (tmp_path / "lineage.json").write_text('{"lineage": [{"name": "x"}]}')
    with pytest.raises(LineageError, match="lineage.json"):
        lineage_of(tmp_path)


# --------------------------------------------------------------------------- other trainers


def test_encoder_and_encoded_set_record_generator_loss_network_and_labeller(
    pipeline, tmp_path
) -> None:
    from faceedit.data import avatars as A

    data = tmp_path / "avatars"
    A.write_dataset(data, n=8, size=16, seed=1, workers=1, progress=False)
    G, oracle = pipeline["G"], pipeline["other"]
    run = tmp_path / "enc"
    assert main(["train", "encoder", "--generator", str(G), "--data", str(data), "-o", str(run),
                 "--perceptual", str(oracle), "--steps", "2", "--batch-size", "2",
                 "--channel-base", "64", "--channel-max", "16", "--head-channels", "4",
                 "-q"]) == 0  # fmt: skip
    entries = lineage_of(run / "encoder")
    assert _roles(entries, fingerprint(G)) == {"generator"}
    assert _roles(entries, fingerprint(oracle)) == {"loss network"}
    codes = tmp_path / "codes"
    assert main(["data", "latents", "--encoder", str(run / "encoder"), "--data", str(data),
                 "--generator", str(G), "--labeller", str(pipeline["labeller"]),
                 "-o", str(codes), "-q"]) == 0  # fmt: skip
    entries = lineage_of(codes)
    assert _roles(entries, fingerprint(run / "encoder")) == {"encoder"}
    assert _roles(entries, fingerprint(pipeline["labeller"])) == {"labeller"}
    # the encoder's loss network comes along, through the encoder
    assert _roles(entries, fingerprint(oracle)) == {"loss network"}


def test_a_continued_generator_records_what_it_continued(tmp_path) -> None:
    from PIL import Image

    from faceedit.train.stylegan2 import StyleGAN2TrainConfig, train_stylegan2

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images / f"{i}.png")
    tiny = dict(data=str(images), resolution=16, z_dim=16, w_dim=16, mapping_layers=2,
                channel_base=128, channel_max=16, batch_size=4, steps=2, sample_every=2,
                checkpoint_every=2)  # fmt: skip
    first = train_stylegan2(StyleGAN2TrainConfig(out=str(tmp_path / "a"), **tiny), progress=False)
    assert lineage_of(first) == []
    second = train_stylegan2(
        StyleGAN2TrainConfig(out=str(tmp_path / "b"), init_from=str(tmp_path / "a"), **tiny),
        progress=False,
    )
    assert _roles(lineage_of(second), fingerprint(first)) == {"init"}


def test_cli_prints_a_models_lineage(capsys):
    from faceedit.cli import main

    assert main(["models", "--lineage", "avatar-attgan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("avatar-attgan: ")
    assert "  selection avatar-oracle" in out
    assert main(["models", "--lineage", "no-such-model"]) == 2
    assert "not found" in capsys.readouterr().err
