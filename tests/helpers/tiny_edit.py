"""Tiny randomly initialised models for the photo/video editing tests, saved as bundles.

A 32 px StyleGAN2 (w_dim 32, 8 W+ rows), latent transformers and a classifier on its W+
space, and a 32 px AttGAN: seconds to build, milliseconds to run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import torch

GRACE = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
ATTRS = ("Smiling", "Eyeglasses")


def latent_bundle(root: Path) -> Path:
    """``root/latent`` with bundle.json, a generator, two transformers, a classifier and
    linear directions (random unit directions, for ``--method linear``)."""
    from faceedit.nets.latent import (
        LatentClassifier,
        LatentClassifierConfig,
        LatentTransformer,
        LatentTransformerConfig,
    )
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    out = root / "latent"
    torch.manual_seed(0)
    G = StyleGAN2Generator(
        StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=32, channel_base=256, channel_max=32)
    ).eval()
    G.estimate_w_avg(num_samples=500)
    G.save_pretrained(out / "generator")
    for name in ATTRS:
        t = LatentTransformer(
            LatentTransformerConfig(num_ws=G.num_ws, w_dim=G.w_dim, attr_name=name)
        )
        with torch.no_grad():  # large enough that an edit is visible on a random model
            for p in t.parameters():
                p.mul_(4.0)
        t.save_pretrained(out / "transformers" / f"tnet_{name}")
    C = LatentClassifier(
        LatentClassifierConfig(
            num_ws=G.num_ws, w_dim=G.w_dim, hidden=(16,), n_attrs=2, attr_names=ATTRS
        )
    )
    C.save_pretrained(out / "classifier")
    from faceedit.editing.directions import LinearDirections

    d = torch.nn.functional.normalize(torch.randn(len(ATTRS), G.num_ws * G.w_dim), dim=1)
    LinearDirections(ATTRS, d.reshape(len(ATTRS), G.num_ws, G.w_dim), torch.full((2,), 8.0)).save(
        out / "directions.npz"
    )
    spec = {
        "method": "latent",
        "generator": "generator",
        "transformers": "transformers",
        "classifier": "classifier",
        "directions": "directions.npz",
        "layers": [0, 8],
    }
    (out / "bundle.json").write_text(json.dumps(spec, indent=2))
    return out


def attgan_model(root: Path) -> Path:
    """``root/attgan``: a 32 px AttGAN (G and D) in the own format."""
    from faceedit.nets.attgan import (
        AttGAN,
        AttGANConfig,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )

    torch.manual_seed(0)
    g = AttGANGeneratorConfig(enc_dim=4, dec_dim=4, enc_layers=3, dec_layers=3, img_size=32)
    d = AttGANDiscriminatorConfig(dim=4, n_layers=3, fc_dim=8, img_size=32)
    model = AttGAN(AttGANConfig(G=g, D=d)).eval()
    model.save_pretrained(root / "attgan")
    return root / "attgan"


def read_only(path: Path) -> bool:
    """Make ``path`` read-only; False when that has no effect (running as root)."""
    os.chmod(path, 0o555)
    return not os.access(path, os.W_OK)


def make_video(
    path: Path,
    n_frames: int = 12,
    size: int = 160,
    fps: int = 12,
    audio: str | None = "aac",
    pts: list[int] | None = None,
    broken: int | None = None,
    blank: tuple[int, ...] = (),
) -> None:
    """A short video panning and zooming over grace_hopper.jpg, with a sine audio track.

    Args:
        pts: frame timestamps in 1/(fps*10) s units (variable frame rate); default
            regular.
        audio: ``"aac"``, ``"pcm_s16le"`` or ``None``.
        broken: index of a frame whose packet is replaced by garbage (MJPEG in .mkv).
        blank: indices of frames without a face (a flat grey picture).
    """
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image

    photo = Image.open(GRACE).convert("RGB")
    W, H = photo.size
    container = av.open(str(path), "w")
    codec = "mjpeg" if broken is not None else "libx264"
    vs = container.add_stream(codec, rate=fps)
    vs.width = vs.height = size
    vs.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    tb = Fraction(1, fps * 10)
    vs.codec_context.time_base = tb
    vs.time_base = tb
    stamps = pts if pts is not None else [10 * i for i in range(n_frames)]
    packets = []
    for i in range(n_frames):
        t = i / max(1, n_frames - 1)
        side = int(440 - 80 * t)  # zoom in while panning right and down
        x0, y0 = int(20 + 40 * t), int(30 + 30 * t)
        box = (x0, y0, min(W, x0 + side), min(H, y0 + side))
        img = photo.crop(box).resize((size, size), Image.Resampling.BILINEAR)
        rgb = np.asarray(img)
        if i in blank:
            rgb = np.full_like(rgb, 128)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = stamps[i], tb
        packets.extend(vs.encode(frame))
    packets.extend(vs.encode(None))
    if audio is not None:
        rate = 16000
        as_ = container.add_stream(audio, rate=rate)
        as_.layout = "mono"
        duration = (stamps[-1] + 10) * float(tb)
        samples = int(rate * duration)
        tone = np.sin(2 * np.pi * 440 * np.arange(samples) / rate)
        fmt = "fltp" if audio == "aac" else "s16"
        data = tone.astype(np.float32) if fmt == "fltp" else (tone * 20000).astype(np.int16)
        chunk = 1024
        for start in range(0, samples, chunk):
            af = av.AudioFrame.from_ndarray(
                data[None, start : start + chunk], format=fmt, layout="mono"
            )
            af.sample_rate = rate
            af.pts = start
            af.time_base = Fraction(1, rate)
            for p in as_.encode(af):
                container.mux(p)
        for p in as_.encode(None):
            container.mux(p)
    for k, p in enumerate(packets):
        if broken is not None and k == broken:
            bad = av.Packet(b"\x00garbage" * 16)
            bad.pts, bad.dts, bad.time_base = p.pts, p.dts, p.time_base
            bad.stream = vs
            p = bad
        container.mux(p)
    container.close()
