"""Fake edits (faceedit.eval.fakes): each is what it says, built only from the ground-truth
pair, and reproducible from its generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceedit.data.avatars import edit_attribute, render_record, sample_records
from faceedit.eval import fakes as K
from faceedit.eval.metrics import change_region, region_gain


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    record = sample_records(8, seed=11)[1]
    target = edit_attribute(record, "Smiling", record["mouth"] not in ("default", "smile"))
    return render_record(record, 64), render_record(target, 64)


def test_every_kind_is_made_and_reproducible(pair) -> None:
    source, truth = pair
    a = K.make_fakes(source, truth, torch.Generator().manual_seed(4))
    b = K.make_fakes(source, truth, torch.Generator().manual_seed(4))
    c = K.make_fakes(source, truth, torch.Generator().manual_seed(5))
    assert set(a) == set(K.FAKE_KINDS) | set(K.CONTROL_KINDS)
    for kind in a:
        assert a[kind].shape == source.shape and a[kind].dtype == np.uint8, kind
        assert np.array_equal(a[kind], b[kind]), kind
    assert not np.array_equal(a["noise"], c["noise"])
    assert np.array_equal(a["blend25"], c["blend25"])  # no randomness there


def test_blends_sit_between_source_and_truth(pair) -> None:
    source, truth = pair
    fakes = K.make_fakes(source, truth, torch.Generator().manual_seed(0))
    for kind, alpha in (("blend25", 0.25), ("blend50", 0.5)):
        # the region gain of a blend is 1 - (1 - alpha)^2 up to rounding
        gain = region_gain(fakes[kind], source, truth)[0]
        assert gain == pytest.approx(1 - (1 - alpha) ** 2, abs=0.01), kind


def test_noise_wash_stay_inside_the_region_and_blur_spreads(pair) -> None:
    source, truth = pair
    region = change_region(source, truth)
    assert 0 < region.mean() < 0.2  # a mouth: a small part of the face
    fakes = K.make_fakes(source, truth, torch.Generator().manual_seed(0))
    for kind in ("noise", "noise_opaque", "wash"):
        assert np.array_equal(fakes[kind][~region], source[~region]), kind
        assert not np.array_equal(fakes[kind][region], source[region]), kind
    # additive noise keeps the source underneath: its mean error there is sigma-sized
    diff = fakes["noise"][region].astype(float) - source[region]
    assert 20 < np.abs(diff).mean() < K.NOISE_SIGMA
    # the wash blends one flat colour in by WASH_ALPHA: solving for it gives one colour
    a = K.WASH_ALPHA
    colour = (fakes["wash"][region].astype(float) - (1 - a) * source[region]) / a
    assert np.abs(colour - colour.mean(0)).max() <= 1 / a  # rounding only
    assert np.abs(colour.mean(0) - truth[region].mean(0)).max() < 1
    # blurring removes detail: a smaller spread between neighbouring pixels
    step = np.abs(np.diff(fakes["blur"].astype(float), axis=1)).mean()
    assert step < 0.7 * np.abs(np.diff(source.astype(float), axis=1)).mean()
    assert np.array_equal(fakes["source"], source) and np.array_equal(fakes["truth"], truth)
