"""Edit the faces of a photo in one call: detect, align, invert or encode, edit, paste back.

The methods are registered in :mod:`faceedit.editing.methods`: ``"latent"`` (latent
transformers, Yao et al. ICCV 2021), ``"linear"`` (linear directions in the same W+ space,
the InterFaceGAN baseline) and ``"attgan"`` (He et al., IEEE TIP 2019). Each loads into a
:class:`~faceedit.editing.base.CropEditor` that edits aligned crops; :class:`FaceEditor`
adds what a photo needs around it and never asks which method it holds: the faces are
found and FFHQ-aligned (:func:`faceedit.faces.align_face`), edited, and warped back into
the photo under a feathered mask (:meth:`faceedit.faces.AlignedFace.paste_back`): pixels
outside the face's crop square are the photo's own.

A latent model has several parts, so it is given as a **bundle** (see
:mod:`faceedit.editing.latent_pipeline`); an AttGAN bundle is ``{"method": "attgan",
"model": "attgan"}``, and a plain AttGAN file or directory works as well. Every part can
also be given on its own (``generator=``, ``encoder=``, ... here; ``--generator``,
``--encoder``, ... on the command line), which overrides the bundle's entry.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from faceedit.editing.base import MAX_STRENGTH, CropEditor, EditError, Strength, resize_crops
from faceedit.editing.latent_pipeline import INVERSIONS, find_transformers
from faceedit.editing.methods import METHODS, build_crop_editor
from faceedit.faces.align import AlignedFace, ImageInput, load_rgb

__all__ = [
    "DomainWarning",
    "EditError",
    "FaceEdit",
    "FaceEditor",
    "INVERSIONS",
    "MAX_STRENGTH",
    "METHODS",
    "PhotoEditResult",
    "PreparedPhoto",
    "build_editor",
    "edit_photo",
    "find_transformers",
]


# --------------------------------------------------------------------------- results


@dataclass(eq=False)
class FaceEdit:
    """One edited face.

    Attributes:
        face: the aligned face (crop, quad, landmarks); ``None`` for ``aligned`` input.
        edited_crop: ``uint8 [S, S, 3]``, the edited aligned crop.
        ws: the inverted code ``[1, num_ws, w_dim]`` (latent methods; the pivot of a
            PTI code), else ``None``.
        edited_ws: the edited code (latent methods), else ``None``.
        scores: attribute probabilities of the result ``{attr: float}`` (when a
            classifier is available).
        code: the crop's code as its editor returned it (any method).
    """

    face: AlignedFace | None
    edited_crop: np.ndarray
    ws: torch.Tensor | None = None
    edited_ws: torch.Tensor | None = None
    scores: dict[str, float] = field(default_factory=dict)
    code: object = None


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


class DomainWarning(UserWarning):
    """A model was given an image of the other domain (an avatar model a photo, or a
    photo model an avatar): the result means little."""


@dataclass(eq=False)
class PreparedPhoto:
    """A photo read, its faces aligned and inverted (:meth:`FaceEditor.prepare`).

    Attributes:
        rgb: the photo, ``uint8 [H, W, 3]``.
        name: its name, for messages.
        faces: the aligned faces (``[None]`` for an aligned crop given as the image).
        crops: each face's aligned crop ``uint8 [S, S, 3]``.
        codes: each crop's code from the editor's :meth:`~CropEditor.invert`.
    """

    rgb: np.ndarray
    name: str
    faces: list[AlignedFace | None]
    crops: list[np.ndarray]
    codes: list


# --------------------------------------------------------------------------- the editor


class FaceEditor:
    """The whole photo pipeline around one :class:`~faceedit.editing.base.CropEditor`.

    Args:
        editor: the crop editor (a :class:`~faceedit.editing.latent_pipeline.LatentPipeline`,
            an :class:`~faceedit.editing.attgan.AttGANEditor`, ...); see :func:`build_editor`.
        blend: paste-back blending, ``"feather"`` or ``"seamless"``.
        detector: face detector (a :class:`~faceedit.faces.FaceDetector` or backend name).
        name: the model's name or path, for messages.
        precision: ``"float32"`` (default) or ``"bf16"`` (opt-in, CPUs with native
            bfloat16); the models run inside :func:`faceedit.nets.inference.inference_context`
            (this precision, denormals flushed to zero), restored after each call.
    """

    def __init__(
        self,
        editor: CropEditor,
        blend: str = "feather",
        detector=None,
        name: str = "",
        precision: str = "float32",
    ) -> None:
        from faceedit.nets.inference import PrecisionError, resolve_precision

        if not isinstance(editor, CropEditor):
            raise EditError(f"FaceEditor needs a CropEditor, got {type(editor).__name__}")
        try:  # an unknown or unsupported precision fails here, in one line
            resolve_precision(precision)
        except PrecisionError as e:
            raise EditError(str(e)) from None
        self.precision = precision
        self.editor = editor
        self.blend = blend
        self.detector = detector
        self.name = name

    @property
    def method(self) -> str:
        """The method's name (for reports and caches)."""
        return self.editor.method

    @property
    def attributes(self) -> list[str]:
        """Attribute names this model can edit."""
        return self.editor.attributes

    @property
    def crop_size(self) -> int:
        """Side of the aligned crop the model works on."""
        return self.editor.crop_size

    @property
    def device(self) -> torch.device:
        return self.editor.device

    def check_edits(self, edits: Mapping[str, Strength]) -> dict[str, Strength]:
        """Validate ``{attr: strength}``: known names, finite strengths within bounds."""
        return self.editor.check_edits(edits, self.name)

    # ----------------------------------------------------------------- one crop
    def invert_crop(self, crop: np.ndarray, init=None, seed: int | None = None):
        """The code of one aligned crop ``uint8 [S, S, 3]`` (``ws [1, num_ws, w_dim]``
        for latent methods); ``init``: a code to start from (the previous video frame's)."""
        with self._inference():
            return self.editor.invert(np.asarray(crop)[None], init=init, seed=seed)

    def _inference(self):
        from faceedit.nets.inference import inference_context

        return inference_context(self.precision)

    def edit_crop(
        self,
        crop: np.ndarray,
        edits: Mapping[str, float],
        init=None,
        seed: int | None = None,
        code=None,
    ) -> FaceEdit:
        """Edit one aligned crop ``uint8 [S, S, 3]``; returns the edited crop at size ``S``.

        ``edits`` must have been checked (:meth:`check_edits`). ``code``: the crop's code
        from an earlier :meth:`invert_crop`, to edit one crop several ways without
        inverting it each time.
        """
        size = crop.shape[0]
        if code is None:
            code = self.invert_crop(crop, init=init, seed=seed)
        with self._inference():
            out = self.editor.edit_codes(code, edits)
        scores = {k: float(v[0]) for k, v in out.scores.items()}
        return FaceEdit(
            None,
            resize_crops(out.images, size)[0],
            ws=_ws_of(code),
            edited_ws=out.codes,
            scores=scores,
            code=code,
        )

    # ----------------------------------------------------------------- one photo
    def prepare(
        self, image: ImageInput, face_index: int | str | None = None, aligned: bool = False
    ) -> PreparedPhoto:
        """Read a photo, find and align its faces and invert each once, so that it can be
        edited several ways (:meth:`render`) for the price of one detection and inversion.

        Args:
            image: a path, bytes, PIL image or RGB ``uint8 [H, W, 3]``.
            face_index: ``None`` = the largest face, an int = that face (largest first),
                ``"all"`` = every face.
            aligned: the image already is an aligned square crop: no detection, no
                paste-back; the result is the edited crop at the image's size. An avatar
                model (``domain == "avatar"``) always takes the whole image this way.

        Warns:
            DomainWarning: the image looks like the other domain (a photo given to an
                avatar model, an avatar to a photo model).

        Raises:
            NoFaceError: no face (or not the one asked for), naming the file.
        """
        from faceedit.data.domain import looks_drawn
        from faceedit.faces.align import align_face, align_faces

        rgb, name = load_rgb(image)
        whole = self.editor.domain == "avatar"
        if aligned or whole:  # the image is the crop: no detection, no paste-back
            h, w = rgb.shape[:2]
            if abs(h - w) > 0.02 * max(h, w):
                what = (
                    "an avatar model takes a square avatar image"
                    if whole
                    else "--aligned input must be a square face crop"
                )
                raise EditError(f"{name}: {what}, got {w}x{h}")
            if whole and face_index not in (None, 0, "all"):
                raise EditError(f"{name}: an avatar image holds one face (face index 0)")
        if whole and not looks_drawn(rgb):
            self._warn(
                f"{name} looks like a photograph, but {self._model()} edits whole avatar "
                "images (faceedit data avatars): the result will mean little"
            )
        if aligned or whole:
            crop = resize_crops(rgb[None], self.crop_size)[0]
            return PreparedPhoto(rgb, name, [None], [crop], [self.invert_crop(crop)])
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
        if looks_drawn(rgb):  # a face was found: in a drawing, not a photo
            self._warn(
                f"{name} looks like a drawn avatar, but {self._model()} edits aligned "
                "photos of faces: for avatars use an avatar model (faceedit models)"
            )
        for face in faces:
            face.source = name
        crops = [face.crop for face in faces]
        return PreparedPhoto(rgb, name, faces, crops, [self.invert_crop(c) for c in crops])

    def _model(self) -> str:
        return self.name or f"this {self.method} model"

    def _warn(self, message: str) -> None:
        import warnings

        warnings.warn(DomainWarning(message), stacklevel=3)

    def render(self, photo: PreparedPhoto, edits: Mapping[str, float] | None) -> PhotoEditResult:
        """The prepared photo with ``edits`` applied to each face (checked here), or with
        each face's unedited reconstruction when ``edits`` is ``None``."""
        if edits is not None:
            edits = self.check_edits(edits)
        out = photo.rgb
        results = []
        for face, crop, code in zip(photo.faces, photo.crops, photo.codes, strict=True):
            if edits is None:
                with self._inference():
                    rec = resize_crops(self.editor.reconstruct(code), crop.shape[0])[0]
                fe = FaceEdit(None, rec, ws=_ws_of(code))
                fe.code = code
            else:
                fe = self.edit_crop(crop, edits, code=code)
            if face is None:  # an aligned crop: the result is the crop at the image's size
                h, w = photo.rgb.shape[:2]
                resized = Image.fromarray(fe.edited_crop).resize((w, h), Image.Resampling.LANCZOS)
                return PhotoEditResult(np.asarray(resized), photo.rgb, [fe])
            fe.face = face
            # each face goes onto the photo as edited so far
            out = dataclasses.replace(face, image=out).paste_back(fe.edited_crop, blend=self.blend)
            results.append(fe)
        return PhotoEditResult(out, photo.rgb, results)

    def edit_photo(
        self,
        image: ImageInput,
        edits: Mapping[str, float],
        face_index: int | str | None = None,
        aligned: bool = False,
    ) -> PhotoEditResult:
        """Edit the faces of a photo (:meth:`prepare`, then :meth:`render`).

        Raises:
            NoFaceError: no face (or not the one asked for), naming the file.
            EditError: unknown attribute or bad strength.
        """
        edits = self.check_edits(edits)
        return self.render(self.prepare(image, face_index, aligned), edits)


def _ws_of(code) -> torch.Tensor | None:
    """The W+ code of a crop's code: itself, a PTI code's pivot, else ``None``."""
    if isinstance(code, torch.Tensor):
        return code
    ws = getattr(code, "ws", None)
    return ws if isinstance(ws, torch.Tensor) else None


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
    blend: str = "feather",
    detector=None,
    name: str | None = None,
    precision: str = "float32",
    **options,
) -> FaceEditor:
    """Load a method's models (:func:`~faceedit.editing.methods.build_crop_editor`) and
    return a :class:`FaceEditor` around them.

    Args:
        method: a name from :data:`~faceedit.editing.methods.METHODS`.
        model: a bundle, model file or directory, or a model name.
        blend, detector, precision: the photo pipeline's (see :class:`FaceEditor`).
        **options: model parts (``generator=, encoder=, transformers=, classifier=,
            directions=``), ``device=`` and inversion options (``invert=, steps=, space=,
            lr=, seed=, progress=``) for the methods that invert.
    """
    editor = build_crop_editor(method, model, **options)
    shown = (
        name
        if name is not None
        else str(model if model is not None else options.get("transformers"))
    )
    return FaceEditor(editor, blend=blend, detector=detector, name=shown, precision=precision)
