"""Lineage: which models, labellers, loss networks and judges made a model or a dataset.

A judge that evaluates a model must not have trained, labelled, hardened or selected it
(DESIGN.md, convention 8). To keep that rule in code, every model faceedit trains records
its lineage in its metadata, and every dataset built from models records its own:

- a model in faceedit's format: ``config.json`` ``"metadata": {"lineage": [...]}``;
- a bundle: the union of its parts' lineages plus ``bundle.json`` ``"lineage"``;
- a ``faceedit data latents`` directory: ``lineage.json`` ``{"lineage": [...]}``;
- a directions ``.npz``: a ``lineage`` entry holding the JSON text of the list.

An **entry** is a dict::

    {"role": "labeller",            # what it did: generator, encoder, labeller, loss
                                    # network, hardening, selection, classifier,
                                    # transformer, init, data
     "name": "avatar-oracle",       # what the user typed, or the shipped name
     "sha256": "9f2c...",           # fingerprint(): a str, {part: sha} for a bundle or a
                                    # transformers directory, or None (not on this machine)
     "part": "generator",           # optional: the part of a bundle that was used
     "via": ["runs/clf/classifier"],# optional: the models it came through, outermost first
     "note": "..."}                 # optional: for people

Lineages are stored closed: a command records its inputs *and* their lineages (``via``
says through which input), so the chain survives when an intermediate run is deleted.
:func:`lineage_of` also follows entries whose model is still on disk (same fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from faceedit.errors import FaceeditError
from faceedit.hub import BUNDLE_FILE, BUNDLE_PATH_KEYS, HubError, read_bundle, resolve

LINEAGE_FILE = "lineage.json"  # beside a dataset's codes.npy
WEIGHTS_FILE = "model.safetensors"
CODES_FILE = "codes.npy"
# the flag that lets a dependent judge judge anyway (eval avatars, demo)
ALLOW_FLAG = "--allow-dependent-judge"

Entry = dict[str, Any]
Fingerprint = str | dict[str, str] | None


class LineageError(FaceeditError):
    """A lineage that cannot be read or a path that cannot be fingerprinted."""


class DependentJudgeError(FaceeditError):
    """A judge that trained, labelled, hardened or selected the model it would judge."""


# --------------------------------------------------------------------------- fingerprints

# (real path, size, mtime_ns) -> sha256: large files are hashed once per process
_HASHES: dict[tuple[str, int, int], str] = {}


def _sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _transformer_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.startswith("tnet_"))


def _resolve(source: str | os.PathLike, what: str) -> Path:
    """:func:`faceedit.hub.resolve`, except that a transformers run directory is itself
    (its ``tnet_*`` models, not the ``checkpoint.pt`` it keeps)."""
    path = Path(source).expanduser()
    if path.is_dir() and not (path / BUNDLE_FILE).is_file() and _transformer_dirs(path):
        return path
    return resolve(source, what)


def fingerprint(path: str | os.PathLike) -> str | dict[str, str]:
    """The sha256 of what a model *is*: its weights, wherever the files lie.

    Args:
        path: a model directory (``model.safetensors`` is hashed, not ``config.json``, so
            editing metadata keeps the fingerprint), a foreign file (hashed whole), a
            bundle (``{part: sha}``, a transformers directory's parts as
            ``transformers/tnet_X``), a transformers directory (``{tnet_X: sha}``) or a
            dataset directory (its ``codes.npy``).

    Raises:
        LineageError: nothing there that faceedit can fingerprint.
    """
    path = Path(path)
    if path.is_file():
        return _sha256_file(path)
    if (path / WEIGHTS_FILE).is_file():
        return _sha256_file(path / WEIGHTS_FILE)
    if (path / BUNDLE_FILE).is_file():
        parts: dict[str, str] = {}
        for key, value in _bundle_parts(path).items():
            inner = fingerprint(value)
            if isinstance(inner, dict):
                parts.update({f"{key}/{k}": v for k, v in inner.items()})
            else:
                parts[key] = inner
        return parts
    if path.is_dir() and _transformer_dirs(path):
        return {
            p.name: _sha256_file(p if p.is_file() else p / WEIGHTS_FILE)
            for p in _transformer_dirs(path)
        }
    if (path / CODES_FILE).is_file():
        return _sha256_file(path / CODES_FILE)
    raise LineageError(f"{path}: nothing to fingerprint (no model, bundle or codes.npy)")


def _bundle_parts(path: Path) -> dict[str, str]:
    """``{part: absolute path}`` of the parts a bundle names."""
    spec = read_bundle(path)
    parts = {k: spec[k] for k in BUNDLE_PATH_KEYS if isinstance(spec.get(k), str)}
    t = spec.get("transformers")
    if isinstance(t, str):
        parts["transformers"] = t
    elif isinstance(t, dict):
        parts.update({f"transformers/{k}": v for k, v in t.items()})
    return parts


def fingerprint_set(value: Fingerprint) -> set[str]:
    """Every sha256 in a fingerprint (one, a bundle's parts, or none)."""
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return {v for v in value.values() if isinstance(v, str)}


# --------------------------------------------------------------------------- reading


def _stored(path: Path) -> list[Entry]:
    """The lineage written at ``path`` itself (not followed), ``[]`` when none is."""
    if path.is_file() and path.suffix == ".npz":
        return _npz_lineage(path)
    if path.is_file() and path.name == CODES_FILE:
        return _stored(path.parent)
    if path.is_file():
        return []  # a foreign checkpoint carries no lineage
    if (path / BUNDLE_FILE).is_file():
        entries: list[Entry] = []
        for value in _bundle_parts(path).values():
            entries += _stored(Path(value))
        spec = read_bundle(path)
        entries += _checked(spec.get("lineage", []), path / BUNDLE_FILE)
        return dedupe(entries)
    if (path / "config.json").is_file():
        try:
            header = json.loads((path / "config.json").read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise LineageError(f"{path / 'config.json'}: unreadable ({e})") from None
        meta = header.get("metadata") if isinstance(header, dict) else None
        lineage = meta.get("lineage", []) if isinstance(meta, dict) else []
        return _checked(lineage, path / "config.json")
    if (path / LINEAGE_FILE).is_file():
        try:
            data = json.loads((path / LINEAGE_FILE).read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise LineageError(f"{path / LINEAGE_FILE}: unreadable ({e})") from None
        lineage = data.get("lineage") if isinstance(data, dict) else None
        return _checked(lineage, path / LINEAGE_FILE)
    if path.is_dir() and _transformer_dirs(path):
        return dedupe(e for p in _transformer_dirs(path) for e in _stored(p))
    return []


def _npz_lineage(path: Path) -> list[Entry]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            if "lineage" not in z.files:
                return []
            text = str(z["lineage"])
        return _checked(json.loads(text), path)
    except (OSError, ValueError) as e:
        raise LineageError(f"{path}: unreadable lineage ({e})") from None


def _checked(lineage: Any, where: Path) -> list[Entry]:
    if not isinstance(lineage, list) or not all(
        isinstance(e, dict) and isinstance(e.get("role"), str) and "name" in e for e in lineage
    ):
        raise LineageError(f"{where}: 'lineage' must be a list of {{role, name, sha256}} objects")
    return [dict(e) for e in lineage]


def _locate(entry: Entry) -> Path | None:
    """The model an entry names, when it is on this machine with the same fingerprint."""
    sha = entry.get("sha256")
    if not sha:
        return None
    try:
        path = _resolve(str(entry["name"]), "lineage")
        if entry.get("part") and (path / BUNDLE_FILE).is_file():
            path = Path(_bundle_parts(path)[entry["part"]])
        return path if fingerprint(path) == sha else None
    except (FaceeditError, KeyError, OSError):
        return None


def lineage_of(source: str | os.PathLike) -> list[Entry]:
    """Every entry in the lineage of a model, bundle or dataset, followed where possible.

    Args:
        source: a path (model directory, bundle, run directory, dataset directory,
            ``codes.npy``, directions ``.npz``, transformers directory) or a shipped or
            downloaded name.

    Returns:
        The stored entries, then those of each entry's own model when it is on this
        machine with the recorded fingerprint (``via`` names the way), without repeats.
        A model that records nothing gives ``[]``.

    Raises:
        HubError: ``source`` names nothing; LineageError: a malformed lineage.
    """
    path = _resolve(source, "lineage of")
    return _follow(_stored(path), {_key(fingerprint_or_none(path))})


def fingerprint_or_none(path: str | os.PathLike) -> Fingerprint:
    """:func:`fingerprint`, or ``None`` where there is nothing to fingerprint."""
    try:
        return fingerprint(path)
    except (LineageError, HubError, OSError):
        return None


def _key(value: Fingerprint) -> str:
    return json.dumps(value, sort_keys=True)


def _follow(entries: list[Entry], seen: set[str]) -> list[Entry]:
    out = list(entries)
    for e in entries:
        key = _key(e.get("sha256"))
        if e.get("sha256") is None or key in seen:
            continue
        seen.add(key)
        where = _locate(e)
        if where is None:
            continue
        out += [_via(inner, e) for inner in _follow(_stored(where), seen)]
    return dedupe(out)


def _via(entry: Entry, through: Entry) -> Entry:
    name = str(through["name"]) + (f"/{through['part']}" if through.get("part") else "")
    return {**entry, "via": [name, *entry.get("via", [])]}


def dedupe(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` without repeats of one (role, name, part, fingerprint); the first (the
    shortest way) is kept."""
    out, seen = [], set()
    for e in entries:
        key = (e["role"], str(e["name"]), e.get("part"), _key(e.get("sha256")))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


# --------------------------------------------------------------------------- recording


def entry(role: str, name: str, sha256: Fingerprint, note: str | None = None) -> Entry:
    """One lineage entry (see the module docstring)."""
    out: Entry = {"role": role, "name": name, "sha256": sha256}
    if note:
        out["note"] = note
    return out


def record(
    role: str,
    source: str | os.PathLike | None,
    part: str | None = None,
    note: str | None = None,
) -> list[Entry]:
    """The entries a command records for one input: the input, then its own lineage.

    Args:
        role: what the input did (``"generator"``, ``"labeller"``, ``"loss network"`` ...).
        source: what the user typed (a path or a name); ``None`` records nothing.
        part: for a bundle, the part that was used (``"generator"``, ``"transformers"``):
            its fingerprint and lineage, not the whole bundle's.
        note: for people.

    A source that no longer resolves (a resumed run's ``--init-from`` since deleted) is
    recorded by name with ``sha256: null`` and a note, never an error: training must not
    fail on its bookkeeping.
    """
    if source is None:
        return []
    name = os.fspath(source)
    try:
        path = _resolve(name, role)
        if part and (path / BUNDLE_FILE).is_file():
            path = Path(_bundle_parts(path)[part])
        else:
            part = None
        first = entry(role, name, fingerprint(path), note)
        inner = _stored(path)
    except (FaceeditError, KeyError, OSError):
        missing = "not found when the lineage was recorded"
        return [entry(role, name, None, f"{note}; {missing}" if note else missing)]
    if part:
        first["part"] = part
    return dedupe([first, *(_via(e, first) for e in inner)])


def record_dataset(
    codes: str | os.PathLike, labels: str | os.PathLike | None = None
) -> list[Entry]:
    """The entries for a ``codes`` (+ ``labels``) training set: the set (role ``data``,
    its ``codes.npy`` fingerprint) and its ``lineage.json``; the labels' directory too
    when it is another one."""
    codes_dir = _dataset_dir(codes)
    out = record("data", codes)
    if labels is not None and _dataset_dir(labels).resolve() != codes_dir.resolve():
        labels_dir = _dataset_dir(labels)
        if (labels_dir / LINEAGE_FILE).is_file() or (labels_dir / CODES_FILE).is_file():
            out += record("data", labels_dir, note="labels")
    return dedupe(out)


def _dataset_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def lineage_json(entries: list[Entry]) -> str:
    """The text of a dataset's ``lineage.json``."""
    return json.dumps({"lineage": dedupe(entries)}, indent=2) + "\n"


def write_lineage(directory: str | os.PathLike, entries: list[Entry]) -> Path:
    """Write ``directory/lineage.json`` (a dataset being assembled, e.g. under
    :func:`faceedit.fileio.atomic_dir`'s temporary directory)."""
    path = Path(directory) / LINEAGE_FILE
    path.write_text(lineage_json(entries), "utf-8")
    return path


# --------------------------------------------------------------------------- the rule


def describe(e: Entry) -> str:
    """One entry for people: ``labeller avatar-oracle (via runs/clf/classifier < ...)``."""
    text = f"{e['role']} {e['name']}"
    if e.get("part"):
        text += f" ({e['part']})"
    if e.get("via"):
        text += f" via {' < '.join(map(str, e['via']))}"
    return text


def _role_text(e: Entry) -> str:
    via = f" (via {' < '.join(map(str, e['via']))})" if e.get("via") else ""
    return f"{e['role']}{via}"


def check_judge_independent(
    model: str | os.PathLike, judge: str | os.PathLike, allow: bool = False
) -> list[Entry]:
    """Refuse a judge that made the model it would judge (DESIGN.md, convention 8).

    Call it before judging: ``faceedit eval avatars`` and ``faceedit demo`` pass their
    ``--allow-dependent-judge`` flag as ``allow`` and, when the list returned is not
    empty, say in their output that the judge is dependent (:func:`describe` each entry).

    Args:
        model: what is judged (a model, bundle or run directory, or a name).
        judge: the network whose verdicts are reported (an oracle, a classifier...).
        allow: return the dependent entries instead of raising.

    Returns:
        The entries of the model's lineage whose fingerprint is one of the judge's (a
        judge that is a part of the model counts too, as role ``part of the model``);
        ``[]`` for an independent judge.

    Raises:
        DependentJudgeError: the judge is in the lineage and ``allow`` is false (one line
            naming the judge, the role it played and the flag).
        HubError: the model or the judge names nothing.
    """
    judge_path = _resolve(judge, "judge")
    ours = fingerprint_set(fingerprint(judge_path))
    hits = [e for e in lineage_of(model) if fingerprint_set(e.get("sha256")) & ours]
    itself = fingerprint_or_none(_resolve(model, "model"))
    if fingerprint_set(itself) & ours:
        hits.insert(0, entry("part of the model", os.fspath(model), itself))
    if hits and not allow:
        roles = "; ".join(dict.fromkeys(_role_text(e) for e in hits))
        raise DependentJudgeError(
            f"judge {os.fspath(judge)} is not independent of {os.fspath(model)}: it was its "
            f"{roles}; judge with a network that never trained, labelled, hardened or "
            f"selected it, or pass {ALLOW_FLAG} to judge anyway (the output then says so)"
        )
    return hits


__all__ = [
    "ALLOW_FLAG",
    "LINEAGE_FILE",
    "DependentJudgeError",
    "LineageError",
    "check_judge_independent",
    "dedupe",
    "describe",
    "entry",
    "fingerprint",
    "fingerprint_set",
    "lineage_json",
    "lineage_of",
    "record",
    "record_dataset",
    "write_lineage",
]
