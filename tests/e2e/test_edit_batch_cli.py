"""``faceedit edit --edits FILE`` (per-photo edits in one call), ``--reconstruct`` and
``--method linear`` on a real photo with tiny random models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from faceedit.cli import main
from faceedit.data.images import read_image
from tests.helpers.tiny_edit import GRACE, latent_bundle

STEPS = "3"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return latent_bundle(tmp_path_factory.mktemp("batch"))


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(GRACE).save(folder / "a.png")
    Image.open(GRACE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")
    return folder


def _run(*args) -> int:
    return main(["edit", *args, "--steps", STEPS, "-q"])


def test_one_call_edits_each_photo_its_own_way(bundle, photos, tmp_path, monkeypatch):
    from faceedit.editing.pipeline import FaceEditor

    calls = []
    prepare = FaceEditor.prepare
    monkeypatch.setattr(
        FaceEditor, "prepare", lambda self, *a, **k: calls.append(a[0]) or prepare(self, *a, **k)
    )
    (photos / "edits.csv").write_text(
        "# photo, edits\na.png,Smiling=1\nb.png,Eyeglasses=-1\na.png,Smiling=-1,Eyeglasses=1\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    assert _run("--edits", str(photos / "edits.csv"), "--model", str(bundle), "-o", str(out)) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_Smiling+1.png", "a_Smiling-1_Eyeglasses+1.png", "b_Eyeglasses-1.png"]
    # each photo detected, aligned and inverted once, however many rows name it
    assert [c.rsplit("/", 1)[-1] for c in calls] == ["a.png", "b.png"]
    # the same as editing that photo alone with that row's edits
    alone = tmp_path / "alone.png"
    args = ["--attr", "Smiling=-1", "--attr", "Eyeglasses=1", "--model", str(bundle)]
    assert _run(str(photos / "a.png"), *args, "-o", str(alone)) == 0
    np.testing.assert_array_equal(
        read_image(out / "a_Smiling-1_Eyeglasses+1.png"), read_image(alone)
    )


def test_json_lines_rows_and_attr_defaults(bundle, photos, tmp_path):
    rows = [{"image": "a.png", "edits": {"Smiling": 0.5}}, {"image": "b.png"}]
    (photos / "edits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    out.mkdir()
    args = ["--edits", str(photos / "edits.jsonl"), "--attr", "Eyeglasses=1"]
    assert _run(*args, "--model", str(bundle), "-o", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_Eyeglasses+1_Smiling+0.5.png",
        "b_Eyeglasses+1.png",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.png,Smiling=x\n", "edits.csv:1: --attr 'Smiling=x': strength 'x' is not a number"),
        ("a.png,Nope=1\n", "unknown attribute 'Nope'"),
        ('{"edits": {}}\n', "edits.csv:1: expected"),
        ("a.png\n", "edits.csv:1: no edit for a.png"),
        ("# nothing\n", "no rows"),
    ],
)
def test_a_bad_edits_file_is_one_line_and_writes_nothing(
    bundle, photos, tmp_path, capsys, text, message
):
    (photos / "edits.csv").write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    assert _run("--edits", str(photos / "edits.csv"), "--model", str(bundle), "-o", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not any(out.iterdir())


def test_reconstruct_writes_the_unedited_rendering(bundle, photos, tmp_path):
    from faceedit.editing.pipeline import build_editor

    out = tmp_path / "rec.png"
    assert _run(str(photos / "a.png"), "--reconstruct", "--model", str(bundle), "-o", str(out)) == 0
    editor = build_editor("latent", bundle, steps=int(STEPS))
    photo = editor.prepare(str(photos / "a.png"))
    expected = editor.render(photo, None).image
    np.testing.assert_array_equal(read_image(out), expected)
    # beside an edit it is NAME_recon.png, and differs from the edit
    edited = tmp_path / "edited.png"
    args = [str(photos / "a.png"), "--attr", "Smiling=2", "--reconstruct", "--model", str(bundle)]
    assert _run(*args, "-o", str(edited)) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "edited_recon.png"), expected)
    assert not np.array_equal(read_image(edited), expected)


def test_linear_directions_edit_a_photo(bundle, photos, tmp_path):
    """--method linear uses the bundle's directions: a different edit from the
    transformers' of the same code, the photo unchanged away from the face."""
    outs = {}
    for method in ("latent", "linear"):
        outs[method] = tmp_path / f"{method}.png"
        args = [str(photos / "a.png"), "--attr", "Smiling=1", "--method", method]
        assert _run(*args, "--model", str(bundle), "-o", str(outs[method])) == 0
    a, b = read_image(outs["latent"]), read_image(outs["linear"])
    original = read_image(photos / "a.png")
    assert not np.array_equal(a, b)
    assert np.array_equal(a[:20], original[:20]) and np.array_equal(b[:20], original[:20])


@pytest.mark.parametrize("method", ["latent", "attgan"])
def test_no_model_names_the_commands_that_find_one(photos, tmp_path, capsys, method, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "empty-cache"))  # no official bundle
    out = tmp_path / "out.png"
    args = ["edit", str(photos / "a.png"), "--attr", "Smiling=1", "--method", method]
    assert main([*args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "faceedit models" in err and "--model" in err
    assert not out.exists()
