"""One checkpoint layout and one resume rule for every training loop.

A run directory holds ``run.json``, written when a run starts (which kind of run, its
settings), and ``checkpoint.pt``, a ``torch.save`` dict of tensors and plain containers
(readable with ``weights_only=True``: no code runs on load), written to a temporary file
beside it and renamed, so a kill never leaves a torn one. Layout version 1, the same keys
for every loop (:class:`TrainingCheckpoint`)::

    layout_version    1
    faceedit_version  the version that wrote it
    kind              attgan | stylegan2 | encoder | latent_classifier
                      | latent_transformer | oracle
    step              optimiser steps done (for GANs: iterations of the loop)
    epoch             epochs done (0 for loops that count steps only)
    models            {name: state_dict}     e.g. G, D; E; classifier; transformers; oracle
    ema               {name: state_dict}     running averages, by the model they average
    optimizers        {name: state_dict}     by the model they update
    schedulers        {name: state_dict}     by the model whose optimiser they drive
    rng               {"torch": CPU state, "cuda": [per device],
                       "generators": {name: [state per rank]}}
    config            the training config, dataclasses.asdict of its typed dataclass
    model_config      the architecture's config as a plain dict (or None)
    world_size        processes that trained it
    extra             what only this loop keeps (running means, loss history, ...)

The resume rule (:func:`plan_run`): re-running a training command on its run directory
resumes it. "The same run" means the same kind and the same settings, except the fields
a loop lets change (its step budget, so that a run can be extended, and bookkeeping:
intervals, device, progress bars, the output path); some loops add what else defines the
run (fingerprints of in-memory data). Another config of the same kind is refused with
one line that names ``--restart``; ``restart=True`` deletes that run's own outputs (only
the names the loop writes) and starts over. A directory that holds another kind of run,
or is not empty and holds no faceedit run, is refused either way. Temporary files left by
a killed run are removed when the next one starts.

Checkpoints in the layouts the loops wrote before layout version 1 are read once and
converted (:func:`from_legacy`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from faceedit.errors import FaceeditError
from faceedit.train.distributed import DistInfo, barrier

LAYOUT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
RUN_FILE = "run.json"
KINDS = (
    "attgan",
    "stylegan2",
    "encoder",
    "latent_classifier",
    "latent_transformer",
    "oracle",
)
# the keys every checkpoint has, in this order (see the module docstring)
CHECKPOINT_KEYS = (
    "layout_version",
    "faceedit_version",
    "kind",
    "step",
    "epoch",
    "models",
    "ema",
    "optimizers",
    "schedulers",
    "rng",
    "config",
    "model_config",
    "world_size",
    "extra",
)
# what a kill can leave: fileio.atomic_path's ".<stem>.<8 random chars><suffix>" and
# save_pretrained's ".<name>.tmp"
_STRAY_TEMP = re.compile(
    r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$|^\.(model\.safetensors|config\.json)\.tmp$"
)


# --------------------------------------------------------------------------- layout


@dataclass
class TrainingCheckpoint:
    """A training checkpoint in layout version 1 (see the module docstring)."""

    kind: str
    step: int
    config: dict[str, Any]
    models: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, Any] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    ema: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] | None = None
    epoch: int = 0
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    faceedit_version: str = ""
    layout_version: int = LAYOUT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The dict that ``torch.save`` writes, keys in :data:`CHECKPOINT_KEYS` order."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown checkpoint kind {self.kind!r}")
        out = {k: getattr(self, k) for k in CHECKPOINT_KEYS}  # no deep copies of tensors
        out["faceedit_version"] = out["faceedit_version"] or _version()
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], source: str = "checkpoint") -> TrainingCheckpoint:
        """Read layout version 1, or convert an older layout (:func:`from_legacy`)."""
        if "layout_version" not in obj:
            obj = from_legacy(obj, source)
        version = obj.get("layout_version")
        if version != LAYOUT_VERSION:
            raise FaceeditError(
                f"{source}: checkpoint layout {version!r}, this faceedit reads {LAYOUT_VERSION}"
            )
        missing = [k for k in CHECKPOINT_KEYS if k not in obj]
        if missing or obj["kind"] not in KINDS:
            raise FaceeditError(f"{source}: not a faceedit training checkpoint")
        return cls(**{k: obj[k] for k in CHECKPOINT_KEYS})


def config_dict(config: Any) -> dict[str, Any]:
    """A typed training config as the plain dict that checkpoints and ``run.json`` keep."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"a training config must be a dataclass, not {type(config).__name__}")
    return dataclasses.asdict(config)


def save_training_checkpoint(path: str | os.PathLike, checkpoint: TrainingCheckpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temporary file + rename)."""
    from faceedit.fileio import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(checkpoint.to_dict(), tmp)
    return path


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """The dict in a checkpoint file, read without running code."""
    path = Path(path)
    if not path.is_file():
        raise FaceeditError(f"{path}: no checkpoint to resume from")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, unpickling refusal, ...
        raise FaceeditError(f"{path}: unreadable checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, dict):
        raise FaceeditError(f"{path}: not a faceedit training checkpoint")
    return obj


def load_training_checkpoint(
    path: str | os.PathLike, kind: str | None = None
) -> TrainingCheckpoint:
    """Read ``path`` (any layout the loops have written) as a :class:`TrainingCheckpoint`.

    Raises:
        FaceeditError: missing, unreadable, not a training checkpoint, or not ``kind``.
    """
    ck = TrainingCheckpoint.from_dict(read_checkpoint_file(path), str(path))
    if kind is not None and ck.kind != kind:
        raise FaceeditError(f"{path}: {_a(ck.kind)} checkpoint, not {_a(kind)} one")
    return ck


def load_states(
    checkpoint: TrainingCheckpoint,
    source: str | os.PathLike,
    models: Mapping[str, torch.nn.Module] = {},
    optimizers: Mapping[str, Any] = {},
    schedulers: Mapping[str, Any] = {},
    ema: Mapping[str, torch.nn.Module] = {},
) -> None:
    """Load the named states of ``checkpoint`` into the given objects.

    Raises:
        FaceeditError: a state is missing or does not fit (one line naming ``source``).
    """
    try:
        for part, targets in (
            ("models", models),
            ("optimizers", optimizers),
            ("schedulers", schedulers),
            ("ema", ema),
        ):
            saved = getattr(checkpoint, part)
            for name, target in targets.items():
                if name not in saved:
                    raise ValueError(f"it holds no {part}[{name!r}]")
                target.load_state_dict(saved[name])
    except (KeyError, RuntimeError, ValueError) as e:
        text = " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())
        text = text if len(text) <= 200 else text[:197] + "..."  # one line, with the reason
        raise FaceeditError(f"{source}: does not fit this run ({text})") from None


# --------------------------------------------------------------------------- rng


def capture_rng(generators: Mapping[str, list[torch.Tensor]] | None = None) -> dict[str, Any]:
    """The global torch RNG states plus ``generators`` (name -> state per rank)."""
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return {"torch": torch.get_rng_state(), "cuda": cuda, "generators": dict(generators or {})}


def restore_rng(
    rng: Mapping[str, Any],
    generators: Mapping[str, torch.Generator] = {},
    rank: int = 0,
) -> None:
    """Continue the random streams saved by :func:`capture_rng` (this rank's generators)."""
    if rng.get("torch") is not None:
        torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    saved = rng.get("generators", {})
    for name, gen in generators.items():
        states = saved.get(name)
        if states:
            gen.set_state(states[rank % len(states)])


# --------------------------------------------------------------------------- run dirs


@dataclass(frozen=True)
class RunSpec:
    """What a loop tells :func:`plan_run` about its runs.

    Attributes:
        kind: one of :data:`KINDS`.
        config: the typed training config of this run.
        may_change: config fields a resumed run may change (budget, bookkeeping).
        outputs: names (glob patterns) in the run directory that this kind writes;
            ``restart`` deletes exactly these (plus ``run.json`` and ``checkpoint.pt``).
        identity: what else defines the run (data fingerprints, ...), as plain values.
    """

    kind: str
    config: Any
    may_change: frozenset[str]
    outputs: tuple[str, ...]
    identity: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunPlan:
    """What :func:`plan_run` decided: resume ``checkpoint`` (None: start at step 0)."""

    out: Path
    spec: RunSpec
    checkpoint: TrainingCheckpoint | None
    restart: bool = False

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    @property
    def step(self) -> int:
        return 0 if self.checkpoint is None else int(self.checkpoint.step)

    def begin(self, dist: DistInfo = DistInfo()) -> None:
        """Create the run directory, remove stray temporary files, delete the old run's
        outputs when restarting, and write ``run.json`` (rank 0 only)."""
        barrier(dist)  # no rank still reads the old checkpoint when rank 0 deletes it
        if not dist.is_main:
            return
        from faceedit.fileio import atomic_write_text

        self.out.mkdir(parents=True, exist_ok=True)
        remove_stray_temp_files(self.out)
        if self.restart:
            for path in _owned(self.out, self.spec.outputs):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        record = {
            "faceedit_run": self.spec.kind,
            "layout_version": LAYOUT_VERSION,
            "faceedit_version": _version(),
            "config": _plain(config_dict(self.spec.config)),
            "identity": _plain(dict(self.spec.identity)),
        }
        atomic_write_text(self.out / RUN_FILE, json.dumps(record, indent=2) + "\n")


def plan_run(out: str | os.PathLike, spec: RunSpec, restart: bool = False) -> RunPlan:
    """Decide whether ``out`` starts a run, resumes one or is refused; writes nothing.

    Raises:
        FaceeditError: ``out`` cannot be a run directory, holds a run with other settings
            (unless ``restart``), another kind of run, or files that are not a run.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FaceeditError(f"{out}: parent directory {parent} does not exist")
    if out.exists() and not out.is_dir():
        raise FaceeditError(f"{out}: exists and is not a directory")
    entries = [p for p in out.iterdir() if not _STRAY_TEMP.match(p.name)] if out.is_dir() else []
    if not entries:
        return RunPlan(out, spec, None, restart=False)
    ck_path = out / CHECKPOINT_NAME
    record = _read_record(out / RUN_FILE)
    checkpoint = None
    if ck_path.is_file() and not (restart and record is not None):
        checkpoint = load_training_checkpoint(ck_path)
    if record is None and checkpoint is None:
        raise FaceeditError(
            f"{out}: is not empty and holds no faceedit run; choose a new output directory "
            f"(--restart starts over only {_a(spec.kind)} run)"
        )
    kind = record["kind"] if record is not None else checkpoint.kind
    if checkpoint is not None and checkpoint.kind != kind:
        kind = checkpoint.kind
    if kind != spec.kind:
        raise FaceeditError(
            f"{out}: holds {_a(kind)} run, not {_a(spec.kind)} run; choose another output "
            f"directory (--restart starts over only {_a(spec.kind)} run)"
        )
    stored_config = record["config"] if record is not None else checkpoint.config
    stored_identity = record["identity"] if record is not None else {}
    diff = _difference(stored_config, config_dict(spec.config), spec.may_change)
    diff = diff or _difference(stored_identity, dict(spec.identity), frozenset())
    if diff is not None and not restart:
        raise FaceeditError(
            f"{out}: holds {_a(kind)} run with other settings ({diff}); re-run with its "
            "settings to resume it, or pass --restart to delete it and start over"
        )
    if restart:
        return RunPlan(out, spec, None, restart=True)
    return RunPlan(out, spec, checkpoint)


def remove_stray_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed run left in ``run_dir`` and its subdirectories
    (one level down); returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for folder in [run_dir, *(p for p in run_dir.iterdir() if p.is_dir())]:
        for p in folder.iterdir():
            if p.is_file() and _STRAY_TEMP.match(p.name):
                p.unlink()
                removed.append(p)
    return removed


def fingerprint(*values: Any) -> str:
    """A short digest of arrays / tensors / state dicts / plain values (what defines a
    run's data when it is passed in memory rather than by a path)."""
    import numpy as np

    h = hashlib.blake2b(digest_size=16)

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().contiguous()
            h.update(f"tensor{tuple(v.shape)}{v.dtype}".encode())
            h.update(v.view(torch.uint8).numpy().tobytes() if v.numel() else b"")
        elif isinstance(v, np.ndarray):
            v = np.ascontiguousarray(v)
            h.update(f"array{v.shape}{v.dtype}".encode())
            h.update(memoryview(v).cast("B"))
        elif isinstance(v, Mapping):
            for k in sorted(v):
                h.update(repr(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(f"seq{len(v)}".encode())
            for x in v:
                feed(x)
        else:
            h.update(repr(v).encode())

    for v in values:
        feed(v)
    return h.hexdigest()


def _owned(out: Path, patterns: Iterable[str]) -> list[Path]:
    found: dict[Path, None] = {}
    for pattern in (*patterns, RUN_FILE, CHECKPOINT_NAME):
        for p in out.glob(pattern):
            found[p] = None
    return list(found)


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise FaceeditError(f"{path}: unreadable run record") from None
    if not isinstance(data, dict) or data.get("faceedit_run") not in KINDS:
        raise FaceeditError(f"{path}: not a faceedit run record")
    return {
        "kind": data["faceedit_run"],
        "config": data.get("config", {}),
        "identity": data.get("identity", {}),
    }


def _plain(value: Any) -> Any:
    """Tuples -> lists and so on: the form JSON keeps, so that comparisons agree."""
    return json.loads(json.dumps(value))


def _difference(stored: Mapping[str, Any], current: Mapping[str, Any], may_change) -> str | None:
    """The first field (of ``current``) whose value differs, as text; None if the same.

    Fields the stored record lacks (older runs) are not compared.
    """
    stored, current = _plain(dict(stored)), _plain(dict(current))
    for key, value in current.items():
        if key in may_change or key not in stored:
            continue
        if stored[key] != value:
            return f"{key}: {_short(stored[key])} there, {_short(value)} here"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _version() -> str:
    from faceedit import __version__

    return __version__


# --------------------------------------------------------------------------- older layouts


def from_legacy(obj: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """Convert a checkpoint written before layout version 1 into layout 1.

    The loops wrote five layouts; each is recognised by its keys: AttGAN (``optim_G``),
    StyleGAN2 (``G_ema``, ``opt_g``), encoder (``E``, ``opt``), latent classifier and
    transformer (``kind``, ``optimizer``). The oracle had no checkpoint.
    """
    o = dict(obj)

    def base(kind: str, **parts: Any) -> dict[str, Any]:
        out = {
            "layout_version": LAYOUT_VERSION,
            "faceedit_version": str(o.get("faceedit_version", "")),
            "kind": kind,
            "step": 0,
            "epoch": 0,
            "models": {},
            "ema": {},
            "optimizers": {},
            "schedulers": {},
            "rng": {},
            "config": {},
            "model_config": None,
            "world_size": int(o.get("world_size", 1)),
            "extra": {},
        }
        out.update(parts)
        return out

    try:
        if "optim_G" in o and "G" in o and "D" in o:
            rng = dict(o.get("rng", {}))
            return base(
                "attgan",
                step=int(o["step"]),
                models={"G": o["G"], "D": o["D"]},
                optimizers={"G": o["optim_G"], "D": o["optim_D"]},
                rng={"torch": rng.get("torch"), "cuda": [], "generators": {}},
                config=dict(o.get("config", {})),  # setting(): the fields plus a few
                model_config=o.get("model_config"),
            )
        if "G_ema" in o and "opt_g" in o:
            return base(
                "stylegan2",
                step=int(o["step"]),
                models={"G": o["G"], "D": o["D"]},
                ema={"G": o["G_ema"]},
                optimizers={"G": o["opt_g"], "D": o["opt_d"]},
                rng={
                    "torch": o["rng"]["torch"],
                    "cuda": [],
                    "generators": {"sampler": list(o["sampler_rng"])},
                },
                config=dict(o.get("config", {})),
                world_size=len(o["sampler_rng"]),
                extra={"pl_mean": o["pl_mean"]},
            )
        if "E" in o and "opt" in o:
            return base(
                "encoder",
                step=int(o["step"]),
                models={"E": o["E"]},
                optimizers={"E": o["opt"]},
                rng={"torch": o["rng"], "cuda": [], "generators": {"sampler": [o["sampler_rng"]]}},
                config=dict(o.get("config", {})),
                model_config=o.get("encoder_config"),
            )
        if o.get("kind") == "latent_classifier":
            return base(
                "latent_classifier",
                step=_adam_steps(o["optimizer"]),
                epoch=int(o["epoch"]) + 1,  # it stored the index of the last epoch done
                models={"classifier": o["model"]},
                optimizers={"classifier": o["optimizer"]},
                schedulers={"classifier": o["scheduler"]},
                rng={"torch": o["rng"]["torch"], "cuda": [], "generators": {}},
                config=dict(o.get("train_config", {})),
                model_config=o.get("model_config"),
                extra={"losses": list(o.get("losses", []))},
            )
        if o.get("kind") == "latent_transformer":
            return base(
                "latent_transformer",
                step=_adam_steps(o["optimizer"]),
                epoch=int(o["epoch"]) + 1,
                models={"transformers": o["bank"]},
                optimizers={"transformers": o["optimizer"]},
                schedulers={"transformers": o["scheduler"]},
                rng={"torch": o["rng"]["torch"], "cuda": [], "generators": {}},
                config=dict(o.get("train_config", {})),
                extra={"attrs": list(o["attrs"]), "history": o["history"]},
            )
    except (KeyError, TypeError) as e:
        raise FaceeditError(f"{source}: an older faceedit checkpoint with {e} missing") from None
    raise FaceeditError(f"{source}: not a faceedit training checkpoint")


def _adam_steps(optimizer_state: Mapping[str, Any]) -> int:
    for s in optimizer_state.get("state", {}).values():
        if "step" in s:
            return int(s["step"])
    return 0
