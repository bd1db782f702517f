"""``faceedit video`` end to end on a short video panning and zooming over a real photo
(matplotlib's grace_hopper.jpg, 12 frames, AAC or PCM audio) with tiny random models:
frame count, frame rate, timestamps (variable too) and audio kept; faces edited and the
rest unchanged; an interrupted run resumes to the same output; broken and faceless
frames reported; clear errors with no partial output."""

from __future__ import annotations

import av
import numpy as np
import pytest

from faceedit.cli import main
from faceedit.editing.video import VideoEditor, cache_dir_for, frame_ranges, smooth_track
from tests.helpers.tiny_edit import attgan_model, latent_bundle, make_video, read_only


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    latent_bundle(root)
    attgan_model(root)
    make_video(root / "in.mp4")
    return root


def _frames(path) -> tuple[list[np.ndarray], list[float]]:
    images, times = [], []
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            try:
                decoded = packet.decode()
            except av.InvalidDataError:  # the broken frame of the VFR test video
                continue
            for f in decoded:
                images.append(f.to_ndarray(format="rgb24"))
                times.append(float(f.time))
    return images, times


def _audio(path) -> tuple[str | None, list[bytes]]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None, []
        a = c.streams.audio[0]
        return a.codec_context.name, [bytes(p) for p in c.demux(a) if p.dts is not None]


def _rate(path):
    with av.open(str(path)) as c:
        return c.streams.video[0].average_rate


def test_latent_video_keeps_timing_and_audio(root, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(
        [
            "video",
            str(root / "in.mp4"),
            "--attr",
            "Smiling=1",
            "--model",
            str(root / "latent"),
            "--invert",
            "optimize",
            "--steps",
            "2",
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert "12 frames" in capsys.readouterr().out
    src, src_t = _frames(root / "in.mp4")
    dst, dst_t = _frames(out)
    assert len(dst) == 12 and dst_t == pytest.approx(src_t, abs=1e-4)
    assert _rate(out) == _rate(root / "in.mp4") == 12
    assert _audio(out) == _audio(root / "in.mp4")  # AAC packets copied bit for bit
    assert _audio(out)[0] == "aac"
    diff = [
        np.abs(a.astype(int) - b.astype(int)).mean(axis=2) for a, b in zip(src, dst, strict=True)
    ]
    for d in diff:
        assert d[:, :8].mean() < 3 and d[-8:].mean() < 3  # borders: only coding noise
        assert d[60:100, 60:100].mean() > 10  # the face was replaced
    assert not cache_dir_for(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_linear_method_edits_a_video_with_the_bundles_directions(root, tmp_path, capsys):
    """--method linear goes through the same video pipeline (the latent bundle's linear
    directions instead of its transformers): another edit of the same codes."""
    outs = {}
    for method in ("latent", "linear"):
        outs[method] = tmp_path / f"{method}.mp4"
        args = ["video", str(root / "in.mp4"), "--attr", "Smiling=1", "--method", method]
        args += ["--model", str(root / "latent"), "--invert", "optimize", "--steps", "2"]
        assert main([*args, "-q", "-o", str(outs[method])]) == 0
    latent, _ = _frames(outs["latent"])
    linear, _ = _frames(outs["linear"])
    assert len(latent) == len(linear) == 12
    face = [
        np.abs(a[60:100, 60:100].astype(int) - b[60:100, 60:100]).mean()
        for a, b in zip(latent, linear, strict=True)
    ]
    assert min(face) > 3  # a different edit on every frame's face


def test_resume_after_interruption_gives_the_same_video(root, tmp_path):
    from faceedit.editing.pipeline import build_editor

    def editor():
        ed = build_editor("latent", root / "latent", invert="optimize", steps=2)
        return VideoEditor(ed, sigma=1.5)

    full = tmp_path / "full.mp4"
    editor().run(root / "in.mp4", full, {"Smiling": 1.0}, progress=False)

    out = tmp_path / "resumed.mp4"

    def stop(i):
        if i == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        editor().run(root / "in.mp4", out, {"Smiling": 1.0}, progress=False, on_frame=stop)
    cache = cache_dir_for(out)
    assert not out.exists()
    assert sorted(p.name for p in cache.glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    report = editor().run(root / "in.mp4", out, {"Smiling": 1.0}, progress=False)
    assert report.reused == 5 and report.frames == 12
    a, ta = _frames(full)
    b, tb = _frames(out)
    assert ta == tb and len(b) == 12
    assert [int(np.abs(x.astype(int) - y).max()) for x, y in zip(a, b, strict=True)] == [0] * 12
    assert not cache.exists()
    # other settings do not reuse a stale cache
    with pytest.raises(KeyboardInterrupt):
        editor().run(root / "in.mp4", out, {"Smiling": 1.0}, progress=False, on_frame=stop)
    report = editor().run(root / "in.mp4", out, {"Smiling": -1.0}, progress=False)
    assert report.reused == 0


def test_vfr_broken_faceless_frames_side_by_side(root, tmp_path, capsys):
    src = tmp_path / "vfr.mkv"
    pts = [0, 10, 20, 40, 45, 60, 90, 100, 110, 120, 135, 150]
    make_video(src, pts=pts, audio="pcm_s16le", broken=6, blank=(2, 3, 9))
    out = tmp_path / "out.mp4"
    code = main(
        [
            "video",
            str(src),
            "--attr",
            "Eyeglasses=1",
            "--method",
            "attgan",
            "--model",
            str(root / "attgan"),
            "--side-by-side",
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    # frame 6 is broken: 11 frames left, the faceless ones are decoded frames 2, 3 and 8
    assert "11 frames" in text and "1 broken frame" in text
    assert "no face in 3 frame(s), kept unedited: 2-3, 8" in text
    frames, times = _frames(out)
    _, src_times = _frames(src)  # Matroska keeps milliseconds: compare with what it holds
    assert src_times == pytest.approx([t / 120 for k, t in enumerate(pts) if k != 6], abs=1e-3)
    assert times == pytest.approx(src_times, abs=1e-4)
    assert frames[0].shape == (160, 320, 3)
    left, right = frames[2][:, :160].astype(int), frames[2][:, 160:].astype(int)
    assert np.abs(left - right).mean() < 3  # no face: unedited
    left, right = frames[0][:, :160].astype(int), frames[0][:, 160:].astype(int)
    assert np.abs(left - right)[60:100, 60:100].mean() > 10
    codec, packets = _audio(out)
    assert codec in ("pcm_s16le", "aac") and packets


def test_smoothing_handles_runs_and_edges():
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((20, 5, 2)), axis=0)
    valid = np.ones(20, bool)
    valid[8] = False
    out = smooth_track(values, valid, sigma=2.0)
    assert np.array_equal(out[8], values[8])
    # a constant track stays constant up to the edges (renormalised kernel)
    const = smooth_track(np.ones((20, 5, 2)), valid, 2.0)
    assert np.allclose(const, 1.0)
    # smoothing lowers the frame-to-frame jitter within a run
    assert np.abs(np.diff(out[:8], axis=0)).mean() < np.abs(np.diff(values[:8], axis=0)).mean()
    # frames on one side of the gap do not see the other side
    moved = values.copy()
    moved[9:] += 100
    assert np.allclose(smooth_track(moved, valid, 2.0)[:8], out[:8])
    assert np.array_equal(smooth_track(values, valid, 0.0), values)
    assert frame_ranges([0, 1, 2, 7, 9, 10]) == "0-2, 7, 9-10"


def _error(args, capsys) -> str:
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_errors(root, tmp_path, capsys):
    model = [
        "--attr",
        "Eyeglasses=1",
        "--method",
        "attgan",
        "--model",
        str(root / "attgan"),
        "--device",
        "cpu",
    ]
    out = tmp_path / "o.mp4"
    (tmp_path / "text.mp4").write_text("not a video")
    err = _error(["video", str(tmp_path / "text.mp4"), *model, "-o", str(out)], capsys)
    assert "text.mp4: cannot read" in err
    with av.open(str(tmp_path / "sound.m4a"), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    err = _error(["video", str(tmp_path / "sound.m4a"), *model, "-o", str(out)], capsys)
    assert "sound.m4a: has no video stream" in err
    with av.open(str(tmp_path / "empty.mkv"), "w") as c:
        s = c.add_stream("mpeg4", rate=12)
        s.width = s.height = 32
        c.start_encoding()
    err = _error(["video", str(tmp_path / "empty.mkv"), *model, "-o", str(out)], capsys)
    assert "empty.mkv" in err and ("no (decodable) frames" in err or "cannot read" in err)
    err = _error(
        ["video", str(root / "in.mp4"), *model, "-o", str(tmp_path / "x" / "o.mp4")], capsys
    )
    assert "does not exist" in err
    err = _error(["video", str(root / "in.mp4"), *model, "-o", str(tmp_path / "o.gif")], capsys)
    assert "unsupported video type" in err
    err = _error(
        [
            "video",
            str(root / "in.mp4"),
            "--attr",
            "Bald=1",
            "--model",
            str(root / "latent"),
            "-o",
            str(out),
        ],
        capsys,
    )
    assert "unknown attribute 'Bald'" in err
    ro = tmp_path / "ro"
    ro.mkdir()
    if read_only(ro):
        err = _error(["video", str(root / "in.mp4"), *model, "-o", str(ro / "o.mp4")], capsys)
        assert "not writable" in err
        assert list(ro.iterdir()) == []
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["empty.mkv", "ro", "sound.m4a", "text.mp4"]


def test_cli_interrupt_then_resume(root, tmp_path, capsys, monkeypatch):
    from faceedit.editing.pipeline import FaceEditor

    original = FaceEditor.edit_crop
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FaceEditor, "edit_crop", flaky)
    out = tmp_path / "o.mov"
    args = [
        "video",
        str(root / "in.mp4"),
        "--attr",
        "Eyeglasses=1",
        "--method",
        "attgan",
        "--model",
        str(root / "attgan"),
        "--device",
        "cpu",
        "-o",
        str(out),
    ]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "3 finished frame(s) kept" in err and "run the same command again" in err
    assert not out.exists()
    assert main(args) == 0
    assert "resumed: 3 frame(s) reused" in capsys.readouterr().out
    assert len(calls) == 4 + 9  # frames 0-2 were not edited twice
    frames, times = _frames(out)
    assert len(frames) == 12 and times == pytest.approx(_frames(root / "in.mp4")[1], abs=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mov"]


def test_display_rotation_turns_frames_upright():
    """``frame.rotation`` (degrees counter-clockwise, PyAV) is applied before detection."""
    from faceedit.editing.video import _upright_rgb

    stored = np.zeros((2, 3, 3), np.uint8)
    stored[0, 2] = 255  # top-right pixel as stored

    class Frame:
        def __init__(self, rotation):
            self.rotation = rotation

        def to_ndarray(self, format):
            return stored

    assert _upright_rgb(Frame(0)) is stored
    ccw = _upright_rgb(Frame(90))  # turned a quarter counter-clockwise: top-right -> top-left
    assert ccw.shape == (3, 2, 3) and ccw[0, 0, 0] == 255
    cw = _upright_rgb(Frame(-90))  # a quarter clockwise (phone portrait): -> bottom-right
    assert cw.shape == (3, 2, 3) and cw[2, 1, 0] == 255
    assert _upright_rgb(Frame(180))[1, 0, 0] == 255


@pytest.mark.parametrize("name, data", [("empty.mp4", b""), ("random.mp4", bytes(range(256)) * 64)])
def test_empty_and_random_files(root, tmp_path, capsys, name, data):
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "out.mp4"
    args = ["video", str(src), "--attr", "Eyeglasses=1", "--method", "attgan"]
    err = _error([*args, "--model", str(root / "attgan"), "-o", str(out)], capsys)
    assert name in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no cache
