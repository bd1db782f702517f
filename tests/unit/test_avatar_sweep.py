"""Transformers against linear directions on avatars: the sweep, its comparison and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faceedit.errors import FaceeditError
from faceedit.eval.avatar_sweep import (
    LINEAR,
    MEAN,
    TRANSFORMER,
    compare_at_equal_target,
    fit_linear_directions,
    with_means,
)
from tests.helpers.tiny_edit import ATTRS
from tests.helpers.units import assert_units


def write_labels(path, names, labels) -> None:
    """A list_attr_celeba.txt: count, names, then ``file v1 ... vK`` rows in {-1, 1}."""
    rows = [
        f"{i:06d}.png " + " ".join("1" if v else "-1" for v in row) for i, row in enumerate(labels)
    ]
    path.write_text(f"{len(rows)}\n{' '.join(names)}\n" + "\n".join(rows) + "\n")


def test_a_direction_of_a_linear_label_is_recovered(tmp_path):
    """Labels that are the sign of a known linear function of the code: the fitted unit
    direction is that function's normal (cosine > 0.9), for each of two attributes."""
    g = np.random.default_rng(0)
    codes = g.standard_normal((800, 3, 8)).astype(np.float32)
    true = g.standard_normal((2, 3 * 8))
    true /= np.linalg.norm(true, axis=1, keepdims=True)
    scores = codes.reshape(800, -1) @ true.T + 0.05 * g.standard_normal((800, 2))
    np.save(tmp_path / "codes.npy", codes)
    write_labels(tmp_path / "labels.txt", ["Smiling", "Bald"], scores > 0)
    d = fit_linear_directions(
        tmp_path / "codes.npy", tmp_path / "labels.txt", ["Bald", "Smiling"], 3, 8
    )
    assert d.attr_names == ("Bald", "Smiling")
    fitted = d.directions.reshape(2, -1).numpy()
    assert np.allclose(np.linalg.norm(fitted, axis=1), 1.0, atol=1e-5)
    assert fitted[0] @ true[1] > 0.9 and fitted[1] @ true[0] > 0.9


def _row(method, attr, s, tc, pres, ident=1.0):
    return dict(
        method=method,
        attribute=attr,
        strength=s,
        n=10,
        target_change=tc,
        preservation=pres,
        identity=ident,
    )


def test_equal_target_change_interpolates_the_baseline_curve():
    rows = [_row(TRANSFORMER, "A", s, tc, p) for s, tc, p in [(0.5, 0.4, 0.98), (1.0, 0.7, 0.95)]]
    linear = [(0.5, 0.2, 0.99, 0.9), (1.0, 0.5, 0.96, 0.8), (2.0, 0.9, 0.80, 0.6)]
    rows += [_row(LINEAR, "A", s, tc, p, i) for s, tc, p, i in linear]
    # B: the baseline never gets as far as the transformer; C: it always overshoots
    rows += [_row(TRANSFORMER, "B", 1.0, 0.9, 0.5), _row(LINEAR, "B", 1.0, 0.3, 0.99)]
    rows += [_row(LINEAR, "B", 2.0, 0.6, 0.9)]
    rows += [_row(TRANSFORMER, "C", 1.0, 0.1, 0.5), _row(LINEAR, "C", 1.0, 0.3, 0.99)]
    rows += [_row(LINEAR, "C", 2.0, 0.6, 0.9)]
    comp = {c["attribute"]: c for c in compare_at_equal_target(with_means(rows))}
    # independently: np.interp on the baseline's (increasing) target-change curve
    tc, pres, ident, s = (np.array([row[k] for row in linear]) for k in (1, 2, 3, 0))
    a = comp["A"]
    assert a["target_change"] == 0.7
    assert a["baseline_preservation"] == pytest.approx(np.interp(0.7, tc, pres))
    assert a["baseline_identity"] == pytest.approx(np.interp(0.7, tc, ident))
    assert a["baseline_strength"] == pytest.approx(np.interp(0.7, tc, s))
    assert a["transformer_wins"] is bool(np.interp(0.7, tc, pres) < 0.95)
    assert comp["B"]["transformer_wins"] is True and comp["B"]["baseline_preservation"] is None
    assert "at most 60.0%" in comp["B"]["note"]
    assert comp["C"]["transformer_wins"] is None
    assert MEAN in comp  # the attributes' mean curve is compared too
    with pytest.raises(FaceeditError, match="add 1.5 to the strengths"):
        compare_at_equal_target(rows, strength=1.5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny latent bundle, codes of its generator and labels linear in them."""
    from tests.helpers.tiny_edit import latent_bundle

    root = tmp_path_factory.mktemp("sweep")
    bundle = latent_bundle(root)
    from faceedit.checkpoints import load

    G = load(bundle / "generator")
    with torch.no_grad():
        ws = G.mapping(torch.randn(300, G.z_dim, generator=torch.Generator().manual_seed(1)))
    codes = ws.numpy()
    flat = codes.reshape(len(codes), -1)
    labels = np.stack([flat[:, 0] > np.median(flat[:, 0]), flat[:, 1] > np.median(flat[:, 1])], 1)
    np.save(root / "codes.npy", codes)
    write_labels(root / "list_attr_celeba.txt", list(ATTRS), labels)
    return root, bundle


def _cli(capsys, *argv):
    from faceedit.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_sweep_writes_every_file_and_its_comparison_matches_the_rows(data, capsys):
    root, bundle = data
    out = root / "out"
    code, res = _cli(
        capsys, "eval", "avatars", "--method", "latent", "--model", bundle, "--n", 3,
        "--strengths", "0,1,3", "--baseline", "linear", "--codes", root / "codes.npy",
        "--labels", root / "list_attr_celeba.txt", "--invert", "optimize", "--steps", 1,
        "--batch-size", 2, "-o", out,
    )  # fmt: skip
    assert code == 0, res.err
    paths = {k: out / f"avatar_sweep.{k}" for k in ("json", "csv", "md", "png")}
    assert all(p.stat().st_size > 0 for p in paths.values())
    report = json.loads(paths["json"].read_text())
    rows = report["rows"]
    # 2 methods x (2 attributes + mean) x 3 strengths
    assert len(rows) == 18 and len(paths["csv"].read_text().splitlines()) == 19
    assert {r["method"] for r in rows} == {TRANSFORMER, LINEAR}
    for r in rows:
        if r["strength"] == 0:  # no edit at all: both methods give the same verdicts
            twin = next(
                q for q in rows
                if q["strength"] == 0 and q["attribute"] == r["attribute"] and q is not r
            )  # fmt: skip
            assert twin["target_change"] == r["target_change"]
        assert 0 <= r["target_change"] <= 1 and 0 <= r["preservation"] <= 1
    # the mean rows average the attribute rows
    mean1 = next(
        r
        for r in rows
        if r["attribute"] == MEAN and r["method"] == TRANSFORMER and r["strength"] == 1
    )
    per = [
        r
        for r in rows
        if r["attribute"] in ATTRS and r["method"] == TRANSFORMER and r["strength"] == 1
    ]
    assert mean1["preservation"] == pytest.approx(np.mean([r["preservation"] for r in per]))
    # the comparison, recomputed from the per-strength rows
    comparison = report["comparison"]
    assert sorted(c["attribute"] for c in comparison[:-1]) == sorted(ATTRS)
    assert comparison[-1]["attribute"] == MEAN
    for c in comparison:
        ref = next(
            r
            for r in rows
            if r["method"] == TRANSFORMER
            and r["attribute"] == c["attribute"]
            and r["strength"] == 1
        )
        curve = sorted(
            (r for r in rows if r["method"] == LINEAR and r["attribute"] == c["attribute"]),
            key=lambda r: r["strength"],
        )
        level = ref["target_change"]
        assert c["target_change"] == level and c["transformer_preservation"] == ref["preservation"]
        expected = None
        for lo, hi in zip(curve, curve[1:], strict=False):
            a, b = lo["target_change"], hi["target_change"]
            if min(a, b) <= level <= max(a, b):
                t = 0.0 if a == b else (level - a) / (b - a)
                expected = lo["preservation"] + t * (hi["preservation"] - lo["preservation"])
                break
        if expected is None:
            assert c["baseline_preservation"] is None
            reaches = max(r["target_change"] for r in curve) >= level
            assert c["transformer_wins"] is (None if reaches else True)
        else:
            assert c["baseline_preservation"] == pytest.approx(expected)
            assert c["transformer_wins"] is bool(ref["preservation"] > expected)
    g = report["goals"]
    assert g["target_change"] == mean1["target_change"]
    assert g["beats_linear"] is bool(comparison[-1]["transformer_wins"])
    md = paths["md"].read_text()
    assert "At equal target change" in md and "Goal (strength 1)" in md
    r = next(q for q in rows if q["attribute"] == ATTRS[0] and q["method"] == LINEAR)
    assert f"| {ATTRS[0]} | {LINEAR} | " in md and f"{r['target_change']:.0%} / " in md
    assert "transformer wins" in res.out


def test_saved_directions_named_by_the_bundle(data, capsys, tmp_path):
    root, bundle = data
    d = tmp_path / "directions.npz"
    code, res = _cli(
        capsys, "train", "directions", "--codes", root / "codes.npy",
        "--labels", root / "list_attr_celeba.txt", "-o", d,
    )  # fmt: skip
    assert code == 0, res.err
    spec = json.loads((bundle / "bundle.json").read_text())
    import shutil

    own = tmp_path / "bundle"
    shutil.copytree(bundle, own)
    shutil.copy(d, own / "directions.npz")
    (own / "bundle.json").write_text(json.dumps(spec | {"directions": "directions.npz"}))
    code, res = _cli(
        capsys, "eval", "avatars", "--method", "latent", "--model", own, "--n", 2,
        "--strengths", "1", "--baseline", "linear", "--invert", "optimize", "--steps", 1,
        "--attrs", "Eyeglasses", "-o", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, res.err
    report = json.loads((tmp_path / "out" / "avatar_sweep.json").read_text())
    assert_units(report, "target_change", "preservation", "baseline_preservation")
    assert report["baseline"] == {"directions": str(own / "directions.npz")}
    assert len(report["rows"]) == 4  # 2 methods x (Eyeglasses + mean) x strength 1


@pytest.mark.parametrize(
    "case, message",
    [
        ("rows", "label rows"),
        ("attr", "no column for Eyeglasses"),
        ("attgan", "use --method latent"),
        ("strengths", "not comma-separated numbers"),
        ("negative", "non-negative"),
        ("half", "go together"),
        ("none", "needs --directions FILE"),
    ],
)
def test_bad_inputs_give_one_line(data, capsys, tmp_path, case, message):
    root, bundle = data
    codes, labels = root / "codes.npy", root / "list_attr_celeba.txt"
    extra = ["--codes", codes, "--labels", labels]
    method, strengths = "latent", "1"
    if case == "rows":
        short = tmp_path / "labels.txt"
        short.write_text("\n".join(labels.read_text().splitlines()[:-5]).replace("300", "295", 1))
        extra = ["--codes", codes, "--labels", short]
    elif case == "attr":
        one = tmp_path / "labels.txt"
        write_labels(one, ["Smiling"], np.ones((300, 1), bool))
        extra = ["--codes", codes, "--labels", one]
    elif case == "attgan":
        method = "attgan"
    elif case == "strengths":
        strengths = "a,b"
    elif case == "negative":
        strengths = "-1,1"
    elif case == "half":
        extra = ["--codes", codes]
    model = bundle
    if case == "none":  # a bundle that names no directions, and none given
        import json
        import shutil

        extra = []
        model = tmp_path / "no-directions"
        shutil.copytree(bundle, model)
        spec = json.loads((model / "bundle.json").read_text())
        spec.pop("directions", None)
        (model / "bundle.json").write_text(json.dumps(spec))
    if method == "attgan":
        from tests.helpers.tiny_edit import attgan_model

        model = attgan_model(tmp_path)
    code, res = _cli(
        capsys, "eval", "avatars", "--method", method, "--model", model, "--n", 1,
        f"--strengths={strengths}", "--baseline", "linear", "--invert", "optimize",
        "--steps", 1, *extra, "-o", tmp_path / "out",
    )  # fmt: skip
    assert code == 2
    assert message in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert not (tmp_path / "out" / "avatar_sweep.json").exists()


def test_the_sweep_scores_known_editors_across_batches():
    """Codes that index the avatars: a method that renders the ground-truth counterfactual
    scores (almost) 1 from strength 1 on and 0 at strength 0, one that does nothing scores
    0; batches of 5 over 12 avatars must keep every avatar with its own edit."""
    import faceedit
    from faceedit.data.avatars import edit_attribute, render_record
    from faceedit.eval.avatar_sweep import sweep_avatar_edits
    from faceedit.eval.avatars import held_out_records

    oracle = faceedit.load("avatar-oracle")
    records = held_out_records(12, seed=3)
    attrs = ["Eyeglasses", "Wearing_Hat"]
    images = [render_record(r, 64) for r in records]

    def invert(batch):  # code [i, turn, attribute]: which avatar, which edit
        idx = [next(i for i, im in enumerate(images) if np.array_equal(im, b)) for b in batch]
        return torch.tensor([[[i, 0.0, 0.0]] for i in idx])

    def perfect(ws, a, alpha):
        out = ws.clone()
        out[:, 0, 1] = torch.sign(alpha)
        out[:, 0, 2] = attrs.index(a)
        return out

    def synthesize(ws):
        out = []
        for i, turn, a in ws[:, 0].tolist():
            r = records[int(i)]
            out.append(
                render_record(edit_attribute(r, attrs[int(a)], turn > 0), 64)
                if turn
                else images[int(i)]
            )
        return np.stack(out)

    methods = {TRANSFORMER: perfect, LINEAR: lambda ws, a, alpha: ws}
    rows, psnr = sweep_avatar_edits(
        methods,
        invert,
        synthesize,
        attrs,
        oracle,
        records,
        64,
        [0, 1],
        batch_size=5,
        progress=False,
    )
    assert psnr == pytest.approx(100.0)
    by = {(r["method"], r["attribute"], r["strength"]): r for r in rows}
    for a in [*attrs, MEAN]:
        assert by[(TRANSFORMER, a, 1.0)]["target_change"] >= 0.9
        assert by[(TRANSFORMER, a, 1.0)]["preservation"] >= 0.95
        for m in (TRANSFORMER, LINEAR):
            assert by[(m, a, 0.0)]["target_change"] <= 0.1
        assert by[(LINEAR, a, 1.0)]["target_change"] <= 0.1
        # against the ground truth: the counterfactual itself scores 1 (pooled over all
        # attributes in the mean row), doing nothing 0 and leaves the rest untouched
        assert by[(TRANSFORMER, a, 1.0)]["region_gain"] == 1.0
        assert by[(TRANSFORMER, a, 1.0)]["outside_psnr"] > 45.0
        for m, s in ((TRANSFORMER, 0.0), (LINEAR, 0.0), (LINEAR, 1.0)):
            assert by[(m, a, s)]["region_gain"] == 0.0
            assert by[(m, a, s)]["outside_psnr"] == pytest.approx(100.0)


def test_a_sweep_without_baseline_reports_the_transformers_alone(data, capsys, tmp_path):
    _, bundle = data
    code, res = _cli(
        capsys, "eval", "avatars", "--method", "latent", "--model", bundle, "--n", 1,
        "--strengths", "2", "--invert", "optimize", "--steps", 1, "-o", tmp_path,
    )  # fmt: skip
    assert code == 0, res.err
    report = json.loads((tmp_path / "avatar_sweep.json").read_text())
    assert report["strengths"] == [1.0, 2.0]  # the reference strength is always swept
    assert {r["method"] for r in report["rows"]} == {TRANSFORMER} and report["comparison"] == []
    assert report["goals"]["beats_linear"] is None
    assert "not measured (no baseline)" in (tmp_path / "avatar_sweep.md").read_text()


def test_the_sweep_edits_the_codes_the_editor_gives_each_avatar():
    """The sweep inverts avatars in batches; its codes must be the ones ``faceedit edit``
    and ``eval avatars --strength`` start from (an encoder named for 64 px must not be
    fed a 256 px resize of the crop), or the two evaluations judge different inversions."""
    from faceedit.data.avatars import render_record
    from faceedit.editing.pipeline import build_editor
    from faceedit.eval.avatar_sweep import editor_invert
    from faceedit.eval.avatars import held_out_records

    editor = build_editor("latent", "avatar-latent", invert="encoder")
    images = np.stack([render_record(r, 64) for r in held_out_records(5, seed=7)])
    batched = editor_invert(editor)(images)
    one_by_one = torch.cat([editor.invert_crop(im) for im in images])
    G = editor.editor.generator
    assert batched.shape == (5, G.num_ws, G.w_dim)
    torch.testing.assert_close(batched, one_by_one, atol=1e-4, rtol=0)
