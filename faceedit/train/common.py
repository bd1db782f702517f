"""Small helpers shared by the training loops: configs from YAML, the run logger, loss
plots, the device.

Checkpoints and the resume rule live in :mod:`faceedit.train.checkpointing`, the
``torchrun`` helpers in :mod:`faceedit.train.distributed` (re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from faceedit.errors import FaceeditError
from faceedit.train.distributed import (  # noqa: F401  (the loops' and CLI's import path)
    DistInfo,
    barrier,
    cleanup_distributed,
    distributed,
    setup_distributed,
)


def write_loss_plot(
    path: str | os.PathLike,
    series: Mapping[str, Sequence[float]],
    title: str = "",
    xlabel: str = "step",
    log_y: bool = False,
) -> Path:
    """A PNG with one line per named loss series (atomically written)."""
    from faceedit.viz import saved_figure

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with saved_figure(path, figsize=(6, 3.5), dpi=100) as (fig, ax):
        for name, values in series.items():
            if len(values):
                ax.plot(range(1, len(values) + 1), list(values), label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        if log_y:
            ax.set_yscale("log")
        if title:
            ax.set_title(title)
        if series:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return Path(path)


def load_yaml_config(path: str | os.PathLike | None, config_class: type, **overrides: Any) -> Any:
    """A typed training config from a YAML (or JSON) file plus overrides (``None`` = unset).

    Unknown keys, missing required fields and bad values are errors that name the file.
    """
    import yaml

    from faceedit.nets.base import ConfigError, config_from_dict

    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise FaceeditError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise FaceeditError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise FaceeditError(f"{path}: expected a mapping of settings")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return config_from_dict(config_class, data)
    except ConfigError as e:
        raise FaceeditError(f"{source}: {e}") from None


class RunLogger:
    """Scalars to ``losses.jsonl`` (always) and TensorBoard (when installed); images to TB.

    On resume from ``resume_step``, rows past it are dropped first: the steps after the
    last checkpoint are trained again, and would otherwise appear twice.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        use_tensorboard: bool = True,
        tb_subdir: str = "tensorboard",
        resume_step: int | None = None,
    ) -> None:
        import json
        import logging

        self._json = json
        self.path = Path(run_dir) / "losses.jsonl"
        self.history: dict[str, list[float]] = {}
        if resume_step is not None and self.path.is_file():
            kept = [
                line
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            from faceedit.fileio import atomic_write_text

            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.tb = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / tb_subdir))
            except ImportError:
                logging.getLogger(__name__).warning(
                    "tensorboard is not installed (pip install 'faceedit[train]'); "
                    "losses go to losses.jsonl only"
                )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(self._json.dumps({"step": step, **values}) + "\n")
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)
            if self.tb is not None:
                self.tb.add_scalar(k, v, step)

    def image(self, step: int, tag: str, rgb: Any) -> None:
        """``rgb``: ``uint8 [H, W, 3]``."""
        if self.tb is not None:
            self.tb.add_image(tag, rgb, step, dataformats="HWC")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device, checked.

    Under torchrun a bare ``cuda`` becomes ``cuda:LOCAL_RANK``, so each process gets its
    own GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FaceeditError(
            f"device {name!r}: not a device name (cpu, cuda, cuda:1, ...)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FaceeditError(f"device {name!r}: CUDA is not available on this machine")
        if device.index is None and info is not None and info.enabled:
            device = torch.device("cuda", info.local_rank)
        if device.index is not None:
            torch.cuda.set_device(device)
    return device


def init_lineage(init_from: str, part: str | None = None) -> list[dict]:
    """What a run that continues ``init_from`` records (:mod:`faceedit.lineage`): that
    model (role ``init``) and its own lineage; ``[]`` for a run from scratch.

    Args:
        part: for a bundle, the part the run starts from (``"generator"``).
    """
    from faceedit.lineage import record

    return record("init", init_from, part=part) if init_from else []
