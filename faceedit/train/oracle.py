"""Training the avatar attribute oracle (:class:`faceedit.nets.oracle.AvatarOracle`).

Data: a directory written by ``faceedit data avatars`` (:mod:`faceedit.data.avatars`),
its ``train`` split for training and ``val`` split for the reported accuracy. Loss:
binary cross-entropy over the attributes plus the mean over parameter heads of the
cross-entropy, where a parameter that does not show in the image (hair colour under a
hat, ...) is left out. Adam with decoupled weight decay, one-cycle learning rate.

The output directory is the model directory (``config.json`` + ``model.safetensors``,
``metrics.json``) and the run directory at once: ``run.json`` and ``checkpoint.pt``
(:mod:`faceedit.train.checkpointing`) sit beside the model, so re-running the same
command resumes an interrupted run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from faceedit.errors import FaceeditError
from faceedit.nets.oracle import AvatarOracle, AvatarOracleConfig
from faceedit.train.checkpointing import (
    RunSpec,
    TrainingCheckpoint,
    capture_rng,
    config_dict,
    load_states,
    plan_run,
    restore_rng,
    save_training_checkpoint,
)
from faceedit.train.common import init_lineage

# settings a resumed run may change (checkpointing.plan_run); not ``epochs``: the
# one-cycle schedule spans the whole run, so a longer run is another run
MAY_CHANGE = frozenset({"max_val", "device", "threads", "checkpoint_every"})
# what an oracle run writes into its directory (--restart deletes these)
OUTPUTS = ("config.json", "model.safetensors", "metrics.json")

#: a model's role, as its metadata states it
ROLES = {
    "oracle": "attribute reader (training-side: labels, losses and selection may use it)",
    "judge": "evaluation judge: never used by any training command",
}


@dataclass(frozen=True)
class OracleTrainConfig:
    """How an oracle is trained (saved in the model's metadata)."""

    epochs: float = 3.0
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_train: int | None = None
    max_val: int | None = None
    device: str = "cpu"
    threads: int | None = None
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end)
    # "heavy": faceedit.data.augment.heavy_augment on every batch (an evaluation judge)
    augment: str = "none"
    # what the model is for, recorded in its metadata: "oracle" (may be used in training
    # commands) or "judge" (evaluation only; see ROLES)
    role: str = "oracle"
    # start from this oracle's weights (same architecture): a long run done in chunks,
    # each a run of its own with its own schedule, continuing where the last one ended
    init: str | None = None
    # the fraction of training images replaced by partial edits of themselves (a faint
    # blend towards, or noise over, a counterfactual; faceedit.data.partial_edits) with
    # their own labels: an evaluation judge must not read a half-drawn change as done
    hard_negatives: float = 0.0
    hard_negative_alpha: float = 0.3

    def __post_init__(self) -> None:
        from faceedit.data.augment import AUGMENT_NAMES

        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise FaceeditError("epochs, batch size and learning rate must be positive")
        if self.checkpoint_every < 1:
            raise FaceeditError(f"checkpoint_every must be positive, got {self.checkpoint_every}")
        if self.augment not in AUGMENT_NAMES:
            raise FaceeditError(
                f"augment {self.augment!r}: expected one of {', '.join(AUGMENT_NAMES)}"
            )
        if not 0 <= self.hard_negatives <= 1:
            raise FaceeditError(f"hard_negatives must be in [0, 1], got {self.hard_negatives}")
        if not 0.05 < self.hard_negative_alpha < 0.5:
            raise FaceeditError(
                f"hard_negative_alpha must be in (0.05, 0.5): a blend past half-way is an "
                f"edit, not a negative; got {self.hard_negative_alpha}"
            )
        if self.role not in ROLES:
            raise FaceeditError(f"role {self.role!r}: expected one of {', '.join(ROLES)}")
        for name in ("max_train", "max_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FaceeditError(f"{name} must be positive, got {value}")


@dataclass
class OracleTrainResult:
    """What :func:`train_oracle` produced: the saved model, validation metrics, losses."""

    out_dir: Path
    metrics: dict[str, Any]
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


AUGMENT_SEED_OFFSET = 7919  # the augmentation generator's seed is the run's seed plus this
NEGATIVES_SEED_OFFSET = 104729  # ... and the partial edits' generator's


def _dataset_seed(data_dir: str | os.PathLike) -> int | None:
    """The seed ``faceedit data avatars`` drew the dataset from (its dataset.json)."""
    try:
        return int(json.loads((Path(data_dir) / "dataset.json").read_text("utf-8"))["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _warm_start(model: AvatarOracle, init: str) -> None:
    from faceedit.checkpoints.oracle import load_avatar_oracle

    start = load_avatar_oracle(init)
    if start.config != model.config:
        raise FaceeditError(f"{init}: a differently shaped oracle; --init needs the same one")
    model.load_state_dict(start.state_dict())


def default_oracle_config(arrays: Any, **overrides: Any) -> AvatarOracleConfig:
    """An oracle config whose heads match a dataset (``AvatarArrays``)."""
    from faceedit.data.avatars import PARAMETERS

    base = AvatarOracleConfig(
        img_size=int(arrays.images.shape[1]),
        attr_names=tuple(arrays.attr_names),
        param_names=tuple(arrays.param_names),
        param_values=tuple(tuple(PARAMETERS[k]) for k in arrays.param_names),
    )
    return replace(base, **overrides)


def images_to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """``uint8 [N, H, W, 3]`` -> ``float32 [N, 3, H, W]`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def oracle_loss(
    out: Any, attrs: torch.Tensor, params: torch.Tensor, param_names: tuple[str, ...]
) -> torch.Tensor:
    """BCE over attributes + mean CE over parameter heads (targets -1 are ignored).

    Args:
        out: the oracle's ``OracleOutput``.
        attrs: ``[N, n_attrs]`` in {-1, 1}.
        params: ``int64 [N, n_params]`` value indices, -1 where hidden.
    """
    loss = F.binary_cross_entropy_with_logits(out.attrs, (attrs.float() + 1) / 2)
    heads = []
    for c, name in enumerate(param_names):
        target = params[:, c]
        if (target >= 0).any():
            heads.append(F.cross_entropy(out.params[name], target, ignore_index=-1))
    if heads:
        loss = loss + torch.stack(heads).mean()
    return loss


@torch.no_grad()
def evaluate_oracle(
    model: AvatarOracle, arrays: Any, batch_size: int = 256, device: str = "cpu"
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``arrays`` (``AvatarArrays``).

    Returns a dict: ``attr_accuracy`` (mean over attributes), ``param_accuracy`` (mean
    over parameters, on images where each shows), ``all_attrs_correct`` (images whose
    every attribute is right), and per-name figures under ``attrs`` and ``params``.
    """
    model.eval()
    attr_hits = np.zeros(len(model.config.attr_names))
    all_right = 0
    p_hits = np.zeros(len(model.config.param_names))
    p_count = np.zeros(len(model.config.param_names))
    n = len(arrays.images)
    for i in range(0, n, batch_size):
        x = images_to_tensor(arrays.images[i : i + batch_size], device)
        out = model(x)
        pred = (out.attrs > 0).cpu().numpy()
        truth = arrays.attrs[i : i + batch_size] > 0
        attr_hits += (pred == truth).sum(0)
        all_right += int((pred == truth).all(1).sum())
        target = arrays.params[i : i + batch_size]
        for c, name in enumerate(model.config.param_names):
            mask = target[:, c] >= 0
            guess = out.params[name].argmax(1).cpu().numpy()
            p_hits[c] += (guess[mask] == target[mask, c]).sum()
            p_count[c] += mask.sum()
    attrs = {a: float(h / n) for a, h in zip(model.config.attr_names, attr_hits, strict=True)}
    params = {
        k: float(h / max(c, 1))
        for k, h, c in zip(model.config.param_names, p_hits, p_count, strict=True)
    }
    return {
        "n": n,
        "attr_accuracy": float(np.mean(list(attrs.values()))) if attrs else float("nan"),
        "param_accuracy": float(np.mean(list(params.values()))) if params else float("nan"),
        "all_attrs_correct": all_right / n,
        "attrs": attrs,
        "params": params,
    }


def run_spec(
    config: OracleTrainConfig, model_config: AvatarOracleConfig, data_dir: str | os.PathLike
) -> RunSpec:
    """An oracle run is its config, its architecture and its dataset."""
    identity = {"data": str(data_dir), "model_config": asdict(model_config)}
    return RunSpec("oracle", config, MAY_CHANGE, OUTPUTS, identity)


def train_oracle(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: OracleTrainConfig = OracleTrainConfig(),
    model_config: AvatarOracleConfig | None = None,
    progress: bool = True,
    restart: bool = False,
    stop_after: int | None = None,
) -> OracleTrainResult:
    """Train an oracle on ``data_dir``'s train split, save it to ``out_dir``.

    ``out_dir`` receives ``config.json`` + ``model.safetensors`` (load with
    ``faceedit.load``; the metadata holds the metrics and this config), ``metrics.json``
    and the run's ``run.json`` and ``checkpoint.pt``. Re-running with the same settings
    resumes (a finished run is evaluated and saved again); other settings are refused
    unless ``restart``, which deletes that run's files and starts over. ``stop_after``
    stops once that many steps are done (a checkpoint is written, no model yet).

    Raises:
        FaceeditError: a bad dataset or output directory.
    """
    from tqdm import tqdm

    from faceedit.data.augment import batch_augmenter
    from faceedit.data.avatars import load_arrays

    out = Path(out_dir)
    if model_config is None:
        model_config = default_oracle_config(load_arrays(data_dir, "train", limit=1))
    plan = plan_run(out, run_spec(config, model_config, data_dir), restart=restart)
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    train = load_arrays(data_dir, "train", limit=config.max_train, progress=progress)
    val = load_arrays(data_dir, "val", limit=config.max_val, progress=progress)
    if model_config.img_size != train.images.shape[1]:
        raise FaceeditError(
            f"{data_dir}: images are {train.images.shape[1]} px, the oracle expects "
            f"{model_config.img_size} px"
        )
    truths = None
    if config.hard_negatives > 0:
        from faceedit.data.avatars import read_params
        from faceedit.data.partial_edits import counterfactuals_for, partial_edits

        size = int(train.images.shape[1])
        params = read_params(data_dir)
        truths = counterfactuals_for(params, train.files, size, config.seed, progress=progress)
    device = torch.device(config.device)
    n = len(train.images)
    steps = max(1, math.ceil(config.epochs * n / config.batch_size))
    end = steps if stop_after is None else min(steps, stop_after)
    losses: list[float] = []
    # a private RNG stream: training neither reads nor changes the global torch seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AvatarOracle(model_config).to(device)
        if config.init:
            _warm_start(model, config.init)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
        gen = torch.Generator().manual_seed(config.seed)
        augment = batch_augmenter(config.augment)
        # a stream of its own, so augmenting never changes the order of the batches
        aug_gen = torch.Generator().manual_seed(config.seed + AUGMENT_SEED_OFFSET)
        neg_gen = torch.Generator().manual_seed(config.seed + NEGATIVES_SEED_OFFSET)
        order = torch.randperm(n, generator=gen)
        pos, step = 0, 0
        if plan.checkpoint is not None:
            ck = plan.checkpoint
            load_states(
                ck,
                plan.checkpoint_path,
                models={"oracle": model},
                optimizers={"oracle": opt},
                schedulers={"oracle": sched},
            )
            restore_rng(ck.rng, {"order": gen})
            order, pos, step = ck.extra["order"], int(ck.extra["pos"]), int(ck.step)
            losses = list(ck.extra["losses"])
        plan.begin()

        def checkpoint() -> None:
            save_training_checkpoint(
                plan.checkpoint_path,
                TrainingCheckpoint(
                    kind="oracle",
                    step=step,
                    epoch=step * config.batch_size // n,
                    config=config_dict(config),
                    models={"oracle": model.state_dict()},
                    optimizers={"oracle": opt.state_dict()},
                    schedulers={"oracle": sched.state_dict()},
                    rng=capture_rng({"order": [gen.get_state()]}),
                    model_config=asdict(model_config),
                    extra={"order": order, "pos": pos, "losses": losses},
                ),
            )

        model.train()
        bar = tqdm(
            total=end, initial=min(step, end), desc="oracle", unit="step", disable=not progress
        )
        while step < end:
            if pos + config.batch_size > n and pos > 0:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + config.batch_size].numpy()
            pos += config.batch_size
            images = train.images[idx]
            if truths is not None:
                images = partial_edits(
                    images, truths[idx], neg_gen, config.hard_negatives,
                    config.hard_negative_alpha,
                )  # fmt: skip
            if augment is None:
                x = images_to_tensor(images, device)
            else:
                x = augment(images, aug_gen).to(device)
            attrs = torch.from_numpy(train.attrs[idx]).to(device)
            params = torch.from_numpy(train.params[idx]).to(device)
            loss = oracle_loss(model(x), attrs, params, model_config.param_names)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step % config.checkpoint_every == 0 or step == end:
                checkpoint()
        bar.close()
    metrics = evaluate_oracle(model, val, device=str(device))
    seconds = time.perf_counter() - start
    metrics["seconds"] = seconds
    metrics["steps"] = steps
    metrics["train_images"] = n
    if step < steps:  # stopped early: the checkpoint holds the run, no model yet
        return OracleTrainResult(out_dir=out, metrics=metrics, losses=losses, seconds=seconds)
    meta = {
        "metrics": {
            k: metrics[k] for k in ("attr_accuracy", "param_accuracy", "all_attrs_correct")
        },
        "train_config": asdict(config),
        "data": str(data_dir),
        "role": ROLES[config.role],
        "data_seed": _dataset_seed(data_dir),
        # renders only, unless it continues another network's weights (--init)
        "lineage": init_lineage(config.init or ""),
    }
    model.cpu().eval().save_pretrained(out, metadata=meta)
    from faceedit.fileio import atomic_write_text
    from faceedit.units import FRACTION, SECONDS, with_units

    rates = ("attr_accuracy", "param_accuracy", "all_attrs_correct", "attrs", "params")
    on_disk = with_units(metrics, **dict.fromkeys(rates, FRACTION), seconds=SECONDS)
    atomic_write_text(out / "metrics.json", json.dumps(on_disk, indent=2) + "\n")
    return OracleTrainResult(out_dir=out, metrics=metrics, losses=losses, seconds=seconds)
