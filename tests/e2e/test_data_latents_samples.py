"""``faceedit data latents --generator G --labeller L``: a generator's own samples as W+
codes, labelled by an attribute reader (faceedit.synth.labelled_samples); with
``--transformers T --codes C``, the transformers' edits of such codes, labelled the same way
(faceedit.synth.edited_latents).

The labels must be the reader's verdict on the very image each code renders, the files
must be the layout that ``train classifier`` reads, the same seed must give the same
files, and bad inputs give one line and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import faceedit
from faceedit.cli import main
from faceedit.data.images import tensor_to_uint8
from faceedit.data.latents import read_labels
from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig
from faceedit.train.oracle import images_to_tensor
from tests.helpers.tiny_generator import tiny_generator
from tests.helpers.units import assert_units

ATTRS = ("Smiling", "Eyeglasses", "Bald")


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return tiny_generator(tmp_path_factory.mktemp("samples") / "G")


@pytest.fixture(scope="module")
def labeller(generator: Path, tmp_path_factory) -> Path:
    """A random 32 px oracle (so the 16 px samples are resized for it) whose biases put
    each attribute's decision threshold at its median logit on the generator's samples:
    every attribute is on for some samples and off for others."""
    torch.manual_seed(4)
    oracle = AvatarOracle(
        AvatarOracleConfig(img_size=32, channels=(4, 8), hidden=8, attr_names=ATTRS)
    ).eval()
    G = faceedit.load(generator)
    with torch.no_grad():
        img = G.synthesis(G.mapping(torch.randn(64, G.z_dim)), noise_mode="const")
        logits = oracle(torch.nn.functional.interpolate(img, size=(32, 32), mode="bilinear"))
        oracle.attr_head.bias -= logits.attrs.median(0).values
    path = tmp_path_factory.mktemp("samples") / "oracle"
    oracle.save_pretrained(path)
    return path


def _sample(generator: Path, labeller: Path, out: Path, *extra: str) -> int:
    args = ["data", "latents", "--generator", str(generator), "--labeller", str(labeller)]
    return main([*args, "-o", str(out), "-q", *extra])


def test_labels_are_the_readers_verdict_on_each_codes_image(
    generator: Path, labeller: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "samples"
    assert _sample(generator, labeller, out, "--n", "40", "--seed", "5", "--batch-size", "16") == 0
    assert "wrote 40 W+ codes" in capsys.readouterr().out
    G, reader = faceedit.load(generator), faceedit.load(labeller)
    codes = np.load(out / "codes.npy")
    assert codes.shape == (40, G.num_ws, G.w_dim) and codes.dtype == np.float32
    # one w per sample, repeated over the W+ rows
    np.testing.assert_array_equal(codes, np.repeat(codes[:, :1], G.num_ws, axis=1))
    labels, names = read_labels(out / "list_attr_celeba.txt")
    assert names == ATTRS and labels.shape == (40, len(ATTRS))
    with torch.no_grad():
        images = tensor_to_uint8(G.synthesis(torch.from_numpy(codes), noise_mode="const"))
    big = [Image.fromarray(im).resize((32, 32), Image.Resampling.LANCZOS) for im in images]
    verdict, _ = reader.predict(images_to_tensor(np.stack([np.asarray(b) for b in big])))
    np.testing.assert_array_equal(labels, (verdict.numpy() > 0).astype(labels.dtype))
    assert 0 < labels.sum() < labels.size  # the reader said both

    meta = json.loads((out / "samples.json").read_text())
    assert_units(meta, "on_rate")
    assert meta["n"] == 40 and meta["seed"] == 5
    for k, name in enumerate(ATTRS):
        assert meta["on_rate"][name] == pytest.approx(labels[:, k].mean(), abs=1e-4)
    preview = np.asarray(Image.open(out / "by_attribute.png"))
    assert preview.ndim == 3 and preview.shape[0] > 3 * 16

    again = tmp_path / "again"
    assert _sample(generator, labeller, again, "--n", "40", "--seed", "5") == 0
    np.testing.assert_array_equal(np.load(again / "codes.npy"), codes)  # batch size free
    other = tmp_path / "other"
    assert _sample(generator, labeller, other, "--n", "40", "--seed", "6") == 0
    assert not np.array_equal(np.load(other / "codes.npy"), codes)


def test_the_samples_train_a_latent_classifier(
    generator: Path, labeller: Path, tmp_path: Path
) -> None:
    out = tmp_path / "samples"
    assert _sample(generator, labeller, out, "--n", "64") == 0
    args = ["train", "classifier", "--codes", str(out / "codes.npy")]
    args += ["--labels", str(out / "list_attr_celeba.txt"), "-o", str(tmp_path / "clf")]
    assert main([*args, "--preset", "small", "--epochs", "1", "-q"]) == 0
    assert faceedit.load(tmp_path / "clf" / "classifier").config.n_attrs == len(ATTRS)


def test_mixed_codes_switch_rows_once_and_keep_the_readers_verdict(
    generator: Path, labeller: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mixed"
    args = ("--n", "48", "--seed", "2", "--mixing", "0.5")
    assert _sample(generator, labeller, out, *args, "--batch-size", "7") == 0
    G, reader = faceedit.load(generator), faceedit.load(labeller)
    codes = np.load(out / "codes.npy")
    # a code is row 0 up to a cut, then one other w to the last row
    first, last = codes[:, :1], codes[:, -1:]
    same_as_first = np.all(codes == first, axis=2)  # [N, num_ws]
    same_as_last = np.all(codes == last, axis=2)
    assert np.all(same_as_first | same_as_last)
    cut = same_as_first.sum(1)
    np.testing.assert_array_equal(same_as_first, np.arange(G.num_ws)[None] < cut[:, None])
    mixed = cut < G.num_ws
    assert 0 < mixed.sum() < len(codes)  # about half of them
    assert not np.any(np.all(first[mixed] == last[mixed], axis=2))
    labels, _ = read_labels(out / "list_attr_celeba.txt")
    with torch.no_grad():
        images = tensor_to_uint8(G.synthesis(torch.from_numpy(codes), noise_mode="const"))
    big = [Image.fromarray(im).resize((32, 32), Image.Resampling.LANCZOS) for im in images]
    verdict, _ = reader.predict(images_to_tensor(np.stack([np.asarray(b) for b in big])))
    np.testing.assert_array_equal(labels, (verdict.numpy() > 0).astype(labels.dtype))
    assert json.loads((out / "samples.json").read_text())["mixing"] == 0.5

    again = tmp_path / "again"
    assert _sample(generator, labeller, again, *args) == 0
    np.testing.assert_array_equal(np.load(again / "codes.npy"), codes)  # batch size free
    plain = tmp_path / "plain"
    assert _sample(generator, labeller, plain, "--n", "48", "--seed", "2") == 0
    # mixing only replaces rows: row 0 is the unmixed sample's w
    np.testing.assert_array_equal(np.load(plain / "codes.npy")[:, 0], codes[:, 0])


def test_joined_sets_train_a_classifier(
    generator: Path, labeller: Path, tmp_path: Path, capsys
) -> None:
    parts = [tmp_path / "s5", tmp_path / "s6"]
    for seed, out in zip(("5", "6"), parts, strict=True):
        assert _sample(generator, labeller, out, "--n", "12", "--seed", seed) == 0
    joined = tmp_path / "joined"
    argv = ["data", "latents", "--join", *map(str, parts), "-o", str(joined), "--seed", "2"]
    assert main(argv) == 0
    assert "wrote 24 W+ codes from 2 sets" in capsys.readouterr().out
    codes = np.load(joined / "codes.npy")
    both = np.concatenate([np.load(p / "codes.npy") for p in parts])
    # the same rows, in another order, each with its own label row
    order = [int(np.flatnonzero((both == c).all(axis=(1, 2)))[0]) for c in codes]
    assert sorted(order) == list(range(24)) and order != list(range(24))
    labels, _ = read_labels(joined / "list_attr_celeba.txt")
    own = np.concatenate([read_labels(p / "list_attr_celeba.txt")[0] for p in parts])
    np.testing.assert_array_equal(labels, own[order])
    cargs = ["train", "classifier", "--codes", str(joined / "codes.npy"), "--labels"]
    cargs += [str(joined / "list_attr_celeba.txt"), "-o", str(tmp_path / "clf")]
    assert main([*cargs, "--preset", "small", "--epochs", "1", "-q"]) == 0


@pytest.fixture(scope="module")
def transformers(generator: Path, tmp_path_factory) -> Path:
    """Random transformers for two of the reader's attributes, strong enough to move it."""
    from faceedit.nets.latent import LatentTransformer, LatentTransformerConfig

    G = faceedit.load(generator)
    root = tmp_path_factory.mktemp("edits") / "transformers"
    torch.manual_seed(7)
    for name in ATTRS[:2]:
        t = LatentTransformer(
            LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name=name)
        )
        with torch.no_grad():
            for p in t.parameters():
                p.mul_(4.0)
        t.save_pretrained(root / f"tnet_{name}")
    return root


def _edit(transformers: Path, codes: Path, generator: Path, labeller: Path, out: Path, *extra):
    args = ["data", "latents", "--transformers", str(transformers), "--codes", str(codes)]
    args += ["--generator", str(generator), "--labeller", str(labeller), "-o", str(out)]
    return main([*args, "-q", *extra])


def test_edits_are_the_transformers_outputs_labelled_by_the_reader(
    generator: Path, labeller: Path, transformers: Path, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "samples"
    assert _sample(generator, labeller, source, "--n", "30", "--seed", "1") == 0
    out = tmp_path / "edits"
    extra = ("--n", "12", "--seed", "3", "--strength-range", "0.5,1.5", "--batch-size", "5")
    assert _edit(transformers, source, generator, labeller, out, *extra) == 0
    printed = capsys.readouterr().out
    assert "wrote 24 edited W+ codes" in printed and "edits the labeller sees land:" in printed

    G, reader = faceedit.load(generator), faceedit.load(labeller)
    src_codes = np.load(source / "codes.npy")
    src_labels, _ = read_labels(source / "list_attr_celeba.txt")
    codes = np.load(out / "codes.npy")
    labels, names = read_labels(out / "list_attr_celeba.txt")
    assert codes.shape == (24, G.num_ws, G.w_dim) and names == ATTRS
    rows = [ln.split()[0] for ln in (out / "list_attr_celeba.txt").read_text().splitlines()[2:]]
    picked = sorted({int(r.split("_")[1]) for r in rows})
    assert len(picked) == 12 and rows[:2] == [
        f"edit_{picked[0]:06d}_{a}" for a in sorted(ATTRS[:2])
    ]
    for row, code in zip(rows, codes, strict=True):
        _, index, name = row.split("_", 2)
        w = torch.from_numpy(src_codes[int(index)])[None]
        t = faceedit.load(transformers / f"tnet_{name}")
        with torch.no_grad():
            f = t.delta(w)[0]
        # the edit is w + a * f(w): recover a, then check its size and its sign
        a = float(((torch.from_numpy(code) - w[0]) * f).sum() / (f * f).sum())
        with torch.no_grad():
            np.testing.assert_allclose(t(w, a)[0].numpy(), code, atol=1e-4)
        turn_on = src_labels[int(index), ATTRS.index(name)] <= 0
        assert 0.5 - 1e-4 <= abs(a) <= 1.5 + 1e-4 and (a > 0) == turn_on
    # each label row is the reader's verdict on its code's image
    with torch.no_grad():
        images = tensor_to_uint8(G.synthesis(torch.from_numpy(codes), noise_mode="const"))
    big = [Image.fromarray(im).resize((32, 32), Image.Resampling.LANCZOS) for im in images]
    verdict, _ = reader.predict(images_to_tensor(np.stack([np.asarray(b) for b in big])))
    np.testing.assert_array_equal(labels, (verdict.numpy() > 0).astype(labels.dtype))

    meta = json.loads((out / "edits.json").read_text())
    assert_units(meta, "landed", "on_rate")
    for k, name in enumerate(ATTRS[:2]):
        mine = [i for i, r in enumerate(rows) if r.endswith("_" + name)]
        want = [src_labels[int(rows[i].split("_")[1]), k] <= 0 for i in mine]
        seen = labels[mine, k] > 0
        assert meta["landed"][name] == pytest.approx(np.mean(seen == np.array(want)), abs=1e-4)

    again = tmp_path / "again"
    assert _edit(transformers, source, generator, labeller, again, "--n", "12", "--seed", "3") == 0
    # the batch size changes only float rounding
    np.testing.assert_allclose(np.load(again / "codes.npy"), codes, atol=1e-5)


_EDITS = ["--codes", "{src}", "--generator", "{gen}", "--labeller", "{lab}"]


@pytest.fixture(scope="module")
def source(generator: Path, labeller: Path, tmp_path_factory) -> Path:
    """A small labelled code set for the edits to start from."""
    out = tmp_path_factory.mktemp("edits") / "source"
    assert _sample(generator, labeller, out, "--n", "8") == 0
    return out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "needs a source"),
        (["--encoder", "{gen}", "--generator", "{gen}"], "needs both --encoder E and --data DIR"),
        (["--encoder", "{gen}"], "needs both --encoder E and --data DIR"),
        (["--generator", "{gen}"], "needs both --generator G and --labeller L"),
        (
            ["--generator", "{gen}", "--labeller", "{gen}"],
            "holds StyleGAN2Generator, not an avatar oracle",
        ),
        (["--generator", "{tmp}/none", "--labeller", "{lab}"], "none: not found"),
        (["--generator", "{gen}", "--labeller", "{tmp}/none"], "no such file or directory"),
        (["--generator", "{gen}", "--labeller", "{lab}", "--n", "0"], "--n '0'"),
        (["--generator", "{gen}", "--labeller", "{lab}", "--truncation", "2"], "truncation"),
        (["--generator", "{gen}", "--labeller", "{lab}", "--mixing", "1.5"], "mixing"),
        (["--generator", "{gen}", "--labeller", "{lab}", "--mixing", "-1"], "--mixing '-1'"),
        (["--generator", "{gen}", "--labeller", "{lab}", "-o", "{full}"], "non-empty directory"),
        (["--join", "{full}", "--generator", "{gen}"], "--join takes no other source"),
        (["--join", "{full}"], "at least two code sets"),
        (["--join", "{full}", "{full}"], "codes.npy: no such file"),
        (["--transformers", "{tr}", "--codes", "{full}"], "also needs --generator G, --labeller L"),
        (["--transformers", "{tr}", "--encoder", "{gen}"], "take no --encoder or --data"),
        (["--join", "{full}", "{full}", "--codes", "{full}"], "--join takes no other source"),
        (["--transformers", "{tr}", *_EDITS, "--strength-range", "2,1"], "0 < low <= high"),
        (["--transformers", "{tr}", *_EDITS, "--strength-range", "1"], "expected LO,HI"),
        (["--transformers", "{tr}", *_EDITS, "--n", "9999"], "fewer than the 9999 asked for"),
        (["--transformers", "{tmp}/none", *_EDITS], "transformers: "),
        (["--transformers", "{gen}", *_EDITS], "not a latent transformer"),
        (["--transformers", "{full}", *_EDITS], "no transformers"),
    ],
)
def test_bad_inputs_give_one_line_and_write_nothing(
    argv,
    message,
    generator: Path,
    labeller: Path,
    transformers: Path,
    source: Path,
    tmp_path: Path,
    capsys,
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    fill = {"gen": str(generator), "lab": str(labeller), "tmp": str(tmp_path), "full": str(full)}
    fill |= {"tr": str(transformers), "src": str(source)}
    argv = [a.format(**fill) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "o")]
    assert main(["data", "latents", "-q", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceedit: error:") and "\n" not in err, err
    assert message in err, err
    assert not (tmp_path / "o").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["full"]  # no temporary left behind


def test_a_transformer_for_an_attribute_the_labels_lack_is_refused(
    generator: Path, labeller: Path, source: Path, tmp_path: Path, capsys
) -> None:
    from faceedit.nets.latent import LatentTransformer, LatentTransformerConfig

    G = faceedit.load(generator)
    config = LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name="Mustache")
    LatentTransformer(config).save_pretrained(tmp_path / "tr" / "tnet_Mustache")
    assert _edit(tmp_path / "tr", source, generator, labeller, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "transformer 'Mustache'" in err and "no such attribute" in err
    assert not (tmp_path / "o").exists()
