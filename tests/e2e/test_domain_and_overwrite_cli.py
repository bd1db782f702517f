"""Models know their domain: an avatar model takes the whole avatar image (no detection),
a photo model detects and aligns, and either warns in one line on the other domain. No
output ever replaces an input without --overwrite."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import faceedit.faces.align
from faceedit.cli import main
from faceedit.data.avatars import render_record
from faceedit.data.domain import looks_drawn
from faceedit.data.images import read_image, write_image
from faceedit.eval.avatars import held_out_records
from tests.helpers.tiny_edit import GRACE, latent_bundle


@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    path = tmp_path_factory.mktemp("avatar") / "avatar.png"
    write_image(path, render_record(held_out_records(1, seed=5)[0], 128))
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The tiny latent bundle as a photo model and, relabelled, as an avatar model."""
    root = tmp_path_factory.mktemp("bundles")
    photo = latent_bundle(root)
    drawn = root / "avatar-bundle"
    shutil.copytree(photo, drawn)
    spec = json.loads((drawn / "bundle.json").read_text())
    (drawn / "bundle.json").write_text(json.dumps({**spec, "domain": "avatar"}))
    return {"ffhq": photo, "avatar": drawn}


def test_drawn_avatars_and_photos_are_told_apart():
    for r in held_out_records(12, seed=9):
        assert looks_drawn(render_record(r, 64)) and looks_drawn(render_record(r, 256))
    assert not looks_drawn(read_image(GRACE))
    from skimage import data

    assert not looks_drawn(data.astronaut()) and not looks_drawn(data.coffee())


def test_an_avatar_model_edits_the_whole_image_without_detection(
    bundles, avatar, tmp_path, monkeypatch, capsys
):
    def no_detection(*args, **kwargs):
        raise AssertionError("an avatar model must not detect faces")

    monkeypatch.setattr(faceedit.faces.align, "align_face", no_detection)
    monkeypatch.setattr(faceedit.faces.align, "align_faces", no_detection)
    out = tmp_path / "out.png"
    args = ["edit", str(avatar), "--attr", "Smiling=1", "--model", str(bundles["avatar"])]
    assert main([*args, "--steps", "2", "-o", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    edited, source = read_image(out), read_image(avatar)
    assert edited.shape == source.shape  # the model's 32 px result, at the image's size
    # every pixel is the model's: nothing of the source is pasted back
    assert np.abs(edited.astype(int) - source.astype(int)).mean() > 10


def test_each_model_warns_on_the_other_domain(bundles, avatar, tmp_path, capsys):
    square = tmp_path / "square.png"
    Image.open(GRACE).crop((0, 50, 512, 562)).save(square)
    args = ["--attr", "Smiling=1", "--model", str(bundles["avatar"]), "--steps", "2"]
    assert main(["edit", str(square), *args, "-o", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("faceedit: warning: ")
    assert "looks like a photograph" in err[0] and "whole avatar images" in err[0]
    # a photo of another shape cannot be an avatar at all
    assert main(["edit", str(GRACE), *args, "-o", str(tmp_path / "b.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "an avatar model takes a square avatar image, got 512x600" in err[0]
    assert not (tmp_path / "b.png").exists()
    # and the photo model on an avatar
    args[3] = str(bundles["ffhq"])
    main(["edit", str(avatar), *args, "-o", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert "looks like a drawn avatar" in err and "use an avatar model" in err


def test_no_output_replaces_an_input_without_overwrite(bundles, avatar, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(avatar, folder / "a.png")
    before = (folder / "a.png").read_bytes()
    args = ["--attr", "Smiling=1", "--model", str(bundles["avatar"]), "--steps", "2"]
    for target in (folder / "a.png", folder):
        assert main(["edit", str(folder / "a.png"), *args, "-o", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--overwrite" in err
    assert main(["edit", str(folder), *args, "-o", str(folder)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (folder / "a.png").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
    assert main(["edit", str(folder / "a.png"), *args, "-o", str(folder), "--overwrite"]) == 0
    assert (folder / "a.png").read_bytes() != before


def test_video_output_cannot_be_its_input(tmp_path, bundles, capsys):
    from tests.helpers.tiny_edit import make_video

    clip = tmp_path / "in.mp4"
    make_video(clip, n_frames=2, audio=None)
    before = clip.read_bytes()
    args = ["video", str(clip), "--attr", "Smiling=1", "--model", str(bundles["ffhq"])]
    assert main([*args, "-o", str(clip)]) == 2
    assert "is an input" in capsys.readouterr().err and clip.read_bytes() == before


def _avatar_clip(path, size=(96, 96), n=4):
    import av

    records = held_out_records(n, seed=5)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        for r in records:
            rgb = np.asarray(Image.fromarray(render_record(r, max(size))).resize(size))
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def test_an_avatar_model_edits_whole_video_frames(bundles, tmp_path, monkeypatch, capsys):
    import av

    import faceedit.faces.detect

    def no_detection(self, image):
        raise AssertionError("an avatar model must not detect faces")

    monkeypatch.setattr(faceedit.faces.detect.FaceDetector, "detect", no_detection)
    clip, out = tmp_path / "avatars.mp4", tmp_path / "out.mp4"
    _avatar_clip(clip)
    args = ["video", str(clip), "--attr", "Smiling=1", "--model", str(bundles["avatar"])]
    assert main([*args, "--invert", "optimize", "--steps", "2", "-q", "-o", str(out)]) == 0
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        src = [f.to_ndarray(format="rgb24") for f in a.decode(video=0)]
        dst = [f.to_ndarray(format="rgb24") for f in b.decode(video=0)]
    assert len(dst) == len(src) == 4 and dst[0].shape == src[0].shape
    for x, y in zip(src, dst, strict=True):  # the model's frame everywhere, borders too
        d = np.abs(x.astype(int) - y.astype(int)).mean(-1)
        assert d[:8].mean() > 10 and d.mean() > 10
    # frames that cannot be avatars are refused before any model runs
    wide = tmp_path / "wide.mp4"
    _avatar_clip(wide, size=(128, 96), n=2)
    assert main([*args[:1], str(wide), *args[2:], "-o", str(tmp_path / "w.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "an avatar model takes square avatar frames" in err
    assert not (tmp_path / "w.mp4").exists()
