"""``faceedit invert``: the W/W+ code of an aligned face, by optimisation projection."""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_device, add_output, add_quiet


def register(commands: Commands) -> None:
    p = commands.add(
        "invert",
        "find the StyleGAN2 code of an aligned face image by optimisation (Image2StyleGAN)",
        run,
    )
    p.add_argument("image", help="an aligned square face image (FFHQ-style crop)")
    p.add_argument(
        "--model", required=True, help="generator: checkpoint file or faceedit model dir"
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
    written = [save_npy(str(output), result.ws)]
    if result.noise is not None:
        noise_path = output.with_name(output.stem + "_noise.npz")
        with atomic_path(noise_path) as tmp, open(tmp, "wb") as f:
            np.savez(f, *[n.cpu().numpy() for n in result.noise])
        written.append(str(noise_path))
    if compare is not None:
        from faceedit.viz import image_grid, save_grid

        cells = [[rgb, tensor_to_uint8(result.img)[0]]]
        labels = ["target", f"{args.space} projection\nPSNR {result.psnr:.1f} dB"]
        title = f"{Path(args.image).name}: {args.steps} steps"
        save_grid(compare, image_grid(cells, None, labels, title=title, cell_size=max(128, res)))
        written.append(str(compare))
    print(f"loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g}, PSNR {result.psnr:.2f} dB")
    for path in written:
        print(f"wrote {path}")
    return 0
