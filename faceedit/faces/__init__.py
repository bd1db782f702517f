"""Face detection, 5-point landmarks, FFHQ alignment, inverse warp and paste-back.

``align_face(photo)`` detects (YuNet by default), aligns the largest face FFHQ-style and
returns an :class:`AlignedFace` whose ``paste_back(edited_crop)`` puts an edit back.
OpenCV and the detector's model file come with ``pip install 'faceedit[faces]'``; they
are imported only when a face is detected or warped.
"""

from faceedit.faces.align import (
    AlignedFace,
    align_face,
    align_faces,
    align_from_face,
    align_from_landmarks,
    ffhq_quad,
)
from faceedit.faces.detect import (
    DetectorUnavailable,
    Face,
    FaceDetector,
    NoFaceError,
    five_from_68,
)

__all__ = [
    "AlignedFace",
    "DetectorUnavailable",
    "Face",
    "FaceDetector",
    "NoFaceError",
    "align_face",
    "align_faces",
    "align_from_face",
    "align_from_landmarks",
    "ffhq_quad",
    "five_from_68",
]
