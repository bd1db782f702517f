"""Partial edits, the judge's training negatives (faceedit.data.partial_edits): they stay a
faint or noisy trace of the counterfactual, change nothing outside what the counterfactual
changes, are reproducible per seed, and a judge's run with them is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceedit.data import partial_edits as P
from faceedit.data.avatars import attributes, edit_attribute, render_record, sample_records


@pytest.fixture(scope="module")
def pairs() -> tuple[list, np.ndarray, np.ndarray]:
    records = sample_records(12, seed=13)
    sources = np.stack([render_record(r, 32) for r in records])
    return records, sources, P.render_counterfactuals(records, 32, seed=4)


def test_each_counterfactual_flips_its_target(pairs) -> None:
    records, sources, truths = pairs
    targets = P.flip_targets(records, seed=4)
    for record, target, source, truth in zip(records, targets, sources, truths, strict=True):
        assert target is not None
        flipped = edit_attribute(record, target, attributes(record)[target] != 1)
        assert attributes(flipped)[target] == -attributes(record)[target]
        assert np.array_equal(truth, render_record(flipped, 32))
        assert (truth != source).any()
    assert P.flip_targets(records, seed=4) == targets
    assert P.flip_targets(records, seed=5) != targets


def test_probability_zero_leaves_the_sources(pairs) -> None:
    _, sources, truths = pairs
    out = P.partial_edits(sources, truths, torch.Generator().manual_seed(0), 0.0)
    assert np.array_equal(out, sources)


def test_partial_edits_stay_nearer_the_source_and_inside_the_region(pairs) -> None:
    _, sources, truths = pairs
    out = P.partial_edits(sources, truths, torch.Generator().manual_seed(0), 1.0)
    src, tru, got = (a.astype(np.float64) for a in (sources, truths, out))
    diff = np.abs(src - tru).max(-1)
    region = diff > P.CHANGE_THRESHOLD
    assert (out != sources).any((1, 2, 3)).all()  # every image was replaced
    # outside the changed region a blend moves a pixel by at most alpha * threshold
    moved = np.abs(got - src).max(-1)
    assert moved[~region].max() <= P.MAX_ALPHA * P.CHANGE_THRESHOLD + 1
    # a blend is never more than max_alpha of the way to the truth: compare per image
    for i in range(len(out)):
        d = region[i]
        towards = np.abs(got[i][d] - src[i][d]).sum() / np.abs(tru[i][d] - src[i][d]).sum()
        noisy = np.abs(got[i][d] - src[i][d]).std() > 10
        assert noisy or towards <= P.MAX_ALPHA + 0.02, (i, towards)
    kinds = [np.abs(got[i][region[i]] - src[i][region[i]]).std() > 10 for i in range(len(out))]
    assert 0 < sum(kinds) < len(kinds)  # both kinds occur


def test_same_seed_same_edits(pairs) -> None:
    _, sources, truths = pairs
    a = P.partial_edits(sources, truths, torch.Generator().manual_seed(3), 0.5)
    b = P.partial_edits(sources, truths, torch.Generator().manual_seed(3), 0.5)
    c = P.partial_edits(sources, truths, torch.Generator().manual_seed(4), 0.5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_settings_are_refused() -> None:
    from faceedit.errors import FaceeditError
    from faceedit.train.oracle import OracleTrainConfig

    with pytest.raises(FaceeditError, match="hard_negatives"):
        OracleTrainConfig(hard_negatives=1.5)
    with pytest.raises(FaceeditError, match="past half-way"):
        OracleTrainConfig(hard_negatives=0.3, hard_negative_alpha=0.6)


def test_training_with_hard_negatives_uses_them_and_records_it(tmp_path) -> None:
    import json

    import faceedit
    from faceedit.data.avatars import load_arrays, write_dataset
    from faceedit.train.oracle import OracleTrainConfig, default_oracle_config, train_oracle

    data = tmp_path / "data"
    write_dataset(data, n=60, size=16, seed=3, workers=1, progress=False)
    model_config = default_oracle_config(load_arrays(data, "train"), channels=(8, 16), hidden=16)
    runs = {
        name: train_oracle(
            data,
            tmp_path / name,
            OracleTrainConfig(epochs=1, batch_size=16, seed=2, hard_negatives=p, role="judge"),
            model_config,
            progress=False,
        )
        for name, p in {"plain": 0.0, "hard": 0.5}.items()
    }
    sd = {k: faceedit.load(r.out_dir).state_dict() for k, r in runs.items()}
    assert any(not torch.equal(sd["plain"][k], sd["hard"][k]) for k in sd["plain"])
    meta = json.loads((runs["hard"].out_dir / "config.json").read_text())["metadata"]
    assert meta["train_config"]["hard_negatives"] == 0.5
    assert meta["lineage"] == []  # renders only: no model made its training images
