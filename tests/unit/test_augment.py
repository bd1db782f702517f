"""Heavy augmentation for the evaluation judge (faceedit.data.augment): deterministic per
seed, shapes and ranges kept, each step changes the images, and a judge's training run is
reproducible and says what it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceedit.data import augment as G
from faceedit.data.avatars import BACKGROUND, render_record, sample_records


@pytest.fixture(scope="module")
def renders() -> np.ndarray:
    return np.stack([render_record(r, 32) for r in sample_records(6, seed=11)])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", ["heavy", "heavy-strict"])
def test_same_seed_same_batch_other_seed_other_batch(renders, name) -> None:
    augment = G.batch_augmenter(name)
    a = augment(renders, _gen(5))
    b = augment(renders, _gen(5))
    c = augment(renders, _gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1


def test_the_two_recipes_differ(renders) -> None:
    strict = G.batch_augmenter("heavy-strict")(renders, _gen(5))
    assert not torch.equal(G.heavy_augment(renders, _gen(5)), strict)


def test_patch_noise_stays_in_one_rectangle(renders) -> None:
    x = G.to_unit(renders)
    changed = (G.patch_noise(x, _gen(2), p=1.0) != x).any(1)  # [N, H, W]
    for img in changed:
        rows, cols = torch.nonzero(img, as_tuple=True)
        assert len(rows) > 0
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box <= (24 / 64 * 32 + 1) ** 2


def test_augmenting_does_not_touch_the_global_rng(renders) -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    G.heavy_augment(renders, _gen(1))
    assert torch.equal(torch.rand(3), expected)


def test_every_step_with_probability_one_changes_the_images(renders) -> None:
    x = G.to_unit(renders)
    mask = G.background_mask(renders, BACKGROUND)
    assert mask.any() and not mask.all()
    steps = {
        "background": lambda g: G.replace_background(x, mask, g, p=1.0),
        "local noise": lambda g: G.colour_segment_noise(x, g, p=1.0),
        "patch noise": lambda g: G.patch_noise(x, g, p=1.0),
        "ghost": lambda g: G.ghost_blend(x, g, p=1.0),
        "geometry": lambda g: G.scale_and_shift(x, g, p=1.0),
        "resample": lambda g: G.resample_chain(x, g, p=1.0),
        "blur": lambda g: G.random_blur(x, g, p=1.0),
        "colour": lambda g: G.colour_jitter(x, g, p=1.0),
        "noise": lambda g: G.gaussian_noise(x, g, p=1.0),
        "jpeg": lambda g: G.jpeg(x, g, p=1.0),
    }
    for name, step in steps.items():
        out = step(_gen(3))
        assert out.shape == x.shape, name
        assert (out - x).abs().amax() > 0.01, f"{name} left the images as they were"
        assert torch.equal(out, step(_gen(3))), f"{name} is not deterministic"
        # probability zero: the step is the identity
    assert torch.equal(G.random_blur(x, _gen(3), p=0.0), x)
    assert torch.equal(G.jpeg(x, _gen(3), p=0.0), x)


def test_background_replacement_leaves_the_face_alone(renders) -> None:
    x = G.to_unit(renders)
    mask = G.background_mask(renders, BACKGROUND)
    out = G.replace_background(x, mask, _gen(0), p=1.0)
    face = ~mask.expand_as(x)
    assert torch.equal(out[face], x[face])


def test_unknown_augmentation_is_refused() -> None:
    from faceedit.errors import FaceeditError
    from faceedit.train.oracle import OracleTrainConfig

    assert G.batch_augmenter("none") is None
    with pytest.raises(ValueError, match="heavy"):
        G.batch_augmenter("medium")
    with pytest.raises(FaceeditError, match="augment"):
        OracleTrainConfig(augment="medium")
    with pytest.raises(FaceeditError, match="role"):
        OracleTrainConfig(role="referee")


def test_heavy_training_is_deterministic_and_recorded(tmp_path) -> None:
    """Two heavy runs with one seed give the same weights and losses; a default run gives
    other weights (the augmentation is really applied) and records the oracle role."""
    import json

    import faceedit
    from faceedit.data.avatars import load_arrays, write_dataset
    from faceedit.train.oracle import OracleTrainConfig, default_oracle_config, train_oracle

    data = tmp_path / "data"
    write_dataset(data, n=100, size=16, seed=3, workers=1, progress=False)
    model_config = default_oracle_config(load_arrays(data, "train"), channels=(8, 16), hidden=16)
    cfg = dict(epochs=1, batch_size=16, seed=2)
    runs = {
        name: train_oracle(
            data, tmp_path / name, OracleTrainConfig(**cfg, **kw), model_config, progress=False
        )
        for name, kw in {
            "heavy1": {"augment": "heavy", "role": "judge"},
            "heavy2": {"augment": "heavy", "role": "judge"},
            "plain": {},
        }.items()
    }
    sd = {k: faceedit.load(r.out_dir).state_dict() for k, r in runs.items()}
    assert all(torch.equal(sd["heavy1"][k], sd["heavy2"][k]) for k in sd["heavy1"])
    assert any(not torch.equal(sd["heavy1"][k], sd["plain"][k]) for k in sd["plain"])
    assert runs["heavy1"].losses == runs["heavy2"].losses
    meta = {
        k: json.loads((r.out_dir / "config.json").read_text())["metadata"] for k, r in runs.items()
    }
    assert (
        meta["heavy1"]["role"].startswith("evaluation judge") and meta["heavy1"]["data_seed"] == 3
    )
    assert meta["heavy1"]["train_config"]["augment"] == "heavy"
    assert meta["plain"]["role"].startswith("attribute reader")
