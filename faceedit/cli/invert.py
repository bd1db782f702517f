"""``faceedit invert``: the W/W+ code of an aligned face, by optimisation projection, or
by pivotal tuning (``--invert pti``).

With ``--invert pti`` the projection's code is the pivot and a copy of the generator is
tuned for the image (:mod:`faceedit.editing.pti`). A PTI code means the image only with
its tuned weights, so two things are written: the pivot as ``OUTPUT.npy`` and the tuned
generator as a faceedit model directory ``OUTPUT_generator/`` beside it (the whole
generator: the original mapping and the tuned synthesis; the original model is never
changed). ``faceedit edit OUTPUT.npy --generator OUTPUT_generator --transformers ...``
renders the pivot and its edits with it.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_device, add_output, add_quiet
from faceedit.cli.inversion import add_pti_arguments, check_pti_options


def register(commands: Commands) -> None:
    p = commands.add(
        "invert",
        "find the StyleGAN2 code of an aligned face image by optimisation (Image2StyleGAN), "
        "or by pivotal tuning (--invert pti: also writes the tuned generator)",
        run,
    )
    p.add_argument("image", help="an aligned square face image (FFHQ-style crop)")
    p.add_argument(
        "--model", required=True, help="generator: checkpoint file or faceedit model dir"
    )
    p.add_argument(
        "--invert",
        choices=("optimize", "pti"),
        default="optimize",
        help="optimize: the projection's code; pti: that code as the pivot of pivotal "
        "tuning, written with the tuned generator (OUTPUT_generator/ beside the codes)",
    )
    p.add_argument("--steps", type=int, default=500, help="optimisation steps")
    p.add_argument("--space", choices=["w", "w+"], default="w+", help="latent space")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    p.add_argument(
        "--init",
        default=None,
        metavar="NPY",
        help="start from these codes (.npy, ws [1, num_ws, w_dim] e.g. from an encoder)",
    )
    p.add_argument(
        "--optimize-noise",
        action="store_true",
        help="also optimise the noise maps (saved beside the codes as *_noise.npz)",
    )
    p.add_argument(
        "--vgg16",
        default=None,
        metavar="PTH",
        help="torchvision VGG16 weights for a perceptual (LPIPS-style) loss; "
        "without them: pixel + multiscale losses",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the optimisation noise")
    add_pti_arguments(p)
    add_device(p)
    add_output(p, "output .npy of ws [1, num_ws, w_dim]")
    p.add_argument(
        "--compare",
        nargs="?",
        const=True,
        default=None,
        metavar="PNG",
        help="also write target | result (to PNG, or beside the output as NAME_compare.png)",
    )
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from faceedit.cli.runtime import load_generator, save_npy
    from faceedit.data.images import read_image, tensor_to_uint8, uint8_to_tensor
    from faceedit.editing.projection import project
    from faceedit.errors import FaceeditError
    from faceedit.fileio import atomic_path, check_output_path

    output = check_output_path(args.output)
    if output.suffix != ".npy":
        raise FaceeditError(f"-o {output}: the codes are written as .npy; use a .npy name")
    if args.compare is True:  # like edit --compare: beside the output
        args.compare = str(output.with_name(output.stem + "_compare.png"))
    compare = check_output_path(args.compare) if args.compare else None
    if args.steps < 1:
        raise FaceeditError(f"--steps {args.steps}: must be >= 1")
    check_pti_options(args)
    tuned_dir = None
    if args.invert == "pti":
        from faceedit.fileio import check_new_dir

        if args.optimize_noise:
            raise FaceeditError(
                "--invert pti tunes the generator with its stored noise: drop --optimize-noise"
            )
        tuned_dir = check_new_dir(output.with_name(output.stem + "_generator"))
        tuning = _tuning_options(args)  # bad values fail before the projection
    rgb = read_image(args.image)
    h, w = rgb.shape[:2]
    if abs(h - w) > 0.02 * max(h, w):
        raise FaceeditError(
            f"{args.image}: image is {w}x{h}; invert expects an aligned square face crop"
        )
    G = load_generator(args.model, args.device)
    device = G.w_avg.device
    res = G.img_resolution
    if (h, w) != (res, res):
        rgb = np.array(Image.fromarray(rgb).resize((res, res), Image.Resampling.LANCZOS))
    target = uint8_to_tensor(rgb).to(device)
    init = None
    if args.init:
        try:
            init = torch.from_numpy(np.load(args.init, allow_pickle=False)).float()
        except (OSError, ValueError) as e:
            raise FaceeditError(f"{args.init}: cannot read codes ({e})") from None
        if init.ndim == 3 and init.shape[0] > 1:
            init = init[:1]
    perceptual = None
    if args.vgg16:
        from faceedit.losses import load_vgg16_features

        perceptual = load_vgg16_features(args.vgg16).to(device)
    generator = torch.Generator().manual_seed(args.seed)
    result = project(
        G,
        target,
        space=args.space,
        steps=args.steps,
        lr=args.lr,
        init=init,
        optimize_noise=args.optimize_noise,
        perceptual=perceptual,
        generator=generator,
        progress=not args.quiet,
    )
    tuned = None
    if tuned_dir is not None:
        tuned = _tune(args, G, target, result.ws, tuning, tuned_dir)
    written = [save_npy(str(output), result.ws)]
    if tuned is not None:
        written.insert(0, str(tuned_dir))
    if result.noise is not None:
        noise_path = output.with_name(output.stem + "_noise.npz")
        with atomic_path(noise_path) as tmp, open(tmp, "wb") as f:
            np.savez(f, *[n.cpu().numpy() for n in result.noise])
        written.append(str(noise_path))
    if compare is not None:
        from faceedit.viz import image_grid, save_grid

        cells = [[rgb, tensor_to_uint8(result.img)[0]]]
        labels = ["target", f"{args.space} projection\nPSNR {result.psnr:.1f} dB"]
        if tuned is not None:
            with torch.no_grad():
                img = tuned.synthesis(result.ws, noise_mode="const").clamp(-1, 1)
            cells[0].append(tensor_to_uint8(img)[0])
            labels.append(f"pivotal tuning\nPSNR {tuned.psnr_tuned:.1f} dB")
        title = f"{Path(args.image).name}: {args.steps} steps"
        save_grid(compare, image_grid(cells, None, labels, title=title, cell_size=max(128, res)))
        written.append(str(compare))
    print(f"loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g}, PSNR {result.psnr:.2f} dB")
    if tuned is not None:
        print(f"pivotal tuning: PSNR {tuned.psnr_pivot:.2f} -> {tuned.psnr_tuned:.2f} dB")
    for path in written:
        print(f"wrote {path}")
    return 0


def _tuning_options(args: argparse.Namespace) -> dict:
    """PTI's options from the command line over the defaults (checked)."""
    from faceedit.editing import pti

    options = {
        "steps": args.pti_steps,
        "lr": args.pti_lr,
        "locality": args.pti_locality,
        "radius": args.pti_radius,
    }
    options["perceptual_weight"] = args.pti_perceptual_weight
    pti.check_options(**options)
    # the projection's --vgg16 serves the tuning too, unless a network is named for it
    spec = args.vgg16 if args.pti_perceptual == "auto" and args.vgg16 else args.pti_perceptual
    options["perceptual"], options["perceptual_name"] = pti.load_perceptual(
        spec, _domain(args.model)
    )
    return options


def _domain(model: str) -> str:
    """The domain the model (a bundle or a faceedit model directory) records, else ffhq."""
    from faceedit.hub import HubError, model_metadata, read_bundle, resolve

    try:
        spec = read_bundle(resolve(model, "--model"))
    except HubError:
        spec = {}
    return str(spec.get("domain") or model_metadata(model).get("domain") or "ffhq")


def _tune(args: argparse.Namespace, G, target, pivot, tuning: dict, directory):
    """Tune ``G`` around ``pivot`` and save the tuned generator into ``directory``
    (written whole or not at all); returns the :class:`~faceedit.editing.pti.TuningResult`."""
    import torch

    from faceedit.editing import pti
    from faceedit.fileio import atomic_dir
    from faceedit.lineage import dedupe, record

    options = dict(tuning)
    name = options.pop("perceptual_name")
    result = pti.tune_generator(
        G,
        target,
        pivot,
        generator=torch.Generator().manual_seed(args.seed),
        progress=not args.quiet,
        **options,
    )
    code = pti.TunedCode(pivot, [result.synthesis], [result.psnr_pivot], [result.psnr_tuned], name)
    note = f"pivotal tuning for {args.image} (faceedit invert --invert pti)"
    lineage = record("init", args.model, note=note)
    if name != "pixels":
        lineage += record("loss network", name, note="perceptual loss of the tuning")
    settings = {k: v for k, v in options.items() if k != "perceptual"}
    metadata = {
        "lineage": dedupe(lineage),
        "pti": {**settings, "perceptual": name, "image": str(args.image)},
        "psnr_pivot": result.psnr_pivot,
        "psnr_tuned": result.psnr_tuned,
    }
    with atomic_dir(directory) as tmp:
        code.tuned_generator(G).save_pretrained(tmp, metadata=metadata)
    return result
