"""``faceedit edit``: edit faces of photos, W+ codes, or aligned crops as AttGAN grids.

One verb, three inputs:

- photos (the default): detect, align, invert/encode, edit, paste back; a thin verb over
  :mod:`faceedit.editing.pipeline` (see its docstring for the bundle format);
- W+ codes (an input ending in ``.npy``): edit the codes with latent transformers and
  write edited codes (``-o out.npy``) or a strip of renders over strengths
  (:mod:`faceedit.cli.edit_codes`; formerly ``faceedit edit-latent``);
- ``--method attgan --mode grid|slide|style``: labelled grids of aligned crops
  (:mod:`faceedit.cli.edit_grids`; formerly ``faceedit attgan-edit``).
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import (
    Commands,
    add_device,
    add_output,
    add_quiet,
)
from faceedit.cli.edit_grids import add_grid_arguments
from faceedit.cli.inversion import (
    INVERT_CHOICES,
    add_pti_arguments,
    check_pti_options,
    load_pti_networks,
    pti_options,
)
from faceedit.editing.methods import METHODS

MODES = ("grid", "slide", "style")


def register(commands: Commands) -> None:
    p = commands.add(
        "edit",
        "edit facial attributes of photos, W+ codes (.npy) or aligned crops (AttGAN grids)",
        run,
        description=(
            "Edit the faces of one or more photos: detect, FFHQ-align, invert into "
            "StyleGAN2's W+ (latent) or encode (AttGAN), edit, paste back. "
            "Example: faceedit edit photo.jpg --attr Smiling=1 --attr Eyeglasses=0.5 "
            "--model BUNDLE_DIR -o out.png; without --model the official bundle fetched "
            "by `faceedit download lt-ffhq-e4e` is used. An input ending in .npy holds W+ "
            "codes: they are edited by --transformers and written as codes (-o out.npy) or rendered by "
            "--generator as a strip over strengths (-o strip.png). With --method attgan "
            "--mode grid|slide|style, aligned crops become one labelled grid."
        ),
    )
    p.add_argument("inputs", nargs="*", help="photos and/or folders of photos, or one codes .npy")
    add_output(
        p,
        "output image (one input) or an existing directory (several inputs or a folder); "
        "W+ codes: .npy codes or a .png strip; --mode: the grid PNG",
    )
    add_model_arguments(p, attr_required=False)
    photos = p.add_argument_group("photos")
    photos.add_argument(
        "--aligned",
        action="store_true",
        help="inputs are already aligned square face crops: no detection, no paste-back",
    )
    photos.add_argument(
        "--compare", action="store_true", help="also write NAME_compare.png (before | after)"
    )
    photos.add_argument(
        "--edits",
        metavar="FILE",
        help="per-photo edits, one photo a line: CSV 'photo.jpg,Smiling=1,Eyeglasses=-1' or "
        'JSON lines {"image": "photo.jpg", "edits": {"Smiling": 1}}; paths relative to FILE; '
        "-o names a directory; the models load once and each photo is inverted once",
    )
    photos.add_argument(
        "--overwrite",
        action="store_true",
        help="allow an output that is an input, or an output folder that holds inputs",
    )
    photos.add_argument(
        "--reconstruct",
        action="store_true",
        help="write the unedited reconstruction: as the output without --attr, else also "
        "as NAME_recon.png",
    )
    faces = photos.add_mutually_exclusive_group()
    faces.add_argument(
        "--face-index", type=int, default=None, help="which face, counting from the largest (0)"
    )
    faces.add_argument("--all-faces", action="store_true", help="edit every face found")
    add_quiet(photos, help="no progress bar over several photos")
    add_sweep_arguments(p.add_argument_group("strength sweeps (W+ codes strip, --mode slide)"))
    codes = p.add_argument_group("W+ codes (an input ending in .npy)")
    codes.add_argument("--layers", default="0-10", help="edited W+ rows, e.g. 0-10, or 'all'")
    codes.add_argument("--max-codes", type=int, default=8, help="rows of the strip")
    grids = p.add_argument_group("AttGAN grids (--method attgan --mode ...)")
    grids.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="grid: flip every attribute in turn (or set the --attr edits); slide: sweep "
        "one --attr NAME; style: show styles of one --attr NAME",
    )
    add_grid_arguments(grids)


def add_sweep_arguments(g: argparse._ArgumentGroup) -> None:
    """``--strengths LIST`` or ``--strength-range LO,HI`` with ``--num-strengths N``."""
    g.add_argument(
        "--strengths",
        metavar="S,S,..",
        help="comma-separated strengths (W+ codes strip: multiples of each --attr strength)",
    )
    g.add_argument(
        "--strength-range",
        metavar="LO,HI",
        help="sweep from LO to HI (W+ codes strip: -1.5,1.5; --mode slide: -1,1); a "
        "negative LO needs the = form: --strength-range=-1,1",
    )
    g.add_argument(
        "--num-strengths",
        type=int,
        metavar="N",
        help="strengths in the sweep (W+ codes strip: 7; --mode slide: 10)",
    )


def add_model_arguments(p: argparse.ArgumentParser, attr_required: bool = True) -> None:
    """Options shared by ``edit`` and ``video``: edits, method, model parts, inversion."""
    p.add_argument(
        "--attr",
        action="append",
        required=attr_required,
        metavar="NAME=STRENGTH",
        help="attribute and strength, e.g. Smiling=1 or Eyeglasses=-1 (repeatable)",
    )
    p.add_argument("--method", choices=list(METHODS), default="latent")
    p.add_argument(
        "--model",
        help="latent: a bundle directory (bundle.json), a pSp/e4e file or a generator; "
        "attgan: an AttGAN file, directory or bundle; or a downloaded model name "
        "(default for latent: the downloaded official bundle, lt-ffhq-e4e then lt-ffhq-psp; "
        "`faceedit download lt-ffhq-e4e` fetches it)",
    )
    p.add_argument("--generator", help="StyleGAN2 generator (overrides the bundle's)")
    p.add_argument("--encoder", help="pSp/e4e encoder (overrides the bundle's)")
    p.add_argument(
        "--transformers", metavar="DIR", help="latent transformers directory (tnet_<Name>/ ...)"
    )
    p.add_argument("--classifier", help="latent classifier, for attribute scores")
    p.add_argument(
        "--invert",
        choices=INVERT_CHOICES,
        default="auto",
        help="latent inversion: the encoder, optimisation projection, or pivotal tuning "
        "(pti: the generator tuned per face, slower, more faithful; auto: the encoder when "
        "the model has one)",
    )
    p.add_argument("--steps", type=int, default=200, help="projection steps (--invert optimize)")
    p.add_argument("--space", choices=("w", "w+"), default="w+", help="projection space")
    p.add_argument(
        "--blend", choices=("feather", "seamless"), default="feather", help="paste-back blending"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the projection's exploration (--mode style: of the styles)",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "bf16"),
        default="float32",
        help="arithmetic of the networks: bf16 is faster on CPUs with AVX-512 BF16 or AMX, "
        "within a few 1/100 of the float32 image (see README, performance)",
    )
    add_pti_arguments(p)
    add_device(p)


def build_editor(args: argparse.Namespace, check: bool = True):
    """The :class:`~faceedit.editing.pipeline.FaceEditor` the options describe, and the
    ``--attr`` edits (checked against the model unless ``check`` is false)."""
    from faceedit.cli.common import parse_attr_strengths
    from faceedit.editing.pipeline import build_editor as build
    from faceedit.train.common import resolve_device

    edits = parse_attr_strengths(args.attr)
    check_pti_options(args)
    device = resolve_device(args.device)
    if args.model is None and args.method == "latent" and not (args.generator or args.encoder):
        args.model = default_official_model()  # recorded, e.g. in a video's resume settings
    editor = build(
        args.method,
        args.model,
        generator=args.generator,
        encoder=args.encoder,
        transformers=args.transformers,
        classifier=args.classifier,
        device=device,
        invert=args.invert,
        steps=args.steps,
        space=args.space,
        blend=args.blend,
        seed=args.seed,
        precision=getattr(args, "precision", "float32"),
        **pti_options(args),
    )
    load_pti_networks(editor)
    return editor, editor.check_edits(edits) if check else edits


def default_official_model() -> str:
    """The downloaded official bundle to use when no ``--model`` is given (e4e, then pSp:
    :func:`faceedit.hub.default_model`), said on stderr in one line.

    Raises:
        FaceeditError: none is downloaded; the message names the command that fetches
            one and ``faceedit models``.
    """
    import sys

    from faceedit.errors import FaceeditError
    from faceedit.hub import catalogue, default_model
    from faceedit.registry import DEFAULT_BUNDLES

    name = default_model()
    if name is None:
        raise FaceeditError(
            "no --model given and no official model downloaded: run `faceedit download "
            f"{DEFAULT_BUNDLES[0]}` for photos, or give --model (`faceedit models` lists "
            "every model; the shipped avatar-latent edits avatars)"
        )
    print(f"faceedit: no --model given: using {name} ({catalogue()[name].path})", file=sys.stderr)
    return name


def _collect_inputs(items: list[str]) -> tuple[list, bool]:
    """Input files (folders expanded, sorted) and whether the output must be a directory."""
    from pathlib import Path

    from faceedit.data.images import IMAGE_SUFFIXES
    from faceedit.errors import FaceeditError

    files = []
    many = len(items) > 1
    for item in items:
        path = Path(item)
        if path.is_dir():
            many = True
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise FaceeditError(f"{path}: no images in this folder")
            files.extend(found)
        else:
            files.append(path)  # a missing file is reported with the others
    return files, many


_WRITABLE = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _output_paths(files: list, output: str, many: bool) -> list:
    import os
    from pathlib import Path

    from faceedit.errors import FaceeditError
    from faceedit.fileio import check_output_path

    out = Path(output)
    if not many and not out.is_dir():
        check_output_path(out)
        if out.suffix.lower() not in _WRITABLE:
            raise FaceeditError(f"-o {out}: use an image suffix ({', '.join(_WRITABLE)})")
        return [out]
    if not out.is_dir():
        raise FaceeditError(
            f"-o {out}: several inputs need an existing output directory"
            + ("" if out.exists() else " (it does not exist)")
        )
    if not os.access(out, os.W_OK):
        raise FaceeditError(f"-o {out}: output directory is not writable")
    paths = []
    seen: set = set()
    for f in files:
        suffix = f.suffix.lower() if f.suffix.lower() in _WRITABLE else ".png"
        target = out / (f.stem + suffix)
        if target in seen:  # same name from two folders: keep both
            target = out / f"{f.stem}_{len(seen)}{suffix}"
        seen.add(target)
        paths.append(target)
    return paths


def _write(path, rgb) -> None:
    """Write atomically; JPEG/WebP at high quality (Pillow's default 75 shows on faces)."""
    from PIL import Image

    from faceedit.data.images import write_image
    from faceedit.fileio import atomic_path

    if path.suffix.lower() not in (".jpg", ".jpeg", ".webp"):
        write_image(path, rgb)
        return
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, quality=95)


# which photo options each other input kind refuses (flag, dest): one clear line, not a
# silently ignored option
_PHOTO_ONLY = (
    ("--aligned", "aligned"),
    ("--overwrite", "overwrite"),
    ("--compare", "compare"),
    ("--edits", "edits"),
    ("--reconstruct", "reconstruct"),
    ("--face-index", "face_index"),
    ("--all-faces", "all_faces"),
    ("--encoder", "encoder"),
)
_SWEEP_ONLY = (
    ("--strengths", "strengths"),
    ("--strength-range", "strength_range"),
    ("--num-strengths", "num_strengths"),
)
_LATENT_PARTS = (
    ("--generator", "generator"),
    ("--transformers", "transformers"),
    ("--classifier", "classifier"),
)
_GRID_ONLY = (
    ("--setting", "setting"),
    ("--current", "current"),
    ("--test-int", "test_int"),
    ("--plain", "plain"),
)


def run(args: argparse.Namespace) -> int:
    """Dispatch on the input kind: AttGAN grids (``--mode``), W+ codes (``.npy``) or photos."""
    from faceedit.errors import FaceeditError

    codes = [i for i in args.inputs if i.lower().endswith(".npy")]
    if args.mode is not None:
        if args.method != "attgan":
            raise FaceeditError(f"--mode {args.mode}: AttGAN grids need --method attgan")
        if codes:
            raise FaceeditError(f"--mode {args.mode}: takes aligned face images, not W+ codes")
        _refuse(args, f"--mode {args.mode}", _PHOTO_ONLY + _LATENT_PARTS)
        from faceedit.cli.edit_grids import run_edit_grid

        return run_edit_grid(args)
    if codes:
        if len(args.inputs) != 1:
            raise FaceeditError("W+ codes: give one codes .npy (and no photos) per call")
        if args.method != "latent":
            raise FaceeditError(f"{codes[0]}: W+ codes are edited with --method latent")
        _refuse(args, "W+ codes", _PHOTO_ONLY + _GRID_ONLY + _LATENT_PARTS[2:])
        if args.invert == "pti":
            raise FaceeditError(
                "W+ codes: are edited as they are, not inverted; for codes from "
                "`faceedit invert --invert pti` pass the tuned generator written beside "
                "them as --generator"
            )
        from faceedit.cli.edit_codes import run_edit_codes

        return run_edit_codes(args)
    return _run_photos(args)


def _refuse(args: argparse.Namespace, what: str, options) -> None:
    from faceedit.errors import FaceeditError

    given = [flag for flag, dest in options if getattr(args, dest) not in (None, False)]
    if given:
        raise FaceeditError(f"{what}: takes no {', '.join(given)}")


def _run_photos(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from faceedit.cli.common import parse_attr_strengths
    from faceedit.errors import FaceeditError

    _refuse(args, "photos", _SWEEP_ONLY + _GRID_ONLY)
    if args.face_index is not None and args.face_index < 0:
        raise FaceeditError(f"--face-index {args.face_index}: must be >= 0")
    if args.edits:
        if args.inputs:
            raise FaceeditError("--edits FILE names the photos: give no photos beside it")
        jobs = read_edits_file(args.edits, parse_attr_strengths(args.attr))
        outputs = _job_outputs(jobs, args.output)
    else:
        if not args.inputs:
            raise FaceeditError("edit: give photos (or --edits FILE)")
        if not args.attr and not args.reconstruct:
            raise FaceeditError("edit: give the edits, e.g. --attr Smiling=1 (repeatable)")
        files, many = _collect_inputs(args.inputs)
        edits = parse_attr_strengths(args.attr) if args.attr else None
        jobs = [(f, edits) for f in files]
        outputs = _output_paths(files, args.output, many)
    from faceedit.fileio import check_not_inputs

    targets = [*outputs, args.output] if Path(args.output).is_dir() else outputs
    check_not_inputs(targets, [src for src, _ in jobs], args.overwrite)
    editor, _ = build_editor(args, check=False)
    for _, edits in jobs:  # every row's names and strengths, before any photo is touched
        if edits is not None:
            editor.check_edits(edits)
    face_index = "all" if args.all_faces else args.face_index

    failed = 0
    prepared: dict = {}  # photo -> its faces and codes, while its rows are being edited
    bar = tqdm(
        list(zip(jobs, outputs, strict=True)),
        desc="editing",
        unit="photo",
        disable=len(jobs) < 2 or args.quiet,
    )
    for (src, edits), dst in bar:
        try:
            if not src.is_file():
                raise FaceeditError(f"{src}: no such file")
            if src not in prepared:
                prepared.clear()  # rows of one photo are consecutive (see read_edits_file)
                prepared[src] = editor.prepare(str(src), face_index, aligned=args.aligned)
            photo = prepared[src]
            result = editor.render(photo, edits)
            _write(dst, result.image)
            written = [dst]
            if args.reconstruct and edits is not None:
                rec_path = dst.with_name(dst.stem + "_recon.png")
                _write(rec_path, editor.render(photo, None).image)
                written.append(rec_path)
            if args.compare:
                cmp_path = dst.with_name(dst.stem + "_compare.png")
                _write(cmp_path, result.compare())
                written.append(cmp_path)
        except FaceeditError as e:
            failed += 1
            msg = str(e)
            if str(src) not in msg:
                msg = f"{src}: {msg}"
            tqdm.write(f"faceedit: error: {msg}", file=sys.stderr)
            continue
        n = len(result.faces)
        done = "reconstructed" if edits is None else "edited"
        tqdm.write(
            f"{src}: {n} face{'s' if n != 1 else ''} {done} -> "
            + ", ".join(str(p) for p in written)
        )
    if failed:
        if len(jobs) > 1:
            print(f"faceedit: {failed} of {len(jobs)} photos failed", file=sys.stderr)
        return 1
    return 0


def read_edits_file(path: str, defaults: dict[str, float] | None = None) -> list:
    """``[(photo Path, {attr: strength})]`` from a CSV or JSON-lines edits file.

    CSV: ``photo.jpg,Smiling=1,Eyeglasses=-1`` per line (``#`` starts a comment); JSON
    lines: ``{"image": "photo.jpg", "edits": {"Smiling": 1}}``. Photo paths are relative
    to the file. ``defaults`` (the ``--attr`` edits) apply to every row unless the row sets
    the attribute. Rows of one photo are put next to each other (first appearance order)
    so that it is inverted once.

    Raises:
        FaceeditError: an unreadable file or a malformed row, naming the line.
    """
    import json
    from pathlib import Path

    from faceedit.cli.common import parse_attr_strengths
    from faceedit.errors import FaceeditError

    source = Path(path)
    try:
        lines = source.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FaceeditError(f"--edits {source}: cannot be read ({e})") from None
    rows: dict[Path, list[dict[str, float]]] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"--edits {source}:{number}"
        if line.startswith("{"):
            try:
                item = json.loads(line)
                image, given = item["image"], item.get("edits", {})
                edits = {str(k): float(v) for k, v in dict(given).items()}
            except (ValueError, KeyError, TypeError) as e:
                raise FaceeditError(
                    f'{where}: expected {{"image": ..., "edits": {{NAME: STRENGTH}}}} ({e})'
                ) from None
        else:
            image, *items = [c.strip() for c in line.split(",")]
            try:
                edits = parse_attr_strengths([i for i in items if i])
            except FaceeditError as e:
                raise FaceeditError(f"{where}: {e}") from None
        if not image:
            raise FaceeditError(f"{where}: no photo named")
        edits = {**(defaults or {}), **edits}
        if not edits:
            raise FaceeditError(f"{where}: no edit for {image} (and no --attr)")
        photo = Path(image) if Path(image).is_absolute() else source.parent / image
        rows.setdefault(photo, []).append(edits)
    if not rows:
        raise FaceeditError(f"--edits {source}: no rows")
    return [(photo, edits) for photo, many in rows.items() for edits in many]


def _job_outputs(jobs: list, output: str) -> list:
    """One output per row in the directory ``output``: ``STEM_Attr+1_Attr-0.5.png``."""
    import os
    from pathlib import Path

    from faceedit.errors import FaceeditError

    out = Path(output)
    if not out.is_dir() or not os.access(out, os.W_OK):
        raise FaceeditError(f"-o {out}: --edits needs an existing, writable output directory")
    paths, seen = [], set()
    for photo, edits in jobs:
        tag = "_".join(f"{k}{v:+g}" for k, v in edits.items())
        target = out / f"{photo.stem}_{tag}.png"
        if target in seen:
            target = out / f"{photo.stem}_{tag}_{len(seen)}.png"
        seen.add(target)
        paths.append(target)
    return paths
