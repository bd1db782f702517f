"""AttGAN verbs: ``train attgan``, ``eval attgan`` and ``attgan-edit``.

Torch is imported inside the verb functions so that ``faceedit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os

from faceedit.cli.common import Commands, parse_attr_strengths
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
    p.add_argument("--out-dir", default=None, help="override out_dir of the config")
    p.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add(
        "attgan",
        "AttGAN editing accuracy per attribute and reconstruction PSNR/SSIM",
        _eval,
        group="eval",
    )
    _model_args(p)
    p.add_argument("--config", help="YAML training config whose data fields name the test set")
    p.add_argument("--data", choices=["celeba", "celeba-hq", "custom"], help="dataset layout")
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
    p.add_argument("-o", "--out", required=True, help="output folder for table and chart")

    p = commands.add(
        "attgan-edit",
        "edit aligned face crops with an AttGAN",
        _edit,
        description="Edit aligned faces with an AttGAN: flip every attribute (--flip-all, "
        "the default), slide one (--slide), set several (--attr NAME=STRENGTH ...) or show "
        "attribute styles (--style ATTR). Writes a labelled PNG grid.",
    )
    p.add_argument("images", nargs="+", help="aligned face images")
    _model_args(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--flip-all", action="store_true", help="flip each attribute in turn")
    mode.add_argument("--slide", metavar="ATTR", help="sweep one attribute's strength")
    mode.add_argument(
        "--attr", action="append", metavar="NAME=STRENGTH", help="set attributes (repeatable)"
    )
    mode.add_argument("--style", metavar="ATTR", help="show styles of one attribute")
    p.add_argument("--min", type=float, default=-1.0, help="--slide start")
    p.add_argument("--max", type=float, default=1.0, help="--slide end")
    p.add_argument("--steps", type=int, default=10, help="--slide steps")
    p.add_argument("--n-styles", type=int, default=6, help="--style: number of styles")
    p.add_argument("--seed", type=int, default=0, help="--style: controller seed")
    p.add_argument(
        "--current",
        action="append",
        metavar="NAME=0|1",
        help="current attributes (others are predicted by the classifier head)",
    )
    p.add_argument("--test-int", type=float, default=None, help="--flip-all strength")
    p.add_argument("--crop", default="center", choices=["center", "celeba", "none"])
    p.add_argument("--plain", action="store_true", help="no batch-norm folding (slower)")
    p.add_argument("-o", "--out", required=True, help="output PNG")


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

    cfg = load_train_config(args.config, out_dir=args.out_dir, max_steps=args.max_steps)
    if args.no_progress:
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
            "eval attgan: name the test data with --config or --data/--data-path/--attr-path"
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
    report = evaluate_attgan(model, ds, clf, batch_size=args.batch_size, max_images=args.max_images)
    paths = write_report(report, args.out)
    print(report.table())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def _edit(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.editing.attgan import AttGANEditor
    from faceedit.fileio import check_output_path
    from faceedit.viz import image_grid, save_grid

    check_output_path(args.out)
    model = load_trained(args.model, args.setting)
    editor = AttGANEditor(model, fast=not args.plain, crop=args.crop)
    current = parse_attr_strengths(args.current) if args.current else None
    if args.slide:
        grid = editor.slide_grid(args.images, args.slide, args.min, args.max, args.steps, current)
    elif args.attr:
        strengths = parse_attr_strengths(args.attr)
        res = editor.edit(args.images, strengths, current=current)
        label = ", ".join(f"{k}={v:g}" for k, v in strengths.items())
        cells = [[res.input[i], res.image[i]] for i in range(len(res.image))]
        grid = image_grid(
            cells, col_labels=["input", "edited"], title=label, cell_size=editor.cell_size
        )
    elif args.style:
        from faceedit.editing.attgan_style import style_grid

        grid = style_grid(editor, args.images, args.style, args.n_styles, args.seed, current)
    else:
        grid = editor.flip_grid(args.images, current, args.test_int)
    save_grid(args.out, grid)
    print(f"wrote {args.out}")
    return 0
