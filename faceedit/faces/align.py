"""FFHQ-style face alignment and paste-back.

The crop square ("quad") is the one of the FFHQ dataset script (Karras et al., CVPR 2019,
``ffhq-dataset/download_ffhq.py: recreate_aligned_images``), computed from the two eye
centres and the two mouth corners:

    eye_avg = (eye_l + eye_r) / 2          eye_to_eye   = eye_r - eye_l
    mouth_avg = (mouth_l + mouth_r) / 2    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - rot90(eye_to_mouth);  x *= max(2|eye_to_eye|, 1.8|eye_to_mouth|) / |x|
    y = rot90(x);  c = eye_avg + 0.1 eye_to_mouth
    quad = [c - x - y, c - x + y, c + x + y, c + x - y]   (top-left, bottom-left,
                                                           bottom-right, top-right)

The quad is mapped onto the ``size x size`` crop by one similarity transform (the quad is
a square) with bilinear sampling; when the quad is more than twice the output size the
image is first shrunk by an integer factor with area averaging, as the script does.
Outside the photo the crop reflects the image. :meth:`AlignedFace.paste_back` warps an
edited crop back with the inverse transform and blends it under a feathered mask
(or with OpenCV's Poisson ``seamlessClone``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from faceedit.data.images import read_image
from faceedit.faces.detect import Face, FaceDetector, NoFaceError, _cv2, default_detector

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray
BLENDS = ("feather", "seamless")
PADDINGS = ("ffhq", "reflect")


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop square ``[4, 2]`` (TL, BL, BR, TR) from five landmarks ``[5, 2]``."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected five landmarks [5, 2], got {pts.shape}")
    eye_l, eye_r, _, mouth_l, mouth_r = pts
    eye_avg = (eye_l + eye_r) * 0.5
    eye_to_eye = eye_r - eye_l
    mouth_avg = (mouth_l + mouth_r) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    # rot90 as in the script: flipud(v) * [-1, 1]
    x = eye_to_eye - eye_to_mouth[::-1] * np.array([-1.0, 1.0])
    norm = math.hypot(*x)
    if norm < 1e-6:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(math.hypot(*eye_to_eye) * 2.0, math.hypot(*eye_to_mouth) * 1.8)
    y = x[::-1] * np.array([-1.0, 1.0])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def crop_to_image_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """Affine ``[2, 3]`` from crop pixel ``(u, v)`` to image pixel ``(x, y)``.

    Pixel centres are at integers in both frames; the crop's outer edge (``-0.5`` and
    ``size - 0.5``) lies on the quad, as with PIL's ``QUAD`` transform of the script.
    """
    tl, bl, _, tr = np.asarray(quad, dtype=np.float64)
    ex = (tr - tl) / size
    ey = (bl - tl) / size
    origin = tl + 0.5 * ex + 0.5 * ey
    return np.stack([ex, ey, origin], axis=1)


def _invert_affine(m: np.ndarray) -> np.ndarray:
    a = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


@dataclass(eq=False)  # holds arrays: compare .crop / .quad explicitly
class AlignedFace:
    """An FFHQ-aligned face crop and what is needed to put an edit of it back.

    Attributes:
        crop: ``uint8 [size, size, 3]`` RGB.
        quad: ``[4, 2]`` crop corners in the photo (TL, BL, BR, TR).
        box: ``[4]`` detector box ``(x0, y0, x1, y1)`` (the quad's bounds when aligned
            from landmarks alone).
        landmarks: ``[5, 2]`` in the photo (see :class:`~faceedit.faces.detect.Face`).
        image: the photo, RGB ``uint8 [H, W, 3]``.
        source: the photo's name, for messages.
    """

    crop: np.ndarray
    quad: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray
    image: np.ndarray = field(repr=False)
    score: float = 1.0
    source: str = "<image>"

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])

    @property
    def matrix(self) -> np.ndarray:
        """``[2, 3]`` affine from crop pixels to photo pixels."""
        return crop_to_image_matrix(self.quad, self.size)

    @property
    def landmarks_in_crop(self) -> np.ndarray:
        """``[5, 2]`` landmarks in crop pixels."""
        inv = _invert_affine(self.matrix)
        return self.landmarks @ inv[:, :2].T + inv[:, 2]

    def to_tensor(self, size: int | None = 256):
        """The crop as ``img [1, 3, size, size]`` in [-1, 1] (float32 torch), the input the
        pSp/e4e encoders expect at ``size=256``; ``None`` keeps the crop's own size.

        Downscaling averages areas (like the PIL resize of the encoders' transforms).
        """
        from faceedit.data.images import uint8_to_tensor

        crop = self.crop
        if size is not None and size != self.size:
            cv2 = _cv2()
            interp = cv2.INTER_AREA if size < self.size else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (size, size), interpolation=interp)
        return uint8_to_tensor(crop)

    def paste_back(
        self,
        edited_crop: np.ndarray,
        blend: str = "feather",
        feather: float = 0.08,
        keep_detail: bool = False,
    ) -> np.ndarray:
        """Put ``edited_crop`` (RGB ``uint8 [S, S, 3]``, any ``S``) back into the photo.

        Args:
            edited_crop: the edited crop; a different size than :attr:`crop` is scaled.
            blend: ``"feather"`` (alpha ramp from the crop's border inwards) or
                ``"seamless"`` (Poisson blending, ``cv2.seamlessClone``, inside the
                same region).
            feather: width of the ramp as a fraction of the crop side.
            keep_detail: also add back what the crop could not hold: the photo minus
                the crop warped back (detail finer than the crop's pixels, when the face
                is larger in the photo than the crop). Then pasting the unedited crop
                gives the photo back exactly at any crop size; edits that remove fine
                structure (e.g. glasses) may leave a faint trace of it.

        Returns:
            The photo with the face replaced, RGB ``uint8 [H, W, 3]``.
        """
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        edited = np.asarray(edited_crop)
        if edited.dtype != np.uint8 or edited.ndim != 3 or edited.shape[2] != 3:
            raise ValueError(
                f"edited_crop must be RGB uint8 [S, S, 3], got {edited.dtype} {edited.shape}"
            )
        if edited.shape[0] != edited.shape[1]:
            raise ValueError(f"edited_crop must be square, got {edited.shape[:2]}")
        cv2 = _cv2()
        h, w = self.image.shape[:2]
        s = edited.shape[0]
        m = crop_to_image_matrix(self.quad, s)
        # only the quad's bounding box changes: warp that window, not the whole photo
        x0, y0 = np.floor(self.quad.min(0)).astype(int) - 2
        x1, y1 = np.ceil(self.quad.max(0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return self.image.copy()
        shifted = m.copy()
        shifted[:, 2] -= (x0, y0)
        size = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(
            edited, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        mask = cv2.warpAffine(
            _feather_mask(s, feather), shifted, size, flags=cv2.INTER_LINEAR, borderValue=0.0
        )
        out = self.image.copy()
        window = out[y0:y1, x0:x1].astype(np.float32)
        warped = warped.astype(np.float32)
        if keep_detail:
            m0 = crop_to_image_matrix(self.quad, self.size)
            m0[:, 2] -= (x0, y0)
            flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
            original = cv2.warpAffine(self.crop, m0, size, flags=flags, borderMode=border)
            warped = warped + (window - original.astype(np.float32))
        if blend == "seamless":
            return _seamless(
                cv2, out, np.clip(warped + 0.5, 0, 255).astype(np.uint8), mask, (x0, y0)
            )
        alpha = mask[..., None]
        blended = warped * alpha + window * (1.0 - alpha)
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


def _feather_mask(size: int, feather: float) -> np.ndarray:
    """``float32 [size, size]``: 1 inside, a smooth ramp to 0 over the outer band."""
    ramp = max(1.0, feather * size)
    idx = np.arange(size, dtype=np.float32)
    # distance (in pixels) from each pixel centre to the nearest crop edge
    edge = np.minimum(idx + 0.5, size - 0.5 - idx)
    t = np.clip(edge / ramp, 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible kink where the ramp ends
    return np.minimum(t[:, None], t[None, :]).astype(np.float32)


def _seamless(cv2, out: np.ndarray, warped: np.ndarray, mask: np.ndarray, origin) -> np.ndarray:
    x0, y0 = origin
    h, w = out.shape[:2]
    full_src = out.copy()
    full_src[y0 : y0 + warped.shape[0], x0 : x0 + warped.shape[1]] = warped
    full_mask = np.zeros((h, w), np.uint8)
    full_mask[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = (mask > 0.5) * 255
    # seamlessClone needs the region strictly inside the image
    full_mask[:2], full_mask[-2:], full_mask[:, :2], full_mask[:, -2:] = 0, 0, 0, 0
    ys, xs = np.nonzero(full_mask)
    if len(xs) == 0:
        return out
    bx0, bx1, by0, by1 = xs.min(), xs.max(), ys.min(), ys.max()
    center = ((int(bx0) + int(bx1) + 1) // 2, (int(by0) + int(by1) + 1) // 2)
    bgr = cv2.seamlessClone(
        np.ascontiguousarray(full_src[..., ::-1]),
        np.ascontiguousarray(out[..., ::-1]),
        full_mask,
        center,
        cv2.NORMAL_CLONE,
    )
    return np.ascontiguousarray(bgr[..., ::-1])


def warp_to_crop(
    image: np.ndarray, quad: np.ndarray, size: int, padding: str = "ffhq"
) -> np.ndarray:
    """Sample the square ``quad`` of ``image`` (RGB ``uint8 [H, W, 3]``) to ``[size, size, 3]``.

    Args:
        padding: what fills the crop where the quad leaves the photo: ``"ffhq"`` (the
            reflected photo, blurred and faded to its median colour with the distance
            from the edge, as the FFHQ script does), or ``"reflect"`` (the plain mirror).
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    cv2 = _cv2()
    quad = np.asarray(quad, dtype=np.float64)
    side = float(np.linalg.norm(quad[3] - quad[0]))
    shrink = int(math.floor(side / size * 0.5))
    src = image
    small_quad = quad
    if shrink > 1:
        # area-average first so that the bilinear warp does not alias (as the FFHQ script)
        h, w = image.shape[:2]
        small = (max(1, round(w / shrink)), max(1, round(h / shrink)))
        src = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        scale = np.array([small[0] / w, small[1] / h])
        # pixel centres: x_small = (x + 0.5) * scale - 0.5
        small_quad = (quad + 0.5) * scale - 0.5
    crop = cv2.warpAffine(
        np.ascontiguousarray(src),
        crop_to_image_matrix(small_quad, size),
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    if padding == "ffhq":
        crop = _fade_outside(cv2, crop, quad, image.shape[:2])
    return crop


def _fade_outside(cv2, crop: np.ndarray, quad: np.ndarray, image_hw) -> np.ndarray:
    """Blur and fade the part of ``crop`` that lies outside the photo (FFHQ padding).

    With ``d`` the signed distance of a crop pixel's source point outside the photo and
    ``p`` = 30% of the quad side (the script's pad width), the pixel moves towards a
    blurred copy (sigma 2% of the side) by ``clip(3 d / p + 1, 0, 1)`` (so the blur
    starts p/3 inside the edge) and then towards the median colour by ``clip(d / p, 0, 1)``.
    """
    size = crop.shape[0]
    h, w = image_hw
    m = crop_to_image_matrix(quad, size)
    idx = np.arange(size, dtype=np.float64)
    u, v = idx[None, :], idx[:, None]
    x = m[0, 0] * u + m[0, 1] * v + m[0, 2]
    y = m[1, 0] * u + m[1, 1] * v + m[1, 2]
    dist = np.maximum(np.maximum(-x, x - (w - 1)), np.maximum(-y, y - (h - 1)))
    if dist.max() <= -4.0:  # the script pads only when the quad comes this close
        return crop
    pad = max(0.3 * float(np.linalg.norm(quad[3] - quad[0])), 3.0)
    mask = (dist / pad).astype(np.float32)[..., None]
    img = crop.astype(np.float32)
    blur = cv2.GaussianBlur(img, (0, 0), max(0.02 * size, 0.5))
    img += (blur - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def load_rgb(image: ImageInput) -> tuple[np.ndarray, str]:
    """Any accepted image input -> (RGB ``uint8 [H, W, 3]``, name for messages)."""
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
            return np.ascontiguousarray(image), "<image>"
        try:
            pil = Image.fromarray(image)
        except (TypeError, ValueError) as e:
            raise ValueError(f"unsupported image array {image.dtype} {image.shape}: {e}") from None
        return read_image(pil), "<image>"
    name = str(image) if isinstance(image, (str, os.PathLike)) else "<image>"
    return read_image(image), name


def _detector(detector: FaceDetector | str | None) -> FaceDetector:
    if detector is None:
        return default_detector("yunet")
    if isinstance(detector, str):
        return default_detector(detector)
    return detector


def align_from_face(
    rgb: np.ndarray,
    face: Face,
    size: int = 1024,
    source: str = "<image>",
    padding: str = "ffhq",
) -> AlignedFace:
    """Align one detected :class:`Face` of ``rgb`` to a ``size x size`` crop.

    ``padding``: see :func:`warp_to_crop`.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    quad = ffhq_quad(face.landmarks)
    return AlignedFace(
        crop=warp_to_crop(rgb, quad, size, padding),
        quad=quad,
        box=np.asarray(face.box, dtype=np.float64),
        landmarks=np.asarray(face.landmarks, dtype=np.float64),
        image=rgb,
        score=face.score,
        source=source,
    )


def align_from_landmarks(
    image: ImageInput, landmarks: np.ndarray, size: int = 1024, padding: str = "ffhq"
) -> AlignedFace:
    """Align with known five landmarks ``[5, 2]`` (no detection)."""
    rgb, name = load_rgb(image)
    pts = np.asarray(landmarks, dtype=np.float64)
    quad = ffhq_quad(pts)
    box = np.concatenate([quad.min(0), quad.max(0)])
    face = Face(box=box, landmarks=pts, score=1.0)
    return align_from_face(rgb, face, size, name, padding)


def align_faces(
    image: ImageInput,
    size: int = 1024,
    detector: FaceDetector | str | None = None,
    padding: str = "ffhq",
) -> list[AlignedFace]:
    """Every face of ``image``, aligned, largest first (an empty list when none)."""
    rgb, name = load_rgb(image)
    faces = _detector(detector).detect(rgb)
    return [align_from_face(rgb, f, size, name, padding) for f in faces]


def align_face(
    image: ImageInput,
    size: int = 1024,
    face_index: int | None = None,
    detector: FaceDetector | str | None = None,
    padding: str = "ffhq",
) -> AlignedFace:
    """Detect and FFHQ-align one face of a photo.

    Args:
        image: a path, file bytes, PIL image or RGB ``uint8 [H, W, 3]`` array (any mode
            :func:`faceedit.read_image` accepts: EXIF rotation, RGBA, grey, 16-bit, CMYK).
        size: side of the square crop in pixels (FFHQ: 1024; pSp/e4e read 256).
        face_index: which face, counting from the largest (0); ``None`` = the largest.
        detector: a :class:`FaceDetector`, a backend name, or ``None`` for YuNet.
        padding: how the crop is filled where it leaves the photo: ``"ffhq"`` (blurred
            and faded, as the FFHQ script) or ``"reflect"`` (see :func:`warp_to_crop`).

    Returns:
        :class:`AlignedFace` with ``.crop`` ``uint8 [size, size, 3]``.

    Raises:
        NoFaceError: no face found (or fewer than ``face_index + 1``), naming the file.
    """
    rgb, name = load_rgb(image)
    faces = _detector(detector).detect(rgb)
    if not faces:
        raise NoFaceError(f"{name}: no face found")
    index = 0 if face_index is None else face_index
    if not 0 <= index < len(faces):
        raise NoFaceError(
            f"{name}: face index {index} asked for, but {len(faces)} "
            f"face{'s were' if len(faces) != 1 else ' was'} found"
        )
    return align_from_face(rgb, faces[index], size, name, padding)
