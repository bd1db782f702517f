"""Tiny AttGAN training runs on generated images: losses fall, resume is exact."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from faceedit.data.celeba import TOY_ATTRS, toy_faces, write_custom_dataset
from faceedit.errors import FaceeditError
from faceedit.train.attgan import (
    AttGANTrainConfig,
    load_train_config,
    read_losses,
    train_attgan,
)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    imgs, labels = toy_faces(32, 32, seed=0)
    attr = write_custom_dataset(root / "imgs", imgs, labels, TOY_ATTRS)
    return root / "imgs", attr


def tiny_cfg(toy_data, out, **kw) -> AttGANTrainConfig:
    data_path, attr = toy_data
    base = dict(
        data="custom",
        data_path=str(data_path),
        attr_path=str(attr),
        attrs=TOY_ATTRS,
        img_size=32,
        enc_dim=8,
        dec_dim=8,
        dis_dim=8,
        dis_fc_dim=16,
        enc_layers=3,
        dec_layers=3,
        dis_layers=3,
        inject_layers=1,
        batch_size=8,
        n_d=1,
        lr=1e-3,
        n_samples=2,
        save_interval=1000,
        sample_interval=1000,
        log_interval=1,
        out_dir=str(out),
        progress=False,
        tensorboard=False,
        max_steps=8,
    )
    base.update(kw)
    return AttGANTrainConfig(**base)


def test_losses_fall(toy_data, tmp_path) -> None:
    cfg = tiny_cfg(toy_data, tmp_path / "run", max_steps=40, tensorboard=True, sample_interval=40)
    run = train_attgan(cfg)
    rows = read_losses(run)
    rec = [r["g/rec"] for r in rows if "g/rec" in r]
    cls = [r["d/cls"] for r in rows if "d/cls" in r]
    assert len(rec) == 20 and len(cls) == 20
    assert sum(rec[-4:]) / 4 < 0.7 * sum(rec[:4]) / 4
    assert sum(cls[-4:]) / 4 < sum(cls[:4]) / 4
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "samples" / "step_00000040.png").is_file()
    assert any((run / "tb").iterdir())  # TensorBoard event file
    assert (run / "setting.txt").is_file() and (run / "config.yaml").is_file()
    # the training checkpoint loads by itself (its setting travels inside it)
    import shutil

    import faceedit

    lone = tmp_path / "lone" / "checkpoint.pt"
    lone.parent.mkdir()
    shutil.copy(run / "checkpoint.pt", lone)
    loaded = faceedit.load(lone)
    final = faceedit.load(run / "model")
    assert loaded.attrs == TOY_ATTRS and loaded.config == final.config
    for k, v in final.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


@pytest.mark.parametrize(
    "mode,style_dim,norm",
    [("wgan", 0, "instancenorm"), ("lsgan", 2, "instancenorm"), ("dcgan", 0, "batchnorm")],
)
def test_resume_gives_identical_next_steps(toy_data, tmp_path, mode, style_dim, norm) -> None:
    kw = dict(
        max_steps=6,
        mode=mode,
        style_dim=style_dim,
        b_distribution="uniform",
        dis_norm=norm,
        enc_norm="switchnorm" if norm == "batchnorm" else "batchnorm",
        num_workers=1 if style_dim else 0,  # worker processes must not change the order
    )
    full = train_attgan(tiny_cfg(toy_data, tmp_path / "full", **kw))
    part_cfg = tiny_cfg(toy_data, tmp_path / "part", **kw)
    train_attgan(part_cfg, stop_after=3)
    assert torch.load(tmp_path / "part" / "checkpoint.pt")["step"] == 3
    resumed = train_attgan(part_cfg, resume=True)
    a = {r["step"]: r for r in read_losses(full)}
    b = {r["step"]: r for r in read_losses(resumed)}
    for step in (4, 5, 6):
        assert a[step] == b[step]
    ca = torch.load(full / "checkpoint.pt")
    cb = torch.load(resumed / "checkpoint.pt")
    for net in ("G", "D"):
        for k in ca[net]:
            assert torch.equal(ca[net][k], cb[net][k]), k


def test_yaml_config_and_errors(toy_data, tmp_path) -> None:
    cfg = tiny_cfg(toy_data, tmp_path / "y")
    import yaml

    data = dataclasses.asdict(cfg)
    data["attrs"] = list(cfg.attrs)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert load_train_config(tmp_path / "c.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("lambda_9: 3\n")
    with pytest.raises(FaceeditError, match="lambda_9"):
        load_train_config(tmp_path / "bad.yaml")
    with pytest.raises(FaceeditError, match="mode"):
        tiny_cfg(toy_data, tmp_path, mode="hinge")
    with pytest.raises(FaceeditError, match="fewer than one batch"):
        train_attgan(tiny_cfg(toy_data, tmp_path / "z", batch_size=64))


def test_conflict_rules_travel_from_the_config_into_the_saved_model(toy_data, tmp_path) -> None:
    from faceedit.checkpoints import load
    from faceedit.train.attgan import build_model

    with pytest.raises(FaceeditError, match="conflict_rules 'hats'"):
        tiny_cfg(toy_data, tmp_path, conflict_rules="hats")
    model = build_model(tiny_cfg(toy_data, tmp_path, conflict_rules="avatars"))
    assert model.G.config.conflict_rules == "avatars"
    model.save_pretrained(tmp_path / "m")
    assert load(tmp_path / "m").G.config.conflict_rules == "avatars"
    assert build_model(tiny_cfg(toy_data, tmp_path)).G.config.conflict_rules == "release"
