"""Known official checkpoints and data: the download catalogue.

Each :class:`ModelEntry` names one released file: where it comes from, its licence, its
size and SHA-256 when known, and which :func:`faceedit.load` format reads it.
:func:`faceedit.checkpoints.download.download` fetches it into the cache directory
(:func:`cache_dir`: ``$FACEEDIT_CACHE``, else ``$XDG_CACHE_HOME/faceedit``, else
``~/.cache/faceedit``), resumable and verified.

Sizes and checksums marked unknown were not published by the projects; the URLs and
licences are those the projects' READMEs state.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from faceedit.errors import FaceeditError

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
            array, header checked), ``"manual"`` (no direct link: a shared folder the
            user downloads and takes in with ``faceedit download NAME --from FOLDER``) or
            ``"bundle"`` (a composite: its ``parts`` are downloaded and assembled into
            ``<cache>/<NAME>/bundle.json``; ``url`` and ``filename`` are unused).
        parts: for a ``"bundle"``: ``(role, entry name)`` pairs, the role being a
            ``bundle.json`` key (``encoder``, ``generator``, ``transformers``,
            ``classifier``).
        domain: for a ``"bundle"``: the images its models take (``"ffhq"``: aligned
            photo crops), recorded in its ``bundle.json``.
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
    parts: tuple[tuple[str, str], ...] = ()
    domain: str | None = None

    @property
    def part_names(self) -> list[str]:
        """The registry names of a bundle's parts (empty for a single file)."""
        return [name for _, name in self.parts]


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

_LATENT_TRANSFORMER_LICENCE = "InterDigital licence (research use)"


def _official_bundle(name: str, encoder: str, which: str) -> ModelEntry:
    return ModelEntry(
        name=name,
        filename=name,
        url="",
        source=f"faceedit bundle of {encoder}, latent-transformer-models, latent-classifier",
        licence=f"the parts': {encoder} MIT{_ON_NVIDIA}; the transformers and classifier: "
        + _LATENT_TRANSFORMER_LICENCE,
        loads_as="faceedit latent bundle (bundle.json)",
        description=(
            f"the official latent editing of FFHQ photos in one download: the {which} "
            "encoder with its FFHQ StyleGAN2 decoder, the released latent transformers "
            "and latent classifier"
        ),
        kind="bundle",
        parts=(
            ("encoder", encoder),
            ("transformers", "latent-transformer-models"),
            ("classifier", "latent-classifier"),
        ),
        domain="ffhq",
    )


_ENTRIES += [
    _official_bundle("lt-ffhq-e4e", "e4e-ffhq-encode", "e4e"),
    _official_bundle("lt-ffhq-psp", "psp-ffhq-encode", "pSp"),
]

REGISTRY: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}

#: the official bundles ``faceedit edit`` uses without ``--model``, in order of preference
#: (e4e was designed for editing: its codes stay close to the generator's W space)
DEFAULT_BUNDLES = ("lt-ffhq-e4e", "lt-ffhq-psp")


#: a JSON file of entries that add to or override the built-in ones (mirrors, tests)
REGISTRY_ENV = "FACEEDIT_REGISTRY"
_FIELDS = {f.name for f in dataclasses.fields(ModelEntry)}


def entries() -> dict[str, ModelEntry]:
    """Every download entry: the built-in ones (:data:`REGISTRY`), with those of the JSON
    file named by ``$FACEEDIT_REGISTRY`` added or overriding (read at each call).

    The file holds a list of objects with :class:`ModelEntry`'s fields; an object whose
    ``name`` is built in may give only the fields it changes (``url``, ``sha256``, ...),
    a new one needs ``name``, ``filename``, ``url`` and ``loads_as``.

    Raises:
        DownloadError: the file cannot be read or an entry is malformed (one line naming
            the file and the entry).
    """
    out = dict(REGISTRY)
    path = os.environ.get(REGISTRY_ENV)
    if not path:
        return out
    try:
        items = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise DownloadError(f"${REGISTRY_ENV} {path}: not a readable JSON list ({e})") from None
    if not isinstance(items, list):
        raise DownloadError(f"${REGISTRY_ENV} {path}: expected a JSON list of entries")
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        unknown = set(item) - _FIELDS if isinstance(item, dict) else set()
        if not isinstance(name, str) or unknown:
            what = f"unknown field(s) {', '.join(sorted(unknown))}" if unknown else "no name"
            raise DownloadError(f"${REGISTRY_ENV} {path}: entry {i}: {what}")
        try:
            if "parts" in item:  # JSON: {role: name} or [[role, name], ...]
                item = item | {"parts": _parts_from_json(item["parts"])}
            if name in out:
                out[name] = dataclasses.replace(out[name], **item)
            else:
                item = {
                    "source": "local registry",
                    "licence": "unknown",
                    "description": name,
                } | item
                out[name] = ModelEntry(**item)
        except TypeError as e:
            raise DownloadError(f"${REGISTRY_ENV} {path}: entry {name!r}: {e}") from None
    return out


def _parts_from_json(parts: object) -> tuple[tuple[str, str], ...]:
    pairs = list(parts.items()) if isinstance(parts, dict) else parts
    if not isinstance(pairs, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
        for p in pairs
    ):
        raise TypeError('\'parts\' must map roles to entry names: {"encoder": "NAME", ...}')
    return tuple((role, name) for role, name in pairs)


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``; an unknown name lists the known ones."""
    known = entries()
    try:
        return known[name]
    except KeyError:
        raise DownloadError(f"unknown model {name!r}; known: {', '.join(sorted(known))}") from None


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
    """Where the entry lives once downloaded (the unpacked folder for zip releases, the
    bundle directory for bundles)."""
    root = cache_dir(cache)
    return root / entry.name if entry.kind in ("zip", "bundle") else root / entry.filename


def installed_path(entry: ModelEntry, cache: str | os.PathLike | None = None) -> Path | None:
    """The entry's local path when it is complete on this machine, else ``None``: a
    bundle counts once its ``bundle.json`` is written and every part is still there."""
    root = cache_dir(cache)
    here = local_path(entry, root)
    if entry.kind != "bundle":
        return here if here.exists() else None
    if not (here / "bundle.json").is_file():
        return None
    known = entries()
    for part in entry.part_names:
        inner = known.get(part)
        if inner is None or inner.kind == "bundle" or installed_path(inner, root) is None:
            return None
    return here


def format_size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
