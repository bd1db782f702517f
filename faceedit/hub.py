"""The one resolver: turn what a user types (a path, a shipped name, a downloaded registry
name, a training run directory, a bundle) into the file or directory to load.

Every loader in faceedit goes through :func:`resolve`, so ``faceedit.load("avatar-latent")``,
``--model avatar-latent``, ``--generator runs/sg2`` and ``--init-from avatar-latent`` all
understand the same names, and a name nobody knows gets one error text that lists what
faceedit does know (:func:`known_names`).

The catalogue (:func:`catalogue`) names every model once: the models that ship inside the
package (:mod:`faceedit.shipped`) and the official releases that ``faceedit download``
fetches (:mod:`faceedit.registry`), each with the architecture preset
(:func:`faceedit.configs.preset`) its weights fit, where one exists.

A **bundle** is a directory with a ``bundle.json`` naming the parts of a composite model
(see :mod:`faceedit.editing.latent_pipeline`); :func:`read_bundle` returns its parts with
their paths made absolute. A **run directory** is what a training command writes: its final
model (``model/``, ``generator/``, ``encoder/``, ``classifier/``) or, while it still trains,
its ``checkpoint.pt``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from faceedit.errors import FaceeditError
from faceedit.registry import DEFAULT_BUNDLES, cache_dir, entries, installed_path
from faceedit.shipped import shipped_models, shipped_path

BUNDLE_FILE = "bundle.json"
MODEL_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
# what each training command leaves in its run directory once finished
RUN_OUTPUTS = ("model", "generator", "encoder", "classifier")
# bundle keys that name one file or directory (relative to the bundle)
BUNDLE_PATH_KEYS = ("generator", "encoder", "classifier", "model", "directions")


class HubError(FaceeditError):
    """A model name or path that does not resolve to anything loadable."""


@dataclass(frozen=True)
class CatalogueEntry:
    """One model faceedit knows by name.

    Attributes:
        name: what to type (``faceedit.load(name)``, ``--model name``).
        origin: ``"shipped"`` (inside the package) or ``"download"`` (the official
            release, fetched by ``faceedit download name``; ``manual`` ones by hand).
        description: one line for people.
        path: where it is on this machine, ``None`` while not downloaded.
        preset: the architecture preset its weights fit (``faceedit.configs.preset``).
    """

    name: str
    origin: str
    description: str
    path: Path | None
    preset: str | None = None


# registry name -> architecture preset (faceedit.configs) its weights fit
PRESET_OF = {
    "stylegan2-ffhq-config-f": "stylegan2-ffhq-1024",
    "stylegan2-ffhq-1024x1024": "stylegan2-ffhq-1024",
    "psp-ffhq-encode": "psp-ffhq",
    "e4e-ffhq-encode": "e4e-ffhq",
    "ir-se50": "ir-se50",
    "latent-classifier": "latent-classifier-released",
    "latent-transformer-models": "latent-transformer-released",
    "attgan-384-hq": "attgan-384-hq",
    "attgan-128": "attgan-128",
}


def catalogue(cache: str | os.PathLike | None = None) -> dict[str, CatalogueEntry]:
    """Every named model: shipped ones first, then the official releases."""
    out: dict[str, CatalogueEntry] = {}
    for name in shipped_models():
        path = shipped_path(name)
        kind = "bundle" if (path / BUNDLE_FILE).is_file() else "model"
        out[name] = CatalogueEntry(name, "shipped", f"shipped {kind}", path)
    root = cache_dir(cache)
    for entry in entries().values():
        out.setdefault(
            entry.name,
            CatalogueEntry(
                entry.name,
                "download",
                entry.description,
                installed_path(entry, root),
                PRESET_OF.get(entry.name),
            ),
        )
    return out


def default_model(cache: str | os.PathLike | None = None) -> str | None:
    """The official bundle to edit photos with when no model is named: the first of
    :data:`faceedit.registry.DEFAULT_BUNDLES` (e4e, then pSp) that is downloaded and
    assembled, else ``None``."""
    named = catalogue(cache)
    for name in DEFAULT_BUNDLES:
        if name in named and named[name].path is not None:
            return name
    return None


def known_names() -> str:
    """The names faceedit knows, for error messages."""
    shipped = ", ".join(shipped_models()) or "none"
    downloadable = ", ".join(sorted(entries()))
    return f"shipped: {shipped}; downloadable (faceedit models): {downloadable}"


def resolve(
    source: str | os.PathLike, what: str = "model", cache: str | os.PathLike | None = None
) -> Path:
    """The file or directory that ``source`` names.

    Args:
        source: an existing path (file, model directory, bundle or run directory), a
            shipped model name (``avatar-latent``) or a registry name already downloaded
            (``e4e-ffhq-encode``).
        what: what the caller wants (``"--model"``, ``"generator"``...), for messages.

    Returns:
        The path to load: a run directory becomes its final model, or its latest
        ``checkpoint.pt`` while it trains; everything else is returned as found.

    Raises:
        HubError: nothing of that name, or a registry name not downloaded yet (the
            message names the ``faceedit download`` command).
    """
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        return run_output(path)
    shipped = shipped_path(text)
    if shipped is not None:
        return shipped
    entry = entries().get(text)
    if entry is not None:
        local = installed_path(entry, cache_dir(cache))
        if local is not None:
            return run_output(local)
        how = (
            f"download the folder {entry.filename} by hand from {entry.url}, then run "
            f"`faceedit download {text} --from FOLDER`"
            if entry.kind == "manual"
            else f"`faceedit download {text}`"
        )
        raise HubError(f"{what} {text!r} is a known model but not on this machine: {how}")
    raise HubError(
        f"{what} {text}: not found (no such file or directory, nor a model name; {known_names()})"
    )


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` holds a model in faceedit's own format (a run directory's
    ``config.json`` holds the training config instead)."""
    try:
        header = json.loads((path / MODEL_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and "architecture" in header


def model_metadata(source: str | os.PathLike) -> dict:
    """The ``metadata`` a faceedit model directory records in its ``config.json`` (its
    domain, role, data seed, lineage, ...); ``{}`` for anything else or nothing found."""
    try:
        header = json.loads((resolve(source) / MODEL_FILE).read_text("utf-8"))
    except (OSError, ValueError, HubError):
        return {}
    meta = header.get("metadata") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def run_output(path: Path) -> Path:
    """A training run directory's final model (or its ``checkpoint.pt`` while it still
    trains); any other path unchanged."""
    if not path.is_dir() or (path / BUNDLE_FILE).is_file() or is_model_dir(path):
        return path
    for name in RUN_OUTPUTS:
        if is_model_dir(path / name):
            return path / name
    if (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    return path


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a bundle directory (or its ``bundle.json``)."""
    path = Path(path)
    return (path / BUNDLE_FILE).is_file() or (path.name == BUNDLE_FILE and path.is_file())


def read_bundle(path: str | os.PathLike) -> dict:
    """The parts that ``path/bundle.json`` names, their paths made absolute; ``{}`` when
    ``path`` is not a bundle.

    Raises:
        HubError: an unreadable or malformed ``bundle.json``.
    """
    path = Path(path)
    spec = path / BUNDLE_FILE if path.is_dir() else path
    if spec.name != BUNDLE_FILE or not spec.is_file():
        return {}
    try:
        data = json.loads(spec.read_text())
    except (OSError, ValueError) as e:
        raise HubError(f"{spec}: not a readable bundle.json ({e})") from None
    if not isinstance(data, dict):
        raise HubError(f"{spec}: bundle.json must hold an object")
    root = spec.parent
    out = dict(data)
    for key in BUNDLE_PATH_KEYS:
        if isinstance(out.get(key), str):
            out[key] = str(root / out[key])
    t = out.get("transformers")
    if isinstance(t, str):
        out["transformers"] = str(root / t)
    elif isinstance(t, dict):
        out["transformers"] = {k: str(root / v) for k, v in t.items()}
    elif t is not None:
        raise HubError(f"{spec}: 'transformers' must be a directory or a name -> path map")
    return out


__all__ = [
    "BUNDLE_FILE",
    "CatalogueEntry",
    "HubError",
    "cache_dir",
    "catalogue",
    "default_model",
    "is_bundle",
    "known_names",
    "model_metadata",
    "read_bundle",
    "resolve",
    "run_output",
]
