"""Training data loading on the bad-input matrix (issue 7): every image either loads as
``[3, S, S]`` in [-1, 1] or is refused by name; a dataset skips the refused ones with a
warning naming each, and never stops on them."""

from __future__ import annotations

import logging

import pytest
import torch

from faceedit.data.celeba import AttributeImages
from faceedit.errors import ImageError
from tests.helpers.bad_images import bad_image_files


def test_each_bad_image(tmp_path, caplog):
    cases = bad_image_files(tmp_path / "images")
    names = sorted(cases)
    attr = tmp_path / "list_attr_custom.txt"
    rows = [f"{n} {'1' if i % 2 else '-1'}" for i, n in enumerate(names)]
    attr.write_text("\n".join([str(len(names)), "Smiling", *rows]) + "\n")
    ds = AttributeImages("custom", tmp_path / "images", attr, ["Smiling"], 32, mode="all")
    for i, name in enumerate(names):
        case = cases[name]
        if case.unreadable is None:
            img = ds.load_image(i)
            assert img.shape == (3, 32, 32) and torch.isfinite(img).all(), name
            assert img.min() >= -1 and img.max() <= 1, name
        else:
            with pytest.raises(ImageError) as info:
                ds.load_image(i)
            assert name in str(info.value) and case.unreadable in str(info.value)
    # the dataset hands out a readable neighbour instead, and says which file it skipped
    with caplog.at_level(logging.WARNING):
        for i in range(len(names)):
            img, att = ds[i]
            assert img.shape == (3, 32, 32) and att.shape == (1,)
    skipped = {n for n in names if cases[n].unreadable}
    assert ds.bad_files == skipped
    for name in skipped:
        assert any(name in r.getMessage() for r in caplog.records), name
    # the EXIF-rotated photo is read upright: portrait, like the original
    from faceedit.data.images import read_image
    from tests.helpers.bad_images import GRACE

    assert read_image(cases["rotated.jpg"].path).shape == read_image(GRACE).shape
