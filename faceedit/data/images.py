"""Reading and writing images, whatever their mode, orientation or size.

Every reader in faceedit goes through :func:`read_image`, so all of them handle the same
inputs: RGBA (composited on white), palette, grey, 16-bit, CMYK, EXIF orientation; and
refuse the same ones with a message naming the file: empty, truncated, not an image,
absurdly large (decompression bombs).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceedit.errors import ImageError
from faceedit.fileio import atomic_path

# 64 megapixels: far beyond any photo a face editor needs, far below what exhausts memory.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def read_image(
    source: str | os.PathLike | bytes | Image.Image,
    max_pixels: int = MAX_PIXELS,
    min_size: int = 1,
) -> np.ndarray:
    """Read an image as RGB ``uint8 [H, W, 3]``.

    Args:
        source: a path, the file's bytes, or a PIL image.
        max_pixels: refuse images with more pixels (decompression bombs).
        min_size: refuse images whose shorter side is smaller.

    Raises:
        ImageError: with the file name and the problem.
    """
    name = _name(source)
    img = _open(source, name, max_pixels)
    # a broken EXIF block must not make the image unreadable
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    rgb = to_rgb(img, name)
    if min(rgb.shape[:2]) < min_size:
        raise ImageError(
            f"{name}: image is {rgb.shape[1]}x{rgb.shape[0]}, smaller than {min_size} px"
        )
    return rgb


def _name(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return "<uploaded bytes>"
    return "<image>"


def _open(source: object, name: str, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, bytes):
            if not source:
                raise ImageError(f"{name}: file is empty")
            fp: object = io.BytesIO(source)
        else:
            path = Path(source)  # type: ignore[arg-type]
            if not path.is_file():
                raise ImageError(f"{name}: no such file")
            if path.stat().st_size == 0:
                raise ImageError(f"{name}: file is empty")
            fp = path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)  # type: ignore[arg-type]
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image (unknown or corrupt format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name}: image is too large (decompression bomb?)") from None
        except OSError as e:
            raise ImageError(f"{name}: cannot be read ({e})") from None
        except (SyntaxError, ValueError, struct.error) as e:
            # PIL's header parsers raise these for damaged headers (found by fuzzing)
            raise ImageError(f"{name}: truncated or corrupt image ({e})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(f"{name}: image is {w}x{h}, over the {max_pixels:,}-pixel limit")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, struct.error) as e:
        raise ImageError(f"{name}: truncated or corrupt image ({e})") from None
    return img


def to_rgb(img: Image.Image, name: str = "<image>") -> np.ndarray:
    """Convert any PIL mode to RGB ``uint8 [H, W, 3]``; alpha is composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode != "I" or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    try:
        rgb = img.convert("RGB")
    except (OSError, ValueError) as e:
        raise ImageError(f"{name}: unsupported image mode {mode} ({e})") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write ``uint8 [H, W, 3]`` atomically; the format follows the suffix."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    with atomic_path(path) as tmp:
        try:
            img.save(tmp)
        except (KeyError, ValueError) as e:
            raise ImageError(f"{path}: cannot write this image format ({e})") from None


def tensor_to_uint8(img) -> np.ndarray:
    """``img [3, H, W]`` or ``[N, 3, H, W]`` in [-1, 1] (torch) -> ``uint8 [(N,) H, W, 3]``."""
    x = img.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to("cpu")
    x = x.permute(0, 2, 3, 1) if x.ndim == 4 else x.permute(1, 2, 0)
    return x.numpy().astype(np.uint8)


def uint8_to_tensor(rgb: np.ndarray):
    """``uint8 [H, W, 3]`` -> float ``[1, 3, H, W]`` in [-1, 1]."""
    import torch

    # a float copy: the input may be a read-only view (torch warns on non-writable arrays)
    x = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)
    return (x / 127.5 - 1.0).unsqueeze(0)
