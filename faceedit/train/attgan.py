"""AttGAN training (He et al., IEEE TIP 2019), following the PyTorch release's
``train.py`` (elvisyjlin/AttGAN-PyTorch) with its defaults:

- every iteration is either a critic step or, every ``n_d + 1``-th, a generator step;
- critic: adversarial loss (WGAN with gradient penalty, or the release's LSGAN / DCGAN
  modes with a DRAGAN-style penalty) ``+ lambda_gp * gp + lambda_3 * BCE(cls(real), a)``;
- generator: adversarial loss ``+ lambda_2 * BCE(cls(G(x, b)), b) + lambda_1 *
  L1(G(x, a), x)``; target attributes ``b`` are the batch's labels shuffled;
- ``thres_int`` scales the {0, 1} labels to ``+-thres_int`` at the generator input
  (``b_distribution`` none / uniform / truncated_normal as in the release);
- Adam(lr 2e-4, betas (0.5, 0.999)), ``lr = lr_base / 10 ** (epoch // lr_decay_epochs)``.

Optional attribute style (paper Sec. III-D): with ``style_dim > 0`` per-attribute style
controllers ``theta ~ U(-1, 1)`` go into the generator and the discriminator's style
head recovers them; ``lambda_style * ||Q(G(x, b, theta)) - theta||^2`` over the
attributes that are on (a Gaussian lower bound on their mutual information) is
minimised by both networks.

Three additions for fine-tuning (none is in the release):

- ``init_from`` starts a run from the generator and discriminator of a trained model of
  the same architecture (fresh optimisers, step 0), e.g. a model that faceedit ships, or
  of one whose decoder reads fewer inputs (``shortcut_layers``, ``inject_layers``, style
  controllers added with ``style_dim``): the new inputs start with zero weights, so the
  run starts from the trained function;
- ``cls_blur > 0`` makes the classifier loss robust to pixel noise. A generator can meet
  ``BCE(cls(G(x, b)), b)`` by painting high-frequency patterns that fool the classifier
  head instead of drawing the attribute (a bald head, new hair). With ``cls_blur`` the
  generator's classification loss reads a Gaussian-blurred copy of its edits (sigma drawn
  per step in ``[cls_blur / 2, cls_blur]`` pixels), and the head learns the real images
  both sharp (it reads the current attributes of sharp photos at edit time) and blurred.
- ``cls_fake > 0`` goes further: the critic step also trains the head to read the
  generator's edits (in the view its classification loss sees) as the attributes of the
  images they were made from, weighted by ``cls_fake``. The head, trained on real images
  only, reads any out-of-domain pattern where hair should vanish as "bald"; taught that
  such edits still show the source, it keeps asking the generator for a real change.

A learned edit mask (``edit_mask: true``, :mod:`faceedit.nets.attgan`): the generator's
output is ``m * generated + (1 - m) * input``, and ``lambda_mask * mean(m) +
lambda_mask_tv * TV(m)`` over the edits' masks (``g/mask``, ``g/mask_tv``) keeps the mask
to the pixels an edit has to redraw, so the rest of the avatar comes back exactly.
``init_from`` an unmasked model adds the mask head with zero weights and the bias
``mask_init_logit`` (default 3: ``m = 0.95`` everywhere), so the run starts from the
trained model's edits and the regulariser and the reconstruction loss pull the mask in
where the input can be kept. (Starting low instead would start from the identity: the
edits would vanish and the classification loss would have to grow them back through a
nearly closed mask.) ``mask_lr_mult`` gives the mask head a learning rate of its own.

Checkpoints (:mod:`faceedit.train.checkpointing`: G, D, both optimisers, the step, both
configs and RNG states) are written atomically; re-running the same command resumes.
Randomness per step comes from a generator seeded by ``(seed, step, rank)``, so a
resumed run continues exactly like an uninterrupted one.
Runs in one process or under ``torchrun`` (DistributedDataParallel; gloo on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faceedit.errors import FaceeditError
from faceedit.train.checkpointing import (
    CHECKPOINT_NAME,  # noqa: F401  (where the run's checkpoint lives, for callers)
    RunSpec,
    TrainingCheckpoint,
    capture_rng,
    config_dict,
    load_states,
    plan_run,
    restore_rng,
    save_training_checkpoint,
)
from faceedit.train.common import RunLogger, init_lineage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttGANTrainConfig:
    """Everything a training run needs; field names follow the release's ``setting.txt``."""

    # data
    data: str = "custom"  # celeba | celeba-hq | custom
    data_path: str = "data/img_align_celeba"
    attr_path: str = "data/list_attr_celeba.txt"
    image_list_path: str = "data/image_list.txt"
    attrs: tuple[str, ...] = (
        "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows",
        "Eyeglasses", "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin",
        "Young",
    )  # fmt: skip
    img_size: int = 128
    num_workers: int = 0
    # architecture
    shortcut_layers: int = 1
    inject_layers: int = 0
    enc_dim: int = 64
    dec_dim: int = 64
    dis_dim: int = 64
    dis_fc_dim: int = 1024
    enc_layers: int = 5
    dec_layers: int = 5
    dis_layers: int = 5
    enc_norm: str = "batchnorm"
    dec_norm: str = "batchnorm"
    dis_norm: str = "instancenorm"
    dis_fc_norm: str = "none"
    enc_acti: str = "lrelu"
    dec_acti: str = "relu"
    dis_acti: str = "lrelu"
    dis_fc_acti: str = "relu"
    style_dim: int = 0  # > 0 turns on the attribute-style extension
    # losses
    lambda_1: float = 100.0
    lambda_2: float = 10.0
    lambda_3: float = 1.0
    lambda_gp: float = 10.0
    lambda_style: float = 1.0
    mode: str = "wgan"  # wgan | lsgan | dcgan
    # optimisation
    epochs: int = 200
    max_steps: int = 0  # 0: epochs decide
    batch_size: int = 32
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_epochs: int = 100
    n_d: int = 5
    b_distribution: str = "none"  # none | uniform | truncated_normal
    thres_int: float = 0.5
    test_int: float = 1.0
    conflict_rules: str = "release"  # "avatars" for `faceedit data avatars` datasets
    cls_blur: float = 0.0  # > 0: blur (sigma, px) under the generator's classification loss
    cls_fake: float = 0.0  # > 0: weight of the head's loss on edits, read as their source
    init_from: str = ""  # start from this model's G and D (model dir, shipped name, run dir)
    edit_mask: bool = False  # the generator also draws a mask; outside it the input is kept
    lambda_mask: float = 1.0  # weight of the edits' mean mask (edit_mask only)
    lambda_mask_tv: float = 0.0  # weight of the edits' mask total variation (edit_mask only)
    mask_init_logit: float = 3.0  # mask bias when init_from adds the mask to an unmasked model
    mask_lr_mult: float = 1.0  # the mask head's learning rate, in multiples of lr
    # when init_from adds style controllers: their input weights start random at this
    # multiple of the trained attribute rows' spread (0: at zero, the trained function)
    style_init_scale: float = 0.0
    style_lr_mult: float = 1.0  # the discriminator's style head's learning rate, x lr
    # bookkeeping
    n_samples: int = 16
    save_interval: int = 1000
    sample_interval: int = 1000
    log_interval: int = 10
    seed: int = 0
    out_dir: str = "runs/attgan"
    tensorboard: bool = True
    progress: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)

    def __post_init__(self) -> None:
        if self.mode not in ("wgan", "lsgan", "dcgan"):
            raise FaceeditError(f"mode {self.mode!r}: choose wgan, lsgan or dcgan")
        if self.b_distribution not in ("none", "uniform", "truncated_normal"):
            raise FaceeditError(
                f"b_distribution {self.b_distribution!r}: choose none, uniform, truncated_normal"
            )
        if self.batch_size < 2:
            raise FaceeditError("batch_size must be at least 2 (targets are shuffled labels)")
        if self.n_d < 0:
            raise FaceeditError("n_d must be >= 0")
        if not self.attrs:
            raise FaceeditError("attrs: choose at least one attribute")
        if not (0.0 <= self.cls_blur <= 8.0):
            raise FaceeditError(f"cls_blur {self.cls_blur}: a blur sigma from 0 to 8 pixels")
        if self.cls_fake < 0:
            raise FaceeditError(f"cls_fake {self.cls_fake}: a loss weight, 0 (off) or more")
        for name in ("lambda_mask", "lambda_mask_tv"):
            if getattr(self, name) < 0:
                raise FaceeditError(f"{name} {getattr(self, name)}: a loss weight, 0 or more")
        if not self.mask_lr_mult > 0:
            raise FaceeditError(f"mask_lr_mult {self.mask_lr_mult}: a positive multiple of lr")
        if not math.isfinite(self.mask_init_logit):
            raise FaceeditError(f"mask_init_logit {self.mask_init_logit}: a finite number")
        if not self.style_lr_mult > 0:
            raise FaceeditError(f"style_lr_mult {self.style_lr_mult}: a positive multiple of lr")
        if not (math.isfinite(self.style_init_scale) and self.style_init_scale >= 0):
            raise FaceeditError(f"style_init_scale {self.style_init_scale}: 0 or more")
        from faceedit.attributes import CONFLICT_RULES

        if self.conflict_rules not in CONFLICT_RULES:
            raise FaceeditError(
                f"conflict_rules {self.conflict_rules!r}: choose {' or '.join(CONFLICT_RULES)}"
            )

    def setting(self) -> dict[str, Any]:
        """The fields in the release's ``setting.txt`` layout (plus ``n_attrs``, ``betas``)."""
        out = dataclasses.asdict(self)
        out["attrs"] = list(self.attrs)
        out["n_attrs"] = len(self.attrs)
        out["lr_base"] = self.lr
        out["betas"] = [self.beta1, self.beta2]
        return out


def load_train_config(path: str | os.PathLike, **overrides: Any) -> AttGANTrainConfig:
    """Read a YAML (or JSON) file into :class:`AttGANTrainConfig`; unknown keys are errors."""
    from faceedit.train.common import load_yaml_config

    return load_yaml_config(path, AttGANTrainConfig, **overrides)


def build_model(cfg: AttGANTrainConfig):
    """A fresh :class:`~faceedit.nets.attgan.AttGAN` for ``cfg``."""
    from faceedit.checkpoints.attgan import configs_from_setting
    from faceedit.nets.attgan import AttGAN, AttGANConfig

    try:
        g, d = configs_from_setting(cfg.setting())
    except ValueError as e:
        raise FaceeditError(f"invalid AttGAN architecture: {e}") from None
    return AttGAN(AttGANConfig(G=g, D=d))


# ----------------------------------------------------------------------------- losses


def adversarial_g_loss(d_fake: torch.Tensor, mode: str) -> torch.Tensor:
    """Generator's adversarial loss on critic outputs ``[N, 1]`` of fakes."""
    if mode == "wgan":
        return -d_fake.mean()
    if mode == "lsgan":
        return F.mse_loss(d_fake, torch.ones_like(d_fake))
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def adversarial_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor, mode: str) -> torch.Tensor:
    """Critic's adversarial loss (negative Wasserstein estimate for ``wgan``)."""
    if mode == "wgan":
        return d_fake.mean() - d_real.mean()
    if mode == "lsgan":
        return F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(
            d_fake, torch.zeros_like(d_fake)
        )
    return F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def gradient_penalty(d_inter: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
    """``mean((||grad_x D(x)||_2 - 1)^2)`` at the interpolates ``inter [N, 3, H, W]``."""
    (grad,) = torch.autograd.grad(d_inter.sum(), inter, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def style_loss(pred: torch.Tensor, theta: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """Squared error of recovered style controllers on attributes that are on.

    ``pred, theta [N, n_attrs, style_dim]``, ``on {0,1} [N, n_attrs]``.
    """
    mask = on[:, :, None].expand_as(theta)
    return ((pred - theta) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """``img [N, C, H, W]`` blurred by a Gaussian of ``sigma`` pixels (reflected borders).

    Separable and differentiable: gradients through it are low-pass as well, which is
    what keeps the generator from meeting the classification loss with pixel noise.
    """
    radius = min(max(1, math.ceil(3 * sigma)), min(img.shape[-2:]) - 1)
    x = torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    out = F.pad(img, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def mask_tv(mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring mask pixels (``mask [N, 1, H, W]``), across
    and down: low for a few solid regions, high for speckle."""
    dh = (mask[:, :, 1:] - mask[:, :, :-1]).abs().mean()
    dw = (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().mean()
    return dh + dw


def draw_blur_sigma(cfg: AttGANTrainConfig, gen: torch.Generator) -> float:
    """This step's classifier blur: uniform in ``[cls_blur / 2, cls_blur]`` (0: off)."""
    if cfg.cls_blur <= 0:
        return 0.0
    return cfg.cls_blur * (0.5 + 0.5 * float(torch.rand((), generator=gen)))


def target_attrs(att_b: torch.Tensor, cfg: AttGANTrainConfig, gen: torch.Generator):
    """{0,1} targets -> generator input, per ``b_distribution`` (release semantics)."""
    sign = att_b * 2 - 1
    if cfg.b_distribution == "uniform":
        return sign * torch.rand(att_b.shape, generator=gen) * (2 * cfg.thres_int)
    if cfg.b_distribution == "truncated_normal":
        noise = torch.fmod(torch.randn(att_b.shape, generator=gen), 2) + 2
        return sign * noise / 4.0 * (2 * cfg.thres_int)
    return sign * cfg.thres_int


# ------------------------------------------------------------------------ step modules


class _GenStep(nn.Module):
    """One generator forward for both outputs (DDP wants a single forward per step)."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, img, att_b_, att_a_, style):
        """-> ``(fake, recon, mask of fake)``; the mask is None without ``edit_mask``."""
        from faceedit.nets.attgan import compose_edit

        feats = self.G.encode(img)
        gen_b, mask_b = self.G.decode_parts(feats, att_b_, style)
        gen_a, mask_a = self.G.decode_parts(
            feats, att_a_, None if style is None else torch.zeros_like(style)
        )
        if mask_b is None:
            return gen_b, gen_a, None
        return compose_edit(img, gen_b, mask_b), compose_edit(img, gen_a, mask_a), mask_b


class _DisStep(nn.Module):
    """Discriminator heads in one forward: ``(adv, cls, style or None)``."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D

    def forward(self, img):
        h = self.D.features(img)
        style = None
        if self.D.config.style_dim > 0:
            style = self.D.fc_style(h).reshape(-1, self.D.config.n_attrs, self.D.config.style_dim)
        return self.D.fc_adv(h), self.D.fc_cls(h), style


# ----------------------------------------------------------------------------- logging


def read_losses(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of ``losses.jsonl`` written during training."""
    path = Path(run_dir) / "losses.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------- train


def make_dataset(cfg: AttGANTrainConfig, mode: str = "train"):
    from faceedit.data.celeba import AttributeImages

    return AttributeImages(
        kind=cfg.data,
        data_path=cfg.data_path,
        attr_path=cfg.attr_path,
        attrs=cfg.attrs,
        img_size=cfg.img_size,
        mode=mode,
        image_list_path=cfg.image_list_path if cfg.data == "celeba-hq" else None,
    )


def _step_generator(cfg: AttGANTrainConfig, step: int, rank: int) -> torch.Generator:
    # stateless per step: a resumed run draws exactly what an uninterrupted one would
    return torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * 131 + rank)


def _epoch_batches(n: int, cfg: AttGANTrainConfig, epoch: int, rank: int, world: int):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
    mine = perm[rank::world].tolist()
    per = len(perm) // world
    mine = mine[:per]
    return [
        mine[i : i + cfg.batch_size] for i in range(0, per - cfg.batch_size + 1, cfg.batch_size)
    ]


# settings a resumed run may change: its budget and bookkeeping (checkpointing.plan_run)
MAY_CHANGE = frozenset(
    {
        "epochs",
        "max_steps",
        "num_workers",
        "n_samples",
        "save_interval",
        "sample_interval",
        "log_interval",
        "out_dir",
        "tensorboard",
        "progress",
        "device",
    }
)
# what an AttGAN run writes into its directory (--restart deletes these)
OUTPUTS = ("config.yaml", "setting.txt", "losses.jsonl", "tb", "samples", "model")


def run_spec(cfg: AttGANTrainConfig) -> RunSpec:
    """How :func:`~faceedit.train.checkpointing.plan_run` tells this run from another."""
    return RunSpec("attgan", cfg, MAY_CHANGE, OUTPUTS)


def train_attgan(
    cfg: AttGANTrainConfig,
    restart: bool = False,
    stop_after: int | None = None,
) -> Path:
    """Train an AttGAN in ``cfg.out_dir``, resuming the run found there; returns it.

    Args:
        cfg: the run's settings. Re-running with the same settings (the step budget and
            bookkeeping may differ) resumes from ``checkpoint.pt``; other settings in a
            directory that holds a run are refused unless ``restart``.
        restart: delete the run found in ``cfg.out_dir`` (its own files only) and start
            over.
        stop_after: stop once this global step is reached (a checkpoint is written),
            without changing the schedule that ``max_steps``/``epochs`` define.

    The run directory holds ``run.json``, ``config.yaml``, ``setting.txt``,
    ``losses.jsonl``, ``tb/`` (TensorBoard), ``samples/``, ``checkpoint.pt`` and, at the
    end, ``model/`` (the trained AttGAN in faceedit's own format).
    """
    from tqdm.auto import tqdm

    from faceedit.train.common import resolve_device
    from faceedit.train.distributed import (
        barrier,
        cleanup_distributed,
        setup_distributed,
        wrap_ddp,
    )

    dist_info = setup_distributed()
    rank, world = dist_info.rank, dist_info.world_size
    run_dir = Path(cfg.out_dir)
    try:
        plan = plan_run(run_dir, run_spec(cfg), restart=restart)
        dataset = make_dataset(cfg, "train")
        spe = len(dataset) // (cfg.batch_size * world)
        if spe == 0:
            raise FaceeditError(
                f"{cfg.attr_path}: {len(dataset)} training images are fewer than one batch "
                f"({cfg.batch_size} x {world} processes)"
            )
        total = cfg.max_steps or cfg.epochs * spe

        device = resolve_device(cfg.device, dist_info)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        model = build_model(cfg).to(device)
        G, D = model.G, model.D
        betas = (cfg.beta1, cfg.beta2)
        opt_G = torch.optim.Adam(_generator_groups(G, cfg), lr=cfg.lr, betas=betas)
        opt_D = torch.optim.Adam(_discriminator_groups(D, cfg), lr=cfg.lr, betas=betas)
        step = 0
        if plan.checkpoint is not None:
            ck = plan.checkpoint
            load_states(
                ck,
                plan.checkpoint_path,
                models={"G": G, "D": D},
                optimizers={"G": opt_G, "D": opt_D},
            )
            step = int(ck.step)
            restore_rng(ck.rng)
        elif cfg.init_from:
            _init_from(
                model,
                cfg.init_from,
                mask_logit=cfg.mask_init_logit,
                style_scale=cfg.style_init_scale,
                gen=torch.Generator().manual_seed(cfg.seed),
            )
        lineage = init_lineage(cfg.init_from)

        g_step, d_step = _GenStep(G), _DisStep(D)
        d_plain = d_step
        g_step, d_step = wrap_ddp(g_step, dist_info, device), wrap_ddp(d_step, dist_info, device)
        plan.begin(dist_info)
        if dist_info.is_main:
            _write_run_files(run_dir, cfg)
        logger = (
            RunLogger(run_dir, cfg.tensorboard, tb_subdir="tb", resume_step=step)
            if dist_info.is_main
            else None
        )
        samples = _sample_batch(cfg) if dist_info.is_main else None

        concat_d = D.config.norm in ("instancenorm", "none")
        if dist_info.enabled and not concat_d:
            # three forwards of one DDP module before a backward are not supported
            raise FaceeditError(
                f"distributed training needs dis_norm instancenorm or none, not {D.config.norm}"
            )
        last_epoch = -1
        batches_iter = None
        bar = tqdm(
            total=total,
            initial=step,
            desc="attgan",
            disable=not (cfg.progress and dist_info.is_main),
        )
        G.train()
        D.train()
        end = total if stop_after is None else min(total, stop_after)
        while step < end:
            epoch, i = divmod(step, spe)
            if epoch != last_epoch:
                # the epoch's order is fixed by (seed, epoch); a resume starts at batch i
                batches = _epoch_batches(len(dataset), cfg, epoch, rank, world)
                batches_iter = iter(
                    torch.utils.data.DataLoader(
                        dataset, batch_sampler=batches[i:], num_workers=cfg.num_workers
                    )
                )
                last_epoch = epoch
                lr = cfg.lr / 10 ** (epoch // max(1, cfg.lr_decay_epochs))
                for opt in (opt_G, opt_D):
                    for group in opt.param_groups:
                        group["lr"] = lr * group.get("lr_mult", 1.0)
            img_a, att_a = next(batches_iter)
            att_a = att_a.float()
            # all randomness is drawn on the CPU, so runs match across devices and resumes
            gen = _step_generator(cfg, step, rank)
            att_b = att_a[torch.randperm(len(att_a), generator=gen)]
            att_a_ = (att_a * 2 - 1) * cfg.thres_int
            att_b_ = target_attrs(att_b, cfg, gen)
            style = None
            if cfg.style_dim > 0:
                shape = (len(att_a), len(cfg.attrs), cfg.style_dim)
                style = (torch.rand(shape, generator=gen) * 2 - 1).to(device)
            x = _StepInputs(
                img_a.to(device),
                att_a.to(device),
                att_b.to(device),
                att_a_.to(device),
                att_b_.to(device),
                style,
                draw_blur_sigma(cfg, gen),
            )
            if (step + 1) % (cfg.n_d + 1) != 0:
                losses = _critic_step(cfg, G, d_step, opt_D, x, gen, concat_d)
            else:
                losses = _generator_step(cfg, g_step, d_plain, D, opt_G, x)
            finite_or_raise(losses)
            step += 1
            bar.update(1)
            if logger is not None:
                if step % cfg.log_interval == 0 or step == end:
                    logger.scalars(step, {**losses, "lr": opt_G.param_groups[0]["lr"]})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
                if step % cfg.sample_interval == 0 or step == end:
                    _write_samples(run_dir, logger, G, samples, cfg, step)
            if dist_info.is_main and (step % cfg.save_interval == 0 or step == end):
                save_training_checkpoint(
                    plan.checkpoint_path,
                    TrainingCheckpoint(
                        kind="attgan",
                        step=step,
                        epoch=step // spe,
                        config=config_dict(cfg),
                        models={"G": G.state_dict(), "D": D.state_dict()},
                        optimizers={"G": opt_G.state_dict(), "D": opt_D.state_dict()},
                        rng=capture_rng(),
                        model_config=dataclasses.asdict(model.config),
                        world_size=world,
                    ),
                )
        bar.close()
        if dist_info.enabled:
            _check_in_sync(G, D)
        if dist_info.is_main:
            if step >= total:
                model.eval().save_pretrained(
                    run_dir / "model", metadata={"step": step, "lineage": lineage}
                )
            if logger is not None:
                logger.close()
            if dataset.bad_files:
                log.warning(
                    "%d unreadable images were skipped: %s",
                    len(dataset.bad_files),
                    ", ".join(sorted(dataset.bad_files)[:20]),
                )
        barrier(dist_info)  # no process tears the group down while another still works
    finally:
        cleanup_distributed(dist_info)
    return run_dir


def _generator_groups(G: nn.Module, cfg: AttGANTrainConfig) -> list[dict[str, Any]]:
    """Adam parameter groups: the generator, and its mask head at ``mask_lr_mult * lr``.

    Why a rate of its own: a mask added to a trained generator starts from zero weights,
    and at the fine-tuning rate Adam moves its logits too little per step for the mask to
    find the edit regions within a short run."""
    mask = list(G.mask_layer.parameters()) if G.config.edit_mask else []
    ids = {id(p) for p in mask}
    groups: list[dict[str, Any]] = [{"params": [p for p in G.parameters() if id(p) not in ids]}]
    if mask:
        groups.append(
            {"params": mask, "lr": cfg.lr * cfg.mask_lr_mult, "lr_mult": cfg.mask_lr_mult}
        )
    return groups


def _discriminator_groups(D: nn.Module, cfg: AttGANTrainConfig) -> list[dict[str, Any]]:
    """Adam parameter groups: the discriminator, and its style head at ``style_lr_mult *
    lr``. A style head added to a trained critic starts as built; at the fine-tuning rate
    it learned nothing in 900 steps of the first avatar style run. (At the default 1 there
    is one group, as before, so that older checkpoints resume.)"""
    has_style = D.config.style_dim > 0 and cfg.style_lr_mult != 1.0
    style = list(D.fc_style.parameters()) if has_style else []
    ids = {id(p) for p in style}
    groups: list[dict[str, Any]] = [{"params": [p for p in D.parameters() if id(p) not in ids]}]
    if style:
        groups.append(
            {"params": style, "lr": cfg.lr * cfg.style_lr_mult, "lr_mult": cfg.style_lr_mult}
        )
    return groups


@dataclass(frozen=True)
class _StepInputs:
    """One step's batch: images ``[N, 3, H, W]``, {0,1} labels ``att_a`` and shuffled
    targets ``att_b [N, n_attrs]``, their generator inputs ``att_a_``/``att_b_``, style
    controllers (or None) and the classifier blur of this step (0: none)."""

    img_a: torch.Tensor
    att_a: torch.Tensor
    att_b: torch.Tensor
    att_a_: torch.Tensor
    att_b_: torch.Tensor
    style: torch.Tensor | None
    blur_sigma: float


def _critic_step(cfg, G, d_step, opt_D, x: _StepInputs, gen, concat_d):
    img_a, att_a, att_b, style, sigma = x.img_a, x.att_a, x.att_b, x.style, x.blur_sigma
    with torch.no_grad():
        fake = G(img_a, x.att_b_, style)
    n = len(img_a)
    alpha = torch.rand((n, 1, 1, 1), generator=gen).to(img_a.device)
    if cfg.mode == "wgan":
        other = fake
    else:  # DRAGAN-style perturbation around the real images, as in the release
        beta = torch.rand(img_a.shape, generator=gen).to(img_a.device)
        other = img_a + 0.5 * img_a.var().sqrt() * beta
    inter = (img_a + alpha * (other - img_a)).requires_grad_(True)
    # cls_blur: the head learns blurred reals too, as it judges the edits blurred
    blurred_reals = [gaussian_blur(img_a, sigma)] if sigma > 0 else []
    # cls_fake: the head reads edits as the source's attributes, in the view the generator's
    # classification loss sees, so an edit passes it only when it looks like a real change
    # (without blur that view is the edits, whose forward below serves)
    blurred_fakes = [gaussian_blur(fake, sigma)] if sigma > 0 and cfg.cls_fake > 0 else []
    if concat_d:
        # one forward: per-sample norms make this equal to separate calls
        adv, cls, sty = d_step(torch.cat([img_a, fake, inter, *blurred_reals, *blurred_fakes]))
        d_real, d_fake, d_inter = adv[: 3 * n].split(n)
        views = cls.split(n)  # real, fake, inter, [blurred real], [blurred fake]
        dc_reals = [views[0], *views[3 : 3 + len(blurred_reals)]]
        dc_fake = views[-1] if blurred_fakes else views[1]
        sty_fake = None if sty is None else sty[n : 2 * n]
    else:
        d_real, dc_real, _ = d_step(img_a)
        d_fake, dc_fake, sty_fake = d_step(fake)
        d_inter = d_step(inter)[0]
        dc_reals = [dc_real, *(d_step(b)[1] for b in blurred_reals)]
        if blurred_fakes:
            dc_fake = d_step(blurred_fakes[0])[1]
    df = adversarial_d_loss(d_real, d_fake, cfg.mode)
    gp = gradient_penalty(d_inter, inter)
    dc = sum(F.binary_cross_entropy_with_logits(c, att_a) for c in dc_reals) / len(dc_reals)
    loss = df + cfg.lambda_gp * gp + cfg.lambda_3 * dc
    out = {"d/loss": loss, "d/adv": df, "d/gp": gp, "d/cls": dc}
    if cfg.cls_fake > 0:
        dcf = F.binary_cross_entropy_with_logits(dc_fake, att_a)
        loss = loss + cfg.cls_fake * dcf
        out["d/cls_fake"] = dcf
        out["d/loss"] = loss
    if style is not None and sty_fake is not None:
        ds = style_loss(sty_fake, style, att_b)
        loss = loss + cfg.lambda_style * ds
        out["d/style"] = ds
        out["d/loss"] = loss
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {k: float(v.detach()) for k, v in out.items()}


def _generator_step(cfg, g_step, d_plain, D, opt_G, x: _StepInputs):
    img_a, att_b, style, sigma = x.img_a, x.att_b, x.style, x.blur_sigma
    for p in D.parameters():
        p.requires_grad_(False)
    try:
        fake, recon, mask = g_step(img_a, x.att_b_, x.att_a_, style)
        d_fake, dc_fake, sty_fake = d_plain(fake)
        if sigma > 0:  # judged through a blur, pixel noise cannot meet the loss
            dc_fake = d_plain(gaussian_blur(fake, sigma))[1]
        gf = adversarial_g_loss(d_fake, cfg.mode)
        gc = F.binary_cross_entropy_with_logits(dc_fake, att_b)
        gr = F.l1_loss(recon, img_a)
        loss = gf + cfg.lambda_2 * gc + cfg.lambda_1 * gr
        out = {"g/adv": gf, "g/cls": gc, "g/rec": gr}
        if mask is not None:
            gm, gtv = mask.mean(), mask_tv(mask)
            loss = loss + cfg.lambda_mask * gm + cfg.lambda_mask_tv * gtv
            out["g/mask"], out["g/mask_tv"] = gm, gtv
        if style is not None and sty_fake is not None:
            gs = style_loss(sty_fake, style, att_b)
            loss = loss + cfg.lambda_style * gs
            out["g/style"] = gs
        out["g/loss"] = loss
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    finally:
        for p in D.parameters():
            p.requires_grad_(True)
    return {k: float(v.detach()) for k, v in out.items()}


def _init_from(
    model,
    source: str,
    mask_logit: float = 3.0,
    style_scale: float = 0.0,
    gen: torch.Generator | None = None,
) -> None:
    """Copy G and D of a trained AttGAN into ``model``: the same architecture, or one
    whose decoder takes more inputs (see :func:`_load_with_grown_inputs`), adds an edit
    mask to an unmasked generator (its mask starts at ``sigmoid(mask_logit)``) and/or adds
    style controllers to a model without them (the controllers are appended to the tiled
    condition, so they too are new last input channels that start at zero: the run
    starts from the trained edits, whatever the controllers say; the discriminator's new
    style head starts as built). With ``style_scale > 0`` the controllers' weights start
    random instead (:func:`_stir_style_rows`), so that they change the drawing from the
    first step and the style head has something to recover."""
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.nets.attgan import AttGAN

    try:
        trained = load_trained(source)
    except FaceeditError as e:
        raise FaceeditError(f"init_from: {e}") from None
    if not isinstance(trained, AttGAN) or trained.D is None:  # G-only release files too
        what = "a generator only" if isinstance(trained, AttGAN) else type(trained).__name__
        raise FaceeditError(
            f"init_from {source}: needs an AttGAN with its discriminator, not {what}"
        )
    wanted = model.config
    adds_mask = wanted.G.edit_mask and not trained.config.G.edit_mask
    if adds_mask:  # compare the rest of the architecture as if the mask were off
        wanted = dataclasses.replace(wanted, G=dataclasses.replace(wanted.G, edit_mask=False))
    adds_style = wanted.G.style_dim > 0 and trained.config.G.style_dim == 0
    if adds_style:  # ... and as if it had no style controllers
        wanted = dataclasses.replace(
            wanted,
            G=dataclasses.replace(wanted.G, style_dim=0),
            D=dataclasses.replace(wanted.D, style_dim=0),
        )
    if trained.config == wanted and not (adds_mask or adds_style):
        model.load_state_dict(trained.state_dict())
    elif trained.config == wanted or _grows_decoder_inputs(trained.config, wanted):
        _load_with_grown_inputs(model, trained)
        if adds_mask:
            _open_mask(model, mask_logit)
        if adds_style and style_scale > 0:
            _stir_style_rows(model, style_scale, gen)
    else:
        raise FaceeditError(
            f"init_from {source}: its architecture differs from this config "
            f"({_first_difference(trained.config, wanted)})"
        )


@torch.no_grad()
def _stir_style_rows(model, scale: float, gen: torch.Generator | None) -> None:
    """Draw the style controllers' input rows of every decoder layer that reads the
    condition (the first, and those the attributes are injected into) from
    ``N(0, (scale * s)^2)``, ``s`` the standard deviation of that layer's attribute rows.

    Zero rows keep the trained function but learn slowly: the style head, new as well, has
    nothing to recover, and the generator's controllers get gradients only through it
    (issue 23's first style run: no progress of the recovery error in 900 steps)."""
    g = model.G
    n, n_style = g.config.n_attrs, g.config.n_attrs * g.config.style_dim
    layers = [0] + [i + 1 for i in range(min(g.inject_layers, len(g.dec_layers) - 1))]
    for i in layers:
        w = g.dec_layers[i].layers[0].weight  # [C_in, C_out, k, k]; condition rows last
        attr_rows = w[-(n + n_style) : -n_style]
        noise = torch.randn(w[-n_style:].shape, generator=gen, dtype=w.dtype)
        w[-n_style:] = noise.to(w.device) * scale * attr_rows.std()


@torch.no_grad()
def _open_mask(model, logit: float) -> None:
    """Start an added mask head (``G.mask_layer``, which :func:`_load_with_grown_inputs`
    leaves as built) at a constant ``sigmoid(logit)``: zero weights, so the mask reads
    nothing yet, and bias ``logit``."""
    conv = model.G.mask_layer.layers[0]
    conv.weight.zero_()
    conv.bias.fill_(logit)


def _grows_decoder_inputs(trained, wanted) -> bool:
    """Whether ``wanted`` is ``trained`` with more shortcut and/or attribute-injection
    layers (everything else equal), each new input landing after the trained ones.

    Decoder layer ``i + 1`` reads ``[z, shortcut_i, injection_i]``; a shortcut added at
    a layer that already injects would land in the middle, so that growth is refused."""
    n = trained.G.enc_layers - 1  # the decoder's widening points (nets.attgan clamps to it)
    had_short, had_inject = min(trained.G.shortcut_layers, n), min(trained.G.inject_layers, n)
    short, inject = min(wanted.G.shortcut_layers, n), min(wanted.G.inject_layers, n)
    grows = (short, inject) != (had_short, had_inject)
    never_shrinks = short >= had_short and inject >= had_inject
    appended = all(i >= had_inject for i in range(had_short, short))
    same_rest = (
        dataclasses.replace(
            trained.G,
            shortcut_layers=wanted.G.shortcut_layers,
            inject_layers=wanted.G.inject_layers,
        )
        == wanted.G
    )
    return grows and never_shrinks and appended and same_rest and trained.D == wanted.D


@torch.no_grad()
def _load_with_grown_inputs(model, trained) -> None:
    """Load ``trained`` into ``model``, whose decoder reads more inputs: encoder features
    through more shortcuts, the attributes injected into more layers, and/or style
    controllers after the attributes (the discriminator's style head, a key ``trained``
    lacks, is left as built). Each appends channels as the last inputs of the next transposed convolution (weight ``[C_in,
    C_out, k, k]``); those new rows start at zero, so the grown generator computes
    exactly what the trained one does and fine-tuning learns how much to use them.
    """
    grown = model.state_dict()
    for key, value in trained.state_dict().items():
        target = grown[key]
        if target.shape == value.shape:
            target.copy_(value)
        else:  # only the input channels (dim 0) of a decoder convolution grow
            target.zero_()
            target[: value.shape[0]].copy_(value)
    model.load_state_dict(grown)


def _first_difference(a, b) -> str:
    for part in ("G", "D"):
        x, y = dataclasses.asdict(getattr(a, part)), dataclasses.asdict(getattr(b, part))
        for k in x:
            if x[k] != y.get(k):
                return f"{part}.{k}: {x[k]!r} there, {y.get(k)!r} here"
    return "configs differ"


def _check_in_sync(G: nn.Module, D: nn.Module) -> None:
    import torch.distributed as dist

    total = torch.stack(
        [p.detach().double().sum() for p in [*G.parameters(), *D.parameters()]]
    )  # on the parameters' device: nccl gathers CUDA tensors, gloo CPU ones
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    if any(not torch.allclose(g, gathered[0], rtol=1e-6, atol=1e-6) for g in gathered):
        raise FaceeditError("distributed training: ranks ended with different weights")


def _write_run_files(run_dir: Path, cfg: AttGANTrainConfig) -> None:
    import yaml

    from faceedit.fileio import atomic_write_text

    data = dataclasses.asdict(cfg)
    data["attrs"] = list(cfg.attrs)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))
    atomic_write_text(
        run_dir / "setting.txt", json.dumps(cfg.setting(), indent=4, separators=(",", ":"))
    )


def _sample_batch(cfg: AttGANTrainConfig):
    try:
        ds = make_dataset(cfg, "valid")
    except FaceeditError:
        ds = make_dataset(cfg, "train")
    n = min(cfg.n_samples, len(ds))
    items = [ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.stack([a for _, a in items]).float()


def _write_samples(run_dir: Path, logger: RunLogger, G, samples, cfg, step: int) -> None:
    from faceedit.viz import flip_grid_images, image_grid, save_grid

    device = next(G.parameters()).device
    img, att = samples[0].to(device), samples[1].to(device)
    was_training = G.training
    G.eval()
    try:
        cells, cols = flip_grid_images(G, img, att, cfg.thres_int, cfg.test_int)
    finally:
        G.train(was_training)
    grid = image_grid(cells, col_labels=cols, title=f"step {step}")
    (run_dir / "samples").mkdir(exist_ok=True)
    save_grid(run_dir / "samples" / f"step_{step:08d}.png", grid)
    logger.image(step, "samples", grid)


def finite_or_raise(values: dict[str, float]) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise FaceeditError(f"training diverged: {', '.join(bad)} became NaN/inf")
