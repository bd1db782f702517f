"""AttGAN verbs: ``train attgan`` and ``eval attgan`` (grids of edits are
``edit --method attgan --mode ...``, :mod:`faceedit.cli.edit_grids`).

Torch is imported inside the verb functions so that ``faceedit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os

from faceedit.cli.common import Commands, add_device, add_option, add_output, add_quiet
from faceedit.cli.training import add_restart_flag, deprecated_resume_notice
from faceedit.errors import FaceeditError


def register(commands: Commands) -> None:
    p = commands.add(
        "attgan",
        "train an AttGAN (one process, or several under torchrun)",
        _train,
        group="train",
        description="Train an AttGAN from a YAML config (fields of the release's setting.txt; "
        "see faceedit.train.attgan.AttGANTrainConfig). Re-running the same command resumes "
        "from OUT_DIR/checkpoint.pt (a larger max_steps or epochs extends the run). "
        "Multi-process: torchrun --nproc_per_node N -m faceedit train attgan --config cfg.yaml",
    )
    p.add_argument("--config", required=True, help="YAML training config")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        help="deprecated, does nothing: re-running the same command resumes",
    )
    add_restart_flag(p)
    add_output(
        p,
        "run directory (overrides out_dir of the config)",
        required=False,
        metavar="DIR",
        deprecated=("--out-dir",),
    )
    p.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    add_device(p, default=None, help="auto, cpu, cuda or cuda:N (overrides the config's device)")
    add_quiet(p, deprecated=("--no-progress",))

    p = commands.add(
        "attgan",
        "AttGAN editing accuracy per attribute and reconstruction PSNR/SSIM",
        _eval,
        group="eval",
    )
    _model_args(p)
    p.add_argument("--config", help="YAML training config whose data fields name the test set")
    add_option(
        p,
        "--data-layout",
        deprecated=("--data",),
        dest="data",
        choices=["celeba", "celeba-hq", "custom"],
        help="dataset layout",
    )
    p.add_argument("--data-path", help="image folder")
    p.add_argument("--attr-path", help="attribute list file")
    p.add_argument("--image-list-path", help="CelebA-HQ image_list.txt")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "all"])
    p.add_argument(
        "--classifier",
        help="checkpoint whose classifier head judges the edits (default: the model's own head)",
    )
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    add_output(p, "output folder for table and chart", metavar="DIR")
    add_device(p)
    add_quiet(p)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="weights.N.pth, its checkpoint folder, "
        "a faceedit model directory or a training run directory",
    )
    p.add_argument("--setting", help="setting.txt of a release checkpoint (if not beside it)")


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from faceedit.train.attgan import load_train_config, train_attgan

    cfg = load_train_config(
        args.config, out_dir=args.output, max_steps=args.max_steps, device=args.device
    )
    if args.quiet:
        cfg = dataclasses.replace(cfg, progress=False)
    if args.resume is not None:
        _check_deprecated_resume(args.resume, cfg.out_dir, args.restart)
    run = train_attgan(cfg, restart=args.restart)
    if os.environ.get("RANK", "0") == "0":
        print(f"run written to {run}")
    return 0


def _check_deprecated_resume(value: str | bool, out_dir: str, restart: bool) -> None:
    """``--resume [PATH]``: a no-op now, unless it asks for what resuming cannot do."""
    from pathlib import Path

    from faceedit.train.checkpointing import CHECKPOINT_NAME

    if restart:
        raise FaceeditError("--resume and --restart contradict each other; --restart starts over")
    own = Path(out_dir) / CHECKPOINT_NAME
    if value is not True and Path(value).resolve() != own.resolve():
        raise FaceeditError(
            f"--resume {value}: a run resumes only from its own {own}; copy the checkpoint "
            "there (or start from it with init_from)"
        )
    deprecated_resume_notice()


def _eval(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.data.celeba import AttributeImages
    from faceedit.eval.attgan import evaluate_attgan, write_report
    from faceedit.nets.attgan import AttGAN
    from faceedit.train.common import resolve_device

    model = load_trained(args.model, args.setting)
    if not isinstance(model, AttGAN):
        raise FaceeditError(f"{args.model}: evaluation needs a full AttGAN checkpoint")
    fields = {}
    if args.config:
        from faceedit.train.attgan import load_train_config

        c = load_train_config(args.config)
        fields = dict(
            data=c.data,
            data_path=c.data_path,
            attr_path=c.attr_path,
            image_list_path=c.image_list_path,
        )
    for name in ("data", "data_path", "attr_path", "image_list_path"):
        if getattr(args, name):
            fields[name] = getattr(args, name)
    missing = [n for n in ("data", "data_path", "attr_path") if n not in fields]
    if missing:
        raise FaceeditError(
            "eval attgan: name the test data with --config or --data-layout/--data-path/--attr-path"
        )
    ds = AttributeImages(
        kind=fields["data"],
        data_path=fields["data_path"],
        attr_path=fields["attr_path"],
        attrs=model.attrs,
        img_size=model.config.G.img_size,
        mode=args.split,
        image_list_path=fields.get("image_list_path") if fields["data"] == "celeba-hq" else None,
    )
    clf = load_trained(args.classifier) if args.classifier else None
    device = resolve_device(args.device)
    report = evaluate_attgan(
        model.to(device),
        ds,
        clf.to(device) if clf is not None else None,
        batch_size=args.batch_size,
        max_images=args.max_images,
        progress=not args.quiet,
    )
    paths = write_report(report, args.output)
    print(report.table())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0
