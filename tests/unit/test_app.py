"""The web demo's backend (no browser): photo and video edits on the bundled demo models,
and the one-line messages a user sees for bad uploads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceedit.app import Backend, UploadError, build_app, draw_box, sample_photo
from faceedit.errors import FaceeditError, ImageError
from faceedit.faces.detect import NoFaceError


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("FACEEDIT_CACHE")
    os.environ["FACEEDIT_CACHE"] = str(cache)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Backend(steps=5, max_upload_mb=1, workdir=tmp_path_factory.mktemp("work"))
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop("FACEEDIT_CACHE")
    else:
        os.environ["FACEEDIT_CACHE"] = old


@pytest.mark.parametrize("method", ["latent", "attgan"])
def test_photo_edit_changes_only_the_face(backend, method):
    session = backend.prepare(str(sample_photo()), method, None)
    assert session.attributes
    first = session.attributes[0]
    assert backend.edit(session, {first: 0.0}) is session.original  # all sliders at 0
    out = backend.edit(session, {first: 1.5})
    x0, y0 = np.floor(session.face.quad.min(0)).astype(int) - 3
    x1, y1 = np.ceil(session.face.quad.max(0)).astype(int) + 3
    outside = np.ones(out.shape[:2], bool)
    outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
    assert np.array_equal(out[outside], session.original[outside])
    assert not np.array_equal(out, session.original)
    # the second slider position reuses the cached inversion and still changes the face
    assert not np.array_equal(backend.edit(session, {first: -1.5}), out)
    saved = backend.save(out, session.name)
    assert saved.endswith("grace_hopper_edited.png")
    assert draw_box(out, session.face.box, session.face.quad).shape == out.shape


def test_bad_uploads_give_one_line_messages(backend, tmp_path):
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    with pytest.raises(ImageError, match=r"^notes\.png: not an image"):
        backend.prepare(str(junk), "attgan", None)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (2 * 1024**2))
    with pytest.raises(UploadError, match=r"big\.jpg: 2\.0 MB is over the 1 MB upload limit"):
        backend.prepare(str(big), "attgan", None)
    grey = tmp_path / "wall.png"
    from PIL import Image

    Image.new("RGB", (120, 90), (128, 128, 128)).save(grey)
    with pytest.raises(NoFaceError, match=r"wall\.png: no face found"):
        backend.prepare(str(grey), "attgan", None)
    with pytest.raises(UploadError, match="choose a photo"):
        backend.prepare(None, "attgan", None)
    with pytest.raises(FaceeditError, match="no_such_model"):
        backend.prepare(str(sample_photo()), "attgan", str(tmp_path / "no_such_model"))


def test_video_tab_backend(backend, tmp_path):
    pytest.importorskip("av")
    from tests.helpers.tiny_edit import make_video

    clip = tmp_path / "clip.mp4"
    make_video(clip, n_frames=4, size=128, audio=None)
    session_attrs = backend.editor("attgan", None).attributes
    report = backend.edit_video(str(clip), "attgan", None, {session_attrs[0]: 1.0})
    assert report.frames == 4 and report.output.is_file()
    assert report.edited >= 1


def test_app_builds():
    app = build_app(Backend(steps=1))
    assert app.title == "faceedit"


def _bad_inputs(tmp_path):
    """The bad-input matrix for uploads: ``name -> (path, expected message or None)``."""
    from PIL import Image

    photo = Image.open(sample_photo())
    good = sample_photo().read_bytes()
    cases = {}

    def put(name, data=None, image=None, expect=None, **save):
        path = tmp_path / name
        if image is not None:
            image.save(path, **save)
        else:
            path.write_bytes(data)
        cases[name] = (path, expect)

    put("empty.jpg", b"", expect="file is empty")
    put("random.png", np.random.default_rng(0).bytes(4096), expect="not an image")
    put("truncated.jpg", good[: len(good) // 3], expect="truncated or corrupt")
    png = tmp_path / "full.png"
    photo.save(png)
    put("truncated.png", png.read_bytes()[:5000], expect="truncated or corrupt")
    put("tiny1x1.png", image=Image.new("RGB", (1, 1)), expect="smaller than 16 px")
    put("tiny16.png", image=Image.new("RGB", (16, 16), (90, 90, 90)), expect="no face found")
    put("rgba.png", image=photo.convert("RGBA"))
    put("palette.png", image=photo.convert("P"))
    put("grey.png", image=photo.convert("L"))
    grey16 = np.asarray(photo.convert("L")).astype(np.uint16) * 257  # full 16-bit range
    put("grey16.png", image=Image.fromarray(grey16))
    put("cmyk.jpg", image=photo.convert("CMYK"))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the reader must turn it upright to find the face
    put("rotated.jpg", image=photo.rotate(90, expand=True), exif=exif)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 Mpx, a few KB on disk
    cases["bomb.png"] = (bomb, "too large")
    two = Image.new("RGB", (photo.width * 2, photo.height))
    two.paste(photo, (0, 0))
    two.paste(photo, (photo.width, 0))
    put("two_faces.jpg", image=two)
    return cases


def test_upload_matrix(backend, tmp_path):
    for name, (path, expect) in _bad_inputs(tmp_path).items():
        if expect is None:
            session = backend.prepare(str(path), "attgan", None)
            assert session.face.crop.shape == (32, 32, 3), name
            assert session.original.shape[2] == 3, name
            continue
        with pytest.raises(FaceeditError) as info:
            backend.prepare(str(path), "attgan", None)
        message = str(info.value)
        assert message.startswith(name) and expect in message, (name, message)
        assert "\n" not in message


def test_serve_refuses_bad_options():
    from faceedit.cli import main

    assert main(["serve", "--max-upload-mb", "0"]) == 2
    assert main(["serve", "--port", "70000"]) == 2
