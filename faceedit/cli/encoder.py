"""``faceedit train encoder`` and ``faceedit data latents``: a W+ inverter for a domain.

``train encoder`` fits a :class:`~faceedit.nets.latent_encoder.LatentEncoder` (pSp/e4e
style, Richardson et al. CVPR 2021) to a frozen StyleGAN2 generator
(:mod:`faceedit.train.encoder`); ``data latents`` encodes a labelled dataset with it, or
labels a generator's own samples with an attribute reader
(:mod:`faceedit.synth.labelled_samples`), into the ``codes.npy`` + ``list_attr_celeba.txt``
pair that ``train classifier`` and ``train transformer`` read. Numbers are parsed here so
that a bad value gives one clear line.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_option,
    add_output,
    add_quiet,
    parse_float,
    parse_int,
    parse_range,
)
from faceedit.cli.training import add_restart_flag
from faceedit.errors import FaceeditError


def register(commands: Commands) -> None:
    p = commands.add(
        "encoder",
        help="train a W+ encoder (inverter) for a StyleGAN2 generator",
        run=run_train_encoder,
        group="train",
        description=(
            "Train a small CNN encoder into the W+ space of a frozen StyleGAN2 generator, on "
            "the generator's own samples (known codes) and the dataset's images "
            "(reconstruction). Writes OUT/encoder/ (faceedit format, with metrics.json: "
            "reconstruction PSNR on the validation split), sample grids, losses and "
            "checkpoint.pt; re-running the same command resumes (a larger --steps extends "
            "the run; --restart starts over)."
        ),
    )
    p.add_argument("--generator", required=True, metavar="G", help="StyleGAN2 generator")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset ('data avatars' output)")
    add_output(p, "run directory", metavar="OUT")
    p.add_argument("--steps", default="1000", metavar="N", help="training steps")
    p.add_argument(
        "--batch-size", default="8", metavar="B", help="generated and real images per step (each)"
    )
    p.add_argument("--lr", default="1e-3", help="Adam learning rate (cosine decay to 1/10)")
    p.add_argument("--lambda-latent", default="1.0", help="weight of the W+ loss on samples")
    p.add_argument(
        "--perceptual",
        metavar="ORACLE",
        help="avatar oracle whose features add an LPIPS-style loss (pSp's identity loss "
        "for avatars); use another oracle than the one that evaluates, e.g. "
        "'faceedit train oracle --seed 1'",
    )
    p.add_argument("--lambda-perceptual", default="1.0", help="weight of that loss")
    p.add_argument(
        "--lambda-identity",
        default="0",
        help="weight of the loss between how the --perceptual oracle reads the input and "
        "its reconstruction (attributes and rendering parameters; 0: off)",
    )
    p.add_argument("--max-images", default=None, metavar="N", help="use the first N train images")
    p.add_argument("--eval-every", default="250", metavar="N", help="steps between PSNR checks")
    p.add_argument(
        "--checkpoint-every", default="250", metavar="N", help="steps between checkpoints"
    )
    p.add_argument(
        "--channel-base", default="1024", metavar="C", help="encoder widths: min(C // res, max)"
    )
    p.add_argument("--channel-max", default="256", metavar="C", help="widest encoder stage")
    p.add_argument("--head-channels", default="64", metavar="C", help="width read by the head")
    p.add_argument("--seed", default="0", help="initialisation and sampling seed")
    p.add_argument("--threads", default=None, metavar="K", help="torch CPU threads")
    add_device(p)
    add_quiet(p, deprecated=("--no-progress",))
    add_restart_flag(p)

    d = commands.add(
        "latents",
        help="W+ codes with labels for 'train classifier/transformer': encoded or sampled",
        run=run_data_latents,
        group="data",
        description=(
            "Write OUT/codes.npy float32 [N, num_ws, w_dim] and OUT/list_attr_celeba.txt (one "
            "label row per code, same order), from one of three sources. --encoder E --data "
            "DIR: encode every image of a labelled dataset (or one split) with a trained "
            "encoder; the labels are the dataset's (plus OUT/files.txt), or, with --generator "
            "G --labeller L as well, the reader's verdict on each code's reconstruction G(E(x)). "
            "--generator G --labeller L: sample N codes from a generator and label each "
            "sample's image with an attribute reader, so that a label says what the generator "
            "draws for its code (plus OUT/samples.json and OUT/by_attribute.png). --join A B "
            "...: join such outputs into one, rows shuffled with --seed (plus OUT/sources.txt). "
            "--transformers T --codes C --generator G --labeller L: edit N codes of C with "
            "every transformer of T towards the flipped attribute and label each edit with "
            "the reader's verdict on its image, so that a classifier retrained with them no "
            "longer believes edits the generator does not draw (plus OUT/edits.json)."
        ),
    )
    d.add_argument("--encoder", metavar="E", help="encoder from 'train encoder'")
    d.add_argument("--data", metavar="DIR", help="dataset ('data avatars' output) to encode")
    d.add_argument(
        "--generator", metavar="G", help="generator, StyleGAN2 run or latent bundle to sample"
    )
    d.add_argument(
        "--labeller",
        metavar="L",
        help="attribute reader for the samples or reconstructions, e.g. avatar-oracle",
    )
    d.add_argument(
        "--join", nargs="+", metavar="DIR", help="'data latents' outputs to join into one"
    )
    d.add_argument(
        "--transformers",
        metavar="T",
        help="latent transformers (tnet_<Name>/) whose edits to label",
    )
    d.add_argument("--codes", metavar="C", help="'data latents' output the edits start from")
    add_option(
        d,
        "--strength-range",
        deprecated=("--strengths",),
        default="0.5,1.5",
        metavar="LO,HI",
        help="edit strengths, uniform in [LO, HI] (with --transformers)",
    )
    d.add_argument(
        "--n",
        default=None,
        metavar="N",
        help="samples to draw (--generator; default 30000) or codes to edit "
        "(--transformers; default 2000, or all when fewer)",
    )
    d.add_argument(
        "--seed",
        default="0",
        help="sampling (--generator), drawing (--transformers) or shuffling (--join) seed",
    )
    d.add_argument(
        "--truncation", default="1.0", metavar="PSI", help="truncation psi (with --generator)"
    )
    d.add_argument(
        "--mixing",
        default="0",
        metavar="P",
        help="share of samples whose W+ rows switch to a second code at a random row "
        "(style mixing; with --generator)",
    )
    add_output(d, "new output directory", metavar="OUT")
    d.add_argument("--batch-size", default="64", metavar="B", help="images per batch")
    d.add_argument(
        "--split", default="all", choices=("all", "train", "val", "test"), help="images to encode"
    )
    add_device(d)
    add_quiet(d, help="no progress bar", deprecated=("--no-progress",))


def run_train_encoder(args: argparse.Namespace) -> int:
    from faceedit.train.encoder import EncoderTrainConfig, train_encoder

    lambda_identity = parse_float(args.lambda_identity, "--lambda-identity", allow_zero=True)
    if lambda_identity and not args.perceptual:
        raise FaceeditError("--lambda-identity needs --perceptual ORACLE (the oracle that reads)")
    config = EncoderTrainConfig(
        generator=args.generator,
        data=args.data,
        out=args.output,
        steps=parse_int(args.steps, "--steps", 1),
        batch_size=parse_int(args.batch_size, "--batch-size", 1),
        lr=parse_float(args.lr, "--lr"),
        lambda_latent=parse_float(args.lambda_latent, "--lambda-latent", allow_zero=True),
        perceptual=args.perceptual,
        lambda_perceptual=parse_float(
            args.lambda_perceptual, "--lambda-perceptual", allow_zero=True
        ),
        lambda_identity=lambda_identity,
        max_images=None
        if args.max_images is None
        else parse_int(args.max_images, "--max-images", 1),
        eval_every=parse_int(args.eval_every, "--eval-every", 1),
        checkpoint_every=parse_int(args.checkpoint_every, "--checkpoint-every", 1),
        channel_base=parse_int(args.channel_base, "--channel-base", 1),
        channel_max=parse_int(args.channel_max, "--channel-max", 1),
        head_channels=parse_int(args.head_channels, "--head-channels", 1),
        seed=parse_int(args.seed, "--seed", 0),
        threads=None if args.threads is None else parse_int(args.threads, "--threads", 1),
        device=args.device,
    )
    result = train_encoder(config, progress=not args.quiet, restart=args.restart)
    m = result.metrics
    print(
        f"encoder saved to {result.encoder_dir} ({m['steps']} steps, {m['seconds']:.0f} s, "
        f"{result.seconds_per_step:.3f} s/step): reconstruction PSNR {m['psnr']:.2f} dB "
        f"on {m['n']} held-out images, {m['psnr_generated']:.2f} dB on generated ones"
    )
    return 0


def run_data_latents(args: argparse.Namespace) -> int:
    encoding = args.encoder is not None or args.data is not None
    sampling = args.generator is not None or args.labeller is not None
    editing = args.transformers is not None or args.codes is not None
    if args.join:
        if encoding or sampling or editing:
            raise FaceeditError(
                "--join takes no other source (--encoder, --data, --generator, --transformers)"
            )
        return _run_join(args)
    if editing:
        if encoding:
            raise FaceeditError("--transformers and --codes take no --encoder or --data")
        return _run_label_edits(args)
    if not encoding and not sampling:
        raise FaceeditError(
            "data latents needs a source: --encoder E --data DIR (encode a labelled "
            "dataset), --generator G --labeller L (label a generator's samples) or --join"
        )
    if not encoding:
        return _run_label_samples(args)
    if args.encoder is None or args.data is None:
        raise FaceeditError("encoding a dataset needs both --encoder E and --data DIR")
    if sampling and (args.generator is None or args.labeller is None):
        raise FaceeditError(
            "labelling the reconstructions needs both --generator G and --labeller L"
        )

    from faceedit.synth.encoded import encode_dataset

    out, n = encode_dataset(
        args.encoder,
        args.data,
        args.output,
        split=args.split,
        batch_size=parse_int(args.batch_size, "--batch-size", 1),
        device=args.device,
        progress=not args.quiet,
        generator=args.generator,
        labeller=args.labeller,
    )
    labels = out / "list_attr_celeba.txt"
    if sampling:
        with_labels = f" with {args.labeller}'s reading of the reconstructions, {labels}"
    elif labels.is_file():
        with_labels = f" with labels {labels}"
    else:
        with_labels = " (the dataset has no labels)"
    print(f"wrote {n} W+ codes to {out / 'codes.npy'}{with_labels}")
    if sampling:
        import json

        from faceedit.train.encoder import LABELS_META_FILE

        rates = json.loads((out / LABELS_META_FILE).read_text("utf-8"))["on_rate"]
        print("on: " + ", ".join(f"{a} {r:.0%}" for a, r in rates.items()))
    return 0


def _run_join(args: argparse.Namespace) -> int:
    from faceedit.data.latents import join_latent_sets

    out, n = join_latent_sets(args.join, args.output, seed=parse_int(args.seed, "--seed", 0))
    print(f"wrote {n} W+ codes from {len(args.join)} sets to {out / 'codes.npy'}, rows shuffled")
    return 0


def _run_label_samples(args: argparse.Namespace) -> int:
    from faceedit.synth.labelled_samples import PREVIEW_FILE, label_generator_samples

    if args.generator is None or args.labeller is None:
        raise FaceeditError("labelling samples needs both --generator G and --labeller L")
    result = label_generator_samples(
        args.generator,
        args.labeller,
        args.output,
        n=parse_int(args.n or "30000", "--n", 1),
        seed=parse_int(args.seed, "--seed", 0),
        truncation_psi=parse_float(args.truncation, "--truncation"),
        mixing=parse_float(args.mixing, "--mixing", allow_zero=True),
        batch_size=parse_int(args.batch_size, "--batch-size", 1),
        device=args.device,
        progress=not args.quiet,
    )
    rates = ", ".join(
        f"{a} {r:.0%}" for a, r in zip(result.attr_names, result.on_rate, strict=True)
    )
    print(f"wrote {result.n} W+ codes to {result.out / 'codes.npy'} with the labeller's labels")
    print(f"on: {rates}")
    preview = result.out / PREVIEW_FILE
    if preview.is_file():  # absent when the reader called nothing on
        print(f"look at {preview} before trusting the labels")
    return 0


def _run_label_edits(args: argparse.Namespace) -> int:
    from faceedit.synth.edited_latents import label_latent_edits

    missing = [
        flag
        for flag, value in (
            ("--transformers T", args.transformers),
            ("--codes C", args.codes),
            ("--generator G", args.generator),
            ("--labeller L", args.labeller),
        )
        if value is None
    ]
    if missing:
        raise FaceeditError(f"labelling latent edits also needs {', '.join(missing)}")
    low, high = parse_range(args.strength_range, "--strength-range")
    for value in (low, high):  # positive, as before; their order is the labeller's check
        parse_float(str(value), "--strength-range")
    result = label_latent_edits(
        args.transformers,
        args.codes,
        args.generator,
        args.labeller,
        args.output,
        n=None if args.n is None else parse_int(args.n, "--n", 1),
        seed=parse_int(args.seed, "--seed", 0),
        strengths=(low, high),
        batch_size=parse_int(args.batch_size, "--batch-size", 1),
        device=args.device,
        progress=not args.quiet,
    )
    landed = ", ".join(
        f"{a} {r:.0%}" for a, r in zip(result.attributes, result.landed, strict=True)
    )
    print(
        f"wrote {result.n} edited W+ codes to {result.out / 'codes.npy'} with the labeller's labels"
    )
    print(f"edits the labeller sees land: {landed}")
    return 0
