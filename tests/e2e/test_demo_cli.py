"""`faceedit demo` end to end on tiny models installed as shipped ones: the grid holds a
tile per avatar, method and edit, the report's verdicts are the oracle's on the very
images it shows, and a missing model or attribute is one line with nothing written."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import faceedit.shipped
from faceedit.cli import main
from faceedit.data.avatars import render_record
from faceedit.eval.avatars import held_out_records, judge_edits
from faceedit.shipped import SHIPPED_DIR
from tests.helpers.tiny_edit import attgan_model, latent_bundle

N, SEED = 2, 3
STRENGTHS = (0.5, 1.0)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A shipped-models directory: the tiny AttGAN as an AttGAN bundle, the tiny latent
    bundle with an encoder (as the shipped one has), and the real oracle."""
    from faceedit.checkpoints import load
    from faceedit.nets.latent_encoder import LatentEncoder, LatentEncoderConfig

    root = tmp_path_factory.mktemp("shipped")
    models = tmp_path_factory.mktemp("models")
    bundle = latent_bundle(models)
    latent = root / "avatar-latent"
    shutil.copytree(bundle, latent)
    G = load(latent / "generator")
    E = LatentEncoder(
        LatentEncoderConfig(
            img_resolution=32,
            num_ws=G.num_ws,
            w_dim=G.w_dim,
            channel_base=128,
            channel_max=8,
            head_channels=8,
        )
    )
    E.set_w_avg(G.w_avg)
    E.save_pretrained(latent / "encoder")
    spec = json.loads((latent / "bundle.json").read_text())
    (latent / "bundle.json").write_text(json.dumps({**spec, "encoder": "encoder"}))
    att = root / "avatar-attgan"
    shutil.copytree(attgan_model(models), att / "attgan")
    (att / "bundle.json").write_text(json.dumps({"method": "attgan", "model": "attgan"}))
    shutil.copytree(SHIPPED_DIR / "avatar-oracle", root / "avatar-oracle")
    shutil.copytree(SHIPPED_DIR / "avatar-judge", root / "avatar-judge")
    return root


@pytest.fixture
def use_shipped(shipped, monkeypatch):
    monkeypatch.setattr(faceedit.shipped, "SHIPPED_DIR", shipped)
    return shipped


@pytest.fixture(scope="module")
def demo_run(shipped, tmp_path_factory):
    """The demo with every default model name (resolved in the tiny shipped dir)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(faceedit.shipped, "SHIPPED_DIR", shipped)
    out = tmp_path_factory.mktemp("run") / "demo"
    try:
        code = main(["demo", "-o", str(out), "--n", str(N), "--seed", str(SEED), "--steps", "2"])
    finally:
        mp.undo()
    assert code == 0
    return out


class _Rows(HTMLParser):
    """The report's edit rows: their data-* attributes and the edited image."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "edit":
            self.rows.append(a)
        if tag == "img" and a.get("class") == "edited":
            data = base64.b64decode(a["src"].split(",", 1)[1])
            self.rows[-1]["image"] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        if tag == "img" and a.get("class") == "truth":
            data = base64.b64decode(a["src"].split(",", 1)[1])
            self.rows[-1]["truth"] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _report_rows(out) -> list[dict]:
    p = _Rows()
    p.feed((out / "report.html").read_text())
    return p.rows


def test_grid_has_a_tile_per_avatar_method_and_edit(demo_run, use_shipped):
    """Same models and seed through the API: its cells are rows x columns computed from
    n, methods, attributes and strengths, and the CLI's PNG is exactly that grid."""
    from faceedit.checkpoints import load
    from faceedit.editing.pipeline import build_editor
    from faceedit.eval.demo import run_demo

    editors = {
        "attgan": build_editor("attgan", "avatar-attgan"),
        "latent": build_editor("latent", "avatar-latent", steps=2),
    }
    assert (
        editors["latent"].editor.settings()["invert"] == "encoder"
    )  # the bundle's encoder, no projection
    result = run_demo(
        editors,
        {"attgan": "avatar-attgan", "latent": "avatar-latent"},
        load("avatar-judge"),
        n=N,
        seed=SEED,
        oracle_name=str(use_shipped / "avatar-judge"),
        progress=False,
    )
    # the tiny AttGAN has the release's 13 attributes (no Smiling, no hat); the tiny
    # latent bundle edits Smiling and Eyeglasses: of the defaults, these get columns
    per = {
        "attgan": ["Eyeglasses", "Blond_Hair", "Mustache"],
        "latent": ["Smiling", "Eyeglasses"],
    }
    assert {r.method: r.attributes for r in result.runs} == per
    columns = ["Smiling", "Eyeglasses", "Blond_Hair", "Mustache"]
    assert [a for a, _ in result.columns[:: len(STRENGTHS)]] == columns
    # per avatar: its ground-truth row, then one row per method
    assert len(result.cells) == N * (1 + len(per))
    assert all(len(row) == 2 + len(columns) * len(STRENGTHS) for row in result.cells)
    tiles = sum(c is not None for row in result.cells for c in row)
    truth_tiles = 1 + len(columns) * len(STRENGTHS)
    assert tiles == N * (truth_tiles + sum(2 + len(a) * len(STRENGTHS) for a in per.values()))
    assert result.row_labels[0] == "avatar 1 truth"
    assert len(result.row_labels) == len(result.cells)
    assert result.col_labels[2] == "Smiling\n±0.5"
    # each edit tile shows that edit's judged image (the lower half: the top-left corner
    # carries the +/- badge)
    size = result.cells[0][0].shape[0]
    rows_per_avatar = 1 + len(result.runs)
    for m, run in enumerate(result.runs):
        for e in run.edits:
            column = 2 + result.columns.index((e.attribute, e.strength))
            tile = result.cells[e.avatar * rows_per_avatar + 1 + m][column]
            big = np.asarray(Image.fromarray(e.image).resize((size, size), Image.LANCZOS))
            np.testing.assert_array_equal(tile[size // 2 :], big[size // 2 :])
            # and above it, the ground truth that edit was measured against
            truth = result.cells[e.avatar * rows_per_avatar][column]
            big = np.asarray(Image.fromarray(e.truth).resize((size, size), Image.LANCZOS))
            np.testing.assert_array_equal(truth[size // 2 :], big[size // 2 :])
            # the region gain is that of the shown edit against the shown truth
            from faceedit.eval.metrics import region_gain

            expected = region_gain(e.image, run.inputs[e.avatar], e.truth)[0]
            assert e.region_gain == pytest.approx(expected, nan_ok=True)
    grid = np.asarray(Image.open(demo_run / "demo_grid.png").convert("RGB"))
    np.testing.assert_array_equal(grid, result.grid)


def test_report_verdicts_are_the_oracles_on_the_shown_images(demo_run, use_shipped):
    from faceedit.checkpoints import load
    from faceedit.data.avatars import attributes

    rows = _report_rows(demo_run)
    n_edits = N * (3 + 2) * len(STRENGTHS)  # attgan edits 3 attributes, latent 2
    assert len(rows) == n_edits
    assert {r["data-method"] for r in rows} == {"attgan", "latent"}
    records = held_out_records(N, SEED)
    asked = []
    for r in rows:
        rec = records[int(r["data-avatar"])]
        on = attributes(rec)[r["data-attribute"]] < 0  # the flip: on when it was off
        assert r["data-on"] == str(int(on))
        asked.append((rec, r["data-attribute"], on))
    verdicts = judge_edits(load("avatar-judge"), asked, [r["image"] for r in rows])
    from faceedit.data.avatars import edit_attribute, render_record
    from faceedit.eval.metrics import region_gain

    for r, (rec, a, on) in zip(rows, asked, strict=True):
        # each row shows its ground truth and the region gain of the shown edit against it
        size = r["image"].shape[0]
        np.testing.assert_array_equal(r["truth"], render_record(edit_attribute(rec, a, on), size))
        gain = region_gain(r["image"], render_record(rec, size), r["truth"])[0]
        assert r["data-gain"] == (f"{gain:.2f}" if np.isfinite(gain) else "-")
    for r, v in zip(rows, verdicts, strict=True):
        assert r["data-target"] == ("yes" if v.target_changed else "no")
        assert r["data-kept"] == f"{v.kept}/{v.n_others}"
        assert r["data-identity"] == f"{v.same}/{v.n_identity}"
        assert v.n_others > 0 and abs(v.kept / v.n_others - v.preservation) < 1e-9
    text = (demo_run / "report.html").read_text()
    assert 'src="demo_grid.png"' in text
    for name in ("avatar-attgan", "avatar-latent", "avatar-judge", "tnet_Smiling"):
        assert name in text  # the model files used
    assert text.count('class="summary"') == 4  # a summary per method, twice
    assert "inversion: encoder" in text


def test_a_bundle_without_encoder_is_projected(tmp_path, capsys):
    """The fallback: a short projection per avatar, said on the console and the page."""
    attgan = attgan_model(tmp_path)
    latent = latent_bundle(tmp_path)
    out = tmp_path / "demo"
    args = ["demo", "--attgan", str(attgan), "--latent", str(latent), "-o", str(out)]
    assert main([*args, "--n", "1", "--attrs", "Eyeglasses", "--strengths", "1"]) == 0
    assert "has no encoder" in capsys.readouterr().out
    assert "inversion: optimize" in (out / "report.html").read_text()
    assert len(_report_rows(out)) == 2  # one avatar, one attribute, one strength, 2 methods


def test_linear_directions_join_the_demo(tmp_path, capsys):
    """--methods takes any registered method: linear edits the latent bundle's codes with
    its linear directions, judged beside the transformers."""
    latent = latent_bundle(tmp_path)
    out = tmp_path / "demo"
    args = ["demo", "--latent", str(latent), "--methods", "latent,linear", "-o", str(out)]
    assert main([*args, "--n", "1", "--attrs", "Eyeglasses", "--strengths", "1", "-q"]) == 0
    rows = _report_rows(out)
    assert sorted(r["data-method"] for r in rows) == ["latent", "linear"]
    assert "linear: region gain" in capsys.readouterr().out
    bad = ["demo", "--methods", "latent,stylegan-nada", "-o", str(tmp_path / "bad")]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "choose from latent, linear, attgan" in err
    assert not (tmp_path / "bad").exists()


def test_missing_model_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(faceedit.shipped, "SHIPPED_DIR", tmp_path / "empty")
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "avatar-attgan" in err and "not found" in err
    assert not out.exists()


def test_unknown_attribute_is_one_line_and_writes_nothing(use_shipped, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--attrs", "Smiling,Big_Nose"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Big_Nose" in err
    assert main(["demo", "-o", str(out), "--attrs", "Wearing_Hat"]) == 2  # no model edits it
    assert "no model edits Wearing_Hat" in capsys.readouterr().err
    assert not out.exists()


def test_shipped_bundles_resolve_by_name(use_shipped, tmp_path, capsys):
    from faceedit.editing.pipeline import build_editor
    from faceedit.shipped import shipped_models, shipped_path

    assert shipped_models() == ["avatar-attgan", "avatar-judge", "avatar-latent", "avatar-oracle"]
    assert shipped_path("../avatar-latent") is None
    assert build_editor("attgan", "avatar-attgan").crop_size == 32
    assert set(build_editor("latent", "avatar-latent").attributes) == {"Smiling", "Eyeglasses"}
    avatar = tmp_path / "avatar.png"
    Image.fromarray(render_record(held_out_records(1, SEED)[0], 32)).save(avatar)
    edited = tmp_path / "edited.png"
    edit = ["edit", str(avatar), "--aligned", "--method", "latent", "--model", "avatar-latent"]
    assert main([*edit, "--attr", "Smiling=1", "--steps", "2", "-o", str(edited)]) == 0
    assert Image.open(edited).size == (32, 32)
    args = ["eval", "avatars", "--method", "attgan", "--model", "avatar-attgan", "--n", "1"]
    assert main([*args, "--attrs", "Eyeglasses", "-o", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "avatar_eval.json").is_file()
    capsys.readouterr()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "avatar-latent  [bundle]" in listing and "avatar-oracle  [model]" in listing


def test_demo_runs_on_the_models_that_ship(tmp_path, capsys):
    """No argument, no download: the real shipped AttGAN, latent bundle and oracle."""
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "demo_grid.png") in printed and str(out / "report.html") in printed
    html = (out / "report.html").read_text()
    assert "avatar-attgan" in html and "avatar-latent" in html
    assert Image.open(out / "demo_grid.png").size[0] > 0
