"""AttGAN training speed (``faceedit train attgan``) with and without ``cls_blur``, ``cls_fake``.

Runs :func:`faceedit.train.attgan.train_attgan` for ``--steps`` steps (``n_d`` 5: five
critic steps for each generator step) with the shipped avatar-attgan's ``train.yaml`` (64 px,
widths 32, 4 layers, one shortcut, discriminator FC 256, batch 32) on synthetic 64 px
faces (3 toy attributes instead of 13: the cost hardly depends on them), once as
released, once with ``cls_blur: 1`` (one more classifier forward for the blurred real
images in each critic step and for the blurred edits in each generator step) and once
with ``cls_blur: 1`` and ``cls_fake: 1`` (one more classifier forward for the blurred edits
in each critic step). Prints steps per minute, the slowdown against the release and the
minutes a 5,000-step fine-tune takes at each rate. Wall time includes data loading and
the final checkpoint, as in a real run. The CPU is shared: figures vary with the load.

    .venv/bin/python benchmarks/bench_attgan_train.py [--threads 2] [--steps 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from faceedit.data.celeba import TOY_ATTRS, toy_faces, write_custom_dataset
from faceedit.shipped import shipped_path
from faceedit.train.attgan import load_train_config, train_attgan


def timed_run(root: Path, attr_path: Path, steps: int, **options: float) -> float:
    # the shipped model's own training config, pointed at the synthetic faces
    cfg = load_train_config(
        shipped_path("avatar-attgan") / "train.yaml",
        data_path=str(root / "imgs"),
        attr_path=str(attr_path),
        attrs=TOY_ATTRS,
        max_steps=steps,
        save_interval=10**9,
        sample_interval=10**9,
        tensorboard=False,
        progress=False,
        out_dir=str(root / ("run-" + "-".join(f"{k}{v:g}" for k, v in options.items()))),
        **options,
    )
    t = time.perf_counter()
    train_attgan(cfg)
    return time.perf_counter() - t


VARIANTS = {
    "released": {},
    "cls_blur 1": {"cls_blur": 1.0},
    "cls_blur 1, cls_fake 1": {"cls_blur": 1.0, "cls_fake": 1.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="a multiple of 6 (n_d 5)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, labels = toy_faces(512, 64, seed=0)
        attr_path = write_custom_dataset(root / "imgs", images, labels, TOY_ATTRS)
        timed_run(root, attr_path, 6)  # warm-up: imports, allocator, thread pool
        secs = {name: timed_run(root, attr_path, args.steps, **o) for name, o in VARIANTS.items()}
    print(f"{args.steps} steps, batch 32, 64 px, {args.threads} thread(s)")
    for name, t in secs.items():
        rate = args.steps / t * 60
        print(
            f"{name:>22}: {rate:6.1f} steps/min; 5,000 steps in {5000 / rate:5.1f} min; "
            f"{t / secs['released']:.2f}x the release's time"
        )


if __name__ == "__main__":
    main()
