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
  the URL and where to put a copy fetched by hand;
- a ``bundle`` entry (``lt-ffhq-e4e``...) downloads each missing part that way, then
  writes ``<cache>/<NAME>/bundle.json`` naming the parts by paths relative to it (so
  the cache folder can move) and loads it as a
  :class:`~faceedit.editing.latent_pipeline.LatentPipeline` before it appears;
- a ``manual`` entry (a shared folder without a direct link, the AttGAN release) is
  taken in from the folder the user downloaded (:func:`install_folder`): checked,
  copied and loaded before it appears in the cache under its registry filename.

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
from faceedit.registry import (
    DownloadError,
    ModelEntry,
    cache_dir,
    entries,
    get_entry,
    installed_path,
    local_path,
)

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 10.0


def download(
    name: str,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    validate: bool = True,
    check_bundle: Callable[[Path], object] | None = None,
) -> Path:
    """Download, verify and validate a registry entry; returns its local path.

    An entry already in the cache is returned at once. Interrupted downloads resume
    from ``<cache>/<NAME>.part``. A bundle downloads its missing parts, then is
    assembled (:func:`assemble_bundle`) and checked with ``check_bundle`` (its
    temporary directory -> raises :class:`~faceedit.errors.FaceeditError`): ``faceedit
    download`` passes ``LatentPipeline.from_pretrained``, which lives above this layer.

    Raises:
        DownloadError: unknown name, manual entry, unreachable host, HTTP error,
            interrupted transfer (the part is kept for resuming), size or checksum
            mismatch or a file that does not load (the part is removed).
    """
    entry = get_entry(name)
    if entry.kind == "manual":
        raise DownloadError(manual_instructions(entry))
    root = cache_dir(cache)
    if entry.kind == "bundle":
        return _download_bundle(entry, root, progress, timeout, validate, check_bundle)
    final = local_path(entry, root)
    if final.exists():
        return final
    _make_cache(name, root)
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


def manual_instructions(entry: ModelEntry) -> str:
    """One line telling how to take in an entry that has no direct link."""
    return (
        f"{entry.name}: no direct download link; download the folder {entry.filename} by hand "
        f"from {entry.url}, then run: faceedit download {entry.name} --from FOLDER"
    )


def _make_cache(name: str, root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{name}: cannot create the cache directory {root} ({e})") from None


def _download_bundle(
    entry: ModelEntry,
    root: Path,
    progress: bool,
    timeout: float,
    validate: bool,
    check: Callable[[Path], object] | None,
) -> Path:
    """Every missing part, then the bundle directory; an assembled one is returned at once."""
    done = installed_path(entry, root)
    if done is not None:
        return done
    known = entries()
    if not entry.parts:
        raise DownloadError(f"{entry.name}: a bundle entry that names no parts")
    for role, part in entry.parts:
        inner = known.get(part)
        if inner is None or inner.kind == "bundle":
            what = "unknown" if inner is None else "itself a bundle"
            raise DownloadError(f"{entry.name}: its part {role} = {part!r} is {what}")
    paths = {}
    for i, (role, part) in enumerate(entry.parts, 1):
        _say(progress, f"{entry.name}: part {i}/{len(entry.parts)}, {part}")
        paths[role] = download(part, root, progress=progress, timeout=timeout, validate=validate)
    if validate and check is not None:
        _say(progress, f"{entry.name}: assembling the bundle and loading it once to check it")
    return assemble_bundle(entry, paths, root, check=check if validate else None)


def _say(progress: bool, line: str) -> None:
    """A progress line on stderr (beside the progress bars; none when quiet)."""
    if progress:
        import sys

        print(line, file=sys.stderr, flush=True)


def assemble_bundle(
    entry: ModelEntry,
    parts: dict[str, Path],
    cache: str | os.PathLike | None = None,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Write ``<cache>/<NAME>/bundle.json`` over the downloaded ``parts`` (role -> path).

    Paths are stored relative to the bundle directory (``../e4e_ffhq_encode.pt``), so
    the cache folder can be moved. A zip release of transformers is named by the folder
    inside it that holds the ``tnet_*`` files. The bundle is written in a temporary
    folder beside its place, read back (:func:`faceedit.hub.read_bundle`: every part
    found), loaded by ``check`` when given and only then renamed into place, so a
    bundle directory in the cache always loads; an older one (a part had been deleted)
    is replaced.

    Raises:
        DownloadError: no transformers inside the transformers part, or the assembled
            bundle does not load (one line, nothing left in the cache's bundle place).
    """
    import json

    from faceedit.errors import FaceeditError
    from faceedit.fileio import atomic_dir
    from faceedit.hub import read_bundle

    root = cache_dir(cache)
    final = local_path(entry, root)
    spec: dict = {"method": "latent", "domain": entry.domain or "ffhq"}
    for role, path in parts.items():
        if role == "transformers" and path.is_dir():
            path = _transformer_folder(entry, path)
        spec[role] = os.path.relpath(path, final)
    spec["parts"] = dict(entry.parts)
    if final.exists():  # an older assembly whose parts had gone: rebuilt from scratch
        shutil.rmtree(final)
    try:
        with atomic_dir(final) as tmp:
            (tmp / "bundle.json").write_text(json.dumps(spec, indent=2) + "\n", "utf-8")
            read = read_bundle(tmp)
            for role in parts:
                if not Path(read[role]).exists():
                    raise FaceeditError(f"its {role} {read[role]} is not there")
            if check is not None:
                check(tmp)
    except FaceeditError as e:
        raise DownloadError(f"{entry.name}: the assembled bundle does not load ({e})") from None
    return final


def _transformer_folder(entry: ModelEntry, unpacked: Path) -> Path:
    """The folder of an unpacked release that holds its ``tnet_*`` transformers (the
    release zip nests them, e.g. ``001/``); the shallowest one when several do."""
    found = sorted(
        {p.parent for p in unpacked.rglob("tnet_*") if "__MACOSX" not in p.parts},
        key=lambda p: (len(p.parts), str(p)),
    )
    if not found:
        raise DownloadError(f"{entry.name}: no tnet_* transformers inside {unpacked}")
    return found[0]


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


def install_folder(
    name: str, source: str | os.PathLike, cache: str | os.PathLike | None = None
) -> Path:
    """Take in the release folder of a ``manual`` entry that the user downloaded by hand
    (the AttGAN release: ``setting.txt`` + ``checkpoint/weights.N.pth``).

    ``source`` is the release folder itself or a folder holding it under its registry
    filename (``384_shortcut1_inject1_none_hq``). ``setting.txt`` and the weights are
    copied into a temporary folder beside ``<cache>/<filename>``, loaded from there with
    the AttGAN release loader and only then renamed into place: the cache never holds a
    half-copied folder. An entry already in the cache is returned at once.

    Raises:
        DownloadError: not a manual entry, or the folder lacks a file, does not load or
            holds another resolution than the entry's (one line naming the folder).
    """
    from faceedit.checkpoints.attgan import SETTING_NAME, find_latest, load_trained
    from faceedit.fileio import atomic_dir

    entry = get_entry(name)
    if entry.kind != "manual":
        how = "faceedit download " + name
        raise DownloadError(f"{name}: --from takes in folders of manual entries; run `{how}`")
    root = cache_dir(cache)
    final = local_path(entry, root)
    if final.exists():
        return final
    folder = _release_folder(entry, Path(source).expanduser())
    try:
        weights = sorted(p for p in (folder / "checkpoint").glob("weights.*.pth") if p.is_file())
        find_latest(folder / "checkpoint")  # no weights.<N>.pth: one line naming the folder
    except FaceeditError as e:
        raise DownloadError(f"{name}: {e}; expected {folder}/checkpoint/weights.N.pth") from None
    _make_cache(name, root)
    tmp: Path | None = None
    try:
        with atomic_dir(final) as tmp:
            shutil.copy2(folder / SETTING_NAME, tmp / SETTING_NAME)
            (tmp / "checkpoint").mkdir()
            for p in weights:
                shutil.copy2(p, tmp / "checkpoint" / p.name)
            model = load_trained(tmp)
            _check_resolution(entry, model)
    except FaceeditError as e:
        if tmp is None:  # the cache place itself cannot be written
            raise DownloadError(f"{name}: {e}") from None
        message = str(e).replace(str(tmp), str(folder))  # name the user's folder, not ours
        raise DownloadError(
            f"{name}: {folder} does not load as {entry.loads_as} ({message})"
        ) from None
    except OSError as e:
        raise DownloadError(f"{name}: cannot copy {folder} into {root} ({e})") from None
    return final


def _release_folder(entry: ModelEntry, source: Path) -> Path:
    from faceedit.checkpoints.attgan import SETTING_NAME

    for folder in (source, source / entry.filename):
        if (folder / SETTING_NAME).is_file():
            return folder
    if not source.is_dir():
        raise DownloadError(f"{entry.name}: --from {source}: no such folder")
    raise DownloadError(
        f"{entry.name}: --from {source}: no {SETTING_NAME} in it nor in "
        f"{source / entry.filename} (expected the release folder {entry.filename} with "
        f"{SETTING_NAME} and checkpoint/weights.N.pth)"
    )


def _check_resolution(entry: ModelEntry, model: object) -> None:
    """A folder of the other AttGAN release (128 px for the 384 px entry) is refused. The
    release names its experiment folders after their settings, size first
    (``384_shortcut1_inject1_none_hq``)."""
    m = re.match(r"(\d+)_", entry.filename)
    if m is None:
        return  # an entry added by $FACEEDIT_REGISTRY under another name: nothing to compare
    want = int(m.group(1))
    config = model.config  # an AttGAN's, or a generator-only release's
    got = getattr(config, "G", config).img_size
    if got != want:
        raise FaceeditError(f"it holds a {got} px AttGAN, {entry.name} is {want} px")
