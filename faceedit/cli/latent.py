"""Latent-transformer verbs (Yao et al., ICCV 2021): ``stats``, ``train classifier``,
``train transformer`` and ``eval latent`` (editing W+ codes is ``edit CODES.npy``,
:mod:`faceedit.cli.edit_codes`).

torch is imported inside the verbs, never at module import (``faceedit --help`` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from faceedit.cli.common import (
    Commands,
    add_device,
    add_option,
    add_output,
    add_quiet,
    parse_strengths,
)
from faceedit.cli.training import add_restart_flag, deprecated_resume_notice
from faceedit.errors import FaceeditError


def register(commands: Commands) -> None:
    p = commands.add(
        "stats",
        "count 0s/1s per attribute and plot the attribute correlations of a label file",
        _run_stats,
    )
    p.add_argument("labels", help="labels .npy [N, n_attrs] or list_attr_celeba.txt")
    p.add_argument("--codes", help="W+ codes .npy (or directory) to check against the labels")
    add_output(p, "PNG to write", required=False, default="label_stats.png")

    p = commands.add(
        "classifier",
        "train the latent attribute classifier on W+ codes",
        _run_train_classifier,
        group="train",
    )
    _data_args(p)
    add_output(p, "output directory", metavar="DIR")
    p.add_argument("--preset", default="released", choices=("released", "small"))
    p.add_argument(
        "--attrs", default="all", help="label columns to learn (one gives a single-attribute head)"
    )
    p.add_argument("--hidden", help="hidden widths overriding the preset, e.g. 1024,256")
    p.add_argument("--activation", choices=("leakyrelu", "relu"), help="overrides the preset")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr-step", type=int, default=10, help="StepLR period in epochs")
    p.add_argument("--lr-gamma", type=float, default=0.1)
    _train_common(p)

    p = commands.add(
        "transformer",
        "train latent transformers for one, several or all attributes (batched together)",
        _run_train_transformer,
        group="train",
    )
    _data_args(p)
    p.add_argument("--classifier", required=True, help="latent classifier (.pth or directory)")
    p.add_argument("--attrs", required=True, help="comma-separated names or indices, or 'all'")
    add_output(p, "output directory", metavar="DIR")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--lambda-attr", type=float, default=1.0)
    p.add_argument("--lambda-rec", type=float, default=10.0)
    p.add_argument("--lambda-reg", type=float, default=1.0)
    p.add_argument("--corr-threshold", type=float, default=1.0)
    p.add_argument(
        "--fixed-alpha", action="store_true", help="train with strength +-1 instead of 1-p / -p"
    )
    p.add_argument(
        "--dense", action="store_true", help="one 9216x9216 map instead of 18 per-row maps"
    )
    _train_common(p)

    p = commands.add(
        "latent",
        "evaluate latent transformers (and a linear InterFaceGAN baseline) on W+ codes",
        _run_eval_latent,
        group="eval",
    )
    p.add_argument("--codes", required=True, help="W+ codes .npy (the last 10%% are evaluated)")
    p.add_argument(
        "--labels", help="labels for fitting the baseline (default: classifier predictions)"
    )
    p.add_argument("--classifier", required=True, help="latent classifier judging attributes")
    p.add_argument("--transformers", help="directory of trained transformers")
    p.add_argument("--attrs", required=True, help="comma-separated names or indices, or 'all'")
    add_output(p, "output directory", metavar="DIR")
    p.add_argument("--n", type=int, default=1000, help="codes evaluated")
    p.add_argument(
        "--strengths",
        metavar="S,S,..",
        help="comma-separated strengths (non-negative; default: --num-strengths from 0 to "
        "--max-strength)",
    )
    p.add_argument(
        "--num-strengths", type=int, default=11, metavar="N", help="number of strengths from 0"
    )
    p.add_argument("--max-strength", type=float, default=2.0)
    p.add_argument("--no-baseline", action="store_true", help="skip the InterFaceGAN baseline")
    p.add_argument(
        "--orthogonal-to",
        default="",
        help="attributes the baseline directions are made orthogonal to",
    )
    p.add_argument("--layers", default="0-10", help="edited W+ rows, e.g. 0-10, or 'all'")
    p.add_argument(
        "--all-codes", action="store_true", help="evaluate on all codes, not the last 10%%"
    )
    add_option(
        p,
        "--generator",
        deprecated=("--model",),
        help="StyleGAN2 generator, to render codes for --identity",
    )
    p.add_argument(
        "--identity", help="face-recognition model (e.g. model_ir_se50.pth) for identity similarity"
    )
    add_device(p)
    add_quiet(p)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codes", required=True, help="W+ codes .npy [N, num_ws, w_dim] or directory")
    p.add_argument(
        "--labels", required=True, help="labels .npy [N, n_attrs] or list_attr_celeba.txt"
    )


def _train_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    add_device(p, help="auto, cpu, cuda or cuda:N (under torchrun: one GPU per rank)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="deprecated, does nothing: re-running the same command resumes",
    )
    add_restart_flag(p)
    add_quiet(p, deprecated=("--no-progress",))


def _parse_layers(text: str) -> tuple[int, int] | None:
    if text.strip().lower() == "all":
        return None
    try:
        lo, _, hi = text.partition("-")
        start, stop = int(lo), int(hi or lo) + 1
    except ValueError:
        raise FaceeditError(f"--layers {text!r}: expected e.g. 0-10 or all") from None
    if start < 0 or stop <= start:
        raise FaceeditError(f"--layers {text!r}: empty range")
    return start, stop


def _load_classifier(path: str):
    from faceedit.checkpoints import load
    from faceedit.nets.latent import LatentClassifier

    model = load(path)
    if not isinstance(model, LatentClassifier):
        raise FaceeditError(f"{path}: not a latent classifier ({type(model).__name__})")
    return model


def _output_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FaceeditError(f"{out}: exists and is not a directory")
    if not out.parent.is_dir():
        raise FaceeditError(f"{out}: parent directory {out.parent} does not exist")
    return out


# --------------------------------------------------------------------------- stats


def _run_stats(args: argparse.Namespace) -> int:
    import numpy as np

    from faceedit.data.latents import label_stats, read_codes, read_labels
    from faceedit.fileio import check_output_path

    check_output_path(args.output)
    labels, names = read_labels(args.labels)
    if args.codes:
        codes = read_codes(args.codes)
        if len(codes) != len(labels):
            raise FaceeditError(
                f"{args.codes} has {len(codes)} codes but {args.labels} has {len(labels)} rows"
            )
        print(f"codes: {codes.shape[0]} x {codes.shape[1]} x {codes.shape[2]}, all finite")
    counts, corr = label_stats(labels)
    width = max(len(n) for n in names)
    print(f"{len(labels)} rows, {len(names)} attributes")
    print(f"{'attribute':<{width}}  {'0s':>8}  {'1s':>8}  {'% 1s':>6}")
    for i, n in enumerate(names):
        print(
            f"{n:<{width}}  {counts[i, 0]:>8}  {counts[i, 1]:>8}  {100 * counts[i, 1] / len(labels):6.1f}"
        )
    off = corr - np.eye(len(names))
    i, j = np.unravel_index(np.abs(off).argmax(), off.shape)
    print(f"strongest correlation: {names[i]} / {names[j]} = {corr[i, j]:+.3f}")
    _plot_stats(args.output, names, counts, corr)
    print(f"wrote {args.output}")
    return 0


def _plot_stats(path: str, names, counts, corr) -> None:
    import numpy as np

    from faceedit.viz import saved_figure

    n = len(names)
    size = max(6.0, 0.3 * n + 3)
    with saved_figure(path, 1, 2, figsize=(2 * size, size * 0.8), dpi=90) as (fig, (ax0, ax1)):
        x = np.arange(n)
        ax0.barh(x, counts[:, 0], label="0", color="#999999")
        ax0.barh(x, counts[:, 1], left=counts[:, 0], label="1", color="#3a7dc9")
        ax0.set_yticks(x, names, fontsize=7)
        ax0.invert_yaxis()
        ax0.set_xlabel("codes")
        ax0.legend(fontsize=8)
        ax0.set_title("label counts")
        im = ax1.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
        ax1.set_xticks(x, names, rotation=90, fontsize=6)
        ax1.set_yticks(x, names, fontsize=6)
        ax1.set_title("attribute correlation")
        fig.colorbar(im, ax=ax1, fraction=0.046)


# --------------------------------------------------------------------------- training


def _run_train_classifier(args: argparse.Namespace) -> int:
    from faceedit.data.latents import load_latent_dataset
    from faceedit.lineage import record_dataset
    from faceedit.train.common import cleanup_distributed
    from faceedit.train.latent import ClassifierTrainConfig, train_classifier

    out = _output_dir(args.output)
    data = load_latent_dataset(args.codes, args.labels)
    lineage = record_dataset(args.codes, args.labels)
    if args.attrs != "all":
        from faceedit.data.latents import LatentDataset, resolve_attrs

        cols = resolve_attrs(args.attrs, data.attr_names)
        data = LatentDataset(
            data.codes, data.labels[:, cols], tuple(data.attr_names[c] for c in cols)
        )
    hidden = None
    if args.hidden:
        try:
            hidden = tuple(int(h) for h in args.hidden.split(","))
        except ValueError:
            raise FaceeditError(f"--hidden {args.hidden!r}: expected e.g. 1024,256") from None
    config = ClassifierTrainConfig(
        preset=args.preset,
        hidden=hidden,
        activation=args.activation,
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        lr_step=args.lr_step,
        lr_gamma=args.lr_gamma,
        seed=args.seed,
    )
    _check_positive(batch_size=args.batch_size, epochs=args.epochs, lr=args.lr)
    _resume_flags(args)
    dist, device = _distributed(args.device)
    try:
        result = train_classifier(
            data,
            out,
            config,
            restart=args.restart,
            progress=not args.quiet,
            dist=dist,
            device=device,
            lineage=lineage,
        )
    finally:
        cleanup_distributed(dist)
    if dist.is_main:
        m = result.metrics
        print(
            f"validation: mean accuracy {m.accuracy.mean():.4f}, precision "
            f"{m.precision.mean():.4f}, recall {m.recall.mean():.4f}"
        )
        print(f"wrote {out / 'classifier'}, {out / 'metrics.csv'}, {out / 'metrics.png'}")
    return 0


def _resume_flags(args: argparse.Namespace) -> None:
    if args.resume and args.restart:
        raise FaceeditError("--resume and --restart contradict each other; --restart starts over")
    if args.resume:
        deprecated_resume_notice()


def _distributed(device: str):
    """torchrun set-up (gloo on CPU, nccl on CUDA) and this rank's device."""
    from faceedit.train.common import resolve_device, setup_distributed

    # a bad name or missing CUDA fails before the group forms; auto picks the backend too
    kind = resolve_device(device).type
    dist = setup_distributed(backend="nccl" if kind == "cuda" else "gloo")
    if device == "auto":
        device = kind  # a bare name: under torchrun, cuda becomes this rank's GPU
    return dist, str(resolve_device(device, dist))


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if v <= 0:
            raise FaceeditError(f"--{name.replace('_', '-')} must be positive, got {v}")


def _run_train_transformer(args: argparse.Namespace) -> int:
    from faceedit.data.latents import load_latent_dataset, resolve_attrs
    from faceedit.lineage import dedupe, record, record_dataset
    from faceedit.train.common import cleanup_distributed
    from faceedit.train.latent import TransformerTrainConfig, train_transformers

    out = _output_dir(args.output)
    _check_positive(batch_size=args.batch_size, epochs=args.epochs, lr=args.lr)
    data = load_latent_dataset(args.codes, args.labels)
    classifier = _load_classifier(args.classifier)
    lineage = dedupe(
        [*record("classifier", args.classifier), *record_dataset(args.codes, args.labels)]
    )
    attrs = resolve_attrs(args.attrs, data.attr_names)
    config = TransformerTrainConfig(
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        lambda_attr=args.lambda_attr,
        lambda_rec=args.lambda_rec,
        lambda_reg=args.lambda_reg,
        corr_threshold=args.corr_threshold,
        fixed_alpha=args.fixed_alpha,
        dense=args.dense,
        seed=args.seed,
    )
    _resume_flags(args)
    dist, device = _distributed(args.device)
    try:
        result = train_transformers(
            data,
            classifier,
            attrs,
            out,
            config,
            restart=args.restart,
            progress=not args.quiet,
            dist=dist,
            device=device,
            lineage=lineage,
        )
    finally:
        cleanup_distributed(dist)
    if dist.is_main:
        for name, h in result.history.items():
            first, last = h["total"][0], h["total"][-1]
            print(f"{name}: loss {first:.4f} -> {last:.4f}")
        print(f"wrote {len(result.transformers)} transformer(s) to {out}")
    return 0


# --------------------------------------------------------------------------- editing


def find_transformer(root: Path, name: str) -> Path:
    """``root/tnet_<name>`` (faceedit), ``root/tnet_<k>.pth.tar`` (original) or ``root`` itself."""
    from faceedit.data.latents import CELEBA_ATTRS

    candidates = [root / f"tnet_{name}"]
    if name in CELEBA_ATTRS:
        candidates.append(root / f"tnet_{CELEBA_ATTRS.index(name)}.pth.tar")
    for c in candidates:
        if c.exists():
            return c
    if root.is_file() or (root / "config.json").is_file():
        return root
    raise FaceeditError(
        f"{root}: no transformer for {name!r} (looked for {', '.join(c.name for c in candidates)})"
    )


def _load_editor(root: str, names: list[str], layers, generator=None):
    from faceedit.editing.latent import LatentEditor

    base = Path(root)
    if not base.exists():
        raise FaceeditError(f"{base}: no such file or directory (give --transformers DIR)")
    paths = {n: find_transformer(base, n) for n in names}
    return LatentEditor.from_paths(paths, generator=generator, layers=layers)


# --------------------------------------------------------------------------- evaluation


def _run_eval_latent(args: argparse.Namespace) -> int:
    import torch

    from faceedit.data.latents import (
        CELEBA_ATTRS,
        read_codes,
        read_labels,
        resolve_attrs,
        split_indices,
    )
    from faceedit.eval.latent import default_strengths, evaluate_editing, summarise, write_results
    from faceedit.train.common import resolve_device

    out = _output_dir(args.output)
    if args.n < 1 or args.num_strengths < 1:
        raise FaceeditError("--n and --num-strengths must be at least 1")
    strengths = _eval_strengths(args)
    device = resolve_device(args.device)
    if args.no_baseline and not args.transformers:
        raise FaceeditError("nothing to evaluate: give --transformers or drop --no-baseline")
    layers = _parse_layers(args.layers)
    classifier = _load_classifier(args.classifier)
    cc = classifier.config
    names = cc.attr_names or (
        CELEBA_ATTRS
        if cc.n_attrs == len(CELEBA_ATTRS)
        else tuple(f"attr_{i}" for i in range(cc.n_attrs))
    )
    codes = torch.from_numpy(read_codes(args.codes))
    if tuple(codes.shape[1:]) != (cc.num_ws, cc.w_dim):
        raise FaceeditError(
            f"{args.codes}: codes are [N, {codes.shape[1]}, {codes.shape[2]}], the classifier "
            f"reads [N, {cc.num_ws}, {cc.w_dim}]"
        )
    attrs = resolve_attrs(args.attrs, tuple(names))
    identity = _identity_fn(args.generator, args.identity, cc, device) if args.identity else None
    train_sl, val_sl = split_indices(len(codes))
    eval_codes = codes if args.all_codes or val_sl.stop <= val_sl.start else codes[val_sl]
    eval_codes = eval_codes[: args.n]
    methods = {}
    if args.transformers:
        editor = _load_editor(args.transformers, [names[a] for a in attrs], layers)
        for t in editor.transformers.values():
            t.to(device)
        methods["latent transformer"] = lambda ws, name, alpha: editor.edit_latents(
            ws, {name: alpha}
        )
    if not args.no_baseline:
        from faceedit.editing.directions import fit_directions

        if args.labels:
            labels, _ = read_labels(args.labels, attr_names=tuple(names))
            if len(labels) != len(codes):
                raise FaceeditError(f"{args.labels}: {len(labels)} rows for {len(codes)} codes")
            labels = torch.from_numpy(labels)
        else:
            with torch.no_grad():
                labels = (classifier(codes) > 0).float()
        ortho = resolve_attrs(args.orthogonal_to, tuple(names)) if args.orthogonal_to else []
        fit_sl = train_sl if train_sl.stop > 1 else slice(0, len(codes))
        directions = fit_directions(
            codes[fit_sl], labels[fit_sl], names, attrs, orthogonal_to=ortho, layers=layers
        )
        directions.save(out_file := _ensure(out) / "baseline_directions.npz")
        print(f"fitted {len(attrs)} linear direction(s) -> {out_file}")
        directions = dataclasses.replace(
            directions,
            directions=directions.directions.to(device),
            scale=directions.scale.to(device),
        )
        methods["linear (InterFaceGAN)"] = lambda ws, name, alpha: directions.edit_latents(
            ws, {name: alpha}
        )
    rows = evaluate_editing(
        eval_codes.to(device),
        classifier.to(device),
        methods,
        [(a, names[a]) for a in attrs],
        strengths=strengths or default_strengths(args.num_strengths, args.max_strength),
        identity=identity,
        progress=not args.quiet,
    )
    paths = write_results(rows, out)
    for method, s in summarise(rows).items():
        print(
            f"{method}: at strength {s['strength']:g}: target change {s['target_change']:.3f}, "
            f"preservation {s['preservation']:.3f}, latent distance {s['latent_distance']:.3f}"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    print(json.dumps({"codes": len(eval_codes), "attributes": [names[a] for a in attrs]}))
    return 0


def _eval_strengths(args: argparse.Namespace) -> list[float] | None:
    """``--strengths`` as a list (``None``: ``--num-strengths`` up to ``--max-strength``)."""
    import sys

    if args.strengths is None:
        return None
    if args.strengths.strip().isdigit():  # the old meaning was a count
        print(
            f"faceedit: --strengths {args.strengths} is one strength now; for "
            f"{args.strengths} strengths from 0 use --num-strengths {args.strengths}",
            file=sys.stderr,
        )
    strengths = parse_strengths(args.strengths)
    if any(s < 0 for s in strengths):
        raise FaceeditError(f"--strengths {args.strengths}: strengths must be non-negative")
    return strengths


def _identity_fn(model: str | None, identity: str, cc, device):
    from faceedit.checkpoints import load
    from faceedit.eval.latent import identity_similarity

    if not model:
        raise FaceeditError("--identity needs --generator (a generator to render the codes)")
    generator = load(model)
    if not hasattr(generator, "synthesis"):
        raise FaceeditError(f"{model}: not a StyleGAN2 generator")
    if (int(generator.num_ws), int(generator.w_dim)) != (cc.num_ws, cc.w_dim):
        raise FaceeditError(
            f"{model}: generator W+ is {generator.num_ws}x{generator.w_dim}, the codes "
            f"{cc.num_ws}x{cc.w_dim}"
        )
    return identity_similarity(generator.to(device), load(identity).to(device))


def _ensure(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return out
