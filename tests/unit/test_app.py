"""The web page's backend (no browser): photo and video edits on the self-test models,
the avatar studio on the shipped models, the access policy of the model box, the
official photo models offered, the per-session files, and the one-line messages a user
sees for bad uploads and models."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch

from faceedit.app import (
    SELFTEST,
    AccessPolicy,
    Backend,
    ModelRefused,
    UploadError,
    build_app,
    draw_box,
    sample_photo,
)
from faceedit.app.access import is_loopback, scrub_paths
from faceedit.errors import FaceeditError, ImageError
from faceedit.faces.detect import NoFaceError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("FACEEDIT_CACHE")
    os.environ["FACEEDIT_CACHE"] = str(cache)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield cache
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop("FACEEDIT_CACHE")
    else:
        os.environ["FACEEDIT_CACHE"] = old


@pytest.fixture(scope="module")
def backend(cache, tmp_path_factory):
    return Backend(steps=5, max_upload_mb=1, workdir=tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def studio(backend):
    from faceedit.app.studio import AvatarStudio

    return AvatarStudio(backend)


# ------------------------------------------------------------------- photos


@pytest.mark.parametrize("method", ["latent", "linear", "attgan"])
def test_photo_edit_changes_only_the_face(backend, method):
    session = backend.prepare(str(sample_photo()), method, SELFTEST)
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
    saved = backend.save(out, session.name, "tab-1")
    assert saved.endswith("grace_hopper_edited.png")
    assert draw_box(out, session.face.box, session.face.quad).shape == out.shape


def test_no_model_is_a_default(backend):
    with pytest.raises(ModelRefused, match="choose a model first"):
        backend.prepare(str(sample_photo()), "latent", None)


def test_face_picker_edits_the_chosen_face_or_all(backend, tmp_path):
    from PIL import Image

    from faceedit.data.images import read_image

    grace = read_image(sample_photo())
    h, w = grace.shape[:2]
    pair = np.zeros((h, 2 * w, 3), np.uint8)
    pair[:, :w], pair[:, w:] = grace, grace[:, ::-1]
    path = tmp_path / "two.png"
    Image.fromarray(pair).save(path)
    session = backend.prepare(str(path), "attgan", SELFTEST)
    assert len(session.faces) == 2
    attr = session.attributes[0]

    def changed(out):  # which half of the picture the edit touched
        d = np.abs(out.astype(int) - pair.astype(int)).sum(-1)
        return d[:, :w].sum() > 0, d[:, w:].sum() > 0

    left = 0 if session.faces[0].box[0] < w else 1  # faces are largest first
    first = changed(backend.edit(session, {attr: 1.5}, face=0))
    assert first == ((True, False) if left == 0 else (False, True))
    second = changed(backend.edit(session, {attr: 1.5}, face="face 2"))
    assert second == (not first[0], not first[1])
    assert changed(backend.edit(session, {attr: 1.5}, face="all")) == (True, True)


def test_bad_uploads_give_one_line_messages(backend, tmp_path):
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    with pytest.raises(ImageError, match=r"^notes\.png: not an image"):
        backend.prepare(str(junk), "attgan", SELFTEST)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (2 * 1024**2))
    with pytest.raises(UploadError, match=r"big\.jpg: 2\.0 MB is over the 1 MB upload limit"):
        backend.prepare(str(big), "attgan", SELFTEST)
    grey = tmp_path / "wall.png"
    from PIL import Image

    Image.new("RGB", (120, 90), (128, 128, 128)).save(grey)
    with pytest.raises(NoFaceError, match=r"wall\.png: no face found"):
        backend.prepare(str(grey), "attgan", SELFTEST)
    with pytest.raises(UploadError, match="choose a photo"):
        backend.prepare(None, "attgan", SELFTEST)


def test_video_tab_backend(backend, tmp_path):
    pytest.importorskip("av")
    from tests.helpers.tiny_edit import make_video

    clip = tmp_path / "clip.mp4"
    make_video(clip, n_frames=4, size=128, audio=None)
    attrs = backend.editor("attgan", SELFTEST).attributes
    report = backend.edit_video(str(clip), "attgan", SELFTEST, {attrs[0]: 1.0}, "tab-v")
    assert report.frames == 4 and report.output.is_file()
    assert report.edited >= 1
    assert report.output.is_relative_to(backend.session_dir("tab-v"))  # never beside the clip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_app_builds():
    app = build_app(Backend(steps=1))
    assert app.title == "faceedit"


def test_upload_matrix(backend, tmp_path):
    from tests.helpers.bad_images import bad_image_files

    for name, case in bad_image_files(tmp_path).items():
        if case.for_faces is None:
            session = backend.prepare(str(case.path), "attgan", SELFTEST)
            assert session.face.crop.shape == (32, 32, 3), name
            assert session.original.shape[2] == 3, name
            continue
        with pytest.raises(FaceeditError) as info:
            backend.prepare(str(case.path), "attgan", SELFTEST)
        message = str(info.value)
        assert message.startswith(name) and case.for_faces in message, (name, message)
        assert "\n" not in message


def test_serve_refuses_bad_options():
    from faceedit.cli import main

    assert main(["serve", "--max-upload-mb", "0"]) == 2
    assert main(["serve", "--port", "70000"]) == 2
    assert main(["serve", "--auth", "nopassword"]) == 2


def test_an_avatar_model_on_the_photo_tab_edits_the_whole_avatar(backend, tmp_path):
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


# ------------------------------------------------------------------- the studio


def test_a_seed_gives_the_same_avatar_and_seeds_differ(studio):
    from faceedit.app.studio import avatar_record

    a, b = studio.new_avatar(7), studio.new_avatar(7)
    assert a.record == b.record and np.array_equal(a.image, b.image)
    assert len({json.dumps(avatar_record(s), sort_keys=True) for s in range(20)}) == 20
    with pytest.raises(FaceeditError, match="seed"):
        studio.new_avatar(-1)


def _flip(record, names, strength=1.5):
    from faceedit.data.avatars import attributes

    on = attributes(record)
    return {a: -strength if on[a] > 0 else strength for a in names}


def test_studio_attgan_edit_is_judged_and_measured_against_its_truth(studio):
    from faceedit.app.studio import face_mask
    from faceedit.data.avatars import attributes, edit_attribute, render_record
    from faceedit.eval.metrics import region_gain

    avatar = studio.new_avatar(3)
    moved = _flip(avatar.record, ["Smiling", "Eyeglasses"])
    out = studio.edit(avatar, "attgan", moved)
    # the judge sees each moved attribute go the way its slider went
    for a, s in moved.items():
        assert (out.after[a] - avatar.before[a]) * s > 0.3, (a, avatar.before[a], out.after[a])
    # the truth is the avatar with both attributes set, by eval avatars' rule
    target = avatar.record
    for a, s in moved.items():
        target = edit_attribute(target, a, s > 0)
    assert all((attributes(target)[a] > 0) == (s > 0) for a, s in moved.items())
    assert np.array_equal(out.truth, render_record(target, 64))
    assert out.gain == pytest.approx(float(region_gain(out.image, avatar.image, out.truth)[0]))
    assert out.gain > 0  # closer to the truth than doing nothing
    # the edit stays in the face
    d = np.abs(out.image.astype(int) - avatar.image.astype(int)).max(-1)
    inside = face_mask(64)
    assert d[inside].mean() > 2 * d[~inside].mean()
    # sliders at 0: the avatar itself
    assert studio.edit(avatar, "attgan", {"Smiling": 0}).image is avatar.image


@pytest.mark.parametrize("method", ["latent", "linear"])
def test_studio_latent_methods_edit(studio, method):
    avatar = studio.new_avatar(3)
    moved = _flip(avatar.record, ["Eyeglasses"])
    out = studio.edit(avatar, method, moved)
    assert out.image.shape == avatar.image.shape
    assert not np.array_equal(out.image, avatar.image)
    assert out.truth is not None and np.isfinite(out.gain)
    assert set(studio.attributes(method)) <= set(out.after)


def test_serve_with_pivotal_tuning_keeps_more_of_the_avatar(studio, cache, tmp_path):
    """``serve --invert pti``: the latent model tunes its generator per avatar, so the
    rest of the avatar (outside the edited region) is kept better than by the encoder."""
    from faceedit.app.studio import AvatarStudio
    from faceedit.eval.metrics import outside_region_psnr

    tuned = AvatarStudio(
        Backend(steps=5, workdir=tmp_path, invert="pti", inversion={"pti_steps": 40})
    )
    assert tuned.editor("latent").editor.settings()["invert"] == "pti"
    avatar = studio.new_avatar(4)
    moved = _flip(avatar.record, ["Eyeglasses"])
    plain, pti = (s.edit(avatar, "latent", moved) for s in (studio, tuned))
    outside = {
        k: float(outside_region_psnr(e.image[None], avatar.image[None], e.truth[None])[0])
        for k, e in (("plain", plain), ("pti", pti))
    }
    assert outside["pti"] > outside["plain"] + 2.0, outside
    assert main_refuses(["serve", "--pti-steps", "10"])


def main_refuses(argv: list[str]) -> bool:
    from faceedit.cli import main

    return main(argv) == 2


def test_ground_truth_notes_several_answers_and_clashes(studio):
    from faceedit.app.studio import avatar_record, ground_truth
    from faceedit.data.avatars import attributes, has_unique_truth

    record = next(r for s in range(50) if attributes(r := avatar_record(s))["Wearing_Hat"] < 0)
    _, note = ground_truth(record, {"Wearing_Hat": 1.0, "Black_Hair": 1.0})
    assert note.startswith("no ground truth")
    glasses = attributes(record)["Eyeglasses"] > 0
    _, note = ground_truth(record, {"Eyeglasses": -1.0 if glasses else 1.0})
    assert (note == "") == has_unique_truth(record, "Eyeglasses", not glasses)
    # asking for what the avatar already is: no region to measure, said so
    avatar = studio.new_avatar(
        int(next(s for s in range(50) if attributes(avatar_record(s))["Smiling"] > 0))
    )
    out = studio.edit(avatar, "attgan", {"Smiling": 1.0})
    assert out.gain is None and "nothing to change" in out.note


def test_uploaded_avatar_has_readings_but_no_truth(studio, tmp_path):
    from faceedit.app.studio import avatar_record
    from faceedit.data.avatars import render_record
    from faceedit.data.images import write_image

    path = tmp_path / "mine.png"
    write_image(path, render_record(avatar_record(4), 128))
    avatar = studio.upload(str(path))
    assert avatar.record is None and avatar.image.shape == (64, 64, 3) and avatar.before
    out = studio.edit(avatar, "attgan", {"Smiling": 1.0})
    assert out.truth is None and "no ground truth" in out.note
    wide = tmp_path / "wide.png"
    write_image(wide, np.zeros((64, 100, 3), np.uint8))
    with pytest.raises(FaceeditError, match=r"wide\.png: an avatar image is square"):
        studio.upload(str(wide))


def test_studio_clip_is_edited_and_named(studio, backend, tmp_path):
    pytest.importorskip("av")
    clip = studio.clip(2, tmp_path / "a.mp4", frames=4)
    report = backend.edit_video(str(clip), "attgan", "avatar-attgan", {"Smiling": 1.0}, "tab-c")
    assert report.frames == 4 and report.edited == 4


# ------------------------------------------------------------------- access


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "example.org"))
    assert AccessPolicy.for_host("127.0.0.1").allow_paths
    remote = AccessPolicy.for_host("0.0.0.0")
    assert remote.remote and not remote.allow_paths and "--allow-paths" in remote.describe()
    assert AccessPolicy.for_host("0.0.0.0", allow_paths=True).allow_paths


def test_remote_policy_takes_only_offered_names(cache, tmp_path):
    from faceedit.shipped import shipped_path

    backend = Backend(steps=1, workdir=tmp_path / "w", policy=AccessPolicy(False, True))
    here = shipped_path("avatar-attgan")
    with pytest.raises(ModelRefused) as info:
        backend.editor("attgan", str(here))
    message = str(info.value)
    assert "not offered by this server" in message and "avatar-attgan" in message
    # a name resolves to its own model, never to a same-named file in the working folder
    assert backend.model_path("attgan", "avatar-attgan") == str(here)
    assert backend.editor("attgan", "avatar-attgan").attributes


def test_model_errors_name_no_path_nor_content(cache, tmp_path):
    backend = Backend(steps=1, workdir=tmp_path / "w")
    secret = tmp_path / "secret_dir"
    secret.mkdir()
    torch.save({"api_key_table": 1, "hidden_weights": torch.zeros(1)}, secret / "x.pt")
    for typed, method in (
        (str(secret / "x.pt"), "latent"),
        (str(secret / "x.pt"), "attgan"),
        (str(secret / "missing.pt"), "attgan"),
        ("stylegan2-ffhq-config-f", "latent"),  # a known name not downloaded
    ):
        with pytest.raises(ModelRefused) as info:
            backend.editor(method, typed)
        message = str(info.value)
        assert "\n" not in message
        assert "api_key_table" not in message and "hidden_weights" not in message, message
        # the only path in the line is what the user typed (quoted first)
        assert str(tmp_path) not in re.sub(r"^model '[^']*'", "", message), message
    with pytest.raises(ModelRefused, match="not downloaded yet: faceedit download"):
        backend.editor("latent", "stylegan2-ffhq-config-f")


def test_scrub_paths_keeps_only_file_names():
    text = "/tmp/gradio/ab12/clip.mp4: an avatar model takes square frames, got 3x4"
    assert scrub_paths(text) == "clip.mp4: an avatar model takes square frames, got 3x4"
    assert "/home" not in scrub_paths("model at /home/u/models/m.pt failed")


# ------------------------------------------------------------------- sessions, models


def test_session_files_are_removed_with_the_session_and_the_server(tmp_path):
    backend = Backend(steps=1, workdir=tmp_path / "serve")
    saved = backend.save(np.zeros((8, 8, 3), np.uint8), "a.png", "tab-1")
    other = backend.save(np.zeros((8, 8, 3), np.uint8), "a.png", "tab-2")
    upload = backend.workdir / "uploads" / "h1" / "photo.png"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"x")
    outside = tmp_path / "users_photo.png"
    outside.write_bytes(b"x")
    backend.track("tab-1", upload)
    backend.track("tab-1", outside)  # not the server's: never removed
    backend.end_session("tab-1")
    assert not os.path.exists(saved) and not upload.exists() and outside.exists()
    assert os.path.exists(other)
    backend.close()
    assert not backend.workdir.exists() and outside.exists()


def test_official_photo_models_are_offered_else_the_download_commands(cache, tmp_path):
    from faceedit.app.backend import demo_models_dir
    from faceedit.app.photo import default_model, downloads_panel, official_photo_models

    assert official_photo_models() == {}
    panel = downloads_panel()
    for command in (
        "faceedit download lt-ffhq-e4e",
        "faceedit download lt-ffhq-psp",
        "faceedit download attgan-384-hq --from FOLDER",
    ):
        assert command in panel
    release = cache / "384_shortcut1_inject1_none_hq" / "checkpoint"
    release.mkdir(parents=True)
    (release / "weights.0.pth").write_bytes(b"")
    os.symlink(demo_models_dir() / "latent", cache / "lt-test")
    entries = [{"name": "lt-test", "filename": "lt-test", "url": "http://127.0.0.1/x",
                "loads_as": "bundle", "source": "test", "licence": "test",
                "description": "a bundle"}]  # fmt: skip
    registry = tmp_path / "entries.json"
    registry.write_text(json.dumps(entries))
    os.environ["FACEEDIT_REGISTRY"] = str(registry)
    try:
        models = official_photo_models()
    finally:
        del os.environ["FACEEDIT_REGISTRY"]
        (cache / "lt-test").unlink()
        (release / "weights.0.pth").unlink()
    assert models == {"attgan-384-hq": ("attgan",), "lt-test": ("latent", "linear")}
    assert default_model("attgan", models) == "attgan-384-hq"
    assert default_model("linear", models) == "lt-test"
    assert "avatar-latent" not in models  # shipped avatar models belong to the studio


def test_serve_off_loopback_policy_with_sign_in(cache):
    """The real server, bound to 127.0.0.1 but with the remote policy and a password: the
    page's config needs the sign-in, the password opens it, and its backend refuses
    paths."""
    import http.cookiejar
    import urllib.error
    import urllib.parse
    import urllib.request

    from faceedit.app import serve
    from faceedit.shipped import shipped_path
    from tests.browser.test_web_demo import _free_port

    port = _free_port()
    old_temp = os.environ.get("GRADIO_TEMP_DIR")
    app, backend = serve(
        port=port,
        steps=1,
        auth=("ada", "s3cret"),
        policy=AccessPolicy(allow_paths=False, remote=True),
        block=False,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url + "/config", timeout=30)
        assert info.value.code == 401
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        bad = urllib.parse.urlencode({"username": "ada", "password": "wrong"}).encode()
        with pytest.raises(urllib.error.HTTPError):
            opener.open(url + "/login", bad, timeout=30)
        good = urllib.parse.urlencode({"username": "ada", "password": "s3cret"}).encode()
        assert opener.open(url + "/login", good, timeout=30).status == 200
        assert opener.open(url + "/config", timeout=30).status == 200
        with pytest.raises(ModelRefused, match="not offered"):
            backend.editor("attgan", str(shipped_path("avatar-attgan")))
        assert os.environ["GRADIO_TEMP_DIR"].startswith(str(backend.workdir))
    finally:
        app.close()
        backend.close()
        if old_temp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old_temp
    assert not backend.workdir.exists()
