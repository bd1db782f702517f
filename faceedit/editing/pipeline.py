"""Edit the faces of a photo in one call: detect, align, invert or encode, edit, paste back.

Two methods, as in the two papers faceedit follows:

- ``"latent"`` (Yao et al., ICCV 2021): the FFHQ-aligned crop is inverted into StyleGAN2's
  W+ space, by an encoder (pSp / e4e, Richardson et al. CVPR 2021, Tov et al. SIGGRAPH
  2021) or by optimisation projection (Image2StyleGAN, Abdal et al. ICCV 2019); the code
  is edited by latent transformers (:class:`~faceedit.editing.latent.LatentEditor`) and
  synthesised.
- ``"attgan"`` (He et al., IEEE TIP 2019): the aligned crop is encoded and decoded by
  AttGAN with the new attributes (:class:`~faceedit.editing.attgan.AttGANEditor`).

Either way the edited crop is warped back into the photo under a feathered mask
(:meth:`faceedit.faces.AlignedFace.paste_back`): pixels outside the face's crop square
are the photo's own.

A latent "model" has several parts, so it is given as a **bundle**: a directory with a
``bundle.json`` naming them (paths relative to the directory; each part is anything
:func:`faceedit.load` reads: a faceedit model directory or an official file)::

    {
      "method": "latent",
      "generator": "stylegan2",            # optional when "encoder" is a pSp/e4e file
      "encoder": "e4e_ffhq_encode.pt",     # optional: optimisation projection without
      "transformers": "transformers",      # a directory (tnet_<Name>/ or tnet_<k>.pth.tar)
                                           # or {"Smiling": "path", ...}
      "classifier": "classifier",          # optional: attribute scores of the result
      "layers": [0, 11]                    # optional: W+ rows kept from the edit
    }

An AttGAN bundle is ``{"method": "attgan", "model": "attgan"}``; a plain AttGAN file or
directory works as well. Every part can also be given on its own (``generator=``,
``encoder=``, ... here; ``--generator``, ``--encoder``, ... on the command line), which
overrides the bundle's entry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from faceedit.errors import CheckpointError, FaceeditError
from faceedit.faces.align import AlignedFace, ImageInput, load_rgb

METHODS = ("latent", "attgan")
INVERSIONS = ("auto", "encoder", "optimize")
BUNDLE_FILE = "bundle.json"
# strengths far beyond what either method was trained with only produce artefacts
MAX_STRENGTH = 10.0


class EditError(FaceeditError):
    """An edit request (attribute, strength, model part) is unusable."""


# --------------------------------------------------------------------------- model parts


def _resolve_path(text: str | os.PathLike, what: str) -> Path:
    """A path that exists, a model shipped with faceedit (``avatar-latent``: a bundle or
    a model directory), or a registry name already downloaded into the cache."""
    path = Path(text)
    if path.exists():
        return path
    from faceedit import registry
    from faceedit.shipped import shipped_models, shipped_path

    shipped = shipped_path(str(text))
    if shipped is not None:
        return shipped

    entry = registry.REGISTRY.get(str(text))
    if entry is not None:
        local = registry.local_path(entry)
        if local.exists():
            return local
        raise EditError(
            f"{what} {text!r} is a known model but not downloaded: faceedit download {text}"
        )
    known = ", ".join(shipped_models()) or "none"
    raise EditError(
        f"{text}: {what} not found (no such file or directory, nor a model name; "
        f"shipped with faceedit: {known})"
    )


def read_bundle(path: str | os.PathLike) -> dict:
    """The parts named by ``path/bundle.json`` (paths made absolute); ``{}`` if none."""
    path = Path(path)
    spec = path / BUNDLE_FILE if path.is_dir() else path
    if spec.name != BUNDLE_FILE or not spec.is_file():
        return {}
    try:
        data = json.loads(spec.read_text())
    except (OSError, ValueError) as e:
        raise EditError(f"{spec}: not a readable bundle.json ({e})") from None
    if not isinstance(data, dict):
        raise EditError(f"{spec}: bundle.json must hold an object")
    root = spec.parent
    out = dict(data)
    for key in ("generator", "encoder", "classifier", "model"):
        if isinstance(out.get(key), str):
            out[key] = str(root / out[key])
    t = out.get("transformers")
    if isinstance(t, str):
        out["transformers"] = str(root / t)
    elif isinstance(t, dict):
        out["transformers"] = {k: str(root / v) for k, v in t.items()}
    elif t is not None:
        raise EditError(f"{spec}: 'transformers' must be a directory or a name -> path map")
    return out


def find_transformers(source: str | os.PathLike | Mapping[str, str]) -> dict[str, Path]:
    """``{attribute: path}`` of the transformers in a directory (or a given map).

    A directory may hold faceedit ``tnet_<Name>/`` model directories and the original
    release's ``tnet_<k>.pth.tar`` files (``k`` = CelebA attribute index). Nothing is
    loaded here: the original files are large and only the requested ones are needed.
    """
    from faceedit.data.latents import CELEBA_ATTRS

    if isinstance(source, Mapping):
        return {str(k): Path(v) for k, v in source.items()}
    root = Path(source)
    if not root.exists():
        raise EditError(f"{root}: transformers directory not found")
    if root.is_file() or (root / "config.json").is_file():
        # one transformer: its attribute comes from its config when loaded
        return {"": root}
    found: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if not p.name.startswith("tnet_"):
            continue
        stem = p.name[len("tnet_") :]
        if p.is_dir():
            found[stem] = p
        elif stem.endswith(".pth.tar") and stem[: -len(".pth.tar")].isdigit():
            k = int(stem[: -len(".pth.tar")])
            found[CELEBA_ATTRS[k] if k < len(CELEBA_ATTRS) else f"attr_{k}"] = p
    if not found:
        raise EditError(f"{root}: no transformers (tnet_<Name>/ or tnet_<k>.pth.tar) found")
    return found


@dataclass
class LatentParts:
    """What latent editing needs, loaded (transformers on demand).

    Attributes:
        generator: StyleGAN2 generator (``G.synthesis(ws) -> img [N,3,R,R]``).
        transformer_paths: ``{attribute: path}``; :meth:`transformer` loads one.
        encoder: ``E(img [N,3,S,S] in [-1,1]) -> ws [N,num_ws,w_dim]`` or ``None``.
        classifier: latent classifier for attribute scores, or ``None``.
        layers: W+ rows kept from the edit (``None``: all).
    """

    generator: nn.Module
    transformer_paths: dict[str, Path]
    encoder: nn.Module | None = None
    classifier: nn.Module | None = None
    layers: tuple[int, int] | None = (0, 11)
    _loaded: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    def transformer(self, name: str) -> nn.Module:
        from faceedit.checkpoints import load
        from faceedit.nets.latent import LatentTransformer

        if name not in self._loaded:
            path = self.transformer_paths[name]
            model = load(path)
            if not isinstance(model, LatentTransformer):
                raise EditError(f"{path}: not a latent transformer")
            self._loaded[name] = model.to(self.generator.w_avg.device)
        return self._loaded[name]

    @property
    def attributes(self) -> list[str]:
        return list(self.transformer_paths)


def load_latent_parts(
    model: str | os.PathLike | None = None,
    generator: str | os.PathLike | None = None,
    encoder: str | os.PathLike | None = None,
    transformers: str | os.PathLike | Mapping[str, str] | None = None,
    classifier: str | os.PathLike | None = None,
    layers: tuple[int, int] | None | str = "bundle",
    device: str | torch.device = "cpu",
) -> LatentParts:
    """Load the parts of a latent model from a bundle and/or individual paths.

    Args:
        model: a bundle directory (with ``bundle.json``), or a pSp/e4e file (encoder and
            generator), or a generator alone.
        generator, encoder, transformers, classifier: individual parts (override the
            bundle's).
        layers: W+ rows kept from the edit; ``"bundle"`` = the bundle's or ``(0, 11)``.

    Raises:
        EditError: a part is missing or of the wrong kind, naming the file.
    """
    from faceedit.checkpoints import load
    from faceedit.nets.latent import LatentClassifier
    from faceedit.nets.stylegan2 import StyleGAN2Generator

    spec: dict = {}
    if model is not None:
        path = _resolve_path(model, "--model")
        spec = read_bundle(path)
        if not spec:
            spec = {"model": str(path)}
        if spec.get("method", "latent") != "latent":
            raise EditError(f"{model}: a {spec['method']} bundle, not a latent one")
    for key, value in (
        ("generator", generator),
        ("encoder", encoder),
        ("transformers", transformers),
        ("classifier", classifier),
    ):
        if value is not None:
            spec[key] = value

    def _load(key: str) -> nn.Module | None:
        if spec.get(key) is None:
            return None
        path = _resolve_path(spec[key], key)
        try:
            return load(path).to(device).eval()
        except CheckpointError as e:
            raise EditError(f"{key}: {e}") from None

    G = _load("generator")
    E = _load("encoder")
    if "model" in spec:  # a single file: a pSp/e4e pair or a generator
        whole = _load("model")
        if isinstance(whole, StyleGAN2Generator):
            G = G or whole
        elif hasattr(whole, "encoder") and hasattr(whole, "decoder"):
            E = E or whole.encoder
            G = G or whole.decoder
        else:
            raise EditError(
                f"{spec['model']}: holds a {type(whole).__name__}; --model needs a bundle "
                "directory (bundle.json), a StyleGAN2 generator or a pSp/e4e file"
            )
    if E is not None and hasattr(E, "decoder") and hasattr(E, "encoder"):
        G = G or E.decoder
        E = E.encoder
    if G is None:
        raise EditError("latent editing needs a generator: --model BUNDLE or --generator PATH")
    if not isinstance(G, StyleGAN2Generator):
        raise EditError(f"generator: {spec.get('generator')} holds a {type(G).__name__}")
    if E is not None and getattr(E, "num_ws", G.num_ws) != G.num_ws:
        raise EditError(f"encoder: gives {E.num_ws} W+ rows, the generator has {G.num_ws}")
    C = _load("classifier")
    if C is not None and not isinstance(C, LatentClassifier):
        raise EditError(f"classifier: {spec['classifier']} holds a {type(C).__name__}")
    if spec.get("transformers") is None:
        raise EditError("latent editing needs transformers: a bundle or --transformers DIR")
    paths = find_transformers(spec["transformers"])
    if layers == "bundle":
        raw = spec.get("layers", [0, 11])
        layers = None if raw in (None, "all") else (int(raw[0]), int(raw[1]))
    parts = LatentParts(G, paths, E, C, layers)
    if "" in paths:  # a single transformer: name it after its config
        t = parts.transformer("")
        name = t.config.attr_name or paths[""].stem
        parts.transformer_paths = {name: paths[""]}
        parts._loaded = {name: t}
    return parts


def load_attgan(model: str | os.PathLike, device: str | torch.device = "cpu"):
    """An :class:`~faceedit.editing.attgan.AttGANEditor` from a file, directory, bundle or
    training run (its ``model/``, or the latest ``checkpoint.pt`` while it still trains)."""
    from faceedit.checkpoints.attgan import load_trained
    from faceedit.editing.attgan import AttGANEditor

    path = _resolve_path(model, "--model")
    spec = read_bundle(path)
    if spec:
        if spec.get("method") != "attgan" or not spec.get("model"):
            raise EditError(f"{path}: not an AttGAN bundle (needs method attgan and model)")
        path = _resolve_path(spec["model"], "model")
    try:
        net = load_trained(path)
    except CheckpointError as e:
        raise EditError(str(e)) from None
    # the aligned crop is already square: resize it, do not crop it again
    return AttGANEditor(net.to(device), crop="none")


# --------------------------------------------------------------------------- results


@dataclass(eq=False)
class FaceEdit:
    """One edited face.

    Attributes:
        face: the aligned face (crop, quad, landmarks); ``None`` for ``aligned`` input.
        edited_crop: ``uint8 [S, S, 3]``, the edited aligned crop.
        ws: the inverted code ``[1, num_ws, w_dim]`` (latent method), else ``None``.
        edited_ws: the edited code (latent method), else ``None``.
        scores: attribute probabilities of the result ``{attr: float}`` (when a
            classifier is available).
    """

    face: AlignedFace | None
    edited_crop: np.ndarray
    ws: torch.Tensor | None = None
    edited_ws: torch.Tensor | None = None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class PhotoEditResult:
    """What :func:`edit_photo` returns.

    Attributes:
        image: the edited photo, RGB ``uint8 [H, W, 3]``.
        original: the photo as read, RGB ``uint8 [H, W, 3]``.
        faces: one :class:`FaceEdit` per edited face.
    """

    image: np.ndarray
    original: np.ndarray
    faces: list[FaceEdit]

    def compare(self) -> np.ndarray:
        """Before | after side by side, ``uint8 [H, 2W, 3]``."""
        return np.concatenate([self.original, self.image], axis=1)


# --------------------------------------------------------------------------- the editor


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.array(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))


class FaceEditor:
    """The whole photo pipeline for one method and one set of models.

    Args:
        method: ``"latent"`` or ``"attgan"``.
        latent: the latent parts (method ``"latent"``), see :func:`load_latent_parts`.
        attgan: an :class:`~faceedit.editing.attgan.AttGANEditor` (method ``"attgan"``).
        invert: ``"encoder"``, ``"optimize"`` or ``"auto"`` (the encoder when there is
            one, else optimisation).
        steps: projection steps (``invert="optimize"``).
        space: projection space, ``"w"`` or ``"w+"``.
        lr: projection learning rate.
        encoder_size: side the crop is resized to for the encoder (pSp/e4e: 256).
        blend: paste-back blending, ``"feather"`` or ``"seamless"``.
        detector: face detector (a :class:`~faceedit.faces.FaceDetector` or backend name).
        seed: seed of the projection's random exploration.
        progress: show the projection's progress bar.
        name: the model's name or path, for messages.
    """

    def __init__(
        self,
        method: str = "latent",
        latent: LatentParts | None = None,
        attgan=None,
        invert: str = "auto",
        steps: int = 200,
        space: str = "w+",
        lr: float = 0.1,
        encoder_size: int = 256,
        blend: str = "feather",
        detector=None,
        seed: int = 0,
        progress: bool = False,
        name: str = "",
    ) -> None:
        if method not in METHODS:
            raise EditError(f"method {method!r}: choose from {', '.join(METHODS)}")
        if invert not in INVERSIONS:
            raise EditError(f"invert {invert!r}: choose from {', '.join(INVERSIONS)}")
        if method == "latent" and latent is None:
            raise EditError("method latent needs its models (load_latent_parts)")
        if method == "attgan" and attgan is None:
            raise EditError("method attgan needs an AttGAN model (load_attgan)")
        if steps < 1:
            raise EditError(f"steps must be >= 1, got {steps}")
        self.method = method
        self.latent = latent
        self.attgan = attgan
        if method == "latent":
            if invert == "auto":
                invert = "encoder" if latent.encoder is not None else "optimize"
            if invert == "encoder" and latent.encoder is None:
                raise EditError(
                    "--invert encoder: this model has no encoder (give --encoder, or use "
                    "--invert optimize)"
                )
        self.invert = invert
        self.steps, self.space, self.lr = steps, space, lr
        self.encoder_size = encoder_size
        self.blend = blend
        self.detector = detector
        self.seed = seed
        self.progress = progress
        self.name = name

    @property
    def attributes(self) -> list[str]:
        """Attribute names this model can edit."""
        if self.method == "latent":
            return self.latent.attributes
        return list(self.attgan.names)

    @property
    def crop_size(self) -> int:
        """Side of the aligned crop the model works on."""
        if self.method == "latent":
            return int(self.latent.generator.img_resolution)
        return int(self.attgan.size)

    @property
    def device(self) -> torch.device:
        if self.method == "latent":
            return self.latent.generator.w_avg.device
        return next(self.attgan.G.parameters()).device

    def check_edits(self, edits: Mapping[str, float]) -> dict[str, float]:
        """Validate ``{attr: strength}``: known names, finite strengths within bounds."""
        if not edits:
            raise EditError("no edit given: e.g. --attr Smiling=1")
        known = self.attributes
        bad = [k for k in edits if k not in known]
        if bad:
            raise EditError(
                f"{self.name + ': ' if self.name else ''}unknown attribute "
                f"{', '.join(map(repr, bad))}; this model edits: "
                f"{', '.join(known)}"
            )
        out = {}
        for k, v in edits.items():
            v = float(v)
            if not math.isfinite(v) or abs(v) > MAX_STRENGTH:
                raise EditError(
                    f"--attr {k}={v}: strength must be a number in "
                    f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]"
                )
            out[k] = v
        return out

    # ----------------------------------------------------------------- one crop
    @torch.no_grad()
    def encode(self, crop: np.ndarray) -> torch.Tensor:
        """The encoder's code of an aligned crop: ``ws [1, num_ws, w_dim]``."""
        return self.encode_batch(crop[None])

    @torch.no_grad()
    def encode_batch(self, crops: np.ndarray) -> torch.Tensor:
        """The encoder's codes of aligned crops ``uint8 [N, S, S, 3]``: ``ws [N, num_ws,
        w_dim]``, each as :meth:`encode` gives it (one pass through the encoder)."""
        from faceedit.data.images import uint8_to_tensor

        E = self.latent.encoder
        # encoders trained for a small domain (LatentEncoder) name their input side
        size = int(getattr(E, "img_resolution", 0) or min(self.encoder_size, 256))
        x = torch.cat([uint8_to_tensor(_resize(crop, size)) for crop in crops])
        return E(x.to(self.device)).float()

    def invert_crop(
        self, crop: np.ndarray, init: torch.Tensor | None = None, seed: int | None = None
    ) -> torch.Tensor:
        """``ws [1, num_ws, w_dim]`` of an aligned crop ``uint8 [S, S, 3]``.

        ``init``: start of the optimisation (e.g. the previous video frame's code); it
        also turns off the random exploration at the start, which would undo that.
        """
        from faceedit.data.images import uint8_to_tensor
        from faceedit.editing.projection import project

        if self.invert == "encoder":
            return self.encode(crop)
        G = self.latent.generator
        start = init
        if start is None and self.latent.encoder is not None:
            start = self.encode(crop)
        target = uint8_to_tensor(_resize(crop, G.img_resolution)).to(self.device)
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        result = project(
            G,
            target,
            space=self.space,
            steps=self.steps,
            lr=self.lr,
            init=start,
            initial_noise_factor=0.0 if init is not None else 0.05,
            w_stats_samples=2000,
            generator=gen,
            progress=self.progress,
        )
        return result.ws

    def edit_crop(
        self,
        crop: np.ndarray,
        edits: Mapping[str, float],
        init: torch.Tensor | None = None,
        seed: int | None = None,
        ws: torch.Tensor | None = None,
    ) -> FaceEdit:
        """Edit one aligned crop ``uint8 [S, S, 3]``; returns the edited crop at size ``S``.

        ``edits`` must have been checked (:meth:`check_edits`). ``ws``: the crop's code
        from an earlier :meth:`invert_crop` (latent method), to edit one crop several
        ways without inverting it each time.
        """
        size = crop.shape[0]
        if self.method == "attgan":
            res = self.attgan.edit(crop, dict(edits))
            scores = {k: float(v[0]) for k, v in res.scores.items()}
            return FaceEdit(None, _resize(res.image[0], size), scores=scores)
        from faceedit.data.images import tensor_to_uint8
        from faceedit.editing.latent import LatentEditor

        parts = self.latent
        if ws is None:
            ws = self.invert_crop(crop, init=init, seed=seed)
        editor = LatentEditor(
            {k: parts.transformer(k) for k in edits},
            generator=parts.generator,
            classifier=parts.classifier,
            layers=parts.layers,
        )
        out = editor.edit(ws, edits)
        img = tensor_to_uint8(out.image)[0]
        scores = {k: float(v[0]) for k, v in out.scores.items()}
        return FaceEdit(None, _resize(img, size), ws=ws, edited_ws=out.edited_ws, scores=scores)

    # ----------------------------------------------------------------- one photo
    def edit_photo(
        self,
        image: ImageInput,
        edits: Mapping[str, float],
        face_index: int | str | None = None,
        aligned: bool = False,
    ) -> PhotoEditResult:
        """Edit the faces of a photo.

        Args:
            image: a path, bytes, PIL image or RGB ``uint8 [H, W, 3]``.
            edits: ``{attr: strength}``.
            face_index: ``None`` = the largest face, an int = that face (largest first),
                ``"all"`` = every face.
            aligned: the image already is an aligned square crop: no detection, no
                paste-back; the result is the edited crop at the image's size.

        Raises:
            NoFaceError: no face (or not the one asked for), naming the file.
            EditError: unknown attribute or bad strength.
        """
        from faceedit.faces.align import align_face, align_faces

        edits = self.check_edits(edits)
        rgb, name = load_rgb(image)
        if aligned:
            h, w = rgb.shape[:2]
            if abs(h - w) > 0.02 * max(h, w):
                raise EditError(f"{name}: --aligned input must be a square face crop, got {w}x{h}")
            crop = _resize(rgb, self.crop_size)
            fe = self.edit_crop(crop, edits)
            out = np.asarray(
                Image.fromarray(fe.edited_crop).resize((w, h), Image.Resampling.LANCZOS)
            )
            return PhotoEditResult(out, rgb, [fe])
        from faceedit.faces.detect import NoFaceError

        size = self.crop_size
        try:
            if face_index == "all":
                faces = align_faces(rgb, size=size, detector=self.detector)
                if not faces:
                    raise NoFaceError(f"{name}: no face found")
            else:
                faces = [align_face(rgb, size=size, face_index=face_index, detector=self.detector)]
        except NoFaceError as e:  # the aligner saw an array: put the file's name back
            raise NoFaceError(str(e).replace("<image>", name, 1)) from None
        out = rgb
        results = []
        for face in faces:
            face.source = name
            fe = self.edit_crop(face.crop, edits)
            fe.face = face
            # each face goes onto the photo as edited so far
            out = dataclasses.replace(face, image=out).paste_back(fe.edited_crop, blend=self.blend)
            results.append(fe)
        return PhotoEditResult(out, rgb, results)


def edit_photo(
    image: ImageInput,
    edits: Mapping[str, float],
    method: str = "latent",
    model: str | os.PathLike | None = None,
    face_index: int | str | None = None,
    aligned: bool = False,
    **options,
) -> PhotoEditResult:
    """One-call photo editing: load the models, edit the faces, paste back.

    Args:
        image: a path, bytes, PIL image or RGB ``uint8 [H, W, 3]``.
        edits: ``{attr: strength}``, e.g. ``{"Smiling": 1.0, "Eyeglasses": 0.5}``.
        method: ``"latent"`` or ``"attgan"``.
        model: a bundle directory or a model file (see the module docstring).
        face_index, aligned: see :meth:`FaceEditor.edit_photo`.
        **options: ``generator=, encoder=, transformers=, classifier=`` (latent parts)
            and :class:`FaceEditor` options (``invert=, steps=, blend=, ...``).

    Returns:
        :class:`PhotoEditResult` with ``.image`` ``uint8 [H, W, 3]``.
    """
    editor = build_editor(method, model, **options)
    return editor.edit_photo(image, edits, face_index=face_index, aligned=aligned)


def build_editor(
    method: str = "latent",
    model: str | os.PathLike | None = None,
    generator: str | os.PathLike | None = None,
    encoder: str | os.PathLike | None = None,
    transformers: str | os.PathLike | Mapping[str, str] | None = None,
    classifier: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    **options,
) -> FaceEditor:
    """Load a method's models and return a :class:`FaceEditor` (``options`` go to it)."""
    if method not in METHODS:
        raise EditError(f"method {method!r}: choose from {', '.join(METHODS)}")
    if method == "attgan":
        if model is None:
            raise EditError("method attgan needs --model (an AttGAN file, directory or bundle)")
        options.setdefault("name", str(model))
        return FaceEditor("attgan", attgan=load_attgan(model, device), **options)
    parts = load_latent_parts(model, generator, encoder, transformers, classifier, device=device)
    options.setdefault("name", str(model if model is not None else transformers))
    return FaceEditor("latent", latent=parts, **options)
