"""Atomic file writing: an output either appears complete or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from faceedit.errors import FaceeditError


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FaceeditError(f"{path}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FaceeditError(f"{path}: output directory {parent} is not writable")
    if path.is_dir():
        raise FaceeditError(f"{path}: is a directory, expected a file path")
    return path


def check_not_inputs(outputs, inputs, overwrite: bool = False) -> None:
    """Refuse outputs that would replace a user's input: an output path that is an input
    file, or an output folder that holds an input, unless ``overwrite``.

    Raises:
        FaceeditError: one line naming the clash and the ``--overwrite`` flag.
    """
    if overwrite:
        return
    given = {Path(i).resolve() for i in inputs if Path(i).exists()}
    folders = {i.parent for i in given}
    for out in outputs:
        target = Path(out).resolve()
        if target in given:
            raise FaceeditError(
                f"{out}: is an input; writing it would replace the original (choose another "
                "output, or pass --overwrite)"
            )
        if target.is_dir() and target in folders:
            raise FaceeditError(
                f"{out}: holds the inputs; edits written there could replace originals "
                "(choose another folder, or pass --overwrite)"
            )


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the suffix so that writers that look at it (PIL,
    matplotlib, PyAV) pick the right format.
    """
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); the output gets the usual umask permissions
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_new_dir(path: str | os.PathLike) -> Path:
    """Fail early, with a clear message, unless ``path`` can become a new directory.

    An existing empty directory is accepted (it is replaced); a file or a non-empty
    directory is not, so that a finished output is never overwritten.
    """
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FaceeditError(f"{out}: parent directory {parent} does not exist")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a non-empty directory" if out.is_dir() else "a file"
        raise FaceeditError(f"{out}: already exists and is {what}; choose a new output directory")
    if not os.access(parent, os.W_OK):
        raise FaceeditError(f"{out}: parent directory {parent} is not writable")
    return out


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; rename it onto ``path`` on success.

    ``path`` is checked first (:func:`check_new_dir`). On any exception the temporary
    directory is removed and ``path`` is left as it was.
    """
    out = check_new_dir(path)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        yield tmp
        # mkdtemp makes the directory private; an output is meant to be shared
        os.chmod(tmp, 0o777 & ~_umask())
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
