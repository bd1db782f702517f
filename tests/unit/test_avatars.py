"""The avatar domain: balanced sampler, labels that match what is visible, rendering,
counterfactuals and the dataset writer (faceedit.data.avatars)."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pytest

from faceedit.data import avatars as A
from faceedit.errors import DataError, FaceeditError


def _min_share(records: list[dict]) -> tuple[str, float]:
    shares = A.attribute_shares(records)
    name = min(shares, key=lambda a: min(shares[a], 1 - shares[a]))
    return name, min(shares[name], 1 - shares[name])


# ------------------------------------------------------------------------ sampler


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_attribute_has_at_least_20_percent_of_each_value(seed: int) -> None:
    for n in [A.BALANCE_MIN_N, 101, 137, 250, 999, 5000]:
        name, share = _min_share(A.sample_records(n, seed))
        assert share >= 0.2, f"n={n} seed={seed}: {name} has only {share:.3f}"


def test_balance_holds_for_every_size_from_the_guaranteed_minimum() -> None:
    for n in range(A.BALANCE_MIN_N, 400, 3):
        name, share = _min_share(A.sample_records(n, n))
        assert share >= 0.2, f"n={n}: {name} has only {share:.3f}"


def test_counts_are_exact_apportionments() -> None:
    shares = {"a": 0.22, "b": 0.08, "c": 0.70}
    for n in [1, 7, 99, 100, 1234]:
        counts = A._counts(n, shares)
        assert sum(counts.values()) == n
        for k, v in shares.items():
            assert abs(counts[k] - n * v) < 1


def test_sampler_is_deterministic_and_seed_dependent() -> None:
    a, b, c = A.sample_records(300, 5), A.sample_records(300, 5), A.sample_records(300, 6)
    assert a == b
    assert a != c
    assert all(A.validate_record(r) == r for r in a)
    # every value of every parameter is reachable in a large sample
    big = A.sample_records(5000, 0)
    for key, allowed in A.PARAMETERS.items():
        assert {r[key] for r in big} == set(allowed), key


def test_sampler_rejects_bad_n() -> None:
    for n in [0, -3, 2.5]:
        with pytest.raises(FaceeditError, match="positive integer"):
            A.sample_records(n, 0)  # type: ignore[arg-type]


def test_labels_describe_only_what_is_visible() -> None:
    records = A.sample_records(2000, 3)
    hair_attrs = ("Black_Hair", "Blond_Hair", "Brown_Hair")
    for r in records:
        attrs = A.attributes(r)
        assert set(attrs.values()) <= {-1, 1}
        if r["top"] in A.HAT_TOPS or r["top"] == A.NO_TOP:
            assert all(attrs[a] == -1 for a in hair_attrs), r
        # hair colours, hats and bald heads with no hair exclude one another
        on = [a for a in (*hair_attrs, "Wearing_Hat") if attrs[a] == 1]
        assert len(on) <= 1, (r, on)
        if attrs["Mustache"] == 1:
            assert attrs["No_Beard"] == 1
    # under a hat (hijab included) the hair colour is not in the labels at all
    hijab = A.counterfactual(records[0], top="hijab", hairColor="2c1b18")
    assert A.attributes(A.counterfactual(hijab, hairColor="ecdcbf")) == A.attributes(hijab)


# ---------------------------------------------------------------- counterfactuals


def test_counterfactual_changes_only_the_named_parameters() -> None:
    record = A.sample_records(1, 11)[0]
    new_mouth = next(m for m in A.MOUTHS if m != record["mouth"])
    cf = A.counterfactual(record, mouth=new_mouth)
    assert cf["mouth"] == new_mouth
    assert {k for k in record if record[k] != cf[k]} == {"mouth"}
    assert record["mouth"] != new_mouth  # the input is not modified
    with pytest.raises(DataError, match="unknown parameter 'smile'"):
        A.counterfactual(record, smile="yes")
    with pytest.raises(DataError, match="mouth='grin' is not one of"):
        A.counterfactual(record, mouth="grin")
    with pytest.raises(DataError, match="missing parameter"):
        A.validate_record({k: v for k, v in record.items() if k != "eyes"})


def _part_box(name: str, size: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) of a style component, from the style definition."""
    style = json.loads(
        (resources.files("dicebear_styles") / f"{A.STYLE_NAME}.json").read_text("utf-8")
    )
    canvas = style["canvas"]
    element = next(e for e in canvas["elements"] if e.get("name") == name)
    tx, ty = (float(v) for v in re.findall(r"[-\d.]+", element["attributes"]["transform"]))
    comp = style["components"][name]
    scale = size / canvas["width"]
    return (
        int(tx * scale) - 1,
        int(ty * scale) - 1,
        int((tx + comp["width"]) * scale) + 2,
        int((ty + comp["height"]) * scale) + 2,
    )


def _changed_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 8)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize(
    ("param", "value", "part"),
    [("mouth", "screamOpen", "mouth"), ("eyes", "hearts", "eyes"), ("eyes", "xDizzy", "eyes")],
)
def test_counterfactual_pixels_change_only_inside_the_part(param, value, part) -> None:
    size = 64
    record = A.counterfactual(
        A.sample_records(1, 2)[0], top="shortFlat", facialHair="none", accessories="none"
    )
    record = A.counterfactual(record, mouth="serious", eyes="default")
    before = A.render_record(record, size)
    after = A.render_record(A.counterfactual(record, **{param: value}), size)
    changed = _changed_box(before, after)
    assert changed is not None, "the edit changed no pixel"
    x0, y0, x1, y1 = _part_box(part, size)
    cx0, cy0, cx1, cy1 = changed
    assert x0 <= cx0 and y0 <= cy0 and cx1 <= x1 and cy1 <= y1, (changed, (x0, y0, x1, y1))


def test_hidden_parameters_change_no_pixel_and_visible_ones_do() -> None:
    record = A.sample_records(1, 4)[0]
    hat = A.counterfactual(record, top="hijab", hairColor="2c1b18")
    img = A.render_record(hat, 32)
    assert np.array_equal(img, A.render_record(A.counterfactual(hat, hairColor="e8e1e1"), 32))
    hair = A.counterfactual(hat, top="bob")
    assert not np.array_equal(
        A.render_record(hair, 32), A.render_record(A.counterfactual(hair, hairColor="e8e1e1"), 32)
    )
    assert A.attributes(hair)["Black_Hair"] == 1
    assert A.attributes(A.counterfactual(hair, hairColor="e8e1e1"))["Black_Hair"] == -1


# --------------------------------------------------------------------- rendering


def test_render_record_shape_background_and_determinism() -> None:
    record = A.sample_records(1, 9)[0]
    img = A.render_record(record, 48)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    background = tuple(int(A.BACKGROUND[i : i + 2], 16) for i in (0, 2, 4))
    assert tuple(img[0, 0]) == background and tuple(img[0, -1]) == background
    assert A.render_png(record, 48) == A.render_png(dict(record), 48)
    # every visible option is explicit: the dicebear seed only names SVG ids
    svg = A.render_svg(record)
    assert A.DICEBEAR_SEED and "hash" not in svg
    for bad in [0, 7, 5000, 32.0]:
        with pytest.raises(FaceeditError, match="image size"):
            A.render_record(record, bad)  # type: ignore[arg-type]


def test_dicebear_seed_does_not_change_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    record = A.sample_records(1, 12)[0]
    img = A.render_record(record, 32)
    monkeypatch.setattr(A, "DICEBEAR_SEED", "another seed")
    assert np.array_equal(img, A.render_record(record, 32))


# ----------------------------------------------------------------------- writer


def test_write_dataset_files_and_formats(tmp_path) -> None:
    ds = A.write_dataset(tmp_path / "ds", n=40, size=32, seed=3, workers=1, progress=False)
    root = ds.root
    files = sorted(p.name for p in (root / A.IMAGE_DIR).iterdir())
    assert files == [A.image_name(i) for i in range(40)]
    from PIL import Image

    with Image.open(root / A.IMAGE_DIR / files[5]) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (32, 32)

    names, rows = A.read_attributes(root)
    assert names == list(A.ATTRIBUTE_NAMES)
    params = A.read_params(root)
    records = A.sample_records(40, 3)
    assert list(params) == files and list(params.values()) == records
    for name, record in params.items():
        attrs = A.attributes(record)
        assert rows[name] == [attrs[a] for a in names]
    first = (root / A.ATTR_FILE).read_text().splitlines()
    assert first[0] == "40" and first[1].split() == names

    split = [line.split() for line in (root / A.SPLIT_FILE).read_text().splitlines()]
    assert [s[0] for s in split] == files
    assert [sum(s[1] == str(k) for s in split) for k in range(3)] == [32, 4, 4]
    meta = json.loads((root / A.META_FILE).read_text())
    assert meta["n"] == 40 and meta["seed"] == 3 and meta["attribute_names"] == names
    assert ds.split_counts == {"train": 32, "val": 4, "test": 4}
    # no temporary directory is left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_write_dataset_refuses_bad_outputs_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    with pytest.raises(FaceeditError, match="parent directory .* does not exist"):
        A.write_dataset(tmp_path / "no" / "ds", n=4, size=16, workers=1, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FaceeditError, match="non-empty directory"):
        A.write_dataset(tmp_path / "full", n=4, size=16, workers=1, progress=False)
    with pytest.raises(FaceeditError, match="workers"):
        A.write_dataset(tmp_path / "w", n=4, size=16, workers=0, progress=False)

    calls = []

    def failing(record, size):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("disk full")
        return b"png"

    monkeypatch.setattr(A, "render_png", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        A.write_dataset(tmp_path / "half", n=10, size=16, workers=1, progress=False, chunk=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_readers_name_the_file_and_line(tmp_path) -> None:
    bad = tmp_path / "params.jsonl"
    bad.write_text('{"file": "a.png", "params": {"top": "bob"}}\n')
    with pytest.raises(DataError, match=r"params.jsonl:1: missing parameter"):
        A.read_params(bad)
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text("1\nSmiling Bald\na.png 1 0\n")
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:3: expected a file name and 2"):
        A.read_attributes(attr)
    with pytest.raises(DataError, match="no such file"):
        A.read_params(tmp_path / "missing.jsonl")


def test_direct_svg_path_equals_dicebears_checked_avatar() -> None:
    records = A.sample_records(40, 21)
    records += [A.counterfactual(records[0], top=t) for t in A.PARAMETERS["top"]]
    for r in records:
        assert A.render_svg(r) == A.render_svg(r, check_options=True)


def _visibly_different(a: np.ndarray, b: np.ndarray) -> bool:
    # anti-aliased edges of an occluder may let a hidden part tint a pixel by a few levels
    return bool((np.abs(a.astype(int) - b.astype(int)) > 24).any())


def test_hidden_parameters_change_no_pixel_and_listed_ones_do() -> None:
    # hidden (not in visible_parameters) => no value changes a pixel, on random records;
    # "cry" and "eyeRoll" peek out from behind opaque lenses (documented exceptions)
    peeking = ("cry", "eyeRoll")
    for record in A.sample_records(40, 8):
        visible = set(A.visible_parameters(record))
        img = A.render_record(record, 32)
        for key in set(A.PARAMETERS) - visible:
            for other in [v for v in A.PARAMETERS[key] if v not in (record[key], *peeking)][:3]:
                cf = A.render_record(A.counterfactual(record, **{key: other}), 32)
                assert not _visibly_different(img, cf), (key, other, record)
    # listed => changes pixels, on faces chosen to cover each hiding rule
    records = A.sample_records(4, 9)
    chosen = [
        A.counterfactual(records[0], accessories="kurt", eyes="closed"),
        A.counterfactual(records[1], top="winterHat02", clothes="hoodie"),
        A.counterfactual(records[2], top=A.NO_TOP, accessories="none", facialHair="none"),
        A.counterfactual(
            records[3],
            top="bob",
            clothes="graphicShirt",
            clothesColor="262e33",
            facialHair="beardLight",
        ),
    ]
    for record in chosen:
        visible = set(A.visible_parameters(record))
        # 64 px: opaque lenses leave only a few pixels of the eyebrows
        img = A.render_record(record, 64)
        for key in visible - {"background"}:
            other = next(v for v in A.PARAMETERS[key] if v not in (record[key], *peeking))
            cf = A.render_record(A.counterfactual(record, **{key: other}), 64)
            assert _visibly_different(img, cf), (key, other, record)
    kurt = chosen[0]
    assert "eyes" not in A.visible_parameters(kurt)
    assert A.attributes(kurt)["Eyes_Closed"] == -1
    assert A.attributes(A.counterfactual(kurt, accessories="round"))["Eyes_Closed"] == 1
    white = A.counterfactual(chosen[3], clothesColor="ffffff")
    assert "clothesGraphic" not in A.visible_parameters(white)


def test_edit_attribute_sets_the_target_and_keeps_the_rest() -> None:
    records = A.sample_records(300, 13)
    for record in records:
        before = A.attributes(record)
        for name in A.ATTRIBUTE_NAMES:
            for value in (1, -1):
                edited = A.edit_attribute(record, name, value)
                after = A.attributes(edited)
                assert after[name] == value, (name, value, record)
                free = {name} | A.COUPLED_ATTRIBUTES.get(name, frozenset())
                kept = {a for a in A.ATTRIBUTE_NAMES if a not in free}
                assert all(after[a] == before[a] for a in kept), (name, value, record, edited)
                changed = {k for k in record if record[k] != edited[k]}
                if before[name] == value:
                    assert not changed
                else:
                    assert 1 <= len(changed) <= 2, (name, changed)
    # deterministic, and not every face gets the same new part
    smiles = {A.edit_attribute(r, "Smiling", 1)["mouth"] for r in records if r["mouth"] == "vomit"}
    assert len(smiles) > 1
    assert A.edit_attribute(records[0], "Eyeglasses") == A.edit_attribute(
        dict(records[0]), "Eyeglasses"
    )
    with pytest.raises(DataError, match="unknown attribute 'Young'"):
        A.edit_attribute(records[0], "Young")
