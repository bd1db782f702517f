"""Latent-code datasets: W+ codes with CelebA attribute labels.

Formats read (those of InterDigitalInc/latent-transformer and CelebA):

- codes: one ``.npy`` array ``[N, num_ws, w_dim]`` float32 (``celebahq_dlatents_psp.npy``,
  ``[N, 18, 512]``), a flattened ``[N, num_ws * w_dim]`` array (give ``num_ws``), a single
  per-image ``latent_code_%05d.npy`` file ``[1, 18, 512]``, or a directory of them
  (sorted by name);
- labels: an ``.npy`` array ``[N, n_attrs]`` in {0, 1} or {-1, 1} (``celebahq_anno.npy``),
  or CelebA's ``list_attr_celeba.txt`` (count line, attribute names, then
  ``file v1 ... v40`` rows in {-1, 1}).

The original trains on the first 90 % of rows and validates on the rest
(:func:`split_indices`). Every problem is reported as a :class:`DataError` naming the
file before any training starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceedit.attributes import CELEBA_ATTRS
from faceedit.errors import DataError

TRAIN_FRACTION = 0.9


@dataclass
class LatentDataset:
    """W+ codes and their binary labels.

    Attributes:
        codes: ``float32 [N, num_ws, w_dim]``.
        labels: ``float32 [N, n_attrs]`` in {0, 1}.
        attr_names: one name per label column.
    """

    codes: np.ndarray
    labels: np.ndarray
    attr_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def subset(self, index: np.ndarray | slice) -> LatentDataset:
        return LatentDataset(self.codes[index], self.labels[index], self.attr_names)

    def split(self, train_fraction: float = TRAIN_FRACTION) -> tuple[LatentDataset, LatentDataset]:
        """The original's split: the first ``int(0.9 N)`` rows train, the rest validate."""
        train, val = split_indices(len(self), train_fraction)
        return self.subset(train), self.subset(val)


def split_indices(n: int, train_fraction: float = TRAIN_FRACTION) -> tuple[slice, slice]:
    """``(train, val)`` slices: first ``int(train_fraction * n)`` rows, then the rest."""
    if not 0.0 < train_fraction <= 1.0:
        raise DataError(f"train fraction must be in (0, 1], got {train_fraction}")
    cut = int(train_fraction * n)
    return slice(0, cut), slice(cut, n)


def read_codes(path: str | os.PathLike, num_ws: int | None = None) -> np.ndarray:
    """Read W+ codes as ``float32 [N, num_ws, w_dim]`` (see the module docstring).

    Args:
        path: ``.npy`` file or a directory of ``latent_code_*.npy`` files.
        num_ws: rows per code, needed only for flattened ``[N, num_ws * w_dim]`` arrays
            (default 18).

    Raises:
        DataError: missing file, wrong shape, non-finite values.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(path.glob("latent_code_*.npy")) or sorted(path.glob("*.npy"))
        if not files:
            raise DataError(f"{path}: no latent_code_*.npy files in this directory")
        parts = [_to_wplus(_load_npy(f), f, num_ws) for f in files]
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) > 1:
            raise DataError(f"{path}: codes of different shapes {sorted(shapes)}")
        codes = np.concatenate(parts, axis=0)
    else:
        codes = _to_wplus(_load_npy(path), path, num_ws)
    if not np.isfinite(codes).all():
        bad = int((~np.isfinite(codes)).any(axis=(1, 2)).sum())
        raise DataError(f"{path}: {bad} code(s) contain NaN or infinite values")
    return np.ascontiguousarray(codes, dtype=np.float32)


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: not a plain numeric .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: unreadable .npy file ({e})") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected a numeric array")
    return arr


def _to_wplus(arr: np.ndarray, path: Path, num_ws: int | None) -> np.ndarray:
    if arr.ndim == 3:
        return arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        rows = num_ws or 18
        if arr.shape[1] % rows:
            raise DataError(
                f"{path}: flattened codes of width {arr.shape[1]} do not split into {rows} rows"
            )
        return arr.reshape(arr.shape[0], rows, arr.shape[1] // rows).astype(np.float32)
    raise DataError(
        f"{path}: expected W+ codes [N, num_ws, w_dim] (e.g. [N, 18, 512]), got shape {arr.shape}"
    )


def read_labels(
    path: str | os.PathLike, attr_names: tuple[str, ...] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read binary labels as ``(float32 [N, n_attrs] in {0, 1}, names)``.

    ``.npy`` arrays take ``attr_names`` (default CelebA's 40 when there are 40 columns,
    else ``attr_0...``); ``list_attr_celeba.txt`` files carry their own names.

    Raises:
        DataError: values other than {0, 1} / {-1, 1}, NaNs, malformed text rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".npy":
        labels = _load_npy(path)
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.ndim != 2:
            raise DataError(f"{path}: expected labels [N, n_attrs], got shape {labels.shape}")
        names = attr_names or _default_names(labels.shape[1])
    else:
        labels, names = _read_celeba_txt(path)
    if attr_names is not None and len(attr_names) != labels.shape[1]:
        raise DataError(f"{path}: {labels.shape[1]} label columns for {len(attr_names)} names")
    return _binarise(labels, path), tuple(names)


def _default_names(n: int) -> tuple[str, ...]:
    return CELEBA_ATTRS if n == len(CELEBA_ATTRS) else tuple(f"attr_{i}" for i in range(n))


def _read_celeba_txt(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (expected list_attr_celeba.txt)") from None
    if len(lines) < 2:
        raise DataError(f"{path}: too short for a CelebA attribute list")
    start = 1
    try:
        count = int(lines[0].split()[0])
    except ValueError:
        count, start = None, 0  # no count line
    names = tuple(lines[start].split())
    rows = []
    for i, line in enumerate(lines[start + 1 :], start=start + 2):
        parts = line.split()
        # rows are "file v1 ... vK"; accept rows without the file name too
        values = parts[1:] if parts and not _is_number(parts[0]) else parts
        if len(values) != len(names):
            raise DataError(f"{path}:{i}: {len(values)} values for {len(names)} attributes")
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            raise DataError(f"{path}:{i}: non-numeric label in {line[:60]!r}") from None
    if count is not None and count != len(rows):
        raise DataError(f"{path}: header says {count} rows, found {len(rows)}")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(names)), names


def celeba_labels_text(names: Sequence[str], rows: Sequence[tuple[str, Sequence[int]]]) -> str:
    """The text of a ``list_attr_celeba.txt``: the count line, the attribute names, then one
    ``file v1 ... vK`` row per ``(file, values in {-1, 1})``, as :func:`read_labels` reads it."""
    lines = [str(len(rows)), " ".join(names)]
    lines += [f"{file} " + " ".join(f"{v:2d}" for v in values) for file, values in rows]
    return "\n".join(lines) + "\n"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _binarise(labels: np.ndarray, path: Path) -> np.ndarray:
    labels = labels.astype(np.float32)
    if not np.isfinite(labels).all():
        raise DataError(f"{path}: labels contain NaN or infinite values")
    values = set(np.unique(labels).tolist())
    if values <= {0.0, 1.0}:
        return labels
    if values <= {-1.0, 1.0, 0.0} and -1.0 in values and 0.0 not in values:
        return (labels > 0).astype(np.float32)
    shown = sorted(values)[:6]
    raise DataError(f"{path}: labels must be in {{0, 1}} or {{-1, 1}}, found values {shown}")


def load_latent_dataset(
    codes_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    num_ws: int | None = None,
) -> LatentDataset:
    """Codes and labels checked against each other (same row count)."""
    codes = read_codes(codes_path, num_ws=num_ws)
    labels, names = read_labels(labels_path)
    if codes.shape[0] != labels.shape[0]:
        raise DataError(
            f"{codes_path} has {codes.shape[0]} codes but {labels_path} has "
            f"{labels.shape[0]} label rows"
        )
    if codes.shape[0] < 2:
        raise DataError(f"{codes_path}: need at least 2 codes, found {codes.shape[0]}")
    return LatentDataset(codes, labels, names)


def check_codes_shape(codes: np.ndarray, num_ws: int, w_dim: int, source: str) -> None:
    """Raise a :class:`DataError` unless ``codes`` is ``[N, num_ws, w_dim]``."""
    if tuple(codes.shape[1:]) != (num_ws, w_dim):
        raise DataError(
            f"{source}: codes are [N, {', '.join(map(str, codes.shape[1:]))}] but the model "
            f"expects [N, {num_ws}, {w_dim}]"
        )


def resolve_attrs(spec: str | list[str], names: tuple[str, ...]) -> list[int]:
    """``"Smiling,Eyeglasses"``, ``"all"``, or indices like ``"15,31"`` -> column indices."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [s.strip() for s in items if str(s).strip()]
    if items == ["all"]:
        return list(range(len(names)))
    lookup = {n.lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for item in items:
        if item.isdigit() and int(item) < len(names):
            idx = int(item)
        elif item.lower() in lookup:
            idx = lookup[item.lower()]
        else:
            raise DataError(f"unknown attribute {item!r} (known: {', '.join(names)})")
        if idx not in out:
            out.append(idx)
    if not out:
        raise DataError("no attribute given (use e.g. --attrs Smiling,Eyeglasses or all)")
    return out


def label_stats(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts [n_attrs, 2]`` of 0s and 1s, ``correlation [n_attrs, n_attrs])``.

    Constant columns have no defined correlation; like the original, they get 0.
    """
    ones = labels.sum(axis=0)
    counts = np.stack([labels.shape[0] - ones, ones], axis=1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(labels.T.astype(np.float64))
    corr = np.atleast_2d(corr)
    corr[np.isnan(corr)] = 0.0
    return counts, corr


def join_latent_sets(
    sources: Sequence[str | os.PathLike], out: str | os.PathLike, seed: int = 0
) -> tuple[Path, int]:
    """Join labelled code sets (``faceedit data latents`` outputs) into one, rows shuffled.

    Each source holds ``codes.npy`` and ``list_attr_celeba.txt`` with the same attributes
    in the same order and codes of one shape. The rows are shuffled with ``seed``, because
    training takes the first 90 % of rows and validates on the rest (:func:`split_indices`):
    appended sets would validate on the last source alone. Writes ``out/codes.npy``,
    ``out/list_attr_celeba.txt``, ``out/sources.txt`` (each row's source directory) and
    ``out/lineage.json`` (each source and its lineage, :mod:`faceedit.lineage`);
    ``out`` appears complete or not at all. Returns ``(out, N)``.

    Raises:
        DataError: fewer than two sources, a missing file, attributes or code shapes that
            differ, or labels and codes of different lengths.
    """
    from faceedit.fileio import atomic_dir, check_new_dir
    from faceedit.lineage import record, write_lineage

    if len(sources) < 2:
        raise DataError(f"joining needs at least two code sets, got {len(sources)}")
    out = check_new_dir(out)
    codes, rows, origin = [], [], []
    names: tuple[str, ...] | None = None
    for src in map(Path, sources):
        labels_path = src / "list_attr_celeba.txt"
        for path in (src / "codes.npy", labels_path):
            if not path.is_file():
                raise DataError(f"{path}: no such file (expected 'data latents' output)")
        c = read_codes(src / "codes.npy")
        labels, these = read_labels(labels_path)
        if names is not None and these != names:
            raise DataError(f"{labels_path}: attributes differ from {sources[0]}'s")
        if codes and c.shape[1:] != codes[0].shape[1:]:
            raise DataError(
                f"{src / 'codes.npy'}: codes [N, {c.shape[1]}, {c.shape[2]}], "
                f"{sources[0]}'s are [N, {codes[0].shape[1]}, {codes[0].shape[2]}]"
            )
        if len(c) != len(labels):
            raise DataError(f"{src}: {len(c)} codes but {len(labels)} label rows")
        names = these
        files = [ln.split()[0] for ln in labels_path.read_text().splitlines()[2:] if ln.strip()]
        codes.append(c)
        rows += [
            (f, [1 if v > 0 else -1 for v in row])
            for f, row in zip(files, labels.tolist(), strict=True)
        ]
        origin += [str(src)] * len(c)
    assert names is not None
    order = np.random.default_rng(seed).permutation(len(rows))
    joined = np.concatenate(codes)[order]
    with atomic_dir(out) as tmp:
        np.save(tmp / "codes.npy", joined)
        text = celeba_labels_text(names, [rows[i] for i in order])
        (tmp / "list_attr_celeba.txt").write_text(text, "utf-8")
        (tmp / "sources.txt").write_text("".join(origin[i] + "\n" for i in order), "utf-8")
        write_lineage(tmp, [e for src in sources for e in record("data", src)])
    return out, len(rows)
