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
    resumed = train_attgan(part_cfg)  # the same command again: it resumes
    a = {r["step"]: r for r in read_losses(full)}
    b = {r["step"]: r for r in read_losses(resumed)}
    for step in (4, 5, 6):
        assert a[step] == b[step]
    ca = torch.load(full / "checkpoint.pt")
    cb = torch.load(resumed / "checkpoint.pt")
    for net in ("G", "D"):
        for k in ca["models"][net]:
            assert torch.equal(ca["models"][net][k], cb["models"][net][k]), k


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


def test_gaussian_blur_removes_pixel_noise_and_keeps_shapes() -> None:
    from faceedit.train.attgan import gaussian_blur

    n = 32
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).float()  # the highest frequency an image holds
    disc = (((yy - 15.5) ** 2 + (xx - 15.5) ** 2) < 64).float() * 2 - 1  # a head-sized shape
    img = torch.stack([checker, disc, torch.full((n, n), 0.3)])[None]
    out = gaussian_blur(img, 1.0)
    assert out.shape == img.shape
    assert out[0, 0].abs().max() < 0.05 * checker.abs().max()
    assert (out[0, 1] - disc).abs().mean() < 0.15  # only the rim of the disc softens
    assert torch.allclose(out[0, 2], img[0, 2])  # flat areas are untouched


def test_blur_sigma_is_drawn_per_step_within_range(toy_data, tmp_path) -> None:
    from faceedit.train.attgan import draw_blur_sigma

    cfg = tiny_cfg(toy_data, tmp_path, cls_blur=1.5)
    sigmas = [draw_blur_sigma(cfg, torch.Generator().manual_seed(s)) for s in range(50)]
    assert all(0.75 <= s <= 1.5 for s in sigmas) and len(set(sigmas)) == 50
    assert draw_blur_sigma(cfg, torch.Generator().manual_seed(3)) == sigmas[3]
    assert draw_blur_sigma(tiny_cfg(toy_data, tmp_path), torch.Generator()) == 0.0
    with pytest.raises(FaceeditError, match="cls_blur -1"):
        tiny_cfg(toy_data, tmp_path, cls_blur=-1.0)


def test_cls_blur_shows_the_classifier_blurred_reals_and_blurred_edits(
    toy_data, tmp_path, monkeypatch
) -> None:
    import faceedit.train.attgan as train_mod

    seen = []
    real_blur = train_mod.gaussian_blur

    def recording_blur(img, sigma):
        seen.append((img.requires_grad, sigma))
        return real_blur(img, sigma)

    monkeypatch.setattr(train_mod, "gaussian_blur", recording_blur)
    # n_d 1: step 1 trains the critic (blurred reals), step 2 the generator (blurred edits)
    run = train_attgan(tiny_cfg(toy_data, tmp_path / "b", cls_blur=2.0, max_steps=2))
    assert [grad for grad, _ in seen] == [False, True]  # reals carry no grad, edits do
    assert all(1.0 <= s <= 2.0 for _, s in seen)
    plain = tiny_cfg(toy_data, tmp_path / "p", max_steps=2)
    seen.clear()
    train_attgan(plain)
    assert seen == []
    blurred_rows, plain_rows = read_losses(run), read_losses(plain.out_dir)
    assert blurred_rows[1]["g/cls"] != plain_rows[1]["g/cls"]


@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_cls_fake_teaches_the_head_to_read_edits_as_their_source(toy_data, tmp_path, sigma) -> None:
    import torch.nn.functional as F

    from faceedit.train.attgan import (
        _critic_step,
        _DisStep,
        _StepInputs,
        build_model,
        gaussian_blur,
    )

    cfg = tiny_cfg(toy_data, tmp_path, cls_fake=0.5, dis_norm="instancenorm")
    model = build_model(cfg)
    G, D = model.G, model.D
    torch.manual_seed(0)
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    att_a = (torch.rand(4, len(cfg.attrs)) > 0.5).float()
    att_b = 1 - att_a
    x = _StepInputs(img, att_a, att_b, (att_a * 2 - 1) * 0.5, (att_b * 2 - 1) * 0.5, None, sigma)
    with torch.no_grad():
        fake = G(img, x.att_b_)
        view = gaussian_blur(fake, sigma) if sigma > 0 else fake
        # the edits, read against the attributes of the images they were made from
        want = F.binary_cross_entropy_with_logits(D.classify(view), att_a)
    opt = torch.optim.SGD(D.parameters(), lr=0.0)  # D stays as it is across both calls
    for concat in (True, False):  # one batched critic forward, or separate ones
        out = _critic_step(cfg, G, _DisStep(D), opt, x, torch.Generator().manual_seed(0), concat)
        assert out["d/cls_fake"] == pytest.approx(float(want), rel=1e-5)
        rest = out["d/adv"] + cfg.lambda_gp * out["d/gp"] + cfg.lambda_3 * out["d/cls"]
        assert out["d/loss"] == pytest.approx(rest + cfg.cls_fake * float(want), rel=1e-5)
    off = _critic_step(
        dataclasses.replace(cfg, cls_fake=0.0), G, _DisStep(D), opt, x, torch.Generator(), True
    )
    assert "d/cls_fake" not in off
    with pytest.raises(FaceeditError, match="cls_fake -1"):
        tiny_cfg(toy_data, tmp_path, cls_fake=-1.0)


def test_init_from_starts_from_a_trained_model_with_fresh_optimisers(toy_data, tmp_path) -> None:
    source = train_attgan(tiny_cfg(toy_data, tmp_path / "src", max_steps=4))
    # lr 0: the weights stay those of the source, so equality proves they were loaded
    tuned = train_attgan(
        tiny_cfg(toy_data, tmp_path / "ft", init_from=str(source), lr=0.0, max_steps=2)
    )
    src, ft = torch.load(source / "checkpoint.pt"), torch.load(tuned / "checkpoint.pt")
    assert ft["step"] == 2  # a new run, not a resume
    assert ft["optimizers"]["G"]["state"][0]["step"] == 1  # and new optimisers
    for net in ("G", "D"):
        for name, value in src["models"][net].items():
            if "running" in name or "num_batches" in name:
                continue  # batch-norm statistics move even at lr 0
            assert torch.equal(value, ft["models"][net][name]), name
    # a run that has not finished starts others from its latest checkpoint
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes((source / "checkpoint.pt").read_bytes())
    again = train_attgan(
        tiny_cfg(toy_data, tmp_path / "ft2", init_from=str(unfinished), lr=0.0, max_steps=2)
    )
    d_again = torch.load(again / "checkpoint.pt")["models"]["D"]
    assert all(torch.equal(v, d_again[k]) for k, v in src["models"]["D"].items())
    fresh = train_attgan(tiny_cfg(toy_data, tmp_path / "fresh", lr=0.0, max_steps=2))
    differs = torch.load(fresh / "checkpoint.pt")["models"]["G"]
    assert any(not torch.equal(src["models"]["G"][k], differs[k]) for k in differs)


def test_init_from_grows_attribute_injections_that_start_from_the_trained_function(
    toy_data, tmp_path
) -> None:
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.train.attgan import _init_from, build_model

    source = train_attgan(tiny_cfg(toy_data, tmp_path / "src", inject_layers=0, max_steps=4))
    tuned = train_attgan(
        tiny_cfg(toy_data, tmp_path / "ft", init_from=str(source), inject_layers=1, max_steps=3)
    )
    src, grown = load_trained(source).eval(), load_trained(tuned).eval()
    assert grown.config.G.inject_layers == 1
    # the widened decoder input: the trained rows first, then the attributes' new rows
    w_src = src.G.dec_layers[1].layers[0].weight
    w_grown = grown.G.dec_layers[1].layers[0].weight
    assert w_grown.shape[0] == w_src.shape[0] + len(TOY_ATTRS)
    assert w_grown[w_src.shape[0] :].abs().sum() > 0  # trained: a generator step moved them
    # at the start (lr 0) the grown generator computes exactly what the source does
    start = build_model(tiny_cfg(toy_data, tmp_path / "x", init_from=str(source), inject_layers=1))
    _init_from(start, str(source))
    start.eval()
    assert torch.equal(
        start.G.dec_layers[1].layers[0].weight[w_src.shape[0] :],
        torch.zeros_like(w_grown[w_src.shape[0] :]),
    )
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    b = torch.rand(4, len(TOY_ATTRS)) - 0.5
    with torch.no_grad():
        assert torch.allclose(start.G(x, b), src.G(x, b), atol=1e-6)
    # fewer injections than the source is not a growth: refused with the difference
    with pytest.raises(FaceeditError, match="G.inject_layers: 1 there, 0 here"):
        train_attgan(tiny_cfg(toy_data, tmp_path / "back", init_from=str(tuned), inject_layers=0))


def test_init_from_adds_style_controllers_that_start_from_the_trained_edits(
    toy_data, tmp_path
) -> None:
    """The attribute-style extension on a trained model: the controllers are new last
    input channels with zero weights, so the grown generator draws the trained edits
    whatever the controllers say, and fine-tuning with the style loss makes them matter."""
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.train.attgan import _init_from, build_model

    source = train_attgan(tiny_cfg(toy_data, tmp_path / "src", max_steps=4))
    src = load_trained(source).eval()
    start = build_model(tiny_cfg(toy_data, tmp_path / "x", init_from=str(source), style_dim=2))
    _init_from(start, str(source))
    start.eval()
    assert start.D.fc_style is not None  # the new style head, as built
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    b = torch.rand(4, len(TOY_ATTRS)) - 0.5
    styles = [torch.rand(4, len(TOY_ATTRS), 2) * 2 - 1 for _ in range(2)]
    with torch.no_grad():
        for theta in styles:
            assert torch.allclose(start.G(x, b, theta), src.G(x, b), atol=1e-6)
    tuned = train_attgan(
        tiny_cfg(toy_data, tmp_path / "ft", init_from=str(source), style_dim=2, max_steps=6)
    )
    grown = load_trained(tuned).eval()
    with torch.no_grad():
        apart = (grown.G(x, b, styles[0]) - grown.G(x, b, styles[1])).abs().max()
    assert apart > 1e-4  # trained: the controllers now change the drawing
    # style_init_scale: the controllers' rows start random at that multiple of the
    # attribute rows' spread, everything else stays the trained model's
    stirred = build_model(tiny_cfg(toy_data, tmp_path / "y", init_from=str(source), style_dim=2))
    _init_from(stirred, str(source), style_scale=0.5, gen=torch.Generator().manual_seed(0))
    n_style = len(TOY_ATTRS) * 2
    for i in (0, 1):  # the first layer and the one the attributes are injected into
        w, w_src = stirred.G.dec_layers[i].layers[0].weight, src.G.dec_layers[i].layers[0].weight
        assert torch.equal(w[:-n_style], w_src)
        spread = w_src[-len(TOY_ATTRS) :].std()
        assert 0.2 * spread < w[-n_style:].std() < 0.8 * spread
    stirred.eval()
    with torch.no_grad():
        assert (stirred.G(x, b, styles[0]) - stirred.G(x, b, styles[1])).abs().max() > 1e-3


def test_the_style_head_learns_at_its_own_rate(toy_data, tmp_path) -> None:
    from faceedit.train.attgan import _discriminator_groups, build_model

    cfg = tiny_cfg(toy_data, tmp_path / "r", style_dim=2, style_lr_mult=10.0, lr=1e-4)
    D = build_model(cfg).D
    rest, style = _discriminator_groups(D, cfg)
    assert {id(p) for p in style["params"]} == {id(p) for p in D.fc_style.parameters()}
    assert len(rest["params"]) + len(style["params"]) == len(list(D.parameters()))
    run = train_attgan(dataclasses.replace(cfg, max_steps=2))
    groups = torch.load(run / "checkpoint.pt")["optimizers"]["D"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    # at the default rate one group, as in checkpoints written before the option
    assert len(_discriminator_groups(D, dataclasses.replace(cfg, style_lr_mult=1.0))) == 1
    for bad in ({"style_lr_mult": 0.0}, {"style_init_scale": -1.0}):
        with pytest.raises(FaceeditError, match=next(iter(bad))):
            tiny_cfg(toy_data, tmp_path, **bad)


@pytest.mark.parametrize(
    ("before", "after", "layer"),
    [
        (dict(shortcut_layers=1, inject_layers=1), dict(shortcut_layers=2, inject_layers=1), 2),
        (dict(shortcut_layers=1, inject_layers=0), dict(shortcut_layers=2, inject_layers=2), 2),
    ],
    ids=["shortcut", "shortcut-and-injection"],
)
def test_init_from_grows_shortcuts_that_start_from_the_trained_function(
    toy_data, tmp_path, before, after, layer
) -> None:
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.train.attgan import _init_from, build_model

    source = train_attgan(tiny_cfg(toy_data, tmp_path / "src", max_steps=2, **before))
    src = load_trained(source).eval()
    start = build_model(tiny_cfg(toy_data, tmp_path / "x", **after))
    _init_from(start, str(source))
    start.eval()
    n_trained = src.G.dec_layers[layer].layers[0].weight.shape[0]
    new_rows = start.G.dec_layers[layer].layers[0].weight[n_trained:]
    assert new_rows.shape[0] > 0 and torch.equal(new_rows, torch.zeros_like(new_rows))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    b = torch.rand(4, len(TOY_ATTRS)) - 0.5
    with torch.no_grad():
        assert torch.allclose(start.G(x, b), src.G(x, b), atol=1e-6)


def test_init_from_refuses_a_shortcut_that_would_land_before_trained_injections(
    toy_data, tmp_path
) -> None:
    source = train_attgan(
        tiny_cfg(toy_data, tmp_path / "src", shortcut_layers=1, inject_layers=2, max_steps=1)
    )
    grown = tiny_cfg(
        toy_data, tmp_path / "g", init_from=str(source), shortcut_layers=2, inject_layers=2
    )
    with pytest.raises(FaceeditError, match="G.shortcut_layers: 1 there, 2 here"):
        train_attgan(grown)


def test_init_from_refuses_other_architectures_and_missing_models(toy_data, tmp_path) -> None:
    source = train_attgan(tiny_cfg(toy_data, tmp_path / "src", max_steps=2))
    wider = tiny_cfg(toy_data, tmp_path / "w", init_from=str(source), enc_dim=16)
    with pytest.raises(FaceeditError, match="init_from .*G.enc_dim: 8 there, 16 here"):
        train_attgan(wider)
    with pytest.raises(FaceeditError, match="init_from: .*no-such-model"):
        train_attgan(tiny_cfg(toy_data, tmp_path / "m", init_from=str(tmp_path / "no-such-model")))
    oracle_like = tmp_path / "gen_only"
    from faceedit.train.attgan import build_model

    build_model(tiny_cfg(toy_data, tmp_path)).G.save_pretrained(oracle_like)
    with pytest.raises(FaceeditError, match="needs an AttGAN with its discriminator"):
        train_attgan(tiny_cfg(toy_data, tmp_path / "g", init_from=str(oracle_like)))
    # a release file that holds G only: refused in one line, not a crash on the missing D
    import json

    from faceedit.checkpoints.attgan import save_release_checkpoint, setting_from_config

    model = build_model(tiny_cfg(toy_data, tmp_path))
    release = tmp_path / "release" / "checkpoint" / "weights.3.pth"
    release.parent.mkdir(parents=True)
    (tmp_path / "release" / "setting.txt").write_text(json.dumps(setting_from_config(model)))
    save_release_checkpoint(model, release, with_D=False)
    with pytest.raises(FaceeditError, match="not a generator only"):
        train_attgan(tiny_cfg(toy_data, tmp_path / "r", init_from=str(release.parent)))


def test_a_run_edits_while_it_trains_and_after(toy_data, tmp_path) -> None:
    from faceedit.editing.methods import attgan_editor as load_attgan
    from faceedit.errors import EditError

    cfg = tiny_cfg(toy_data, tmp_path / "run", max_steps=4)
    train_attgan(cfg, stop_after=2)  # only checkpoint.pt so far
    image = (torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy()
    during = load_attgan(cfg.out_dir)
    assert during.edit(image, {"Eyeglasses": 1.0}).image.shape == (1, 32, 32, 3)
    state = torch.load(tmp_path / "run" / "checkpoint.pt")
    assert all(torch.equal(v, state["models"]["G"][k]) for k, v in during.G.state_dict().items())
    run = train_attgan(cfg)  # resumed to the end: model/ is what the run left
    after = load_attgan(run)
    assert after.edit(image, {"Eyeglasses": -1.0}).image.shape == (1, 32, 32, 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EditError, match="empty: no weights"):
        load_attgan(empty)
