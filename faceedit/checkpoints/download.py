"""The resumable, verified downloader of the catalogue's entries (:mod:`faceedit.registry`).

:func:`download` fetches an entry into the cache (:func:`faceedit.registry.cache_dir`)
with the standard library only:

- the bytes go to ``<cache>/<NAME>.part``; an interrupted download resumes from there
  with an HTTP ``Range`` request (a server that ignores it makes us start over, so bytes
  are never duplicated);
- a finished file is checked (size, SHA-256 when known) and validated by loading it
  (``.zip`` releases are unpacked first) before it is renamed to its final name, so a
  complete-looking file in the cache is always a good one;
- a machine without internet fails within ``timeout`` seconds with one line that names
  the URL and where to put a copy fetched by hand.

It lives beside the format readers because validating a file means loading it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from faceedit.errors import FaceeditError
from faceedit.registry import DownloadError, ModelEntry, cache_dir, get_entry, local_path

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 10.0


def download(
    name: str,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    validate: bool = True,
) -> Path:
    """Download, verify and validate a registry entry; returns its local path.

    An entry already in the cache is returned at once. Interrupted downloads resume
    from ``<cache>/<NAME>.part``.

    Raises:
        DownloadError: unknown name, manual entry, unreachable host, HTTP error,
            interrupted transfer (the part is kept for resuming), size or checksum
            mismatch or a file that does not load (the part is removed).
    """
    entry = get_entry(name)
    if entry.kind == "manual":
        raise DownloadError(
            f"{name}: no direct download link; fetch the folder {entry.filename} by hand "
            f"from {entry.url} and load it with faceedit.load(<folder>/checkpoint/weights.N.pth)"
        )
    root = cache_dir(cache)
    final = local_path(entry, root)
    if final.exists():
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{name}: cannot create the cache directory {root} ({e})") from None
    part = root / f"{entry.name}.part"
    _fetch(entry, part, final, progress, timeout)
    _verify(entry, part)
    if entry.kind == "zip":
        _unpack(entry, part, final, validate)
        part.unlink()
        return final
    if validate:
        _validate_file(entry, part)
    os.replace(part, final)
    return final


def _fail_unreachable(entry: ModelEntry, final: Path, reason: object) -> DownloadError:
    return DownloadError(
        f"{entry.name}: cannot reach {entry.url} ({reason}); without internet, fetch the "
        f"file by hand and save it as {final}"
    )


def _open(entry: ModelEntry, offset: int, final: Path, timeout: float):
    headers = {"User-Agent": "faceedit-downloader"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(entry.url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return None  # nothing left to send: the part already holds every byte
        raise DownloadError(
            f"{entry.name}: {entry.url} answered HTTP {e.code} {e.reason}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        if isinstance(reason, socket.timeout | TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise _fail_unreachable(entry, final, reason) from None


def _fetch(entry: ModelEntry, part: Path, final: Path, progress: bool, timeout: float) -> None:
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    response = _open(entry, offset, final, timeout)
    if response is None:
        return
    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(
                    f"{entry.name}: {entry.url} resumed at byte {start}, expected {offset}; "
                    f"delete {part} and retry"
                )
        elif offset:
            offset = 0  # the server ignored Range and sends the whole file: start over
        if "text/html" in response.headers.get("Content-Type", "") and entry.kind != "manual":
            raise DownloadError(
                f"{entry.name}: {entry.url} sent a web page instead of the file (a quota or "
                "sign-in page?); download it in a browser and save it as " + str(final)
            )
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else entry.size
        if entry.size is not None and total is not None and total != entry.size:
            raise DownloadError(
                f"{entry.name}: {entry.url} offers {total} bytes, expected {entry.size}"
            )
        mode = "ab" if offset else "wb"
        done = offset
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=entry.filename,
            disable=not progress,
            leave=False,
        )
        try:
            with open(part, mode) as f:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(
                f"{entry.name}: download interrupted after {done} of "
                f"{total if total is not None else '?'} bytes ({type(e).__name__}); run the "
                f"same command again to resume from {part}"
            ) from None
        finally:
            bar.close()
    if total is not None and done < total:
        raise DownloadError(
            f"{entry.name}: connection closed after {done} of {total} bytes; run the same "
            f"command again to resume from {part}"
        )


def _range_start(content_range: str) -> int | None:
    m = re.match(r"bytes (\d+)-", content_range.strip())
    return int(m.group(1)) if m else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(entry: ModelEntry, part: Path) -> None:
    size = part.stat().st_size
    if entry.size is not None and size != entry.size:
        part.unlink()
        raise DownloadError(
            f"{entry.name}: got {size} bytes, expected {entry.size}; removed {part}, "
            "run again to download afresh"
        )
    if entry.sha256 is not None:
        got = sha256_file(part)
        if got != entry.sha256.lower():
            part.unlink()
            raise DownloadError(
                f"{entry.name}: SHA-256 {got} does not match the expected {entry.sha256}; "
                f"the file is corrupt or was changed upstream (removed {part})"
            )


def _validate_file(entry: ModelEntry, path: Path) -> None:
    check: Callable[[Path], object] = _check_npy if entry.kind == "npy" else _load_model
    try:
        check(path)
    except FaceeditError as e:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{entry.name}: the downloaded file does not load as {entry.loads_as} ({e}); removed it"
        ) from None


def _load_model(path: Path) -> object:
    from faceedit.checkpoints import load

    return load(path)


def _check_npy(path: Path) -> object:
    import numpy as np

    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as e:
        raise FaceeditError(f"not a NumPy array file: {e}") from None


def _unpack(entry: ModelEntry, part: Path, final: Path, validate: bool) -> None:
    """Extract into a temporary folder beside ``final``, validate, then rename it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=final.parent))
    try:
        try:
            with zipfile.ZipFile(part) as z:
                root = tmp.resolve()
                for member in z.namelist():
                    # refuse members that would land outside the folder ("../", absolute)
                    if not (tmp / member).resolve().is_relative_to(root):
                        raise DownloadError(f"{entry.name}: unsafe path {member!r} in the zip")
                z.extractall(tmp)
        except zipfile.BadZipFile as e:
            part.unlink()
            raise DownloadError(
                f"{entry.name}: not a valid zip archive ({e}); removed it"
            ) from None
        if validate:
            # macOS archivers add __MACOSX/._name resource forks: not checkpoints
            files = [
                p
                for p in tmp.rglob("*")
                if p.is_file()
                and p.suffix in (".tar", ".pth", ".pt")
                and "__MACOSX" not in p.parts
                and not p.name.startswith("._")
            ]
            if not files:
                raise DownloadError(f"{entry.name}: the archive holds no checkpoint files")
            for p in files:
                try:
                    _load_model(p)
                except FaceeditError as e:
                    part.unlink()
                    raise DownloadError(
                        f"{entry.name}: {p.relative_to(tmp)} in the archive does not load ({e})"
                    ) from None
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
