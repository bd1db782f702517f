"""Known official checkpoints and data, and a resumable, verified downloader.

Each :class:`ModelEntry` names one released file: where it comes from, its licence, its
size and SHA-256 when known, and which :func:`faceedit.load` format reads it.
:func:`download` fetches it into a cache directory (:func:`cache_dir`: ``$FACEEDIT_CACHE``, else
``$XDG_CACHE_HOME/faceedit``, else ``~/.cache/faceedit``) with the standard library only:

- the bytes go to ``<cache>/<NAME>.part``; an interrupted download resumes from there
  with an HTTP ``Range`` request (a server that ignores it makes us start over, so bytes
  are never duplicated);
- a finished file is checked (size, SHA-256 when known) and validated by loading it
  (``.zip`` releases are unpacked first) before it is renamed to its final name, so a
  complete-looking file in the cache is always a good one;
- a machine without internet fails within ``timeout`` seconds with one line that names
  the URL and where to put a copy fetched by hand.

Sizes and checksums marked unknown were not published by the projects; the URLs and
licences are those the projects' READMEs state.
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
from dataclasses import dataclass
from pathlib import Path

from faceedit.errors import FaceeditError

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 10.0
_NVIDIA_NC = "NVIDIA Source Code License-NC (non-commercial)"
_ON_NVIDIA = " code; the StyleGAN2 decoder inside is NVIDIA's FFHQ model: " + _NVIDIA_NC


class DownloadError(FaceeditError):
    """A download could not be started, finished, verified or validated."""


@dataclass(frozen=True)
class ModelEntry:
    """One released file.

    Attributes:
        name: the registry name (``faceedit download NAME``).
        filename: the name the file has in the cache (and in the original project).
        url: direct download URL, or the page to fetch it by hand when ``manual``.
        source: the project that releases it.
        licence: as the project states it.
        loads_as: what reads it: a ``faceedit.load`` format name, or a data reader.
        description: one line for people.
        size: bytes, ``None`` when unknown.
        sha256: hex digest, ``None`` when unknown.
        kind: ``"model"`` (validated with ``faceedit.load``), ``"zip"`` (unpacked into
            ``<cache>/<NAME>/``, every checkpoint inside validated), ``"npy"`` (a NumPy
            array, header checked) or ``"manual"`` (no direct link: shared folders).
    """

    name: str
    filename: str
    url: str
    source: str
    licence: str
    loads_as: str
    description: str
    size: int | None = None
    sha256: str | None = None
    kind: str = "model"


def _gdrive(file_id: str) -> str:
    # the direct endpoint; confirm=t skips the "cannot scan for viruses" page of big files
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


_ENTRIES = [
    ModelEntry(
        name="stylegan2-ffhq-config-f",
        filename="stylegan2-ffhq-config-f.pt",
        url=_gdrive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"),
        source="rosinality/stylegan2-pytorch (conversion of NVlabs/stylegan2), as linked by pSp",
        licence="MIT conversion code; the weights are NVIDIA's: " + _NVIDIA_NC,
        loads_as="rosinality StyleGAN2 checkpoint",
        description="StyleGAN2 config F, FFHQ 1024 px (rosinality .pt: g, d, g_ema, latent_avg)",
    ),
    ModelEntry(
        name="stylegan2-ffhq-1024x1024",
        filename="stylegan2-ffhq-1024x1024.pkl",
        url=(
            "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/"
            "files/stylegan2-ffhq-1024x1024.pkl"
        ),
        source="NVlabs (stylegan3 / stylegan2-ada-pytorch model zoo on NGC)",
        licence=_NVIDIA_NC,
        loads_as="NVlabs network pickle",
        description="StyleGAN2 config F, FFHQ 1024 px (NVlabs PyTorch .pkl: G, D, G_ema)",
    ),
    ModelEntry(
        name="psp-ffhq-encode",
        filename="psp_ffhq_encode.pt",
        url=_gdrive("1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0"),
        source="eladrich/pixel2style2pixel",
        licence="MIT" + _ON_NVIDIA,
        loads_as="pSp/e4e checkpoint",
        description="pSp GradualStyleEncoder for FFHQ inversion + its StyleGAN2 decoder",
    ),
    ModelEntry(
        name="e4e-ffhq-encode",
        filename="e4e_ffhq_encode.pt",
        url=_gdrive("1cUv_reLE6k3604or78EranS7XzuVMWeO"),
        source="omertov/encoder4editing",
        licence="MIT" + _ON_NVIDIA,
        loads_as="pSp/e4e checkpoint",
        description="e4e encoder for FFHQ inversion + its StyleGAN2 decoder",
    ),
    ModelEntry(
        name="ir-se50",
        filename="model_ir_se50.pth",
        url=_gdrive("1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn"),
        source="TreB1eN/InsightFace_Pytorch, as linked by pSp/e4e",
        licence="MIT",
        loads_as="IR-SE identity model",
        description="IR-SE-50 ArcFace backbone (identity loss and identity similarity)",
    ),
    ModelEntry(
        name="attgan-384-hq",
        filename="384_shortcut1_inject1_none_hq",
        url="http://bit.ly/attgan-pretrain",
        source="elvisyjlin/AttGAN-PyTorch",
        licence="MIT",
        loads_as="AttGAN release checkpoint (weights.N.pth)",
        description=(
            "AttGAN, CelebA-HQ 384 px, 13 attributes (folder with setting.txt and "
            "checkpoint/weights.149.pth)"
        ),
        kind="manual",
    ),
    ModelEntry(
        name="attgan-128",
        filename="128_shortcut1_inject1_none",
        url="http://bit.ly/attgan-pretrain",
        source="elvisyjlin/AttGAN-PyTorch",
        licence="MIT",
        loads_as="AttGAN release checkpoint (weights.N.pth)",
        description="AttGAN, CelebA 128 px, 13 attributes (the README's default experiment)",
        kind="manual",
    ),
    ModelEntry(
        name="latent-classifier",
        filename="latent_classifier_epoch_20.pth",
        url=_gdrive("1K_ShWBfTOCbxBcJfzti7vlYGmRbjXTfn"),
        source="InterDigitalInc/latent-transformer",
        licence="InterDigital licence (LICENSE.txt of the repository; research use)",
        loads_as="latent-transformer classifier (LCNet state dict)",
        description="latent classifier on pSp W+ codes, 40 CelebA attributes",
    ),
    ModelEntry(
        name="latent-transformer-models",
        filename="pretrained_models.zip",
        url=_gdrive("14uipafI5mena7LFFtvPh6r5HdzjBqFEt"),
        source="InterDigitalInc/latent-transformer",
        licence="InterDigital licence (LICENSE.txt of the repository; research use)",
        loads_as="latent transformer (F_mapping state dict or training checkpoint)",
        description="pretrained latent transformers (001/tnet_<attr>.pth.tar), unpacked",
        kind="zip",
    ),
    ModelEntry(
        name="latent-transformer-data-1",
        filename="latent-transformer-data-1.npy",
        url=_gdrive("1qx-FRJV0yZmiF0GzQLsZFSJznUgNipf7"),
        source="InterDigitalInc/latent-transformer (download.sh, first data file)",
        licence="InterDigital licence; codes of CelebA-HQ images (CelebA: non-commercial)",
        loads_as="faceedit.data.latents (.npy array)",
        description=(
            "prepared training data, first of the two download.sh files "
            "(celebahq_dlatents_psp.npy [N,18,512] or celebahq_anno.npy [N,40]; rename it)"
        ),
        kind="npy",
    ),
    ModelEntry(
        name="latent-transformer-data-2",
        filename="latent-transformer-data-2.npy",
        url=_gdrive("1Pz3wEpp6E7aFSUg5zh1Nm6EpWmRG_HnY"),
        source="InterDigitalInc/latent-transformer (download.sh, second data file)",
        licence="InterDigital licence; codes of CelebA-HQ images (CelebA: non-commercial)",
        loads_as="faceedit.data.latents (.npy array)",
        description=(
            "prepared training data, second of the two download.sh files "
            "(celebahq_dlatents_psp.npy or celebahq_anno.npy; rename it)"
        ),
        kind="npy",
    ),
]

REGISTRY: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DownloadError(
            f"unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """faceedit's one cache directory: ``path``, else ``$FACEEDIT_CACHE``, else
    ``$XDG_CACHE_HOME/faceedit``, else ``~/.cache/faceedit``. Downloads and the web
    demo's files live there."""
    if path is None:
        path = os.environ.get("FACEEDIT_CACHE") or (
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "faceedit"
        )
    return Path(path).expanduser()


def local_path(entry: ModelEntry, cache: str | os.PathLike | None = None) -> Path:
    """Where the entry lives once downloaded (the unpacked folder for zip releases)."""
    root = cache_dir(cache)
    return root / entry.name if entry.kind == "zip" else root / entry.filename


def format_size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


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
