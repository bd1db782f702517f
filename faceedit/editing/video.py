"""Edit the face in every frame of a video, stably over time, keeping timing and audio.

The latent-transformer paper (Yao et al., ICCV 2021, Sec. 5) edits videos frame by frame
after aligning each frame's face; what keeps the result stable is that the alignment does
not jitter and that consecutive frames' codes stay close. Here:

1. **Analysis**: every frame is decoded (PyAV) and its face detected (five landmarks).
   The landmarks, then the FFHQ crop quads computed from them, are smoothed over time by
   a Gaussian (``sigma`` frames, window ``+-3 sigma``) inside each run of frames with a
   face; at a run's ends the kernel is cut and renormalised, so nothing is pulled
   towards frames that have no face.
2. **Editing**: each frame's crop is inverted (optimisation starts from the previous
   frame's code; an encoder is simply run per frame), edited, synthesised and pasted
   back. Frames without a face are kept as they are. Each finished frame is stored in a
   cache directory beside the output (``.<output name>.frames/``: ``<index>.png``, the
   code as ``<index>.npy`` and ``manifest.json``); a run that was interrupted reuses the
   stored frames (written atomically: a frame is either complete or absent) and goes on
   from the first missing one, with the same codes as an uninterrupted run.
3. **Encoding**: the frames get the input's own timestamps (``pts`` in the input's
   ``time_base``, so variable frame rates survive) and its average frame rate; the audio
   packets are copied unchanged when the output container takes the codec, otherwise
   re-encoded (AAC; Opus in WebM). The output is written to a temporary file and renamed; the cache
   is removed after success.

A packet that cannot be decoded (a broken frame) is skipped and reported.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceedit.editing.base import resize_crops
from faceedit.errors import FaceeditError
from faceedit.fileio import atomic_path, check_output_path

CACHE_VERSION = 1
# output suffix -> (container format, video codecs to try in order)
CONTAINERS = {
    ".mp4": ("mp4", ("libx264", "mpeg4")),
    ".m4v": ("mp4", ("libx264", "mpeg4")),
    ".mov": ("mov", ("libx264", "mpeg4")),
    ".mkv": ("matroska", ("libx264", "mpeg4")),
    ".avi": ("avi", ("mpeg4",)),
    ".webm": ("webm", ("libvpx-vp9", "libvpx")),
}


class VideoError(FaceeditError):
    """A video cannot be read or written."""


def _av():
    try:
        import av
    except ImportError:
        raise VideoError("video editing needs PyAV: pip install 'faceedit[video]'") from None
    return av


# --------------------------------------------------------------------------- smoothing


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of consecutive True values."""
    out = []
    start = None
    for i, v in enumerate(valid):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(valid)))
    return out


def smooth_track(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time within each run of valid frames.

    Args:
        values: ``[T, ...]`` per-frame values (landmarks ``[T, 5, 2]``, quads ``[T, 4, 2]``).
        valid: ``bool [T]``; invalid frames are returned unchanged and split the runs.
        sigma: standard deviation in frames (``0``: no smoothing). The kernel covers
            ``+-ceil(3 sigma)`` frames; at a run's edges it is truncated and renormalised.

    Returns:
        ``[T, ...]`` float64.
    """
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    if sigma <= 0:
        return out
    radius = int(math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    for start, stop in _runs(np.asarray(valid, bool)):
        for t in range(start, stop):
            lo, hi = max(start, t - radius), min(stop, t + radius + 1)
            w = kernel[lo - t + radius : hi - t + radius]
            out[t] = np.tensordot(w / w.sum(), values[lo:hi], axes=1)
    return out


def frame_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 7]`` -> ``"0-2, 7"``."""
    parts = []
    for start, stop in _runs(np.isin(np.arange(max(indices) + 1), indices)) if indices else []:
        parts.append(str(start) if stop - start == 1 else f"{start}-{stop - 1}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- decoding


@dataclass
class _Decoded:
    broken: int = 0


def _open_input(path: Path):
    av = _av()
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(f"{path}: cannot read this video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def _frames(path: Path, stats: _Decoded) -> Iterator:
    """Decoded video frames in presentation order; undecodable packets are counted."""
    av = _av()
    with contextlib.closing(_open_input(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                stats.broken += 1
                continue
            yield from frames


def _upright_rgb(frame) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` as the video is meant to be shown.

    Phones store portrait videos sideways with a display matrix; faces are only found
    upright, so frames are turned by it (``frame.rotation``: degrees counter-clockwise)
    and written upright, without the matrix.
    """
    rgb = frame.to_ndarray(format="rgb24")
    quarter = round(float(getattr(frame, "rotation", 0) or 0) / 90.0) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter)) if quarter else rgb


# --------------------------------------------------------------------------- results


@dataclass
class VideoEditReport:
    """What :func:`edit_video` did.

    Attributes:
        output: the written video.
        frames: frames written.
        edited: frames whose face was edited.
        no_face: indices of frames kept unedited because no face was found.
        broken: packets that could not be decoded (their frames are skipped).
        reused: frames taken from the cache of an interrupted run.
        audio: ``"copied"``, ``"re-encoded to AAC"`` (``Opus`` for WebM) or ``"none"``.
        fps: the output's average frame rate.
    """

    output: Path
    frames: int
    edited: int
    no_face: list[int] = field(default_factory=list)
    broken: int = 0
    reused: int = 0
    audio: str = "none"
    fps: Fraction | None = None

    def summary(self) -> str:
        lines = [
            f"wrote {self.output}: {self.frames} frames at {float(self.fps or 0):.3g} fps, "
            f"{self.edited} edited, audio {self.audio}"
        ]
        if self.no_face:
            lines.append(
                f"no face in {len(self.no_face)} frame(s), kept unedited: "
                f"{frame_ranges(self.no_face)}"
            )
        if self.broken:
            lines.append(f"{self.broken} broken frame(s) could not be decoded and were skipped")
        if self.reused:
            lines.append(f"resumed: {self.reused} frame(s) reused from the interrupted run")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the cache


def cache_dir_for(output: Path) -> Path:
    """The frame cache of ``output``: ``.<name>.frames/`` beside it."""
    return output.parent / f".{output.name}.frames"


class _FrameCache:
    def __init__(self, root: Path, key: dict) -> None:
        self.root = root
        self.key = key
        self.manifest_path = root / "manifest.json"

    def load(self) -> dict | None:
        """The stored analysis if the cache belongs to the same run settings."""
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("version") != CACHE_VERSION or data.get("key") != self.key:
            return None
        return data

    def reset(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)

    def save(self, data: dict) -> None:
        from faceedit.fileio import atomic_write_text

        atomic_write_text(
            self.manifest_path, json.dumps({**data, "version": CACHE_VERSION, "key": self.key})
        )

    def png(self, i: int) -> Path:
        return self.root / f"{i:06d}.png"

    def code(self, i: int) -> Path:
        return self.root / f"{i:06d}.npy"

    def done(self, i: int) -> bool:
        return self.png(i).is_file()

    def store(self, i: int, rgb: np.ndarray, ws: torch.Tensor | None) -> None:
        from PIL import Image

        if ws is not None:  # the code first: a PNG present means its code is too
            with atomic_path(self.code(i)) as tmp, open(tmp, "wb") as f:
                np.save(f, ws.detach().float().cpu().numpy())
        with atomic_path(self.png(i)) as tmp:
            # lossless either way; level 1 is several times faster than the default 6
            Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, compress_level=1)

    def read(self, i: int) -> np.ndarray:
        from faceedit.data.images import read_image

        return read_image(self.png(i))

    def read_code(self, i: int) -> torch.Tensor | None:
        path = self.code(i)
        return torch.from_numpy(np.load(path)) if path.is_file() else None


# --------------------------------------------------------------------------- the editor


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _pick_codec(av, suffix: str, output: Path) -> tuple[str, str]:
    if suffix not in CONTAINERS:
        raise VideoError(
            f"{output}: unsupported video type {suffix or '(none)'}; use one of "
            f"{', '.join(CONTAINERS)}"
        )
    fmt, codecs = CONTAINERS[suffix]
    for name in codecs:
        if name in av.codecs_available:
            return fmt, name
    raise VideoError(f"{output}: this PyAV build has no encoder for {suffix} ({', '.join(codecs)})")


def _even(rgb: np.ndarray) -> np.ndarray:
    """Pad to even sides (4:2:0 chroma needs them) by repeating the last row/column."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class VideoEditor:
    """Edit a video's faces with a :class:`~faceedit.editing.pipeline.FaceEditor`.

    Args:
        editor: the photo pipeline (method, models, inversion).
        sigma: temporal smoothing of landmarks and crop quads, in frames.
        side_by_side: write ``original | edited`` frames.
        face_index: which face per frame (largest first); ``None`` = the largest.
        crf: quality of x264 / VP9 output (lower is better).
    """

    def __init__(
        self,
        editor,
        sigma: float = 2.0,
        side_by_side: bool = False,
        face_index: int | None = None,
        crf: int = 18,
    ) -> None:
        if sigma < 0:
            raise VideoError(f"sigma must be >= 0, got {sigma}")
        self.editor = editor
        self.sigma = float(sigma)
        self.side_by_side = side_by_side
        self.face_index = face_index
        self.crf = crf

    def _detector(self):
        from faceedit.faces.detect import FaceDetector, default_detector

        d = self.editor.detector
        if isinstance(d, FaceDetector):
            return d
        return default_detector(d or "yunet")

    # ----------------------------------------------------------------- pass 1
    def analyse(self, path: Path, progress: bool = True) -> dict:
        """Timestamps and the chosen face's landmarks of every decodable frame."""
        from tqdm import tqdm

        # an avatar model edits the whole frame: nothing to detect
        whole = self.editor.editor.domain == "avatar"
        detector = None if whole else self._detector()
        stats = _Decoded()
        frames = []
        with contextlib.closing(_open_input(path)) as c:
            stream = c.streams.video[0]
            total = stream.frames or None
            tb = stream.time_base
            rate = stream.average_rate or stream.guessed_rate
            w, h = stream.codec_context.width, stream.codec_context.height
        if whole and w and h and abs(h - w) > 0.02 * max(h, w):  # before any progress bar
            raise VideoError(f"{path}: an avatar model takes square avatar frames, got {w}x{h}")
        bar = tqdm(total=total, desc="finding faces", unit="frame", disable=not progress)
        for frame in _frames(path, stats):
            rgb = _upright_rgb(frame)
            h, w = rgb.shape[:2]
            if whole:
                if abs(h - w) > 0.02 * max(h, w):
                    raise VideoError(
                        f"{path}: an avatar model takes square avatar frames, got {w}x{h}"
                    )
                frames.append({"pts": frame.pts, "whole": True, "size": [w, h]})
                bar.update(1)
                continue
            faces = detector.detect(rgb)
            k = 0 if self.face_index is None else self.face_index
            face = faces[k] if k < len(faces) else None
            frames.append(
                {
                    "pts": frame.pts,
                    "landmarks": face.landmarks.tolist() if face is not None else None,
                    "box": face.box.tolist() if face is not None else None,
                    "size": [w, h],
                }
            )
            bar.update(1)
        bar.close()
        if not frames:
            raise VideoError(f"{path}: the video has no (decodable) frames")
        return {
            "frames": frames,
            "time_base": [tb.numerator, tb.denominator] if tb else None,
            "rate": [rate.numerator, rate.denominator] if rate else None,
            "broken": stats.broken,
        }

    def quads(self, analysis: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Smoothed ``landmarks [T,5,2]``, ``quads [T,4,2]`` and ``valid [T]``."""
        from faceedit.faces.align import ffhq_quad

        frames = analysis["frames"]
        if frames and frames[0].get("whole"):  # the whole frame is the crop (avatar models)
            n = len(frames)
            return np.zeros((n, 5, 2)), np.zeros((n, 4, 2)), np.ones(n, dtype=bool)
        valid = np.array([f["landmarks"] is not None for f in frames])
        lms = np.zeros((len(frames), 5, 2))
        for i, f in enumerate(frames):
            if f["landmarks"] is not None:
                lms[i] = f["landmarks"]
        lms = smooth_track(lms, valid, self.sigma)
        quads = np.zeros((len(frames), 4, 2))
        for i in np.flatnonzero(valid):
            try:
                quads[i] = ffhq_quad(lms[i])
            except ValueError:  # degenerate landmarks: treat as no face
                valid[i] = False
        return lms, smooth_track(quads, valid, self.sigma), valid

    # ----------------------------------------------------------------- all passes
    def run(
        self,
        source: str | os.PathLike,
        output: str | os.PathLike,
        edits: Mapping[str, float],
        settings: Mapping | None = None,
        progress: bool = True,
        on_frame: Callable[[int], None] | None = None,
        keep_cache: bool = False,
    ) -> VideoEditReport:
        """Edit ``source`` into ``output`` (resuming an interrupted run of the same settings).

        Args:
            edits: ``{attr: strength}``.
            settings: extra values that must match for a cache to be reused (the CLI
                passes the model paths); the edits, method, inversion and options here
                are always included.
            on_frame: called with each frame's index once it is stored (e.g. to stop).
            keep_cache: keep the frame cache after success (for inspection).
        """
        av = _av()
        source, output = Path(source), Path(output)
        edits = self.editor.check_edits(edits)
        check_output_path(output)
        fmt, codec = _pick_codec(av, output.suffix.lower(), output)
        _open_input(source).close()  # fail early: missing, unreadable, no video stream

        ed = self.editor
        key = {
            "input": _file_key(source),
            "edits": edits,
            **ed.editor.settings(),
            "blend": ed.blend,
            "sigma": self.sigma,
            "side_by_side": self.side_by_side,
            "face_index": self.face_index,
            "settings": dict(settings or {}),
        }
        cache = _FrameCache(cache_dir_for(output), json.loads(json.dumps(key)))
        data = cache.load()
        if data is None:
            data = self.analyse(source, progress)  # first: a video it refuses leaves no cache
            cache.reset()
            cache.save(data)
        _, quads, valid = self.quads(data)
        frames = data["frames"]
        n = len(frames)
        reused = sum(cache.done(i) for i in range(n))

        self._edit_frames(source, cache, frames, quads, valid, edits, reused, progress, on_frame)
        audio = self._encode(source, output, cache, data, fmt, codec, progress)
        if not keep_cache:
            shutil.rmtree(cache.root, ignore_errors=True)
        rate = data["rate"]
        return VideoEditReport(
            output=output,
            frames=n,
            edited=int(valid.sum()),
            no_face=[int(i) for i in np.flatnonzero(~valid)],
            broken=int(data["broken"]),
            reused=reused,
            audio=audio,
            fps=Fraction(*rate) if rate else None,
        )

    # ----------------------------------------------------------------- pass 2
    def _edit_frames(self, source, cache, frames, quads, valid, edits, reused, progress, on_frame):
        from tqdm import tqdm

        from faceedit.faces.align import AlignedFace, warp_to_crop

        ed = self.editor
        n = len(frames)
        if reused == n:
            return
        size = ed.crop_size
        # optimisation starts from the previous frame's code (also after a resume)
        chain = ed.editor.chains_codes
        prev_ws = None
        bar = tqdm(
            total=n, initial=reused, desc="editing frames", unit="frame", disable=not progress
        )
        stats = _Decoded()
        for i, frame in enumerate(_frames(source, stats)):
            if i >= n:
                break
            if frame.pts != frames[i]["pts"]:
                raise VideoError(f"{source}: frame {i} differs from the first pass; file changed?")
            if cache.done(i):
                prev_ws = cache.read_code(i) if chain and valid[i] else None
                continue
            rgb = _upright_rgb(frame)
            ws = None
            seed = int(ed.editor.settings().get("seed", 0)) + i
            if frames[i].get("whole"):  # an avatar: the frame is the crop, nothing pasted
                crop = resize_crops(rgb[None], size)[0]
                result = ed.edit_crop(crop, edits, init=prev_ws if chain else None, seed=seed)
                h, w = rgb.shape[:2]
                out = np.asarray(
                    Image.fromarray(result.edited_crop).resize((w, h), Image.Resampling.LANCZOS)
                )
                ws = result.ws if chain else None
            elif valid[i]:
                crop = warp_to_crop(rgb, quads[i], size)
                face = AlignedFace(
                    crop=crop,
                    quad=quads[i],
                    box=np.asarray(frames[i]["box"], dtype=np.float64),
                    landmarks=np.asarray(frames[i]["landmarks"], dtype=np.float64),
                    image=rgb,
                    source=f"{source} frame {i}",
                )
                result = ed.edit_crop(crop, edits, init=prev_ws if chain else None, seed=seed)
                out = face.paste_back(result.edited_crop, blend=ed.blend)
                ws = result.ws if chain else None
            else:
                out = rgb
            prev_ws = ws
            if self.side_by_side:
                out = np.concatenate([rgb, out], axis=1)
            cache.store(i, out, ws)
            bar.update(1)
            if on_frame is not None:
                on_frame(i)
        bar.close()

    # ----------------------------------------------------------------- pass 3
    def _encode(self, source, output, cache, data, fmt, codec, progress) -> str:
        from tqdm import tqdm

        av = _av()
        frames = data["frames"]
        tb = Fraction(*data["time_base"]) if data["time_base"] else None
        rate = Fraction(*data["rate"]) if data["rate"] else Fraction(25)
        if tb is None:
            tb = 1 / rate
        first = cache.read(0)
        h, w = _even(first).shape[:2]
        with atomic_path(output) as tmp:
            try:
                out = av.open(str(tmp), "w", format=fmt)
            except av.FFmpegError as e:
                raise VideoError(f"{output}: cannot write ({e})") from None
            with contextlib.closing(out):
                vs = out.add_stream(codec, rate=rate)
                vs.width, vs.height = w, h
                vs.pix_fmt = "yuv420p"
                vs.codec_context.time_base = tb
                vs.time_base = tb
                if codec in ("libx264", "libvpx-vp9", "libvpx"):
                    vs.options = {"crf": str(self.crf)}
                if codec == "libx264":
                    # x264's macroblock-tree rate control gave different bits for the
                    # same frames from run to run; a resumed run must give the same file
                    vs.options = {**vs.options, "x264-params": "mbtree=0"}
                audio_packets, audio = self._audio(av, source, out, fmt)
                last = None
                ai = 0
                bar = tqdm(total=len(frames), desc="encoding", unit="frame", disable=not progress)
                for i, info in enumerate(frames):
                    rgb = _even(cache.read(i))
                    if rgb.shape[:2] != (h, w):
                        raise VideoError(f"{output}: frame {i} has another size than frame 0")
                    pts = info["pts"]
                    if pts is None or (last is not None and pts <= last):
                        # missing or non-increasing stamps: one frame duration after the last
                        step = max(1, round(1 / (rate * tb)))
                        pts = 0 if last is None else last + step
                    last = pts
                    vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    vf.pts, vf.time_base = pts, tb
                    t = float(pts * tb)
                    while ai < len(audio_packets) and _time(audio_packets[ai]) <= t:
                        out.mux(audio_packets[ai])
                        ai += 1
                    for packet in vs.encode(vf):
                        out.mux(packet)
                    bar.update(1)
                for packet in vs.encode(None):
                    out.mux(packet)
                for packet in audio_packets[ai:]:
                    out.mux(packet)
                bar.close()
        return audio

    def _audio(self, av, source: Path, out, fmt: str) -> tuple[list, str]:
        """The audio packets for ``out``: copied when ``fmt`` takes the codec, else AAC."""
        with contextlib.closing(_open_input(source)) as c:
            if not c.streams.audio:
                return [], "none"
            a_in = c.streams.audio[0]
            copy = _can_copy(av, a_in, fmt)
        container = _open_input(source)
        a_in = container.streams.audio[0]
        packets = []
        if copy:
            a_out = out.add_stream_from_template(a_in)
            for packet in container.demux(a_in):
                if packet.dts is None:  # the demuxer's final flush packet
                    continue
                packet.stream = a_out
                packets.append(packet)
            container.close()
            return packets, "copied"
        name, label = ("libopus", "Opus") if fmt == "webm" else ("aac", "AAC")
        if name not in av.codecs_available:
            container.close()
            raise VideoError(f"this PyAV build cannot encode {label} audio for a {fmt} file")
        a_out = out.add_stream(name, rate=48000 if name == "libopus" else a_in.rate)
        with contextlib.suppress(AttributeError, ValueError):
            a_out.layout = a_in.layout
        for packet in container.demux(a_in):
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                continue
            for frame in decoded:
                frame.pts = None  # the encoder counts samples itself
                packets.extend(a_out.encode(frame))
        packets.extend(a_out.encode(None))
        container.close()
        return packets, f"re-encoded to {label}"


def _time(packet) -> float:
    stamp = packet.pts if packet.pts is not None else packet.dts
    return float(stamp * packet.time_base) if stamp is not None else 0.0


def _can_copy(av, stream, fmt: str) -> bool:
    """Whether container ``fmt`` accepts ``stream``'s codec as is (a header-only probe)."""
    probe = av.open(io.BytesIO(), "w", format=fmt)
    try:
        probe.add_stream_from_template(stream)
        probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        with contextlib.suppress(Exception):
            probe.close()


def edit_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    edits: Mapping[str, float],
    method: str = "latent",
    model: str | os.PathLike | None = None,
    sigma: float = 2.0,
    side_by_side: bool = False,
    face_index: int | None = None,
    progress: bool = True,
    **options,
) -> VideoEditReport:
    """One call: load the models and edit a video (see :class:`VideoEditor`).

    ``options`` go to :func:`faceedit.editing.pipeline.build_editor` (model parts,
    ``invert=``, ``steps=``, ...).
    """
    from faceedit.editing.pipeline import build_editor

    editor = build_editor(method, model, **options)
    video = VideoEditor(editor, sigma=sigma, side_by_side=side_by_side, face_index=face_index)
    settings = {"model": str(model), **{k: str(v) for k, v in options.items()}}
    return video.run(source, output, edits, settings=settings, progress=progress)
