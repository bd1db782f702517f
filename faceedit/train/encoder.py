"""Training a W+ encoder (:class:`faceedit.nets.latent_encoder.LatentEncoder`) for a
frozen StyleGAN2 generator, and encoding a whole dataset with it.

The recipe is pSp/e4e's (Richardson et al. CVPR 2021; Tov et al. SIGGRAPH 2021) cut
down for CPUs. Each step has two halves:

- synthetic: ``z -> G.mapping`` with style mixing (so the W+ rows differ) ``-> ws ->
  x = G.synthesis(ws)``; the loss is ``lambda_latent * MSE(E(x), ws)`` plus the image
  loss between ``G(E(x))`` and ``x``. Here the true code is known, which gives the
  encoder a direct target from the first step;
- real: a batch of dataset images (the train split when ``list_eval_partition.txt``
  exists); the loss is the image loss between ``G(E(x))`` and ``x``.

Image loss: MSE + L1 in pixel space, at full and half resolution, plus, with
``perceptual`` (an avatar oracle), ``lambda_perceptual`` times the LPIPS-style distance
between the oracle's features of ``G(E(x))`` and ``x`` on both halves (see
:mod:`faceedit.losses`), and ``lambda_identity`` times the divergence between
how that oracle reads ``G(E(x))`` and ``x``, every attribute and rendering parameter
(:class:`~faceedit.losses.OracleAgreement`): pSp's identity loss for this
domain, where the identity is what the oracle reads. Adam with a cosine decay.
The reconstruction PSNR on held-out (validation-split) images, and on the generator's
own samples (where a perfect inverse exists), is measured every ``eval_every`` steps
and at the end.

Files in the run directory: ``run.json``, ``config.json``, ``checkpoint.pt`` (resume by
re-running the same command; see :mod:`faceedit.train.checkpointing`), ``losses.jsonl``, ``losses.png``, ``samples/step_XXXXXX.png``
(input | reconstruction), ``reconstructions.png`` and ``encoder/`` (faceedit's format,
with ``metrics.json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from faceedit.errors import DataError, FaceeditError
from faceedit.nets.latent_encoder import LatentEncoder, LatentEncoderConfig
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
from faceedit.train.stylegan2 import mixed_ws
from faceedit.units import DECIBEL, SECONDS, with_units

IMAGE_DIR = "images"
ATTR_FILE = "list_attr_celeba.txt"
LABELS_META_FILE = "labels.json"  # with reconstruction labels: sources and on-rates
SPLIT_FILE = "list_eval_partition.txt"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Everything an encoder run depends on; saved beside every checkpoint."""

    generator: str
    data: str
    out: str
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    lambda_latent: float = 1.0
    perceptual: str | None = None
    lambda_perceptual: float = 1.0
    lambda_identity: float = 0.0
    style_mixing_prob: float = 0.9
    channel_base: int = 1024
    channel_max: int = 256
    head_channels: int = 64
    max_images: int | None = None
    max_val: int = 256
    eval_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "max_val"):
            if getattr(self, name) < 1:
                raise FaceeditError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise FaceeditError(f"lr must be positive, got {self.lr}")
        if not self.lambda_latent >= 0:
            raise FaceeditError(f"lambda_latent must be >= 0, got {self.lambda_latent}")
        if not self.lambda_perceptual >= 0:
            raise FaceeditError(f"lambda_perceptual must be >= 0, got {self.lambda_perceptual}")
        if not self.lambda_identity >= 0:
            raise FaceeditError(f"lambda_identity must be >= 0, got {self.lambda_identity}")
        if self.lambda_identity and self.perceptual is None:
            raise FaceeditError(
                "lambda_identity needs perceptual (the oracle whose reading it compares)"
            )
        if self.max_images is not None and self.max_images < 1:
            raise FaceeditError(f"max_images must be at least 1, got {self.max_images}")
        if self.threads is not None and self.threads < 1:
            raise FaceeditError(f"threads must be at least 1, got {self.threads}")


# --------------------------------------------------------------------------- data


@dataclass
class ImageSet:
    """Images of a dataset split: ``files [N]`` and ``images uint8 [N, 3, S, S]``."""

    files: list[str]
    images: torch.Tensor


def dataset_files(root: str | os.PathLike, split: str = "all") -> list[str]:
    """Image names of ``root`` in the order of its label file, restricted to ``split``.

    The order is that of ``list_attr_celeba.txt`` when there is one (so that codes line up
    with its rows), else the sorted names under ``images/``. ``split`` is ``"all"`` or a
    name of ``list_eval_partition.txt`` (``train``/``val``/``test``, values 0/1/2).

    Raises:
        DataError: missing directory or files, a malformed partition file, an empty split.
    """
    root = Path(root)
    if not (root / IMAGE_DIR).is_dir():
        raise DataError(
            f"{root}: no {IMAGE_DIR}/ directory (expected 'faceedit data avatars' output)"
        )
    if split not in ("all", *SPLITS):
        raise DataError(f"split {split!r}: choose all, {', '.join(SPLITS)}")
    if (root / ATTR_FILE).is_file():
        from faceedit.data.celeba import read_attr_file

        files = read_attr_file(root / ATTR_FILE).files
    else:
        from faceedit.data.images import IMAGE_SUFFIXES

        files = sorted(
            p.name for p in (root / IMAGE_DIR).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
    if split != "all":
        path = root / SPLIT_FILE
        if not path.is_file():
            raise DataError(f"{path}: no such file (needed for split {split!r})")
        wanted = str(SPLITS.index(split))
        chosen = set()
        for lineno, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{path}:{lineno}: expected 'file 0|1|2'")
            if parts[1] == wanted:
                chosen.add(parts[0])
        files = [f for f in files if f in chosen]
    if not files:
        raise DataError(f"{root}: no images" + ("" if split == "all" else f" in split {split!r}"))
    return files


def load_images(
    root: str | os.PathLike,
    files: list[str],
    resolution: int,
    progress: bool = False,
    desc: str = "reading images",
) -> ImageSet:
    """Read ``root/images/<file>`` for every file, resized to ``resolution`` if needed.

    Raises:
        DataError / ImageError: a missing or unreadable image, naming it.
    """
    from PIL import Image
    from tqdm import tqdm

    from faceedit.data.images import read_image

    root = Path(root)
    out = np.empty((len(files), resolution, resolution, 3), dtype=np.uint8)
    for i, name in enumerate(tqdm(files, desc=desc, unit="img", disable=not progress)):
        path = root / IMAGE_DIR / name
        if not path.is_file():
            raise DataError(f"{path}: listed in the dataset but missing")
        rgb = read_image(path)
        if rgb.shape[:2] != (resolution, resolution):
            rgb = np.asarray(
                Image.fromarray(rgb).resize((resolution, resolution), Image.Resampling.LANCZOS)
            )
        out[i] = rgb
    return ImageSet(files, torch.from_numpy(out).permute(0, 3, 1, 2).contiguous())


def to_model_range(batch_uint8: torch.Tensor) -> torch.Tensor:
    """``uint8 [N, 3, S, S]`` -> ``float32`` in [-1, 1]."""
    return batch_uint8.float() / 127.5 - 1.0


# --------------------------------------------------------------------------- losses


def image_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """MSE + L1 at full and half resolution (``[N, 3, S, S]`` each)."""
    loss = F.mse_loss(fake, real) + F.l1_loss(fake, real)
    if fake.shape[-1] >= 8:
        f2, r2 = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        loss = loss + F.mse_loss(f2, r2) + F.l1_loss(f2, r2)
    return loss


def psnr(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak 2): ``[N]``."""
    mse = (fake.clamp(-1, 1) - real).square().flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)


@torch.no_grad()
def reconstruct(
    E: LatentEncoder, G: torch.nn.Module, images: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """``G.synthesis(E(x))`` for ``uint8 [N, 3, S, S]`` images -> float ``[N, 3, R, R]``."""
    device = E.w_avg.device
    out = []
    for i in range(0, len(images), batch_size):
        x = to_model_range(images[i : i + batch_size]).to(device)
        out.append(G.synthesis(E(x), noise_mode="const").cpu())
    return torch.cat(out)


@torch.no_grad()
def evaluate(E: LatentEncoder, G: torch.nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Reconstruction PSNR (mean, dB) and MSE of ``images uint8 [N, 3, S, S]``."""
    was = E.training
    E.eval()
    fake = reconstruct(E, G, images)
    real = to_model_range(images)
    if fake.shape[-1] != real.shape[-1]:
        real = F.interpolate(real, size=fake.shape[-2:], mode="bilinear", antialias=True)
    E.train(was)
    return {
        "psnr": float(psnr(fake, real).mean()),
        "mse": float((fake.clamp(-1, 1) - real).square().mean()),
        "n": len(images),
    }


@torch.no_grad()
def evaluate_generated(
    E: LatentEncoder, G: torch.nn.Module, n: int = 64, seed: int = 123
) -> dict[str, float]:
    """Inversion of the generator's own samples (``n`` fixed z, no style mixing).

    A perfect inverse exists for these, so this separates the encoder's error from what
    the generator cannot draw. Returns ``psnr_generated`` (dB) and ``latent_mse``
    (``MSE(E(G(w)), w)`` over the W+ rows).
    """
    was = E.training
    E.eval()
    device = E.w_avg.device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    ws = G.mapping(z)
    x = G.synthesis(ws, noise_mode="const")
    pred = E(x)
    recon = G.synthesis(pred, noise_mode="const")
    E.train(was)
    return {
        "psnr_generated": float(psnr(recon, x.clamp(-1, 1)).mean()),
        "latent_mse": float(F.mse_loss(pred, ws)),
    }


def reconstruction_grid(
    E: LatentEncoder, G: torch.nn.Module, images: torch.Tensor, title: str = ""
) -> np.ndarray:
    """A labelled grid: one row per image, ``input | reconstruction``: ``uint8 [H, W, 3]``."""
    from faceedit.data.images import tensor_to_uint8
    from faceedit.viz import image_grid

    was = E.training
    E.eval()
    fake = tensor_to_uint8(reconstruct(E, G, images))
    E.train(was)
    real = images.permute(0, 2, 3, 1).numpy()
    # two input|reconstruction pairs per row keep the grid compact
    rows = []
    for i in range(0, len(real), 2):
        row = [real[i], fake[i]]
        if i + 1 < len(real):
            row += [real[i + 1], fake[i + 1]]
        rows.append(row)
    return image_grid(
        rows, col_labels=["input", "reconstruction", "input", "reconstruction"], title=title
    )


# --------------------------------------------------------------------------- the loop


@dataclass
class EncoderTrainResult:
    """What :func:`train_encoder` produced."""

    encoder_dir: Path
    metrics: dict[str, Any]
    seconds_per_step: float


def load_generator(path: str | os.PathLike, device: torch.device) -> torch.nn.Module:
    """The frozen StyleGAN2 generator to invert (any path or name
    :func:`faceedit.checkpoints.load_generator` takes)."""
    from faceedit.checkpoints import load_generator as load_any_generator

    return load_any_generator(path).to(device).eval().requires_grad_(False)


def _load_oracle_losses(config: EncoderTrainConfig, device: torch.device):
    """``(feature distance, reading agreement)`` through ``config.perceptual``'s oracle;
    each is ``None`` when its weight is 0 (both without an oracle)."""
    if config.perceptual is None:
        return None, None
    from faceedit.checkpoints.oracle import load_avatar_oracle
    from faceedit.errors import CheckpointError
    from faceedit.losses import OracleAgreement, OracleFeatures, PerceptualDistance

    try:
        oracle = load_avatar_oracle(config.perceptual).to(device)
    except CheckpointError as e:
        raise FaceeditError(f"perceptual network: {e}") from None
    distance = agreement = None
    if config.lambda_perceptual:
        distance = PerceptualDistance(OracleFeatures(oracle), size=None).eval()
    if config.lambda_identity:
        agreement = OracleAgreement(oracle)
    return distance, agreement


def encoder_step(
    E: LatentEncoder,
    G: torch.nn.Module,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    batch_size: int,
    config: EncoderTrainConfig,
    gen: torch.Generator,
    perceptual: torch.nn.Module | None = None,
    identity: torch.nn.Module | None = None,
) -> dict[str, float]:
    """One optimisation step: ``batch_size`` generated and ``batch_size`` real images.

    ``images``: the real training set, ``uint8 [N, 3, R, R]``. ``perceptual``: a frozen
    :class:`~faceedit.losses.PerceptualDistance` or ``None``; ``identity``: a
    frozen :class:`~faceedit.losses.OracleAgreement` or ``None``. Returns the
    losses.
    """
    device = E.w_avg.device
    B = batch_size
    # synthetic half: the true code is known
    with torch.no_grad():
        z = torch.randn(B, G.z_dim, generator=gen).to(device)
        ws = mixed_ws(G, z, config.style_mixing_prob, gen)
        x_syn = G.synthesis(ws, noise_mode="const")
    # real half: a random batch of dataset images
    idx = torch.randint(0, len(images), (B,), generator=gen)
    x_real = to_model_range(images[idx]).to(device)
    # one pass through E and G for both halves: fewer, larger ops are faster on a CPU
    pred = E(torch.cat([x_syn, x_real]))
    recon = G.synthesis(pred, noise_mode="const")
    loss_latent = F.mse_loss(pred[:B], ws)
    loss_syn = image_loss(recon[:B], x_syn)
    loss_real = image_loss(recon[B:], x_real)
    loss = config.lambda_latent * loss_latent + loss_syn + loss_real
    logs = {}
    if perceptual is not None:
        loss_perceptual = perceptual(recon, torch.cat([x_syn, x_real])).mean()
        loss = loss + config.lambda_perceptual * loss_perceptual
        logs["loss/perceptual"] = float(loss_perceptual.detach())
    if identity is not None:
        loss_identity = identity(recon, torch.cat([x_syn, x_real])).mean()
        loss = loss + config.lambda_identity * loss_identity
        logs["loss/identity"] = float(loss_identity.detach())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {
        "loss/total": float(loss.detach()),
        "loss/latent": float(loss_latent.detach()),
        "loss/image_synthetic": float(loss_syn.detach()),
        "loss/image_real": float(loss_real.detach()),
        **logs,
    }


def _cosine_lr(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to ``base / 10``."""
    t = min(step / max(total, 1), 1.0)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


# settings a resumed run may change: its budget and bookkeeping (checkpointing.plan_run)
MAY_CHANGE = frozenset(
    {"out", "steps", "max_val", "eval_every", "checkpoint_every", "threads", "device"}
)
# what an encoder run writes into its directory (--restart deletes these)
OUTPUTS = (
    "config.json",
    "samples",
    "losses.jsonl",
    "losses.png",
    "tensorboard",
    "reconstructions.png",
    "encoder",
)


def run_spec(config: EncoderTrainConfig) -> RunSpec:
    """How :func:`~faceedit.train.checkpointing.plan_run` tells this run from another."""
    return RunSpec("encoder", config, MAY_CHANGE, OUTPUTS)


def encoder_lineage(config: EncoderTrainConfig) -> list[dict]:
    """What an encoder run records (:mod:`faceedit.lineage`): the generator it inverts and
    the oracle its perceptual and identity losses read."""
    from faceedit.lineage import record

    losses = [
        name
        for name, weight in (
            ("perceptual", config.lambda_perceptual),
            ("identity", config.lambda_identity),
        )
        if weight
    ]
    return [
        *record("generator", config.generator, part="generator"),
        *record(
            "loss network",
            config.perceptual,
            note=f"the {' and '.join(losses) or 'perceptual'} loss reads it",
        ),
    ]


def train_encoder(
    config: EncoderTrainConfig, progress: bool = True, restart: bool = False
) -> EncoderTrainResult:
    """Train an encoder run in ``config.out``, resuming the run found there; see the
    module docstring. A larger ``steps`` extends a run; other settings in a directory
    that holds a run are refused unless ``restart`` (deletes that run, starts over).

    Raises:
        FaceeditError: bad generator, dataset, output directory or checkpoint.
    """
    from tqdm import tqdm

    from faceedit.train.common import RunLogger, resolve_device, write_loss_plot
    from faceedit.viz import save_grid

    out = Path(config.out)
    plan = plan_run(out, run_spec(config), restart=restart)
    ckpt_path = plan.checkpoint_path
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    G = load_generator(config.generator, device)
    res = int(G.img_resolution)
    perceptual, identity = _load_oracle_losses(config, device)
    lineage = encoder_lineage(config)

    has_split = (Path(config.data) / SPLIT_FILE).is_file()
    train_files = dataset_files(config.data, "train" if has_split else "all")
    val_files = dataset_files(config.data, "val") if has_split else train_files[-config.max_val :]
    if config.max_images:
        train_files = train_files[: config.max_images]
    val_files = val_files[: config.max_val]
    train = load_images(config.data, train_files, res, progress, "reading train images")
    val = load_images(config.data, val_files, res, False)

    model_config = LatentEncoderConfig(
        img_resolution=res,
        num_ws=int(G.num_ws),
        w_dim=int(G.w_dim),
        channel_base=config.channel_base,
        channel_max=config.channel_max,
        head_channels=config.head_channels,
    )
    torch.manual_seed(config.seed)
    E = LatentEncoder(model_config)
    E.set_w_avg(G.w_avg.detach().cpu())
    E = E.to(device).train()
    opt = torch.optim.Adam(E.parameters(), lr=config.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(config.seed)
    step = 0
    if plan.checkpoint is not None:
        ckpt = plan.checkpoint
        if ckpt.model_config is not None and ckpt.model_config != dataclasses.asdict(model_config):
            raise FaceeditError(
                f"{ckpt_path}: was written for an encoder of another generator; re-run with "
                "its settings to resume it, or pass --restart to delete it and start over"
            )
        load_states(ckpt, ckpt_path, models={"E": E}, optimizers={"E": opt})
        restore_rng(ckpt.rng, {"sampler": gen})
        step = int(ckpt.step)
        print(f"resumed {ckpt_path} at step {step}")
    plan.begin()
    (out / "samples").mkdir(exist_ok=True)
    from faceedit.fileio import atomic_write_text

    atomic_write_text(out / "config.json", json.dumps(config_dict(config), indent=2) + "\n")
    logger = RunLogger(out, resume_step=step)
    grid_images = val.images[:8]

    def checkpoint() -> None:
        save_training_checkpoint(
            ckpt_path,
            TrainingCheckpoint(
                kind="encoder",
                step=step,
                config=config_dict(config),
                models={"E": E.state_dict()},
                optimizers={"E": opt.state_dict()},
                rng=capture_rng({"sampler": [gen.get_state()]}),
                model_config=dataclasses.asdict(model_config),
            ),
        )

    bar = tqdm(total=config.steps, initial=step, desc="encoder", unit="step", disable=not progress)
    t_start = time.perf_counter()
    start_step = step
    B = config.batch_size
    while step < config.steps:
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(config.lr, step, config.steps)
        logs = encoder_step(E, G, opt, train.images, B, config, gen, perceptual, identity)
        step += 1
        logger.scalars(step, logs)
        bar.update(1)
        bar.set_postfix(real=f"{logs['loss/image_real']:.3f}", w=f"{logs['loss/latent']:.3f}")
        if step % config.eval_every == 0 or step == config.steps:
            m = evaluate(E, G, val.images)
            m_gen = evaluate_generated(E, G)
            logger.scalars(
                step,
                {
                    "val/psnr": m["psnr"],
                    "val/psnr_generated": m_gen["psnr_generated"],
                    "val/latent_mse": m_gen["latent_mse"],
                },
            )
            grid = reconstruction_grid(E, G, grid_images, f"step {step}: {m['psnr']:.2f} dB")
            save_grid(out / "samples" / f"step_{step:06d}.png", grid)
            logger.image(step, "reconstructions", grid)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
    bar.close()
    seconds = time.perf_counter() - t_start
    per_step = seconds / max(step - start_step, 1)

    metrics = evaluate(E, G, val.images)
    metrics.update(evaluate_generated(E, G))
    metrics.update(
        {
            "steps": step,
            "seconds": round(seconds, 1),
            "seconds_per_step": round(per_step, 4),
            "split": "val" if has_split else "last train images",
            "train_images": len(train.images),
            "generator": str(config.generator),
            "data": str(config.data),
        }
    )
    export = out / "encoder"
    E.cpu().eval().save_pretrained(
        export,
        metadata={
            "steps": step,
            "seconds": metrics["seconds"],
            "psnr": metrics["psnr"],
            "psnr_generated": metrics["psnr_generated"],
            "train_config": dataclasses.asdict(config),
            "lineage": lineage,
        },
    )
    from faceedit.fileio import atomic_write_text

    on_disk = with_units(
        metrics,
        psnr=DECIBEL,
        psnr_generated=DECIBEL,
        seconds=SECONDS,
        seconds_per_step=SECONDS,
    )
    atomic_write_text(export / "metrics.json", json.dumps(on_disk, indent=2) + "\n")
    E.to(device)
    grid = reconstruction_grid(E, G, grid_images, f"{metrics['psnr']:.2f} dB on held-out images")
    save_grid(out / "reconstructions.png", grid)
    logger.close()
    if logger.history:
        series = {k: v for k, v in logger.history.items() if k.startswith("loss/")}
        write_loss_plot(out / "losses.png", series, title="encoder losses", log_y=True)
    return EncoderTrainResult(export, metrics, per_step)
