"""Latent-code and label readers, the 90/10 split and their errors; released-file handlers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import faceedit
from faceedit.data.latents import (
    CELEBA_ATTRS,
    label_stats,
    load_latent_dataset,
    read_codes,
    read_labels,
    resolve_attrs,
    split_indices,
)
from faceedit.errors import CheckpointError, DataError
from faceedit.nets.latent import LatentClassifier, LatentTransformer


def test_celeba_order() -> None:
    assert len(CELEBA_ATTRS) == 40
    assert (CELEBA_ATTRS[0], CELEBA_ATTRS[15], CELEBA_ATTRS[20], CELEBA_ATTRS[31]) == (
        "5_o_Clock_Shadow", "Eyeglasses", "Male", "Smiling",
    )  # fmt: skip
    assert CELEBA_ATTRS[-1] == "Young"


def test_codes_from_array_flat_array_and_per_image_files(tmp_path) -> None:
    codes = np.random.default_rng(0).standard_normal((5, 18, 4)).astype(np.float32)
    np.save(tmp_path / "all.npy", codes)
    assert np.array_equal(read_codes(tmp_path / "all.npy"), codes)
    np.save(tmp_path / "flat.npy", codes.reshape(5, -1).astype(np.float64))
    assert np.array_equal(read_codes(tmp_path / "flat.npy"), codes)
    d = tmp_path / "test"
    d.mkdir()
    for i in range(5):
        np.save(d / f"latent_code_{i:05d}.npy", codes[i : i + 1])
    assert np.array_equal(read_codes(d), codes)
    assert read_codes(d / "latent_code_00003.npy").shape == (1, 18, 4)


def test_bad_codes_are_rejected(tmp_path) -> None:
    bad = np.zeros((3, 18, 4), np.float32)
    bad[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"nan\.npy: 1 code\(s\) contain NaN"):
        read_codes(tmp_path / "nan.npy")
    np.save(tmp_path / "shape.npy", np.zeros((3,), np.float32))
    with pytest.raises(DataError, match="expected W\\+ codes"):
        read_codes(tmp_path / "shape.npy")
    with pytest.raises(DataError, match="no such file"):
        read_codes(tmp_path / "missing.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="junk.npy"):
        read_codes(tmp_path / "junk.npy")


def test_labels_npy_and_celeba_text(tmp_path) -> None:
    pm = np.array([[1, -1], [-1, -1], [1, 1]])
    np.save(tmp_path / "pm.npy", pm)
    labels, names = read_labels(tmp_path / "pm.npy")
    assert np.array_equal(labels, (pm > 0).astype(np.float32)) and names == ("attr_0", "attr_1")
    text = "3\nSmiling Young\n000001.jpg  1 -1\n000002.jpg -1 -1\n000003.jpg  1  1\n"
    (tmp_path / "list_attr_celeba.txt").write_text(text)
    labels, names = read_labels(tmp_path / "list_attr_celeba.txt")
    assert names == ("Smiling", "Young")
    assert np.array_equal(labels, (pm > 0).astype(np.float32))
    np.save(tmp_path / "forty.npy", np.zeros((2, 40)))
    assert read_labels(tmp_path / "forty.npy")[1] == CELEBA_ATTRS


def test_bad_labels_are_rejected(tmp_path) -> None:
    np.save(tmp_path / "two.npy", np.array([[0, 2], [1, 0]]))
    with pytest.raises(DataError, match=r"two\.npy: labels must be in \{0, 1\} or \{-1, 1\}"):
        read_labels(tmp_path / "two.npy")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match="NaN"):
        read_labels(tmp_path / "nan.npy")
    (tmp_path / "short.txt").write_text("2\nA B\nx.jpg 1 -1\ny.jpg 1\n")
    with pytest.raises(DataError, match=r"short\.txt:4: 1 values for 2 attributes"):
        read_labels(tmp_path / "short.txt")
    (tmp_path / "count.txt").write_text("5\nA B\nx.jpg 1 -1\n")
    with pytest.raises(DataError, match="header says 5 rows, found 1"):
        read_labels(tmp_path / "count.txt")


def test_mismatched_rows_fail_before_training(tmp_path) -> None:
    np.save(tmp_path / "codes.npy", np.zeros((4, 18, 4), np.float32))
    np.save(tmp_path / "labels.npy", np.zeros((5, 40)))
    with pytest.raises(DataError, match="has 4 codes but .*labels.npy has 5 label rows"):
        load_latent_dataset(tmp_path / "codes.npy", tmp_path / "labels.npy")


def test_split_is_first_ninety_percent() -> None:
    assert split_indices(30000) == (slice(0, 27000), slice(27000, 30000))
    assert split_indices(11) == (slice(0, 9), slice(9, 11))


def test_resolve_attrs() -> None:
    assert resolve_attrs("Smiling,eyeglasses", CELEBA_ATTRS) == [31, 15]
    assert resolve_attrs("all", CELEBA_ATTRS) == list(range(40))
    assert resolve_attrs("15,Smiling,15", CELEBA_ATTRS) == [15, 31]
    with pytest.raises(DataError, match="unknown attribute 'Smile'"):
        resolve_attrs("Smile", CELEBA_ATTRS)


def test_label_stats_counts_and_correlation() -> None:
    labels = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    counts, corr = label_stats(labels)
    assert counts.tolist() == [[2, 2], [1, 3], [4, 0]]
    assert corr[0, 0] == pytest.approx(1.0)
    assert corr[0, 1] == pytest.approx(np.corrcoef(labels[:, 0], labels[:, 1])[0, 1])
    assert corr[2].tolist() == [0.0, 0.0, 0.0]  # constant column: undefined -> 0


# --- released files ------------------------------------------------------------------


def test_released_classifier_state_dict_loads(tmp_path) -> None:
    state = {
        "fcs.0.weight": torch.randn(16, 9216), "fcs.0.bias": torch.randn(16),
        "fcs.1.weight": torch.randn(8, 16), "fcs.1.bias": torch.randn(8),
        "fcs.2.weight": torch.randn(40, 8), "fcs.2.bias": torch.randn(40),
    }  # fmt: skip
    torch.save(state, tmp_path / "latent_classifier_epoch_20.pth")
    clf = faceedit.load(tmp_path / "latent_classifier_epoch_20.pth")
    assert isinstance(clf, LatentClassifier)
    assert clf.config.widths == (9216, 16, 8, 40) and clf.config.activation == "leakyrelu"
    assert clf.config.attr_names == CELEBA_ATTRS
    ws = torch.randn(2, 18, 512)
    h = torch.nn.functional.leaky_relu(
        ws.reshape(2, -1) @ state["fcs.0.weight"].T + state["fcs.0.bias"], 0.2
    )
    h = torch.nn.functional.leaky_relu(h @ state["fcs.1.weight"].T + state["fcs.1.bias"], 0.2)
    torch.testing.assert_close(clf(ws), h @ state["fcs.2.weight"].T + state["fcs.2.bias"])


def _tnet_state(num_ws: int = 18, w_dim: int = 512) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(num_ws):
        out[f"dense.{i}.weight"] = torch.randn(w_dim, w_dim)
        out[f"dense.{i}.bias"] = torch.randn(w_dim)
    return out


def test_tnet_files_and_training_checkpoints_load(tmp_path) -> None:
    state = _tnet_state()
    torch.save(state, tmp_path / "tnet_15.pth.tar")
    t = faceedit.load(tmp_path / "tnet_15.pth.tar")
    assert isinstance(t, LatentTransformer) and t.config.attr_name == "Eyeglasses"
    assert (t.config.num_ws, t.config.w_dim, t.config.dense) == (18, 512, False)
    torch.save(
        {"n_epoch": 9, "T_net_state_dict": state, "opt_state_dict": {}, "scheduler_state_dict": {}},
        tmp_path / "checkpoint_10",
    )
    t2 = faceedit.load(tmp_path / "checkpoint_10")
    ws = torch.randn(2, 18, 512)
    torch.testing.assert_close(t2(ws, 0.5), t(ws, 0.5))
    torch.save(
        {"dense.weight": torch.randn(64, 64), "dense.bias": torch.randn(64)}, tmp_path / "d.pt"
    )
    d = faceedit.load(tmp_path / "d.pt", w_dim=16)
    assert d.config.dense and (d.config.num_ws, d.config.w_dim) == (4, 16)


def test_broken_transformer_file_is_a_clear_error(tmp_path) -> None:
    state = _tnet_state(num_ws=3, w_dim=8)
    state["dense.1.weight"] = torch.randn(8, 7)
    torch.save(state, tmp_path / "tnet_1.pth.tar")
    with pytest.raises(
        CheckpointError,
        match=r"tnet_1\.pth\.tar: recognised as latent transformer.*dense\.1\.weight",
    ):
        faceedit.load(tmp_path / "tnet_1.pth.tar")


def _code_set(root, ids: range, names=("Smiling", "Bald"), shape=(3, 4)):
    """A 'data latents'-style set whose code i carries its id in [0, 0] and labels from it."""
    from faceedit.data.latents import celeba_labels_text

    root.mkdir()
    codes = np.zeros((len(ids), *shape), np.float32)
    codes[:, 0, 0] = list(ids)
    rows = [(f"img{i}", [1 if i % 2 else -1, 1 if i % 3 == 0 else -1][: len(names)]) for i in ids]
    np.save(root / "codes.npy", codes)
    (root / "list_attr_celeba.txt").write_text(celeba_labels_text(names, rows))
    return root


def test_joining_code_sets_shuffles_rows_together_with_their_labels(tmp_path) -> None:
    from faceedit.data.latents import join_latent_sets

    a = _code_set(tmp_path / "a", range(0, 6))
    b = _code_set(tmp_path / "b", range(100, 104))
    out, n = join_latent_sets([a, b], tmp_path / "joined", seed=0)
    ds = load_latent_dataset(out / "codes.npy", out / "list_attr_celeba.txt")
    ids = ds.codes[:, 0, 0].astype(int).tolist()
    assert n == 10 and sorted(ids) == [*range(6), *range(100, 104)]
    assert ids != sorted(ids)  # shuffled: the 90/10 split must not validate on b alone
    # every row kept its own labels, name and source
    np.testing.assert_array_equal(ds.labels[:, 0], [i % 2 == 1 for i in ids])
    np.testing.assert_array_equal(ds.labels[:, 1], [i % 3 == 0 for i in ids])
    rows = (out / "list_attr_celeba.txt").read_text().splitlines()[2:]
    assert [r.split()[0] for r in rows] == [f"img{i}" for i in ids]
    assert (out / "sources.txt").read_text().split() == [str(a if i < 100 else b) for i in ids]
    # the seed decides the order
    again, _ = join_latent_sets([a, b], tmp_path / "again", seed=0)
    other, _ = join_latent_sets([a, b], tmp_path / "other", seed=1)
    np.testing.assert_array_equal(np.load(again / "codes.npy"), ds.codes)
    assert not np.array_equal(np.load(other / "codes.npy"), ds.codes)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (None, "at least two code sets"),
        ({"names": ("Smiling", "Young")}, "attributes differ"),
        ({"shape": (2, 4)}, "codes [N, 2, 4]"),
        ("missing", "no such file"),
    ],
)
def test_joining_mismatched_sets_fails_and_writes_nothing(second, message, tmp_path) -> None:
    from faceedit.data.latents import join_latent_sets

    sources = [_code_set(tmp_path / "a", range(4))]
    if second == "missing":
        sources.append(tmp_path / "nothing")
    elif second is not None:
        sources.append(_code_set(tmp_path / "b", range(10, 13), **second))
    with pytest.raises(DataError, match=message.replace("[", r"\[")):
        join_latent_sets(sources, tmp_path / "out")
    assert not (tmp_path / "out").exists()
