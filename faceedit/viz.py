"""Labelled image grids: the pictures that faceedit writes for people to look at."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceedit.fileio import atomic_path

if TYPE_CHECKING:
    import torch

    from faceedit.nets.attgan import AttGANGenerator

_PAD = 4
_BG = (255, 255, 255)
_FG = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def image_grid(
    cells: Sequence[Sequence[np.ndarray | None]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell_size: int | None = None,
) -> np.ndarray:
    """Arrange ``uint8 [H, W, 3]`` images in a labelled grid.

    Args:
        cells: rows of images; ``None`` leaves a blank cell.
        row_labels: one label per row, drawn on the left.
        col_labels: one label per column, drawn on top.
        title: a line above everything.
        cell_size: resize every cell to this square size (default: the first cell's size).

    Returns:
        ``uint8 [H, W, 3]``.
    """
    first = next(c for row in cells for c in row if c is not None)
    size = cell_size or max(first.shape[:2])
    n_rows, n_cols = len(cells), max(len(r) for r in cells)
    font_size = max(10, min(18, size // 6))
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_w(t: str) -> int:
        return int(probe.textlength(t, font=font))

    left = max((text_w(t) for t in row_labels), default=0) + 2 * _PAD if row_labels else 0
    col_lines = max((len(t.split("\n")) for t in col_labels), default=0) if col_labels else 0
    top = col_lines * (font_size + 2) + _PAD if col_labels else 0
    title_h = font_size + 2 * _PAD if title else 0
    # a column is as wide as its widest label line, so labels are never cut off
    col_w = [size] * n_cols
    for j, label in enumerate(col_labels or []):
        if j < n_cols:
            col_w[j] = max(size, max(text_w(line) for line in label.split("\n")))
    col_x = [left + _PAD + sum(w + _PAD for w in col_w[:j]) for j in range(n_cols)]
    width = left + sum(w + _PAD for w in col_w) + _PAD
    width = max(width, text_w(title) + 2 * _PAD if title else 0)
    height = title_h + top + n_rows * (size + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_PAD, _PAD), title, fill=_FG, font=font)
    if col_labels:
        for j, label in enumerate(col_labels):
            if j < n_cols:
                draw.multiline_text(
                    (col_x[j], title_h + _PAD // 2), label, fill=_FG, font=font, spacing=2
                )
    for i, row in enumerate(cells):
        y = title_h + top + _PAD + i * (size + _PAD)
        if row_labels:
            draw.text((_PAD, y + size // 2 - font_size // 2), row_labels[i], fill=_FG, font=font)
        for j, cell in enumerate(row):
            if cell is None:
                continue
            tile = Image.fromarray(np.ascontiguousarray(cell))
            if tile.size != (size, size):
                tile = tile.resize((size, size), Image.Resampling.LANCZOS)
            canvas.paste(tile, (col_x[j] + (col_w[j] - size) // 2, y))
    return np.asarray(canvas)


def save_grid(path: str | os.PathLike, grid: np.ndarray) -> None:
    """Write a grid PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


@contextlib.contextmanager
def saved_figure(path: str | os.PathLike, *grid: int, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """``with saved_figure(path, rows, cols, figsize=...) as (fig, axes):`` draw; the PNG
    is written atomically when the block ends normally, and the figure is always closed.

    ``grid`` and ``subplots`` go to ``matplotlib.pyplot.subplots`` (Agg backend: no display).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def flip_grid_images(
    G: AttGANGenerator, img: torch.Tensor, att: torch.Tensor, thres_int: float, test_int: float
) -> tuple[list[list[np.ndarray]], list[str]]:
    """AttGAN's "flip each attribute" grid (the release's sample pictures): rows of
    ``[input, reconstruction, flip attr 0, ...]`` uint8 ``[H, W, 3]`` cells + column labels.

    Args:
        G: the generator; its config names the attributes and the conflict rules.
        img: ``[N, 3, H, W]`` in [-1, 1].
        att: current attributes ``{0, 1} [N, n_attrs]``.
    """
    import torch

    from faceedit.attributes import conflict_rules, flip_targets
    from faceedit.data.images import tensor_to_uint8

    def cells_of(x: torch.Tensor) -> list[np.ndarray]:
        return list(tensor_to_uint8(x))

    names = list(G.config.attrs)
    with torch.no_grad():
        att_ = (att.float() * 2 - 1) * thres_int
        cols = [cells_of(img), cells_of(G(img, att_))]
        rules = conflict_rules(G.config.conflict_rules)
        for b_ in flip_targets(att, names, thres_int, test_int, rules):
            cols.append(cells_of(G(img, b_)))
    cells = [[c[r] for c in cols] for r in range(len(img))]
    labels = ["input", "recon"] + [n.replace("_", "\n") for n in names]
    return cells, labels
