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


def test_upload_matrix(backend, tmp_path):
    from tests.helpers.bad_images import bad_image_files

    for name, case in bad_image_files(tmp_path).items():
        if case.for_faces is None:
            session = backend.prepare(str(case.path), "attgan", None)
            assert session.face.crop.shape == (32, 32, 3), name
            assert session.original.shape[2] == 3, name
            continue
        with pytest.raises(FaceeditError) as info:
            backend.prepare(str(case.path), "attgan", None)
        message = str(info.value)
        assert message.startswith(name) and case.for_faces in message, (name, message)
        assert "\n" not in message


def test_serve_refuses_bad_options():
    from faceedit.cli import main

    assert main(["serve", "--max-upload-mb", "0"]) == 2
    assert main(["serve", "--port", "70000"]) == 2


def test_an_avatar_model_on_the_page_edits_the_whole_avatar(backend, tmp_path):
    """The shipped avatar-attgan takes an uploaded avatar whole (no photo detection), and
    says so; a photo it cannot use is one message."""
    from faceedit.data.avatars import render_record
    from faceedit.data.images import write_image
    from faceedit.eval.avatars import held_out_records

    avatar = tmp_path / "avatar.png"
    write_image(avatar, render_record(held_out_records(1, seed=5)[0], 128))
    session = backend.prepare(str(avatar), "attgan", "avatar-attgan")
    assert session.face is None and session.crop.shape == (64, 64, 3)
    assert session.notes == []
    out = backend.edit(session, {"Eyeglasses": 1.0})
    assert out.shape == session.original.shape
    assert np.abs(out.astype(int) - session.original.astype(int)).mean() > 1
    with pytest.raises(FaceeditError, match="an avatar model takes a square avatar image"):
        backend.prepare(str(sample_photo()), "attgan", "avatar-attgan")
