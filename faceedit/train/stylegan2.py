"""StyleGAN2 training: non-saturating logistic loss, lazy R1, optional path-length
regularisation, EMA generator, style mixing (Karras et al., CVPR 2020, and the schedule
of its official PyTorch port).

One explicit loop over small helpers. Settings that suit CPUs: small channel tables, an
in-memory dataset, optional bfloat16 autocast. Under ``torchrun`` every process trains on
its own shard of the data and gradients are averaged across processes after each
backward pass (what DistributedDataParallel does, done by hand because each step runs
several differently-shaped passes through G and D).

Continuing a trained generator (not in the official code): ``init_from`` starts G and
G_ema from a generator in faceedit's format (a generator directory, a run directory or a
shipped latent bundle) with a fresh discriminator; for the first ``d_warmup_steps`` steps
only D learns, so that G is not pushed around by a discriminator that still judges at
random.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from faceedit.data.images import IMAGE_SUFFIXES, read_image, tensor_to_uint8
from faceedit.errors import DataError, FaceeditError
from faceedit.nets.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
)
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
from faceedit.train.common import RunLogger, init_lineage, resolve_device, write_loss_plot
from faceedit.train.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    distributed,
    gather_generator_states,
)

# settings a resumed run may change: its budget and bookkeeping (checkpointing.plan_run)
MAY_CHANGE = frozenset({"out", "steps", "sample_every", "checkpoint_every", "device"})
# what a StyleGAN2 run writes into its directory (--restart deletes these)
OUTPUTS = (
    "config.json",
    "samples",
    "losses.jsonl",
    "losses.png",
    "tensorboard",
    "generator",
)


@dataclass(frozen=True)
class StyleGAN2TrainConfig:
    """Everything a StyleGAN2 run depends on; saved beside every checkpoint."""

    data: str
    out: str
    resolution: int = 64
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    channel_base: int = 4096
    channel_max: int = 128
    batch_size: int = 16
    steps: int = 10_000
    lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.5
    r1_interval: int = 16
    pl_weight: float = 0.0
    pl_interval: int = 4
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    mirror: bool = True
    amp: str = "none"  # "none" | "bf16"
    sample_every: int = 500
    checkpoint_every: int = 500
    max_images: int | None = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    init_from: str = ""  # start G from this generator (dir, run dir, shipped bundle name)
    d_warmup_steps: int = 0  # the first steps train D only (for a fresh D beside a trained G)

    def __post_init__(self) -> None:
        if self.amp not in ("none", "bf16"):
            raise FaceeditError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        if self.batch_size < 2:
            raise FaceeditError("batch_size must be at least 2 (minibatch std needs pairs)")
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise FaceeditError(f"resolution must be a power of two >= 8, got {self.resolution}")
        if self.d_warmup_steps < 0:
            raise FaceeditError(f"d_warmup_steps must be >= 0, got {self.d_warmup_steps}")

    def generator_config(self) -> StyleGAN2Config:
        return StyleGAN2Config(
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            img_resolution=self.resolution,
            mapping_layers=self.mapping_layers,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
        )

    def discriminator_config(self) -> StyleGAN2DiscriminatorConfig:
        return StyleGAN2DiscriminatorConfig(
            img_resolution=self.resolution,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
        )


# --------------------------------------------------------------------------- data


def find_images(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursively), sorted for determinism."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def load_image_tensor(files: list[Path], resolution: int, progress: bool = True) -> torch.Tensor:
    """Read, square-crop and resize every image: ``uint8 [N, 3, res, res]``.

    Unreadable files are skipped and listed once, by name, instead of failing mid-run.
    """
    from PIL import Image

    from faceedit.errors import ImageError

    out = np.empty((len(files), resolution, resolution, 3), dtype=np.uint8)
    bad: list[str] = []
    kept = 0
    for path in tqdm(files, desc="loading images", unit="img", disable=not progress):
        try:
            rgb = read_image(path)
        except ImageError as e:
            bad.append(str(e))
            continue
        h, w = rgb.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        img = Image.fromarray(rgb[top : top + s, left : left + s])
        if s != resolution:
            img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
        out[kept] = np.asarray(img)
        kept += 1
    if bad:
        shown = "; ".join(bad[:5]) + (f"; ... ({len(bad)} in all)" if len(bad) > 5 else "")
        print(f"faceedit: skipped {len(bad)} unreadable image(s): {shown}")
    if kept < 2:
        raise DataError(f"only {kept} readable image(s); training needs at least 2")
    return torch.from_numpy(out[:kept]).permute(0, 3, 1, 2).contiguous()


def to_model_range(batch_uint8: torch.Tensor) -> torch.Tensor:
    return batch_uint8.float() / 127.5 - 1.0


# --------------------------------------------------------------------------- losses


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss: ``softplus(-D(G(z)))``."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic loss: ``softplus(D(fake)) + softplus(-D(real))``."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(D: StyleGAN2Discriminator, real: torch.Tensor) -> torch.Tensor:
    """``||grad_x D(x)||^2`` on real images, averaged over the batch."""
    real = real.detach().requires_grad_(True)
    logits = D(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3]).mean()


def path_length_penalty(
    G: StyleGAN2Generator, z: torch.Tensor, pl_mean: torch.Tensor, decay: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Path-length regulariser: deviation of ``|J^T y|`` from its running mean."""
    ws = G.mapping(z)
    img = G.synthesis(ws, noise_mode="random")
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean().detach(), decay)
    return (lengths - new_mean).square().mean(), new_mean


# --------------------------------------------------------------------------- helpers


def mixed_ws(
    G: StyleGAN2Generator, z: torch.Tensor, prob: float, gen: torch.Generator
) -> torch.Tensor:
    """``ws`` with style mixing: with probability ``prob`` rows from a second z after a cutoff."""
    ws = G.mapping(z)
    if prob > 0 and torch.rand((), generator=gen).item() < prob:
        cutoff = int(torch.randint(1, ws.shape[1], (), generator=gen))
        z2 = torch.randn(z.shape, generator=gen).to(z.device)
        ws = G.mix(ws, G.mapping(z2), cutoff)
    return ws


@torch.no_grad()
def update_ema(G_ema: StyleGAN2Generator, G: StyleGAN2Generator, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
        b_ema.copy_(b)


def track_w_avg(G: StyleGAN2Generator, z: torch.Tensor, beta: float = 0.995) -> None:
    with torch.no_grad():
        w = G.mapping(z)[:, 0].mean(dim=0)
        G.mapping.w_avg.lerp_(w, 1.0 - beta)


@torch.no_grad()
def sample_grid(G: StyleGAN2Generator, z: torch.Tensor) -> np.ndarray:
    """A square-ish grid of ``G(z)`` as ``uint8 [H, W, 3]`` (for logs and PNGs)."""
    from faceedit.viz import image_grid

    imgs = tensor_to_uint8(G(z, noise_mode="const"))
    cols = int(math.ceil(math.sqrt(len(imgs))))
    rows = [list(imgs[i : i + cols]) for i in range(0, len(imgs), cols)]
    return image_grid(rows)


# --------------------------------------------------------------------------- the loop


def run_spec(config: StyleGAN2TrainConfig) -> RunSpec:
    """How :func:`~faceedit.train.checkpointing.plan_run` tells this run from another."""
    return RunSpec("stylegan2", config, MAY_CHANGE, OUTPUTS)


def train_stylegan2(
    config: StyleGAN2TrainConfig, restart: bool = False, progress: bool = True
) -> Path:
    """Train a StyleGAN2 run in ``config.out``, resuming the run found there; returns the
    exported G_ema dir.

    Re-running with the same settings resumes from ``checkpoint.pt`` (a larger
    ``steps`` extends a run); other settings in a directory that holds a run are refused
    unless ``restart``, which deletes that run's files and starts over.

    Files in ``config.out``: ``run.json``, ``config.json``, ``checkpoint.pt`` (G, D,
    G_ema, optimisers, step, RNG states, config), ``samples/step_XXXXXX.png``,
    ``losses.jsonl``, ``losses.png``, ``tensorboard/`` (when installed) and
    ``generator/`` (G_ema in faceedit's format) at the end.
    """
    with distributed() as dist_info:
        return _train(config, restart, progress, dist_info)


def _train(
    config: StyleGAN2TrainConfig, restart: bool, progress: bool, dist_info: DistInfo
) -> Path:
    out = Path(config.out)
    main = dist_info.is_main
    device = resolve_device(config.device, dist_info)
    plan = plan_run(out, run_spec(config), restart=restart)
    ckpt_path = plan.checkpoint_path
    # bad inputs fail here, before the images are loaded and anything is written;
    # a resumed run's G comes from its checkpoint, not from init_from
    start = None
    if config.init_from and plan.checkpoint is None:
        start = load_generator_to_continue(config.init_from, config.generator_config())
    lineage = init_lineage(config.init_from, part="generator")
    files = find_images(config.data)
    if config.max_images:
        files = files[: config.max_images]
    data = load_image_tensor(files, config.resolution, progress=progress and main)
    data = data[dist_info.rank :: dist_info.world_size]  # this process's shard
    plan.begin(dist_info)
    if main:
        (out / "samples").mkdir(exist_ok=True)

    torch.manual_seed(config.seed)
    G = StyleGAN2Generator(config.generator_config()).to(device).train()
    D = StyleGAN2Discriminator(config.discriminator_config()).to(device).train()
    if start is not None:
        G.load_state_dict(start.state_dict())
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    c_g = config.pl_interval / (config.pl_interval + 1) if config.pl_weight > 0 else 1.0
    c_d = config.r1_interval / (config.r1_interval + 1)
    opt_g = torch.optim.Adam(
        G.parameters(), lr=config.lr * c_g, betas=tuple(b**c_g for b in config.betas), eps=1e-8
    )
    opt_d = torch.optim.Adam(
        D.parameters(), lr=config.lr * c_d, betas=tuple(b**c_d for b in config.betas), eps=1e-8
    )
    gen = torch.Generator().manual_seed(config.seed * 1000 + dist_info.rank)
    pl_mean = torch.zeros((), device=device)
    step = 0
    if plan.checkpoint is not None:
        ckpt = plan.checkpoint
        load_states(
            ckpt,
            ckpt_path,
            models={"G": G, "D": D},
            ema={"G": G_ema},
            optimizers={"G": opt_g, "D": opt_d},
        )
        pl_mean = ckpt.extra["pl_mean"].to(device)
        step = int(ckpt.step)
        restore_rng(ckpt.rng, {"sampler": gen}, dist_info.rank)
        if main:
            print(f"resumed {ckpt_path} at step {step}")
    if main:
        from faceedit.fileio import atomic_write_text

        atomic_write_text(out / "config.json", json.dumps(config_dict(config), indent=2) + "\n")

    logger = RunLogger(out, resume_step=step) if main else None
    fixed_z = torch.randn(16, config.z_dim, generator=torch.Generator().manual_seed(123)).to(device)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.amp == "bf16"
        else torch.autocast(device_type=device.type, enabled=False)
    )
    batch = config.batch_size // dist_info.world_size
    ema_nimg = config.ema_kimg * 1000
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc="stylegan2",
        unit="step",
        disable=not (progress and main),
    )
    t_start = time.time()
    while step < config.steps:
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        real = to_model_range(data[idx]).to(device)
        if config.mirror:
            flip = torch.rand(batch, generator=gen) < 0.5
            real[flip] = real[flip].flip(3)
        z = torch.randn(batch, config.z_dim, generator=gen).to(device)

        # discriminator: logistic loss, plus lazy R1 every r1_interval steps
        D.requires_grad_(True)
        G.requires_grad_(False)
        with autocast:
            fake = G.synthesis(mixed_ws(G, z, config.style_mixing_prob, gen), noise_mode="random")
            loss_d = discriminator_loss(D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        logs = {"loss/D": loss_d.item()}
        if config.r1_gamma > 0 and step % config.r1_interval == 0:
            r1 = r1_penalty(D, real)
            (r1 * (config.r1_gamma / 2) * config.r1_interval).backward()
            logs["loss/R1"] = r1.item()
        average_gradients(D, dist_info)
        opt_d.step()

        if step < config.d_warmup_steps:
            _finish_step(step, logs, logger, bar)
            step += 1
            if step % config.checkpoint_every == 0 or step == config.steps:
                _save(ckpt_path, config, G, D, G_ema, opt_g, opt_d, pl_mean, step, gen, dist_info)
            continue

        # generator: non-saturating loss, plus lazy path-length regularisation
        D.requires_grad_(False)
        G.requires_grad_(True)
        z = torch.randn(batch, config.z_dim, generator=gen).to(device)
        with autocast:
            fake = G.synthesis(mixed_ws(G, z, config.style_mixing_prob, gen), noise_mode="random")
            loss_g = generator_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        logs["loss/G"] = loss_g.item()
        if config.pl_weight > 0 and step % config.pl_interval == 0:
            pl_batch = max(1, batch // 2)
            z_pl = torch.randn(pl_batch, config.z_dim, generator=gen).to(device)
            pl, pl_mean = path_length_penalty(G, z_pl, pl_mean, config.pl_decay)
            (pl * config.pl_weight * config.pl_interval).backward()
            logs["loss/PL"] = pl.item()
        average_gradients(G, dist_info)
        opt_g.step()
        track_w_avg(G, z)

        # EMA of the generator weights, with the official ramp-up
        nimg = (step + 1) * config.batch_size
        half_life = (
            ema_nimg if config.ema_rampup is None else min(ema_nimg, nimg * config.ema_rampup)
        )
        update_ema(G_ema, G, 0.5 ** (config.batch_size / max(half_life, 1e-8)))

        _finish_step(step, logs, logger, bar)
        step += 1
        if main and (step % config.sample_every == 0 or step == config.steps):
            grid = sample_grid(G_ema, fixed_z)
            from faceedit.viz import save_grid

            save_grid(out / "samples" / f"step_{step:06d}.png", grid)
            logger.image(step, "samples", grid)
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save(ckpt_path, config, G, D, G_ema, opt_g, opt_d, pl_mean, step, gen, dist_info)
    bar.close()
    export = out / "generator"
    if main:
        logger.close()
        G_ema.save_pretrained(
            export,
            metadata={
                "trained_steps": step,
                "seconds": round(time.time() - t_start, 1),
                "lineage": lineage,
            },
        )
        if logger.history:
            write_loss_plot(out / "losses.png", logger.history, title="StyleGAN2 losses")
    barrier(dist_info)  # no process tears the group down while another still works
    return export


def _finish_step(step: int, logs: dict[str, float], logger, bar) -> None:
    if logger is not None:
        logger.scalars(step + 1, logs)
    bar.update(1)
    bar.set_postfix({k.split("/")[1]: f"{v:.3f}" for k, v in logs.items() if k != "loss/R1"})


def load_found_generator(source: str | os.PathLike, what: str = "generator") -> StyleGAN2Generator:
    """The generator that ``source`` names (:func:`faceedit.checkpoints.load_generator`:
    a generator, a run directory, a latent bundle, by path or name).

    Raises:
        FaceeditError: not found or unreadable (the message starts with ``what``).
    """
    from faceedit.checkpoints import load_generator

    return load_generator(source, what)


def load_generator_to_continue(source: str, wanted: StyleGAN2Config) -> StyleGAN2Generator:
    """The generator a run continues (``source`` as for :func:`find_generator`). Its
    settings must equal the run's (``wanted``)."""
    trained = load_found_generator(source, "init_from")
    if trained.config != wanted:
        diff = [
            f"{f.name} {getattr(trained.config, f.name)} != {getattr(wanted, f.name)}"
            for f in dataclasses.fields(wanted)
            if getattr(trained.config, f.name) != getattr(wanted, f.name)
        ]
        raise FaceeditError(
            f"init_from {source}: its generator differs from this config ({', '.join(diff)})"
        )
    return trained


def _save(path, config, G, D, G_ema, opt_g, opt_d, pl_mean, step, gen, dist_info) -> None:
    states = gather_generator_states(gen, dist_info)  # every rank takes part
    if not dist_info.is_main:
        return
    save_training_checkpoint(
        path,
        TrainingCheckpoint(
            kind="stylegan2",
            step=step,
            config=config_dict(config),
            models={"G": G.state_dict(), "D": D.state_dict()},
            ema={"G": G_ema.state_dict()},
            optimizers={"G": opt_g.state_dict(), "D": opt_d.state_dict()},
            rng=capture_rng({"sampler": states}),
            model_config={
                "G": dataclasses.asdict(config.generator_config()),
                "D": dataclasses.asdict(config.discriminator_config()),
            },
            world_size=dist_info.world_size,
            extra={"pl_mean": pl_mean.detach().cpu()},
        ),
    )
