"""The latent method's models as one object: :class:`LatentPipeline`.

Yao et al. (ICCV 2021) edit a face by inverting it into StyleGAN2's W+ space, moving the
code with a latent transformer and synthesising it. The models that takes (a generator,
an encoder or an optimisation projection, the transformers, a latent classifier for
scores, optionally linear directions as the baseline) live in a **bundle**: a directory
with a ``bundle.json`` naming them (paths relative to the directory; each part is anything
:func:`faceedit.load` reads: a faceedit model directory or an official file)::

    {
      "method": "latent",
      "domain": "avatar",                  # "avatar" or "ffhq" (aligned photo crops)
      "generator": "generator",            # optional when "encoder" is a pSp/e4e file
      "encoder": "e4e_ffhq_encode.pt",     # optional: optimisation projection without
      "transformers": "transformers",      # a directory (tnet_<Name>/ or tnet_<k>.pth.tar)
                                           # or {"Smiling": "path", ...}
      "classifier": "classifier",          # optional: attribute scores of the result
      "directions": "directions.npz",      # optional: linear directions (--method linear)
      "layers": [0, 11]                    # optional: W+ rows kept from the edit, or "all"
    }

:meth:`LatentPipeline.from_pretrained` reads one (by path or name, see
:func:`faceedit.hub.resolve`), :meth:`~LatentPipeline.save_pretrained` writes one. The
pipeline is a :class:`~faceedit.editing.base.CropEditor`: it inverts aligned crops
(``invert="encoder"``, ``"optimize"`` or ``"pti"``: pivotal tuning, see
:mod:`faceedit.editing.pti`), reconstructs and edits them with its
transformers (the paper) or with any other
:class:`~faceedit.editing.base.LatentEditMethod` it is given (:meth:`~LatentPipeline.using`:
the bundle's linear directions, the InterFaceGAN baseline, are one).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceedit.editing import pti
from faceedit.editing.base import CropEditor, CropEdits, EditError, Strength, resize_crops
from faceedit.errors import CheckpointError
from faceedit.hub import BUNDLE_FILE, read_bundle, resolve

INVERSIONS = ("auto", "encoder", "optimize", "pti")
DOMAINS = ("ffhq", "avatar")
DEFAULT_LAYERS = (0, 11)  # rows [0, 11) edited, as in the original's test.py


@dataclass(frozen=True)
class Inversion:
    """How crops become codes.

    Attributes:
        invert: ``"encoder"``, ``"optimize"``, ``"pti"`` or ``"auto"`` (the encoder when
            there is one, else optimisation). ``"pti"``: pivotal tuning
            (:mod:`faceedit.editing.pti`): the encoder's code (a projection's without
            an encoder) is the pivot, and a copy of the generator is tuned per crop.
        steps, space, lr: the projection's (``invert="optimize"``, and the pivot of
            ``"pti"`` without an encoder).
        encoder_size: side the crop is resized to for a pSp/e4e encoder (256); encoders
            that name their input side (``img_resolution``) get that.
        seed: seed of the projection's random exploration (and of PTI's locality codes).
        progress: show the projection's progress bar.
        pti_steps, pti_lr: pivotal tuning's Adam steps and learning rate.
        pti_locality: weight of PTI's locality regulariser (0: off).
        pti_radius: how far towards random codes its locality codes lie (0..1].
        pti_perceptual: its perceptual network: ``"auto"`` (the domain's default,
            :data:`faceedit.editing.pti.AUTO_PERCEPTUAL`: pixels), ``"pixels"``
            (multiscale pixel loss), torchvision VGG16 weights (``.pth``) or an avatar
            oracle (path or name, e.g. the training-side ``avatar-oracle``); never an
            evaluation judge.
        pti_perceptual_weight: weight of its perceptual (or multiscale pixel) terms.
    """

    invert: str = "auto"
    steps: int = 200
    space: str = "w+"
    lr: float = 0.1
    encoder_size: int = 256
    seed: int = 0
    progress: bool = False
    pti_steps: int = pti.DEFAULT_STEPS
    pti_lr: float = pti.DEFAULT_LR
    pti_locality: float = pti.DEFAULT_LOCALITY
    pti_radius: float = pti.DEFAULT_RADIUS
    pti_perceptual: str = pti.DEFAULT_PERCEPTUAL
    pti_perceptual_weight: float = pti.DEFAULT_PERCEPTUAL_WEIGHT

    def __post_init__(self) -> None:
        if self.invert not in INVERSIONS:
            raise EditError(f"invert {self.invert!r}: choose from {', '.join(INVERSIONS)}")
        if self.steps < 1:
            raise EditError(f"steps must be >= 1, got {self.steps}")
        pti.check_options(
            self.pti_steps,
            self.pti_lr,
            self.pti_locality,
            self.pti_radius,
            self.pti_perceptual_weight,
        )


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


def _load_part(key: str, source: str | os.PathLike, device) -> nn.Module:
    from faceedit.checkpoints import load

    try:
        return load(resolve(source, key)).to(device).eval()
    except CheckpointError as e:
        raise EditError(f"{key}: {e}") from None


class LatentPipeline(CropEditor):
    """A StyleGAN2 generator with what it takes to invert, edit and score its codes.

    Args:
        generator: StyleGAN2 generator (``G.synthesis(ws) -> img [N,3,R,R]``).
        transformers: ``{attribute: path}`` (loaded on first use) or loaded
            :class:`~faceedit.nets.latent.LatentTransformer` modules.
        encoder: ``E(img [N,3,S,S] in [-1,1]) -> ws [N,num_ws,w_dim]``, or ``None``.
        classifier: latent classifier for attribute scores, or ``None``.
        directions: linear directions (a ``.npz`` path or
            :class:`~faceedit.editing.directions.LinearDirections`), or ``None``.
        layers: W+ rows kept from the edit (``None``: all).
        domain: ``"avatar"`` or ``"ffhq"``: what its crops are.
        inversion: how crops become codes (:class:`Inversion`).
    """

    def __init__(
        self,
        generator: nn.Module,
        transformers: Mapping[str, str | os.PathLike | nn.Module],
        encoder: nn.Module | None = None,
        classifier: nn.Module | None = None,
        directions: Any = None,
        layers: tuple[int, int] | None = DEFAULT_LAYERS,
        domain: str = "ffhq",
        inversion: Inversion | None = None,
        sources: Mapping[str, Any] | None = None,
    ) -> None:
        from faceedit.nets.latent import LatentClassifier

        if not (hasattr(generator, "synthesis") and hasattr(generator, "num_ws")):
            raise EditError(f"generator: holds a {type(generator).__name__}, not a generator")
        if encoder is not None and getattr(encoder, "num_ws", generator.num_ws) != generator.num_ws:
            raise EditError(
                f"encoder: gives {encoder.num_ws} W+ rows, the generator has {generator.num_ws}"
            )
        if classifier is not None and not isinstance(classifier, LatentClassifier):
            raise EditError(f"classifier: holds a {type(classifier).__name__}")
        if domain not in DOMAINS:
            raise EditError(f"domain {domain!r}: choose from {', '.join(DOMAINS)}")
        self.generator = generator
        self.encoder = encoder
        self.classifier = classifier
        self.layers = layers
        self.domain = domain
        # another LatentEditMethod in place of the transformers (using()), and its name
        self._latent_edit: Any = None
        self._method = "latent"
        self.sources: dict[str, Any] = dict(sources or {})
        self._transformers: dict[str, nn.Module] = {}
        self.transformer_paths: dict[str, Path] = {}
        for name, t in transformers.items():
            if isinstance(t, nn.Module):
                self._transformers[name] = t
            else:
                self.transformer_paths[name] = Path(t)
        self._directions = directions
        # PTI's perceptual networks by name, loaded on first use (shared by the
        # pipelines with_options() makes)
        self._perceptual: dict[str, tuple[nn.Module | None, str]] = {}
        self.inversion = self._checked(inversion or Inversion())

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike | None = None,
        generator: str | os.PathLike | None = None,
        encoder: str | os.PathLike | None = None,
        transformers: str | os.PathLike | Mapping[str, str] | None = None,
        classifier: str | os.PathLike | None = None,
        directions: str | os.PathLike | None = None,
        layers: tuple[int, int] | None | str = "bundle",
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> LatentPipeline:
        """Load a bundle (by path or name) and/or individual parts.

        Args:
            model: a bundle (directory with ``bundle.json``, or its name, e.g.
                ``avatar-latent``), a pSp/e4e file (encoder and generator), or a
                generator alone.
            generator, encoder, transformers, classifier, directions: individual parts
                (override the bundle's).
            layers: W+ rows kept from the edit; ``"bundle"`` = the bundle's or ``(0, 11)``.
            **options: ``domain=`` and the :class:`Inversion` fields (``invert=``,
                ``steps=``, ...).

        Raises:
            EditError: a part is missing or of the wrong kind, naming the file.
        """
        spec: dict = {}
        if model is not None:
            path = resolve(model, "--model")
            spec = read_bundle(path) or {"model": str(path)}
            if spec.get("method", "latent") != "latent":
                raise EditError(f"{model}: a {spec['method']} bundle, not a latent one")
        for key, value in (
            ("generator", generator),
            ("encoder", encoder),
            ("transformers", transformers),
            ("classifier", classifier),
            ("directions", directions),
        ):
            if value is not None:
                spec[key] = value
        G = _load_part("generator", spec["generator"], device) if spec.get("generator") else None
        E = _load_part("encoder", spec["encoder"], device) if spec.get("encoder") else None
        if "model" in spec:  # a single file: a pSp/e4e pair or a generator
            whole = _load_part("model", spec["model"], device)
            if hasattr(whole, "encoder") and hasattr(whole, "decoder"):
                E = E or whole.encoder
                G = G or whole.decoder
            elif hasattr(whole, "synthesis"):
                G = G or whole
            else:
                raise EditError(
                    f"{spec['model']}: holds a {type(whole).__name__}; --model needs a bundle "
                    "directory (bundle.json), a StyleGAN2 generator or a pSp/e4e file"
                )
        if E is not None and hasattr(E, "decoder") and hasattr(E, "encoder"):
            G = G or E.decoder
            E = E.encoder
        if G is None:
            raise EditError(
                "latent editing needs a model: --model BUNDLE (e.g. the shipped avatar-latent "
                "for avatars; `faceedit models` lists every model and `faceedit download NAME` "
                "fetches an official one) or --generator PATH"
            )
        C = _load_part("classifier", spec["classifier"], device) if spec.get("classifier") else None
        if spec.get("transformers") is None:
            raise EditError("latent editing needs transformers: a bundle or --transformers DIR")
        paths = find_transformers(spec["transformers"])
        if layers == "bundle":
            raw = spec.get("layers", list(DEFAULT_LAYERS))
            layers = None if raw in (None, "all") else (int(raw[0]), int(raw[1]))
        options.setdefault("domain", spec.get("domain", "ffhq"))
        domain = options.pop("domain")
        unknown = [k for k in options if k not in Inversion.__dataclass_fields__]
        if unknown:
            raise EditError(f"unknown latent pipeline option(s): {', '.join(unknown)}")
        pipe = cls(
            G,
            {k: v for k, v in paths.items() if k},
            E,
            C,
            spec.get("directions"),
            layers,
            domain=domain,
            inversion=Inversion(**options),
            sources=spec,
        )
        if "" in paths:  # a single transformer: name it after its config
            t = pipe._load_transformer(paths[""])
            name = t.config.attr_name or paths[""].stem
            pipe.transformer_paths = {name: paths[""]}
            pipe._transformers = {name: t}
        return pipe

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write a bundle: ``bundle.json`` and every part in faceedit's own format (a
        part that already is a faceedit directory is copied as it is, metadata kept).

        The directory must not exist yet (or be empty); it is written whole or not at all.
        """
        from faceedit.fileio import atomic_dir

        with atomic_dir(directory) as tmp:
            spec: dict[str, Any] = {"method": "latent", "domain": self.domain}
            self._save_part(self.generator, "generator", tmp / "generator")
            spec["generator"] = "generator"
            if self.encoder is not None:
                self._save_part(self.encoder, "encoder", tmp / "encoder")
                spec["encoder"] = "encoder"
            if self.classifier is not None:
                self._save_part(self.classifier, "classifier", tmp / "classifier")
                spec["classifier"] = "classifier"
            for name in self.transformer_names:
                target = tmp / "transformers" / f"tnet_{name}"
                source = self.transformer_paths.get(name)
                if source is not None and (source / "config.json").is_file():
                    shutil.copytree(source, target)
                else:
                    self.transformer(name).save_pretrained(target)
            spec["transformers"] = "transformers"
            if self._directions is not None:
                self.directions.save(tmp / "directions.npz")
                spec["directions"] = "directions.npz"
            spec["layers"] = "all" if self.layers is None else list(self.layers)
            (tmp / BUNDLE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        return Path(directory)

    def _save_part(self, module: nn.Module, key: str, target: Path) -> None:
        source = self.sources.get(key)
        if isinstance(source, str) and (Path(source) / "config.json").is_file():
            shutil.copytree(source, target)
        else:
            module.save_pretrained(target)

    def with_options(self, **options: Any) -> LatentPipeline:
        """A pipeline over the same (shared) models with other options: ``layers=`` or
        :class:`Inversion` fields."""
        import copy

        other = copy.copy(self)
        fields = {k: options.pop(k) for k in list(options) if k in Inversion.__dataclass_fields__}
        if "layers" in options:
            other.layers = options.pop("layers")
        if options:
            raise EditError(f"unknown pipeline option(s): {', '.join(options)}")
        other.inversion = other._checked(replace(self.inversion, **fields))
        return other

    def using(self, method: Any, name: str) -> LatentPipeline:
        """A pipeline over the same (shared) models that edits with ``method`` (any
        :class:`~faceedit.editing.base.LatentEditMethod`, e.g. :attr:`directions`) in place
        of its transformers; ``name`` is the method's name in reports and caches.
        ``using(None, "latent")`` goes back to the transformers."""
        import copy

        from faceedit.editing.base import LatentEditMethod

        if method is not None and not isinstance(method, LatentEditMethod):
            raise EditError(f"{type(method).__name__} is not a latent edit method")
        other = copy.copy(self)
        other._latent_edit, other._method = method, name
        return other

    def _checked(self, inversion: Inversion) -> Inversion:
        if inversion.invert == "auto":
            inversion = replace(
                inversion, invert="encoder" if self.encoder is not None else "optimize"
            )
        if inversion.invert == "encoder" and self.encoder is None:
            raise EditError(
                "--invert encoder: this model has no encoder (give --encoder, or use "
                "--invert optimize)"
            )
        return inversion

    # ----------------------------------------------------------------- parts
    def _load_transformer(self, path: Path) -> nn.Module:
        from faceedit.checkpoints import load
        from faceedit.nets.latent import LatentTransformer

        model = load(path)
        if not isinstance(model, LatentTransformer):
            raise EditError(f"{path}: not a latent transformer")
        return model.to(self.device)

    @property
    def transformer_names(self) -> list[str]:
        return list(dict.fromkeys([*self.transformer_paths, *self._transformers]))

    def transformer(self, name: str) -> nn.Module:
        """The transformer for ``name`` (loaded on first use)."""
        if name not in self._transformers:
            if name not in self.transformer_paths:
                raise EditError(
                    f"no transformer for {name!r} (have: {', '.join(self.transformer_names)})"
                )
            self._transformers[name] = self._load_transformer(self.transformer_paths[name])
        return self._transformers[name]

    @property
    def directions(self):
        """The linear directions (:class:`~faceedit.editing.directions.LinearDirections`),
        with this pipeline's layers."""
        from faceedit.editing.directions import LinearDirections

        d = self._directions
        if d is None:
            raise EditError(
                '--method linear needs linear directions: a bundle naming "directions" '
                "(faceedit train directions writes them)"
            )
        if not isinstance(d, LinearDirections):
            path = resolve(d, "directions")
            d = self._directions = LinearDirections.load(path)
            shape = tuple(d.directions.shape[1:])
            G = self.generator
            if shape != (int(G.num_ws), int(G.w_dim)):
                raise EditError(
                    f"{path}: directions are {shape[0]}x{shape[1]}, the generator's W+ is "
                    f"{G.num_ws}x{G.w_dim}"
                )
        return replace(d, layers=self._clipped_layers())

    def _clipped_layers(self) -> tuple[int, int] | None:
        if self.layers is None:
            return None
        return (int(self.layers[0]), min(int(self.layers[1]), int(self.generator.num_ws)))

    def latent_method(self, names: list[str] | None = None):
        """The :class:`~faceedit.editing.base.LatentEditMethod` in use, for ``names``
        (default: every attribute it edits)."""
        if self._latent_edit is not None:
            return self._latent_edit
        from faceedit.editing.latent import LatentEditor

        names = self.transformer_names if names is None else names
        return LatentEditor(
            {k: self.transformer(k) for k in names}, generator=self.generator, layers=self.layers
        )

    # ----------------------------------------------------------------- CropEditor
    @property
    def method(self) -> str:  # type: ignore[override]
        return self._method

    @property
    def attributes(self) -> list[str]:
        if self._latent_edit is not None:
            return list(self._latent_edit.attributes)
        return self.transformer_names

    @property
    def crop_size(self) -> int:
        return int(self.generator.img_resolution)

    @property
    def device(self) -> torch.device:
        return self.generator.w_avg.device

    @property
    def chains_codes(self) -> bool:
        # a PTI code is no W+ code to start the next frame's projection from
        return self.inversion.invert == "optimize"

    def settings(self) -> dict[str, Any]:
        inv = self.inversion
        out = {
            "method": self.method,
            "invert": inv.invert,
            "steps": inv.steps,
            "space": inv.space,
            "lr": inv.lr,
            "seed": inv.seed,
            "layers": None if self.layers is None else list(self.layers),
        }
        if inv.invert == "pti":
            out["pti"] = {
                "pivot": "encoder" if self.encoder is not None else "optimize",
                "steps": inv.pti_steps,
                "lr": inv.pti_lr,
                "locality": inv.pti_locality,
                "radius": inv.pti_radius,
                "perceptual": self._perceptual_name(),
                "perceptual_weight": inv.pti_perceptual_weight,
            }
        return out

    def lineage(self) -> list[dict[str, Any]]:
        """The networks its inversion adds to the models' own lineage: PTI's perceptual
        network (role ``loss network``); ``[]`` for the other inversions or pixels."""
        from faceedit.lineage import record

        if self.inversion.invert != "pti" or self._perceptual_name() == "pixels":
            return []
        return record(
            "loss network",
            self._perceptual_name(),
            note="perceptual loss of pivotal tuning (--invert pti), per edited image",
        )

    def _perceptual_name(self) -> str:
        spec = self.inversion.pti_perceptual
        if spec == "auto":
            return pti.AUTO_PERCEPTUAL.get(self.domain, "pixels")
        return "pixels" if spec in pti.PIXELS else spec

    def perceptual_network(self) -> nn.Module | None:
        """PTI's perceptual network (loaded once), or ``None`` for pixels."""
        key = self._perceptual_name()
        if key not in self._perceptual:
            net, name = pti.load_perceptual(key, self.domain)
            self._perceptual[key] = (None if net is None else net.to(self.device), name)
        return self._perceptual[key][0]

    @torch.no_grad()
    def encode(self, crops: np.ndarray) -> torch.Tensor:
        """The encoder's codes of aligned crops ``uint8 [N, S, S, 3]``: ``ws [N, num_ws,
        w_dim]`` (one pass through the encoder)."""
        from faceedit.data.images import uint8_to_tensor

        if self.encoder is None:
            raise EditError("this model has no encoder (use --invert optimize)")
        E = self.encoder
        # encoders trained for a small domain (LatentEncoder) name their input side
        size = int(getattr(E, "img_resolution", 0) or min(self.inversion.encoder_size, 256))
        x = torch.cat([uint8_to_tensor(im) for im in resize_crops(np.asarray(crops), size)])
        return E(x.to(self.device)).float()

    def invert(
        self, crops: np.ndarray, init: torch.Tensor | None = None, seed: int | None = None
    ) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` of aligned crops ``uint8 [N, S, S, 3]``.

        ``init``: start of the optimisation (e.g. the previous video frame's code); it
        also turns off the random exploration at the start, which would undo that. With
        ``invert="pti"`` the result is a :class:`~faceedit.editing.pti.TunedCode` (see
        :meth:`tune`; ``init`` is then the pivot).
        """
        crops = np.asarray(crops)
        inv = self.inversion
        if inv.invert == "encoder":
            return self.encode(crops)
        if inv.invert == "pti":
            return self.tune(crops, init=init, seed=seed)
        return self._project(crops, init, seed)

    def tune(
        self, crops: np.ndarray, init: torch.Tensor | None = None, seed: int | None = None
    ) -> pti.TunedCode:
        """Pivotal tuning of aligned crops ``uint8 [N, S, S, 3]``: one tuned copy of the
        generator's synthesis per crop, around its pivot (``init``, else the encoder's
        code, else a projection's). The shipped generator is never changed."""
        from faceedit.data.images import uint8_to_tensor

        crops = np.asarray(crops)
        inv = self.inversion
        if init is not None:
            pivots = init.detach().float().to(self.device)
        elif self.encoder is not None:
            pivots = self.encode(crops)
        else:
            pivots = self._project(crops, None, seed)
        if pivots.shape[0] != len(crops):
            raise EditError(f"{pivots.shape[0]} pivot codes for {len(crops)} crops")
        perceptual = self.perceptual_network()
        G = self.generator
        tuned = []
        for i, crop in enumerate(crops):
            target = uint8_to_tensor(resize_crops(crop[None], G.img_resolution)[0])
            # every crop draws the same locality codes, as one crop alone would
            gen = torch.Generator().manual_seed(inv.seed if seed is None else seed)
            tuned.append(
                pti.tune_generator(
                    G,
                    target.to(self.device),
                    pivots[i : i + 1],
                    steps=inv.pti_steps,
                    lr=inv.pti_lr,
                    perceptual=perceptual,
                    locality=inv.pti_locality,
                    radius=inv.pti_radius,
                    perceptual_weight=inv.pti_perceptual_weight,
                    generator=gen,
                    progress=inv.progress,
                )
            )
        return pti.TunedCode(
            ws=pivots.detach().clone(),
            synthesis=[t.synthesis for t in tuned],
            psnr_pivot=[t.psnr_pivot for t in tuned],
            psnr_tuned=[t.psnr_tuned for t in tuned],
            perceptual=self._perceptual_name(),
        )

    def _project(
        self, crops: np.ndarray, init: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` of crops by optimisation projection, one by one."""
        from faceedit.data.images import uint8_to_tensor
        from faceedit.editing.projection import project

        inv = self.inversion
        G = self.generator
        out = []
        for i, crop in enumerate(crops):
            start = None if init is None else init[i : i + 1]
            if start is None and self.encoder is not None:
                start = self.encode(crop[None])
            target = uint8_to_tensor(resize_crops(crop[None], G.img_resolution)[0])
            # every crop explores with the same seed, as one crop alone would
            gen = torch.Generator().manual_seed(inv.seed if seed is None else seed)
            result = project(
                G,
                target.to(self.device),
                space=inv.space,
                steps=inv.steps,
                lr=inv.lr,
                init=start,
                initial_noise_factor=0.0 if init is not None else 0.05,
                w_stats_samples=2000,
                generator=gen,
                progress=inv.progress,
            )
            out.append(result.ws)
        return torch.cat(out)

    @torch.no_grad()
    def render(self, ws: torch.Tensor) -> np.ndarray:
        """``G.synthesis(ws)`` as crops ``uint8 [N, S, S, 3]``."""
        from faceedit.data.images import tensor_to_uint8

        img = self.generator.synthesis(ws, noise_mode="const").clamp(-1, 1)
        return resize_crops(tensor_to_uint8(img), self.crop_size)

    def reconstruct(self, code: torch.Tensor | pti.TunedCode) -> np.ndarray:
        if isinstance(code, pti.TunedCode):
            return self._render_tuned(code, code.ws)
        return self.render(code)

    def _render_tuned(self, code: pti.TunedCode, ws: torch.Tensor) -> np.ndarray:
        """Codes derived from ``code``'s pivots, each rendered by its crop's tuned network."""
        from faceedit.data.images import tensor_to_uint8

        return resize_crops(tensor_to_uint8(code.render(ws)), self.crop_size)

    @torch.no_grad()
    def edit_latents(self, ws: torch.Tensor, edits: Mapping[str, Strength]) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` moved by the edit method in use (strengths: numbers
        or ``[N]``)."""
        method = self.latent_method(list(edits))
        return method.edit_latents(ws, {k: _as_strength(v, ws) for k, v in edits.items()})

    @torch.no_grad()
    def scores(self, ws: torch.Tensor) -> dict[str, np.ndarray]:
        """Classifier probabilities ``{attr: float [N]}`` (empty without a classifier)."""
        if self.classifier is None:
            return {}
        from faceedit.data.latents import CELEBA_ATTRS

        probs = torch.sigmoid(self.classifier(ws)).cpu().numpy()
        names = self.classifier.config.attr_names or (
            CELEBA_ATTRS if probs.shape[1] == len(CELEBA_ATTRS) else ()
        )
        return {n: probs[:, i] for i, n in enumerate(names)}

    def edit_codes(
        self, code: torch.Tensor | pti.TunedCode, edits: Mapping[str, Strength]
    ) -> CropEdits:
        if isinstance(code, pti.TunedCode):  # the edited pivots, by the tuned networks
            edited = self.edit_latents(code.ws, edits)
            return CropEdits(self._render_tuned(code, edited), edited, self.scores(edited))
        edited = self.edit_latents(code, edits)
        return CropEdits(self.render(edited), edited, self.scores(edited))


def _as_strength(value: Strength, ws: torch.Tensor) -> float | torch.Tensor:
    """A number stays a number; per-code strengths become ``[N]`` on ``ws``'s device."""
    if isinstance(value, (int, float)):
        return float(value)
    return torch.as_tensor(np.asarray(value), dtype=ws.dtype, device=ws.device).reshape(-1)
