"""Ground-truth pixel metrics of edits (faceedit.eval.metrics): region gain, PSNR outside
the change region, pooled summaries."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.data.avatars import edit_attribute, render_record, sample_records
from faceedit.eval.metrics import (
    REGION_THRESHOLD,
    PixelErrors,
    change_region,
    edit_pixel_errors,
    outside_region_psnr,
    psnr_uint8,
    region_gain,
)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A rendered avatar and its ground-truth counterfactual with glasses turned on/off."""
    record = sample_records(8, seed=11)[0]
    on = edit_attribute(record, "Eyeglasses", record["accessories"] == "none")
    return render_record(record, 32), render_record(on, 32)


def test_doing_nothing_scores_zero_and_the_truth_scores_one(pair) -> None:
    source, truth = pair
    assert change_region(source, truth).any()
    assert region_gain(source, source, truth)[0] == pytest.approx(0.0)
    assert region_gain(truth, source, truth)[0] == pytest.approx(1.0)
    # outside D the truth differs from the source by at most the threshold (anti-aliased
    # edges), so its PSNR there is at least that of an error of REGION_THRESHOLD everywhere
    bound = 10 * np.log10(255**2 / REGION_THRESHOLD**2)
    assert outside_region_psnr(truth, source, truth)[0] >= bound
    assert outside_region_psnr(source, source, truth)[0] == pytest.approx(100.0)
    assert edit_pixel_errors(truth, source, truth).truth_psnr[0] == pytest.approx(100.0)


def test_an_edit_worse_than_nothing_scores_negative(pair) -> None:
    source, truth = pair
    region = change_region(source, truth)
    worse = source.astype(np.int16)
    # push every pixel of D further from the truth than the source already is
    away = np.sign(source.astype(np.int16) - truth.astype(np.int16))
    worse[region] = np.clip(
        worse[region] + 60 * np.where(away[region] == 0, 1, away[region]), 0, 255
    )
    gain = region_gain(worse.astype(np.uint8), source, truth)[0]
    assert gain < 0


def test_noise_outside_the_region_lowers_only_the_outside_psnr(pair) -> None:
    source, truth = pair
    region = change_region(source, truth)
    edit = truth.copy()
    edit[~region] = 255 - edit[~region]
    errors = edit_pixel_errors(edit, source, truth)
    assert errors.region_gain[0] == pytest.approx(1.0)
    assert errors.outside_psnr[0] < 10


def test_region_threshold_ignores_small_differences() -> None:
    a = np.zeros((1, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 1] = REGION_THRESHOLD  # at the threshold: not a change
    b[0, 1, 2] = REGION_THRESHOLD + 1
    assert change_region(a, b).tolist() == [[False, True]]


def test_pooling_sums_squared_errors_before_the_ratio() -> None:
    """Two 1x2 edits, computed by hand: pooled gain = 1 - (sum SE_D edit) / (sum SE_D src)."""
    source = np.array([[[[0, 0, 0], [50, 50, 50]]], [[[0, 0, 0], [90, 90, 90]]]], np.uint8)
    truth = np.array([[[[0, 0, 0], [100, 100, 100]]], [[[0, 0, 0], [100, 100, 100]]]], np.uint8)
    # first: D pixel moved half-way (100 -> SE 3*25^2); outside pixel off by 10
    # second: D pixel overshoots the truth to 120 (SE 3*20^2 vs doing nothing 3*10^2)
    edit = np.array([[[[10, 10, 10], [75, 75, 75]]], [[[0, 0, 0], [120, 120, 120]]]], np.uint8)
    errors = edit_pixel_errors(edit, source, truth)
    se_edit = [3 * 25**2, 3 * 20**2]
    se_src = [3 * 50**2, 3 * 10**2]
    assert errors.se_region_edit.tolist() == se_edit
    assert errors.se_region_source.tolist() == se_src
    assert errors.region_gain.tolist() == pytest.approx([1 - 625 / 2500, 1 - 400 / 100])
    summary = errors.summary()
    assert summary["pooled_region_gain"] == pytest.approx(1 - sum(se_edit) / sum(se_src))
    assert summary["median_region_gain"] == pytest.approx(np.median([0.75, -3.0]))
    # outside D: the first edit's one pixel is 10 off on 3 channels, the second exact
    assert summary["pooled_outside_psnr"] == pytest.approx(
        10 * np.log10(255**2 / ((3 * 10**2 + 0) / (3 + 3)))
    )
    whole = ((edit.astype(float) - truth) ** 2).sum()
    assert summary["pooled_truth_psnr"] == pytest.approx(10 * np.log10(255**2 / (whole / 12)))
    assert errors.truth_psnr.tolist() == pytest.approx(psnr_uint8(edit, truth).tolist())
    # pooling two halves again gives the same figures as pooling all at once
    again = PixelErrors.concat([errors.select(np.array([0])), errors.select(np.array([1]))])
    assert again.summary() == pytest.approx(summary)


def test_an_empty_region_has_no_gain(pair) -> None:
    source, _ = pair
    errors = edit_pixel_errors(source, source, source)
    assert np.isnan(errors.region_gain[0])
    assert np.isnan(errors.summary()["pooled_region_gain"])


def test_shapes_are_checked(pair) -> None:
    source, truth = pair
    with pytest.raises(ValueError, match="one shape"):
        edit_pixel_errors(source[:8], source, truth)
