"""Training the latent classifier and the latent transformers (Yao et al., ICCV 2021).

Both loops follow InterDigitalInc/latent-transformer (``pretraining/latent_classifier.py``
and ``trainer.py`` with ``configs/001.yaml``) in their losses and defaults:

- classifier: Adam (lr 1e-4, weight decay 5e-4), BCE with logits on the 40 labels,
  batch 256, 20 epochs, StepLR(10, 0.1);
- transformer, per attribute ``k``: the strength is ``a = 1 - p`` when the frozen
  classifier gives ``p < 0.5`` and ``a = -p`` otherwise (``fixed_alpha``: +-1); the target
  is the flipped label; losses are the class-balanced BCE on logit ``k`` of the edited
  code (``lambda_attr`` 1), the MSE between the other logits before and after the edit,
  weighted by ``1 - |rho_k|`` from the label correlations (``lambda_reg`` 1), and the
  latent MSE (``lambda_rec`` 10); Adam lr 1e-3, weight decay 5e-4, batch 32, 10 epochs.

Unlike the original, which trains one attribute after another, several attributes train
together: the classifier pass on the unedited codes is shared, the ``K`` transformers
live in one :class:`~faceedit.nets.latent.LatentTransformerBank` (one batched matmul),
and the ``K`` edited batches go through the classifier as one ``[K * B]`` batch. The
summed loss gives each transformer exactly its own gradient, and Adam is element-wise, so
this equals ``K`` separate runs over the same batches.

Both run in one process or under ``torchrun`` (DistributedDataParallel; gloo on CPU).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceedit.data.latents import LatentDataset, label_stats, split_indices
from faceedit.errors import DataError, FaceeditError
from faceedit.fileio import atomic_write_text
from faceedit.nets.latent import (
    LatentClassifier,
    LatentTransformerBank,
    LatentTransformerConfig,
    classifier_preset,
    get_coeff,
)
from faceedit.train.checkpointing import (
    CHECKPOINT_NAME,
    RunSpec,
    TrainingCheckpoint,
    capture_rng,
    config_dict,
    fingerprint,
    load_states,
    plan_run,
    restore_rng,
    save_training_checkpoint,
)
from faceedit.train.common import write_loss_plot
from faceedit.train.distributed import DistInfo, barrier, wrap_ddp

# settings a resumed run may change: its budget and bookkeeping (checkpointing.plan_run)
MAY_CHANGE = frozenset({"epochs", "log_every"})
# what each run writes into its directory (--restart deletes these)
CLASSIFIER_OUTPUTS = ("classifier", "metrics.csv", "metrics.png", "loss.png", "train_config.json")
TRANSFORMER_OUTPUTS = ("tnet_*", "plots", "history.json", "train_config.json")


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """Latent-classifier training (defaults: the original's ``latent_classifier.py``)."""

    preset: str = "released"
    hidden: tuple[int, ...] | None = None  # overrides the preset's widths
    activation: str | None = None  # overrides the preset's activation
    batch_size: int = 256
    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 5e-4
    dropout: float = 0.0
    lr_step: int = 10
    lr_gamma: float = 0.1
    train_fraction: float = 0.9
    seed: int = 0
    log_every: int = 10


@dataclass(frozen=True)
class TransformerTrainConfig:
    """Latent-transformer training (defaults: the original's ``configs/001.yaml``)."""

    batch_size: int = 32
    epochs: int = 10
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    lambda_attr: float = 1.0
    lambda_rec: float = 10.0
    lambda_reg: float = 1.0
    corr_threshold: float = 1.0
    fixed_alpha: bool = False
    dense: bool = False
    lr_step: int = 10
    lr_gamma: float = 0.1
    train_fraction: float = 0.9
    seed: int = 0
    log_every: int = 10


# --------------------------------------------------------------------------- batching


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, dist: DistInfo
) -> list[torch.Tensor]:
    """Shuffled index batches for one epoch; under DDP each rank gets its own share.

    The shuffle depends only on ``(seed, epoch)`` so that a resumed run sees the same
    order; every rank gets the same number of batches (DDP needs matching steps).
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if dist.enabled:
        per_rank = n // dist.world_size
        perm = perm[dist.rank :: dist.world_size][:per_rank]
    return list(perm.split(batch_size))


def _progress(iterable, enabled: bool, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, leave=False, dynamic_ncols=True, **kwargs)


def _check_dataset(data: LatentDataset, num_ws: int, w_dim: int, n_attrs: int) -> None:
    if tuple(data.codes.shape[1:]) != (num_ws, w_dim):
        raise DataError(
            f"codes are [N, {data.codes.shape[1]}, {data.codes.shape[2]}] but the model "
            f"expects [N, {num_ws}, {w_dim}]"
        )
    if data.labels.shape[1] != n_attrs:
        raise DataError(f"labels have {data.labels.shape[1]} columns, the model {n_attrs}")


def classifier_run_spec(
    config: ClassifierTrainConfig, data: LatentDataset, model_config: Any
) -> RunSpec:
    """A classifier run is its config, its data and the architecture they give."""
    identity = {
        "data": fingerprint(data.codes, data.labels),
        "attr_names": list(data.attr_names),
        "model_config": asdict(model_config),
    }
    return RunSpec("latent_classifier", config, MAY_CHANGE, CLASSIFIER_OUTPUTS, identity)


def transformer_run_spec(
    config: TransformerTrainConfig,
    data: LatentDataset,
    classifier: LatentClassifier,
    names: list[str],
) -> RunSpec:
    """A transformer run is its config, its data, its attributes and the classifier."""
    identity = {
        "data": fingerprint(data.codes, data.labels),
        "attrs": list(names),
        "classifier": fingerprint(classifier.state_dict()),
    }
    return RunSpec("latent_transformer", config, MAY_CHANGE, TRANSFORMER_OUTPUTS, identity)


# --------------------------------------------------------------------------- classifier


@dataclass
class ClassifierMetrics:
    """Per-attribute validation metrics, arrays ``[n_attrs]``."""

    attr_names: tuple[str, ...]
    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    positives: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "attribute": n,
                "accuracy": float(self.accuracy[i]),
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "positives": int(self.positives[i]),
            }
            for i, n in enumerate(self.attr_names)
        ]


@torch.no_grad()
def classifier_metrics(
    model: LatentClassifier,
    codes: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    attr_names: tuple[str, ...],
    batch_size: int = 1024,
) -> ClassifierMetrics:
    """Accuracy, precision and recall per attribute (threshold 0.5 on the probability).

    Precision (recall) is 0 for an attribute with no predicted (true) positives.
    """
    model.eval()
    codes = torch.as_tensor(codes)
    labels = torch.as_tensor(labels) > 0.5
    device = next(model.parameters()).device
    preds = torch.cat(
        [
            (model(codes[i : i + batch_size].to(device)) > 0).cpu()
            for i in range(0, len(codes), batch_size)
        ]
    )
    tp = (preds & labels).sum(0).double()
    fp = (preds & ~labels).sum(0).double()
    fn = (~preds & labels).sum(0).double()
    acc = (preds == labels).double().mean(0)
    prec = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), torch.zeros_like(tp))
    rec = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), torch.zeros_like(tp))
    return ClassifierMetrics(
        attr_names=tuple(attr_names),
        accuracy=acc.numpy(),
        precision=prec.numpy(),
        recall=rec.numpy(),
        positives=labels.sum(0).numpy(),
    )


def write_metrics(metrics: ClassifierMetrics, out_dir: Path) -> None:
    """``metrics.csv`` (one row per attribute) and ``metrics.png`` (grouped bars)."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=["attribute", "accuracy", "precision", "recall", "positives"]
    )
    writer.writeheader()
    for row in metrics.rows():
        writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())

    from faceedit.viz import saved_figure

    n = len(metrics.attr_names)
    x = np.arange(n)
    with saved_figure(out_dir / "metrics.png", figsize=(max(6, 0.35 * n + 2), 4), dpi=100) as (
        fig,
        ax,
    ):
        for j, (name, vals) in enumerate(
            (
                ("accuracy", metrics.accuracy),
                ("precision", metrics.precision),
                ("recall", metrics.recall),
            )
        ):
            ax.bar(x + (j - 1) * 0.27, vals, width=0.27, label=name)
        ax.set_xticks(x, metrics.attr_names, rotation=75, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title("latent classifier, validation split")
        ax.legend(fontsize=8)


@dataclass
class ClassifierTrainResult:
    model: LatentClassifier
    metrics: ClassifierMetrics
    losses: list[float] = field(default_factory=list)
    out_dir: Path | None = None


def train_classifier(
    data: LatentDataset,
    out_dir: str | os.PathLike,
    config: ClassifierTrainConfig = ClassifierTrainConfig(),
    restart: bool = False,
    progress: bool = True,
    dist: DistInfo = DistInfo(),
    device: str | torch.device = "cpu",
    lineage: list[dict] | None = None,
) -> ClassifierTrainResult:
    """Train a :class:`LatentClassifier` on the first 90 % of ``data``.

    Writes into ``out_dir``: ``run.json``, ``classifier/`` (own format), ``checkpoint.pt``
    (after every epoch; re-running with the same settings and data resumes it, more
    ``epochs`` extend it; other settings are refused unless ``restart``, which deletes
    that run and starts over), ``metrics.csv``/``metrics.png`` (validation accuracy,
    precision, recall per attribute), ``loss.png`` and ``train_config.json``.
    ``lineage`` (:mod:`faceedit.lineage`: the data's models and labellers) goes into the
    classifier's metadata; ``train classifier`` passes the ``--codes`` set's.
    """
    out_dir = Path(out_dir)
    num_ws, w_dim = int(data.codes.shape[1]), int(data.codes.shape[2])
    overrides: dict[str, Any] = {
        "num_ws": num_ws,
        "w_dim": w_dim,
        "n_attrs": int(data.labels.shape[1]),
        "dropout": config.dropout,
        "attr_names": tuple(data.attr_names),
    }
    if config.hidden is not None:
        overrides["hidden"] = tuple(config.hidden)
    if config.activation is not None:
        overrides["activation"] = config.activation
    try:
        model_config = classifier_preset(config.preset, **overrides)
    except ValueError as e:
        raise FaceeditError(f"classifier config: {e}") from None
    train_idx, val_idx = split_indices(len(data), config.train_fraction)
    codes = torch.from_numpy(data.codes)
    labels = torch.from_numpy(data.labels)
    train_codes, train_labels = codes[train_idx], labels[train_idx]
    if len(train_codes) < 1:
        raise DataError("no training codes after the 90/10 split")

    plan = plan_run(out_dir, classifier_run_spec(config, data, model_config), restart=restart)
    torch.manual_seed(config.seed)
    device = torch.device(device)
    model = LatentClassifier(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
    start_epoch, losses, step = 0, [], 0
    state = plan.checkpoint
    if state is not None:
        if state.model_config != asdict(model_config):
            raise FaceeditError(f"{out_dir / CHECKPOINT_NAME}: saved for a different classifier")
        load_states(
            state,
            plan.checkpoint_path,
            models={"classifier": model},
            optimizers={"classifier": optimizer},
            schedulers={"classifier": scheduler},
        )
        start_epoch, losses, step = int(state.epoch), list(state.extra["losses"]), state.step
        restore_rng(state.rng)
    plan.begin(dist)
    net = wrap_ddp(model, dist, device)

    for epoch in range(start_epoch, config.epochs):
        model.train()
        batches = epoch_batches(len(train_codes), config.batch_size, config.seed, epoch, dist)
        bar = _progress(
            batches, progress and dist.is_main, desc=f"classifier {epoch + 1}/{config.epochs}"
        )
        running = []
        for idx in bar:
            logits = net(train_codes[idx].to(device))
            loss = F.binary_cross_entropy_with_logits(logits, train_labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running.append(loss.item())
            if len(running) == config.log_every:
                losses.append(float(np.mean(running)))
                running = []
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if running:
            losses.append(float(np.mean(running)))
        scheduler.step()
        if dist.is_main:
            save_training_checkpoint(
                plan.checkpoint_path,
                TrainingCheckpoint(
                    kind="latent_classifier",
                    step=step,
                    epoch=epoch + 1,
                    config=config_dict(config),
                    models={"classifier": model.state_dict()},
                    optimizers={"classifier": optimizer.state_dict()},
                    schedulers={"classifier": scheduler.state_dict()},
                    rng=capture_rng(),
                    model_config=asdict(model_config),
                    world_size=dist.world_size,
                    extra={"losses": losses},
                ),
            )
        barrier(dist)

    model.eval()
    val_codes = codes[val_idx] if val_idx.stop > val_idx.start else train_codes
    val_labels = labels[val_idx] if val_idx.stop > val_idx.start else train_labels
    metrics = classifier_metrics(model, val_codes, val_labels, data.attr_names)
    if dist.is_main:
        model.save_pretrained(out_dir / "classifier", metadata=_metadata(config, lineage))
        write_metrics(metrics, out_dir)
        write_loss_plot(
            out_dir / "loss.png",
            {"BCE": losses},
            title="latent classifier",
            xlabel=f"x{config.log_every} steps",
        )
        atomic_write_text(
            out_dir / "train_config.json", json.dumps(asdict(config), indent=2) + "\n"
        )
    return ClassifierTrainResult(model=model, metrics=metrics, losses=losses, out_dir=out_dir)


# --------------------------------------------------------------------------- transformer


def make_adam(params, config: TransformerTrainConfig) -> torch.optim.Adam:
    """Adam with the config's settings; the fused kernel where this torch has one.

    With 40 attributes the bank holds 189 M parameters, and the unfused update (several
    passes over parameter, gradient and both moments) costs as much as the forward and
    backward passes together; the fused one is a single pass with the same maths.
    """
    kwargs = {"lr": config.lr, "betas": tuple(config.betas), "weight_decay": config.weight_decay}
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/torch
        return torch.optim.Adam(params, **kwargs)


def correlation_masks(labels: np.ndarray, attrs: list[int], threshold: float = 1.0) -> torch.Tensor:
    """``1 - |rho_k|`` rows for the preservation loss, ``[K, n_attrs]``.

    ``|rho| >= threshold`` counts as 1 (mask 0), so the target itself is never preserved.
    """
    _, corr = label_stats(labels)
    vec = np.abs(corr[attrs])
    vec[vec >= threshold] = 1.0
    return torch.from_numpy(1.0 - vec).float()


def edit_targets(
    prob: torch.Tensor, fixed_alpha: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training strength and target from the classifier probability ``prob [...]``.

    Returns ``(alpha, target)`` with ``target = round(clamp(p + a, 0, 1))`` (the flipped
    label) and ``alpha = get_coeff(p)`` or, with ``fixed_alpha``, ``2 * target - 1``.
    """
    coeff = get_coeff(prob)
    target = (prob + coeff).clamp(0, 1).round()
    if fixed_alpha:
        coeff = 2 * target - 1
    return coeff, target


def attribute_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE per attribute: ``logits, target [K, B] -> [K]``.

    Each class is weighted by ``B / count`` within the batch, as in the original.
    """
    b = target.shape[-1]
    pos = target.sum(-1, keepdim=True)
    weight = (b / (pos + 1e-8)) * target + (b / (b - pos + 1e-8)) * (1 - target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * weight).mean(-1)


def preservation_loss(p1: torch.Tensor, p0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between masked logits after and before: ``p1 [K,B,A], p0 [B,A], mask [K,A] -> [K]``."""
    diff = (p1 - p0.unsqueeze(0)) * mask.unsqueeze(1)
    return diff.pow(2).mean(dim=(1, 2))


def reconstruction_loss(w1: torch.Tensor, w0: torch.Tensor) -> torch.Tensor:
    """Latent MSE per transformer: ``w1 [K,B,L,C], w0 [B,L,C] -> [K]``."""
    return (w1 - w0.unsqueeze(0)).pow(2).mean(dim=(1, 2, 3))


def transformer_losses(
    bank: nn.Module,
    classifier: LatentClassifier,
    w0: torch.Tensor,
    attrs: torch.Tensor,
    masks: torch.Tensor,
    config: TransformerTrainConfig,
) -> dict[str, torch.Tensor]:
    """All losses for one batch ``w0 [B, L, C]`` and ``K`` attributes, each ``[K]``.

    The classifier pass on ``w0`` is shared by every attribute; the edited codes of all
    ``K`` transformers go through the classifier as one ``[K * B]`` batch.
    """
    k, b = attrs.shape[0], w0.shape[0]
    with torch.no_grad():
        p0 = classifier(w0)
    alpha, target = edit_targets(torch.sigmoid(p0[:, attrs]).T, config.fixed_alpha)
    w1 = bank(w0, alpha)
    p1 = classifier(w1.reshape(k * b, -1)).reshape(k, b, -1)
    target_logits = p1.gather(2, attrs.view(k, 1, 1).expand(k, b, 1)).squeeze(2)
    out = {
        "attr": attribute_loss(target_logits, target),
        "reg": preservation_loss(p1, p0, masks),
        "rec": reconstruction_loss(w1, w0),
    }
    out["total"] = (
        config.lambda_attr * out["attr"]
        + config.lambda_rec * out["rec"]
        + config.lambda_reg * out["reg"]
    )
    return out


@dataclass
class TransformerTrainResult:
    transformers: dict[str, Any]
    history: dict[str, dict[str, list[float]]]
    out_dir: Path | None = None


def train_transformers(
    data: LatentDataset,
    classifier: LatentClassifier,
    attrs: list[int],
    out_dir: str | os.PathLike,
    config: TransformerTrainConfig = TransformerTrainConfig(),
    restart: bool = False,
    progress: bool = True,
    dist: DistInfo = DistInfo(),
    max_bank_bytes: int = 32 * 2**30,
    device: str | torch.device = "cpu",
    lineage: list[dict] | None = None,
) -> TransformerTrainResult:
    """Train one transformer per attribute index in ``attrs``, all in one batched loop.

    Writes into ``out_dir``: ``run.json``, ``tnet_{Name}/`` per attribute (own format),
    ``checkpoint.pt`` after every epoch (re-running with the same settings, data,
    attributes and classifier resumes it, more ``epochs`` extend it; anything else is
    refused unless ``restart``, which deletes that run and starts over),
    ``plots/loss_{Name}.png``, ``history.json`` and ``train_config.json``.
    Raises :class:`FaceeditError` before training when the bank would need more than
    ``max_bank_bytes`` (dense 9216 x 9216 maps cost 1.3 GiB per attribute).
    ``lineage`` (:mod:`faceedit.lineage`: the classifier and the data's models) goes into
    every transformer's metadata; ``train transformer`` passes it.
    """
    out_dir = Path(out_dir)
    cc = classifier.config
    _check_dataset(data, cc.num_ws, cc.w_dim, cc.n_attrs)
    if not attrs:
        raise FaceeditError("no attribute to train")
    names = [data.attr_names[i] for i in attrs]
    train_idx, _ = split_indices(len(data), config.train_fraction)
    codes = torch.from_numpy(data.codes)[train_idx]
    if len(codes) < 2:
        raise DataError("need at least 2 training codes after the 90/10 split")
    masks = correlation_masks(data.labels, attrs, config.corr_threshold)
    device = torch.device(device)
    masks = masks.to(device)
    attr_t = torch.tensor(attrs, dtype=torch.long, device=device)

    t_probe = LatentTransformerConfig(num_ws=cc.num_ws, w_dim=cc.w_dim, dense=config.dense)
    # parameter, gradient and Adam's two moments, float32
    needed = 16 * len(attrs) * t_probe.groups * t_probe.group_dim**2
    if needed > max_bank_bytes:
        raise FaceeditError(
            f"training {len(attrs)} {'dense ' if config.dense else ''}transformer(s) together "
            f"needs about {needed / 2**30:.1f} GiB; train fewer attributes per run"
        )
    plan = plan_run(out_dir, transformer_run_spec(config, data, classifier, names), restart=restart)
    classifier = classifier.eval().to(device)
    for p in classifier.parameters():
        p.requires_grad_(False)
    torch.manual_seed(config.seed)
    t_config = LatentTransformerConfig(num_ws=cc.num_ws, w_dim=cc.w_dim, dense=config.dense)
    bank = LatentTransformerBank(t_config, len(attrs)).to(device)
    optimizer = make_adam(bank.parameters(), config)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
    history = {n: {"attr": [], "rec": [], "reg": [], "total": []} for n in names}
    start_epoch, step = 0, 0
    state = plan.checkpoint
    if state is not None:
        if list(state.extra["attrs"]) != names:
            raise FaceeditError(
                f"{out_dir / CHECKPOINT_NAME}: trains {list(state.extra['attrs'])}, not {names}"
            )
        saved = tuple(state.models["transformers"]["weight"].shape)
        if saved != tuple(bank.weight.shape):
            raise FaceeditError(
                f"{out_dir / CHECKPOINT_NAME}: saved transformers have weights {saved}, this "
                f"run needs {tuple(bank.weight.shape)} (different --dense or codes?)"
            )
        load_states(
            state,
            plan.checkpoint_path,
            models={"transformers": bank},
            optimizers={"transformers": optimizer},
            schedulers={"transformers": scheduler},
        )
        history = state.extra["history"]
        start_epoch, step = int(state.epoch), int(state.step)
        restore_rng(state.rng)
    plan.begin(dist)
    net = wrap_ddp(bank, dist, device)

    for epoch in range(start_epoch, config.epochs):
        bank.train()
        batches = epoch_batches(len(codes), config.batch_size, config.seed, epoch, dist)
        bar = _progress(
            batches,
            progress and dist.is_main,
            desc=f"transformers x{len(attrs)} {epoch + 1}/{config.epochs}",
        )
        running: list[torch.Tensor] = []
        for idx in bar:
            w0 = codes[idx].to(device)
            losses = transformer_losses(net, classifier, w0, attr_t, masks, config)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].sum().backward()
            optimizer.step()
            step += 1
            running.append(
                torch.stack([losses[key].detach() for key in ("attr", "rec", "reg", "total")])
            )
            if len(running) == config.log_every:
                _log(history, names, running)
                bar.set_postfix(loss=f"{float(running[-1][3].mean()):.4f}")
                running = []
        if running:
            _log(history, names, running)
        scheduler.step()
        if dist.is_main:
            save_training_checkpoint(
                plan.checkpoint_path,
                TrainingCheckpoint(
                    kind="latent_transformer",
                    step=step,
                    epoch=epoch + 1,
                    config=config_dict(config),
                    models={"transformers": bank.state_dict()},
                    optimizers={"transformers": optimizer.state_dict()},
                    schedulers={"transformers": scheduler.state_dict()},
                    rng=capture_rng(),
                    model_config=asdict(t_config),
                    world_size=dist.world_size,
                    extra={"attrs": names, "history": history},
                ),
            )
        barrier(dist)

    transformers = {n: bank.transformer(k, attr_name=n) for k, n in enumerate(names)}
    if dist.is_main:
        for n, t in transformers.items():
            t.save_pretrained(out_dir / f"tnet_{n}", metadata=_metadata(config, lineage))
        for n in names:
            write_loss_plot(
                out_dir / "plots" / f"loss_{n}.png",
                {
                    f"attr x{config.lambda_attr:g}": history[n]["attr"],
                    f"rec x{config.lambda_rec:g}": [
                        config.lambda_rec * v for v in history[n]["rec"]
                    ],
                    f"reg x{config.lambda_reg:g}": [
                        config.lambda_reg * v for v in history[n]["reg"]
                    ],
                    "total": history[n]["total"],
                },
                title=f"latent transformer: {n}",
                xlabel=f"x{config.log_every} steps",
            )
        atomic_write_text(out_dir / "history.json", json.dumps(history) + "\n")
        atomic_write_text(
            out_dir / "train_config.json", json.dumps(asdict(config), indent=2) + "\n"
        )
    barrier(dist)
    return TransformerTrainResult(transformers=transformers, history=history, out_dir=out_dir)


def _log(history: dict, names: list[str], running: list[torch.Tensor]) -> None:
    mean = torch.stack(running).mean(0)  # [4, K]
    for k, n in enumerate(names):
        for j, key in enumerate(("attr", "rec", "reg", "total")):
            history[n][key].append(float(mean[j, k]))


def _metadata(config: Any, lineage: list[dict] | None) -> dict:
    """A saved model's metadata: its training config and, when known, its lineage."""
    meta: dict = {"train": asdict(config)}
    if lineage is not None:
        meta["lineage"] = lineage
    return meta


def with_overrides(config: Any, **kwargs: Any) -> Any:
    """``dataclasses.replace`` skipping ``None`` values (CLI options left unset)."""
    return replace(config, **{k: v for k, v in kwargs.items() if v is not None})
