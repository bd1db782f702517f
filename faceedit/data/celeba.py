"""Attribute-labelled face datasets in the layouts the AttGAN release reads.

- **CelebA** (Liu et al. 2015): ``list_attr_celeba.txt`` (line 1: image count, line 2:
  the 40 attribute names, then ``file v1 ... v40`` with values -1/1) and the aligned
  178x218 images. The release centre-crops 170 x 170, resizes, and splits by row:
  train ``[:182000]``, valid ``[182000:182637]``, test ``[182637:]``.
- **CelebA-HQ** (Karras et al. 2018): ``0.jpg ... 29999.jpg`` plus ``image_list.txt``
  whose ``orig_idx`` column maps each HQ image to its CelebA row for the labels. Split:
  train ``[:28000]``, valid ``[28000:28500]``, test ``[28500:]``.
- **custom** (the release's ``Custom``): a folder of square images and an attribute
  file in the CelebA layout that lists only the attributes used.

Attributes are chosen by name, in any order; labels come back as ``{0, 1}`` floats in
that order. Every image is read through :func:`faceedit.data.images.read_image`, so
any mode and EXIF orientation are handled; an unreadable file is reported by name
(warning, ``bad_files``) and replaced by the next readable sample instead of stopping
an epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceedit.data.images import read_image
from faceedit.errors import DataError, ImageError

log = logging.getLogger(__name__)

CELEBA_SPLITS = {"train": (0, 182000), "valid": (182000, 182637), "test": (182637, None)}
CELEBA_HQ_SPLITS = {"train": (0, 28000), "valid": (28000, 28500), "test": (28500, None)}
CELEBA_CROP = 170
KINDS = ("celeba", "celeba-hq", "custom")


@dataclass(frozen=True)
class AttrTable:
    """A parsed attribute list: ``files [M]``, ``names [40]``, ``values int8 [M, 40]`` (+-1)."""

    files: list[str]
    names: list[str]
    values: np.ndarray

    def select(self, attrs: Sequence[str], source: str) -> np.ndarray:
        """``{0, 1}`` labels ``[M, len(attrs)]`` in the order of ``attrs``."""
        missing = [a for a in attrs if a not in self.names]
        if missing:
            raise DataError(
                f"{source}: attributes {missing} are not in the file "
                f"(it has: {', '.join(self.names)})"
            )
        cols = [self.names.index(a) for a in attrs]
        return (self.values[:, cols] > 0).astype(np.float32)


def read_attr_file(path: str | os.PathLike) -> AttrTable:
    """Parse a CelebA-layout attribute file (tolerates a ``filename`` header token and
    blank lines; any positive number counts as present)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: attribute file not found")
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text attribute file ({e})") from None
    lines = [ln for ln in lines if ln]
    if len(lines) < 2:
        raise DataError(f"{path}: expected a count line and a line of attribute names")
    names = lines[1]
    rows = lines[2:]
    if rows and len(names) == len(rows[0]):
        names = names[1:]  # a header that also names the file column
    files: list[str] = []
    values = np.zeros((len(rows), len(names)), dtype=np.int8)
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1:
            raise DataError(
                f"{path}: line {i + 3} has {len(row) - 1} values, expected {len(names)}"
            )
        files.append(row[0])
        try:
            values[i] = [1 if float(v) > 0 else -1 for v in row[1:]]
        except ValueError:
            raise DataError(f"{path}: line {i + 3} has a non-numeric value") from None
    return AttrTable(files=files, names=names, values=values)


def read_image_list(path: str | os.PathLike) -> np.ndarray:
    """``orig_idx`` column of CelebA-HQ's ``image_list.txt`` (header line skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CelebA-HQ image list not found")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        try:
            out.append(int(parts[1]))
        except (IndexError, ValueError):
            raise DataError(f"{path}: line {n} has no integer orig_idx column") from None
    return np.asarray(out, dtype=np.int64)


def _split(n: int, bounds: tuple[int, int | None], mode: str, source: str) -> slice:
    lo, hi = bounds
    sl = slice(lo, hi)
    if len(range(n)[sl]) == 0:
        # small or partial copies of the datasets: fall back to a 90/5/5 split by row
        a, b = int(n * 0.9), int(n * 0.95)
        sl = {"train": slice(0, a), "valid": slice(a, b), "test": slice(b, None)}[mode]
        if len(range(n)[sl]) == 0:
            sl = slice(0, n)
        log.warning("%s: only %d rows; using rows %s for %r", source, n, sl, mode)
    return sl


class AttributeImages(torch.utils.data.Dataset):
    """``(img [3, S, S] in [-1, 1], att {0,1} [n_attrs])`` pairs.

    Args:
        kind: ``"celeba"``, ``"celeba-hq"`` or ``"custom"``.
        data_path: the image folder.
        attr_path: the attribute file.
        attrs: chosen attribute names (any order).
        img_size: output side ``S``.
        mode: ``"train"``, ``"valid"``, ``"test"`` or ``"all"``.
        image_list_path: CelebA-HQ's ``image_list.txt``.
    """

    def __init__(
        self,
        kind: str,
        data_path: str | os.PathLike,
        attr_path: str | os.PathLike,
        attrs: Sequence[str],
        img_size: int,
        mode: str = "train",
        image_list_path: str | os.PathLike | None = None,
    ) -> None:
        if kind not in KINDS:
            raise DataError(f"unknown dataset kind {kind!r} (choose from {', '.join(KINDS)})")
        if mode not in ("train", "valid", "test", "all"):
            raise DataError(f"unknown split {mode!r} (train, valid, test or all)")
        self.kind = kind
        self.data_path = Path(data_path)
        if not self.data_path.is_dir():
            raise DataError(f"{self.data_path}: image folder not found")
        self.attrs = tuple(attrs)
        self.img_size = int(img_size)
        table = read_attr_file(attr_path)
        labels = table.select(self.attrs, str(attr_path))
        if kind == "celeba-hq":
            if image_list_path is None:
                raise DataError("celeba-hq needs image_list_path (image_list.txt)")
            idx = read_image_list(image_list_path)
            if len(idx) and idx.max() >= len(labels):
                raise DataError(
                    f"{image_list_path}: orig_idx {idx.max()} is beyond the "
                    f"{len(labels)} rows of {attr_path}"
                )
            files = [f"{i}.jpg" for i in range(len(idx))]
            labels = labels[idx]
            splits = CELEBA_HQ_SPLITS
        else:
            files = table.files
            splits = CELEBA_SPLITS
        if kind == "custom" or mode == "all":
            sl = slice(0, len(files))
        else:
            sl = _split(len(files), splits[mode], mode, str(attr_path))
        self.files = files[sl]
        self.labels = torch.from_numpy(np.ascontiguousarray(labels[sl]))
        if not self.files:
            raise DataError(f"{attr_path}: no images in split {mode!r}")
        self.bad_files: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """``[3, S, S]`` in [-1, 1]; raises :class:`ImageError` naming the file."""
        path = self.data_path / self.files[index]
        rgb = read_image(path)
        img = Image.fromarray(rgb)
        if self.kind == "celeba":
            img = _center_crop(img, CELEBA_CROP)
        elif img.width != img.height:
            img = _center_crop(img, min(img.size))
        if img.size != (self.img_size, self.img_size):
            img = img.resize((self.img_size, self.img_size), Image.Resampling.BILINEAR)
        arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
        return arr.permute(2, 0, 1).float().div(127.5).sub(1.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.files)
        for k in range(min(n, 50)):
            j = (index + k) % n
            try:
                return self.load_image(j), self.labels[j]
            except ImageError as e:
                if self.files[j] not in self.bad_files:
                    self.bad_files.add(self.files[j])
                    log.warning("skipping unreadable image: %s", e)
        raise DataError(f"{self.data_path}: 50 unreadable images in a row near index {index}")

    def check_files(self) -> list[str]:
        """Names of images that are missing or cannot be opened (a quick header scan)."""
        bad = []
        for name in self.files:
            path = self.data_path / name
            try:
                with Image.open(path) as im:
                    im.verify()
            except Exception:  # noqa: BLE001 - any failure makes the file unusable
                bad.append(name)
        return bad


def _center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    size = min(size, w, h)
    left = int(round((w - size) / 2.0))
    top = int(round((h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def write_custom_dataset(
    folder: str | os.PathLike,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    attrs: Sequence[str],
    attr_file: str = "list_attr_custom.txt",
) -> Path:
    """Write images + a CelebA-layout attribute file (the release's custom format).

    Args:
        images: ``uint8 [S, S, 3]`` each.
        labels: ``{0, 1}`` (or +-1) ``[M, len(attrs)]``.
    Returns:
        The attribute file's path.
    """
    from faceedit.data.images import write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [str(len(images)), " ".join(attrs)]
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        name = f"{i:06d}.png"
        write_image(folder / name, img)
        lines.append(name + " " + " ".join("1" if v > 0 else "-1" for v in lab))
    path = folder / attr_file
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TOY_ATTRS = ("Bangs", "Eyeglasses", "Pale_Skin")


def toy_faces(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic labelled "faces" for tests and smoke runs.

    A disc (pale or dark skin) on a noisy background, with a dark fringe on top
    (``Bangs``) and a black bar across the eyes (``Eyeglasses``); attributes are
    independent coin flips.

    Returns:
        ``uint8 [n, size, size, 3]`` images and ``{0, 1} [n, 3]`` labels in
        :data:`TOY_ATTRS` order.
    """
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(TOY_ATTRS))) < 0.5).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        bg = rng.uniform(40, 90, 3)
        img = np.clip(bg + rng.normal(0, 6, (size, size, 3)), 0, 255)
        cx, cy = 0.5 + rng.uniform(-0.04, 0.04), 0.55 + rng.uniform(-0.04, 0.04)
        face = (xx - cx) ** 2 + (yy - cy) ** 2 < 0.33**2
        skin = np.array([235, 215, 200]) if labels[i, 2] else np.array([150, 100, 70])
        img[face] = skin + rng.normal(0, 4, 3)
        if labels[i, 0]:
            img[(yy < cy - 0.12) & face] = (30, 20, 10)
        if labels[i, 1]:
            img[(np.abs(yy - (cy - 0.02)) < 0.06) & (np.abs(xx - cx) < 0.3)] = (5, 5, 5)
        out[i] = img.astype(np.uint8)
    return out, labels
