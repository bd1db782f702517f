"""The bad-input matrix of image files (issue 7): damaged, tiny, unusual modes, rotated,
a decompression bomb, no face, two faces; built from matplotlib's grace_hopper.jpg."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
from PIL import Image

GRACE = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


class Case(NamedTuple):
    path: Path
    unreadable: str | None  # what read_image says, or None when it reads the file
    for_faces: str | None  # what a face editor says, or None when it finds the face


def bad_image_files(folder: Path) -> dict[str, Case]:
    """Write every case into ``folder``; ``{file name: Case}``."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(GRACE)
    good = GRACE.read_bytes()
    cases: dict[str, Case] = {}

    def put(name, data=None, image=None, unreadable=None, for_faces=None, **save):
        path = folder / name
        if image is not None:
            image.save(path, **save)
        else:
            path.write_bytes(data)
        cases[name] = Case(path, unreadable, for_faces or unreadable)

    put("empty.jpg", b"", unreadable="file is empty")
    put("random.png", np.random.default_rng(0).bytes(4096), unreadable="not an image")
    put("truncated.jpg", good[: len(good) // 3], unreadable="truncated or corrupt")
    full = folder / ".full.png"
    photo.save(full)
    put("truncated.png", full.read_bytes()[:5000], unreadable="truncated or corrupt")
    full.unlink()
    put("tiny1x1.png", image=Image.new("RGB", (1, 1)), for_faces="smaller than 16 px")
    put("tiny16.png", image=Image.new("RGB", (16, 16), (90, 90, 90)), for_faces="no face found")
    put("rgba.png", image=photo.convert("RGBA"))
    put("palette.png", image=photo.convert("P"))
    put("grey.png", image=photo.convert("L"))
    grey16 = np.asarray(photo.convert("L")).astype(np.uint16) * 257  # full 16-bit range
    put("grey16.png", image=Image.fromarray(grey16))
    put("cmyk.jpg", image=photo.convert("CMYK"))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the reader must turn it upright to find the face
    put("rotated.jpg", image=photo.rotate(90, expand=True), exif=exif)
    put("bomb.png", image=Image.new("1", (20000, 20000)), unreadable="too large")  # 400 Mpx
    two = Image.new("RGB", (photo.width * 2, photo.height))
    two.paste(photo, (0, 0))
    two.paste(photo, (photo.width, 0))
    put("two_faces.jpg", image=two)
    return cases
