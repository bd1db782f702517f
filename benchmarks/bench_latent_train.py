"""Latent-transformer training speed: one attribute the original way vs. all 40 batched.

The original (InterDigitalInc/latent-transformer ``train.py`` + ``trainer.py``) trains
attributes one after another. Per step it runs the classifier on the unedited batch,
splits the code into 18 chunks for 18 separate linear layers, runs the classifier on the
edited batch and back-propagates through it *including its weight gradients* (the
classifier is never frozen, only left out of the optimiser). ``original_step`` below
reproduces that work. faceedit trains K attributes in one step
(:func:`faceedit.train.latent.transformer_losses`): one shared classifier pass on the
unedited batch, one batched matmul for the K transformers, one ``[K*B]`` classifier pass
with a frozen classifier.

Both use the same hyper-parameters (batch 32, Adam lr 1e-3, weight decay 5e-4, the
released 9216-2048-512-40 classifier and 18 x 512 x 512 transformers). One epoch over
27,000 codes (the 90 % training split of CelebA-HQ's 30,000) is 844 steps; by default
the script times a number of steps and extrapolates to the epoch (``--full`` runs whole
epochs). Codes are random (timing does not depend on their values) and are drawn from a
pool of ``--pool`` codes to keep memory small.

    .venv/bin/python benchmarks/bench_latent_train.py [--attrs 40] [--threads 2] [--full]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from faceedit.nets.latent import (
    LatentClassifier,
    LatentTransformer,
    LatentTransformerBank,
    LatentTransformerConfig,
    classifier_preset,
    get_coeff,
)
from faceedit.train.latent import (
    TransformerTrainConfig,
    correlation_masks,
    make_adam,
    transformer_losses,
)


def original_step(
    tnet: LatentTransformer,
    classifier: LatentClassifier,
    optimizer: torch.optim.Optimizer,
    w0: torch.Tensor,
    attr: int,
    mask: torch.Tensor,
) -> float:
    """One step of the original trainer for one attribute (same maths, same work)."""
    n = w0.shape[0]
    flat = w0.view(n, -1)
    p0 = classifier(flat)  # recomputed for every attribute, graph kept (no no_grad)
    pb0 = torch.sigmoid(p0)[:, attr]
    coeff = get_coeff(pb0)
    target = (pb0 + coeff).clamp(0, 1).round()
    # 18 separate linear layers on 512-wide chunks, concatenated
    chunks = flat.split(512, dim=1)
    out = [
        F.linear(x, layer.weight * layer.scale, layer.bias)
        for x, layer in zip(chunks, tnet.dense, strict=True)
    ]
    w1 = coeff.view(n, 1) * torch.cat(out, dim=1) + flat
    p1 = classifier(w1)
    t_coeff = n / (target.sum() + 1e-8)
    f_coeff = n / (n - target.sum() + 1e-8)
    weight = t_coeff * target + f_coeff * (1 - target)
    loss_pb = (
        F.binary_cross_entropy_with_logits(p1[:, attr], target, reduction="none") * weight
    ).mean()
    loss_rec = F.mse_loss(w1, flat)
    m = mask.view(1, -1).repeat(n, 1)
    loss_reg = F.mse_loss(p1 * m, p0 * m)
    loss = loss_pb + 10 * loss_rec + loss_reg
    optimizer.zero_grad()
    loss.backward()  # also fills the classifier's .grad, as the original does
    optimizer.step()
    return loss.item()


def timed(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attrs", type=int, default=40, help="attributes trained together")
    parser.add_argument("--codes", type=int, default=27_000, help="codes per epoch")
    parser.add_argument("--pool", type=int, default=2048, help="distinct random codes")
    parser.add_argument("--steps-original", type=int, default=40)
    parser.add_argument("--steps-batched", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--full", action="store_true", help="time whole epochs (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = TransformerTrainConfig()
    batch = config.batch_size
    steps_per_epoch = math.ceil(args.codes / batch)
    pool = torch.randn(args.pool, 18, 512)
    labels = (torch.rand(args.pool, 40) > 0.5).float().numpy()
    attrs = list(range(args.attrs))
    masks = correlation_masks(labels, attrs)

    # --- original: one attribute, classifier not frozen
    classifier = LatentClassifier(classifier_preset("released")).eval()
    tnet = LatentTransformer(LatentTransformerConfig())
    opt = torch.optim.Adam(tnet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = [0]

    def batch_codes() -> torch.Tensor:
        i = (step[0] * batch) % (args.pool - batch)
        step[0] += 1
        return pool[i : i + batch]

    def run_original() -> None:
        original_step(tnet, classifier, opt, batch_codes(), 31, masks[min(31, len(attrs) - 1)])

    n_orig = steps_per_epoch if args.full else args.steps_original

    # --- faceedit: all attributes batched, classifier frozen
    frozen = LatentClassifier(classifier_preset("released")).eval()
    frozen.load_state_dict(classifier.state_dict())
    for p in frozen.parameters():
        p.requires_grad_(False)
    bank = LatentTransformerBank(LatentTransformerConfig(), len(attrs))
    bopt = make_adam(bank.parameters(), config)
    attr_t = torch.tensor(attrs)

    def run_batched() -> None:
        losses = transformer_losses(bank, frozen, batch_codes(), attr_t, masks, config)
        bopt.zero_grad(set_to_none=True)
        losses["total"].sum().backward()
        bopt.step()

    n_batched = steps_per_epoch if args.full else args.steps_batched

    # --- faceedit's loop with a single attribute (frozen classifier, no batching gain)
    single = LatentTransformerBank(LatentTransformerConfig(), 1)
    sopt = make_adam(single.parameters(), config)
    one = torch.tensor([31 if len(attrs) > 31 else 0])

    def run_single() -> None:
        losses = transformer_losses(single, frozen, batch_codes(), one, masks[:1], config)
        sopt.zero_grad(set_to_none=True)
        losses["total"].sum().backward()
        sopt.step()

    # interleaved rounds, median per method: the machine's load drifts between them
    rounds = 1 if args.full else args.rounds
    samples: dict[str, list[float]] = {"original": [], "batched": [], "single": []}
    for r in range(rounds):
        samples["original"].append(timed(run_original, n_orig, warmup=3 if r == 0 else 0))
        samples["batched"].append(timed(run_batched, n_batched, warmup=1 if r == 0 else 0))
        samples["single"].append(timed(run_single, n_orig, warmup=2 if r == 0 else 0))
        print(
            f"round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1] * 1e3:.0f} ms/step" for k, v in samples.items())
        )
    t_orig, t_batched, t_single = (
        statistics.median(samples[k]) for k in ("original", "batched", "single")
    )

    epoch_orig = t_orig * steps_per_epoch
    epoch_batched = t_batched * steps_per_epoch
    per_attr_batched = epoch_batched / len(attrs)
    how = "measured" if args.full else f"extrapolated from timed steps, median of {rounds} rounds"
    print(
        f"threads {args.threads}, batch {batch}, {args.codes} codes = {steps_per_epoch} steps/epoch ({how})"
    )
    print(f"original way, 1 attribute:   {t_orig * 1e3:8.1f} ms/step  {epoch_orig:8.1f} s/epoch "
          f"({n_orig} steps/round)")  # fmt: skip
    print(f"batched, {len(attrs):2d} attributes:     {t_batched * 1e3:8.1f} ms/step  {epoch_batched:8.1f} s/epoch "
          f"({n_batched} steps/round)")  # fmt: skip
    print(f"faceedit loop, 1 attribute:  {t_single * 1e3:8.1f} ms/step  {t_single * steps_per_epoch:8.1f} s/epoch "
          f"({n_orig} steps/round)")  # fmt: skip
    print(f"per attribute-epoch: original {epoch_orig:.1f} s, batched {per_attr_batched:.1f} s")
    print(f"speed-up per attribute-epoch: {epoch_orig / per_attr_batched:.2f}x vs the original way "
          f"(target >= 3x); {t_single * steps_per_epoch / per_attr_batched:.2f}x vs faceedit's "
          f"own loop run one attribute at a time")  # fmt: skip
    print(f"all {len(attrs)} attributes x 10 epochs: original {epoch_orig * len(attrs) * 10 / 3600:.2f} h, "
          f"batched {epoch_batched * 10 / 3600:.2f} h")  # fmt: skip


if __name__ == "__main__":
    main()
