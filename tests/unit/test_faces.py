"""Face detection, FFHQ alignment and paste-back on real photographs.

Photos: matplotlib's grace_hopper.jpg (one face, ~186 px) and scikit-image's astronaut
(one face, ~90 px), plus files derived from them (rotated, other modes, two faces).
"""

from __future__ import annotations

import math
import os
import sys

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
from PIL import Image

import faceedit
from faceedit.data.images import read_image
from faceedit.errors import FaceeditError
from faceedit.faces import (
    DetectorUnavailable,
    FaceDetector,
    NoFaceError,
    align_face,
    align_faces,
    align_from_landmarks,
    ffhq_quad,
    five_from_68,
)

GRACE = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {"grace": read_image(GRACE), "astronaut": skimage.data.astronaut()}


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def test_detects_one_face_with_plausible_landmarks(photos, detector) -> None:
    for name, img in photos.items():
        faces = detector.detect(img)
        assert len(faces) == 1, name
        f = faces[0]
        x0, y0, x1, y1 = f.box
        assert 60 < x1 - x0 < 260 and f.score > 0.8, name
        eye_l, eye_r, nose, mouth_l, mouth_r = f.landmarks
        assert eye_l[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
        # eyes above the nose above the mouth, all inside the box
        assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
        assert np.all((f.landmarks >= (x0, y0)) & (f.landmarks <= (x1, y1)))


def test_no_face_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "wall.png"
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8), (0, 0), 8)
    Image.fromarray(smooth).save(path)
    with pytest.raises(NoFaceError, match="wall.png: no face found") as info:
        align_face(path)
    assert isinstance(info.value, FaceeditError)
    assert align_faces(path) == []


def test_alignment_puts_the_eyes_where_ffhq_does(photos, detector) -> None:
    size = 256
    for name, img in photos.items():
        aligned = align_face(img, size=size, detector=detector)
        assert aligned.crop.shape == (size, size, 3) and aligned.crop.dtype == np.uint8
        # closed form for a face whose eye-to-mouth line is perpendicular to the eye line:
        # the quad side is 2 * max(2 e, 1.8 m), its centre 0.1 m below the eye midpoint
        eye_l, eye_r, _, mouth_l, mouth_r = aligned.landmarks
        e = np.linalg.norm(eye_r - eye_l)
        m = np.linalg.norm((mouth_l + mouth_r) / 2 - (eye_l + eye_r) / 2)
        half = max(2 * e, 1.8 * m)
        k = size / (2 * half)
        expected = (
            np.array(
                [
                    [size / 2 - e / 2 * k, size / 2 - 0.1 * m * k],
                    [size / 2 + e / 2 * k, size / 2 - 0.1 * m * k],
                ]
            )
            - 0.5
        )
        got = aligned.landmarks_in_crop[:2]
        assert np.abs(got - expected).max() < 4.0, (name, got, expected)
        # the picture agrees with the geometry: the detector finds the eyes there again
        again = detector.detect(aligned.crop)
        assert len(again) == 1, name
        assert np.abs(again[0].landmarks[:2] - got).max() < 0.03 * size, name


def test_alignment_does_not_depend_on_the_photo_rotation(photos, detector) -> None:
    img = photos["grace"]
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 0.8)
    rotated = cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_LINEAR)
    upright = align_face(img, size=128, detector=detector)
    # the same landmarks, carried by the rotation: the same crop
    carried = upright.landmarks @ rot[:, :2].T + rot[:, 2]
    turned = align_from_landmarks(rotated, carried, size=128)
    assert not np.allclose(turned.quad, upright.quad, atol=10)
    inner = (slice(24, -24), slice(24, -24))  # away from the reflected border
    assert psnr(turned.crop[inner], upright.crop[inner]) > 27
    # and the detector on the rotated photo lands the eyes nearly there too
    tilted = align_face(rotated, size=128, detector=detector)
    assert np.abs(tilted.landmarks_in_crop[:2] - upright.landmarks_in_crop[:2]).max() < 8


@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_paste_back_of_the_unedited_crop_restores_the_photo(photos, detector, name) -> None:
    img = photos[name]
    aligned = align_face(img, detector=detector)  # default 1024 px
    assert aligned.crop.shape == (1024, 1024, 3)
    restored = aligned.paste_back(aligned.crop)
    assert restored.shape == img.shape and restored.dtype == np.uint8
    assert psnr(restored, img) >= 40.0


def test_paste_back_keep_detail_is_exact_for_small_crops(photos, detector) -> None:
    img = photos["grace"]
    aligned = align_face(img, size=128, detector=detector)  # the face is ~320 px
    assert psnr(aligned.paste_back(aligned.crop), img) < 40  # detail lost by the crop
    assert psnr(aligned.paste_back(aligned.crop, keep_detail=True), img) > 60


@pytest.mark.parametrize("blend", ["feather", "seamless"])
def test_paste_back_changes_only_the_face(photos, detector, blend) -> None:
    img = photos["astronaut"]
    aligned = align_face(img, size=256, detector=detector)
    edited = aligned.crop.copy()
    edited[96:160, 96:160] = (0, 255, 0)  # a green square between eyes and mouth
    out = aligned.paste_back(edited, blend=blend)
    quad_mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(quad_mask, np.round(aligned.quad).astype(np.int32), 1)
    outside = cv2.dilate(quad_mask, np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(out[outside], img[outside])
    # the square's centre in the photo is green now
    cx, cy = aligned.matrix @ np.array([127.5, 127.5, 1.0])
    pixel = out[int(round(cy)), int(round(cx))].astype(int)
    assert pixel[1] > 200 and pixel[0] < 60 and pixel[2] < 60, pixel
    # a 2x larger edit (e.g. a 512 px generator output for a 256 px crop) goes back too
    big = cv2.resize(edited, (512, 512), interpolation=cv2.INTER_NEAREST)
    assert psnr(aligned.paste_back(big, blend=blend), out) > 30


def test_paste_back_rejects_bad_crops(photos, detector) -> None:
    aligned = align_face(photos["astronaut"], size=64, detector=detector)
    with pytest.raises(ValueError, match="square"):
        aligned.paste_back(np.zeros((64, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        aligned.paste_back(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="blend"):
        aligned.paste_back(aligned.crop, blend="poisson")


def _save_variants(img: np.ndarray, tmp_path) -> dict[str, str]:
    pil = Image.fromarray(img)
    paths = {}
    rgba = pil.convert("RGBA")
    rgba.putalpha(Image.new("L", pil.size, 255))
    paths["rgba"] = tmp_path / "rgba.png"
    rgba.save(paths["rgba"])
    paths["grey"] = tmp_path / "grey.png"
    pil.convert("L").save(paths["grey"])
    grey16 = (np.asarray(pil.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    paths["grey16"] = tmp_path / "grey16.png"
    Image.fromarray(grey16).save(paths["grey16"])
    paths["cmyk"] = tmp_path / "cmyk.jpg"
    pil.convert("CMYK").save(paths["cmyk"], quality=95)
    # stored rotated by 90 degrees, with the EXIF tag that says how to turn it upright
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    paths["exif"] = tmp_path / "exif.jpg"
    pil.transpose(Image.Transpose.ROTATE_90).save(paths["exif"], exif=exif, quality=95)
    return {k: str(v) for k, v in paths.items()}


def test_inputs_of_every_mode_align(photos, detector, tmp_path) -> None:
    img = photos["grace"]
    reference = align_face(img, size=128, detector=detector)
    paths = _save_variants(img, tmp_path)
    assert Image.open(paths["grey16"]).mode.startswith("I")
    for kind, path in paths.items():
        aligned = align_face(path, size=128, detector=detector)
        assert aligned.image.shape == img.shape, kind
        assert aligned.source == path
        err = np.abs(aligned.landmarks - reference.landmarks).max()
        assert err < 6.0, (kind, err)
        restored = aligned.paste_back(aligned.crop, keep_detail=True)
        assert psnr(restored, aligned.image) > 60, kind


def test_several_faces_largest_first(photos, detector) -> None:
    grace = photos["grace"]
    astro = cv2.resize(photos["astronaut"], (600, 600), interpolation=cv2.INTER_AREA)
    both = np.concatenate([astro[:, :, :], np.pad(grace, ((0, 0), (0, 0), (0, 0)))], axis=1)
    faces = align_faces(both, size=64, detector=detector)
    assert len(faces) == 2
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas[0] >= areas[1]
    # the largest face by default, the other one by index
    first = align_face(both, size=64, detector=detector)
    second = align_face(both, size=64, face_index=1, detector=detector)
    np.testing.assert_allclose(first.quad, faces[0].quad)
    np.testing.assert_allclose(second.quad, faces[1].quad)
    assert (first.landmarks[0, 0] < 600) != (second.landmarks[0, 0] < 600)
    with pytest.raises(NoFaceError, match="face index 2 asked for, but 2 faces were found"):
        align_face(both, size=64, face_index=2, detector=detector)


def test_ffhq_quad_follows_the_landmarks() -> None:
    pts = np.array([[40.0, 50.0], [80.0, 50.0], [60.0, 70.0], [45.0, 90.0], [75.0, 90.0]])
    quad = ffhq_quad(pts)
    # e = 40, m = 40: half side max(80, 72) = 80, centre 4 px below the eye midpoint
    np.testing.assert_allclose(quad, [[-20, -26], [-20, 134], [140, 134], [140, -26]])
    # rotating and scaling the landmarks rotates and scales the quad with them
    a = math.radians(30)
    rot = 1.5 * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    np.testing.assert_allclose(ffhq_quad(pts @ rot.T + 7), quad @ rot.T + 7, atol=1e-9)
    with pytest.raises(ValueError, match="five landmarks"):
        ffhq_quad(pts[:4])


def test_align_from_known_landmarks(photos, detector) -> None:
    img = photos["astronaut"]
    detected = align_face(img, size=96, detector=detector)
    given = align_from_landmarks(img, detected.landmarks, size=96)
    assert np.array_equal(given.crop, detected.crop)


def test_five_points_from_68() -> None:
    pts68 = np.zeros((68, 2))
    pts68[36:42] = (30, 40)
    pts68[42:48] = (70, 40)
    pts68[30] = (50, 60)
    pts68[48] = (35, 80)
    pts68[54] = (65, 80)
    np.testing.assert_allclose(
        five_from_68(pts68), [[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]
    )


def test_dlib_backend_missing_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail
    with pytest.raises(DetectorUnavailable, match="dlib"):
        FaceDetector("dlib")
    with pytest.raises(DetectorUnavailable, match="unknown face detector"):
        FaceDetector("mtcnn")


def test_public_api_is_lazy() -> None:
    assert faceedit.align_face is align_face


def test_ffhq_padding_blurs_only_outside_the_photo(photos, detector) -> None:
    edge = np.ascontiguousarray(photos["grace"][60:420, 150:])  # the face near the top-left
    ffhq = align_face(edge, size=128, detector=detector)
    plain = align_face(edge, size=128, detector=detector, padding="reflect")
    assert ffhq.quad.min() < 0  # the quad leaves the photo
    # source x of each crop column (rows are nearly level): pick columns outside / inside
    cols_x = ffhq.matrix[0, 0] * np.arange(128) + ffhq.matrix[0, 2]
    outside, inside = cols_x < -5, cols_x > 60
    assert outside.sum() >= 4 and inside.sum() >= 40
    centre = (slice(40, 100), inside)
    assert np.array_equal(ffhq.crop[centre], plain.crop[centre])

    def detail(img: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)).mean())

    assert detail(ffhq.crop[:, outside]) < 0.5 * detail(plain.crop[:, outside])
    with pytest.raises(ValueError, match="padding"):
        align_face(edge, size=64, detector=detector, padding="zeros")


def test_decompression_bomb_is_refused(tmp_path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # 144 megapixels in a few kilobytes
    assert path.stat().st_size < 100_000
    with pytest.raises(FaceeditError, match=r"bomb\.png: .*(too large|limit)"):
        align_face(path)


def test_crop_as_encoder_input(photos, detector) -> None:
    aligned = align_face(photos["astronaut"], size=512, detector=detector)
    x = aligned.to_tensor()
    assert tuple(x.shape) == (1, 3, 256, 256) and x.dtype.is_floating_point
    assert -1.0 <= float(x.min()) < -0.5 and 0.5 < float(x.max()) <= 1.0
    # area averaging: each output pixel is the mean of a 2x2 block of the crop
    block = aligned.crop[100:102, 200:202].astype(np.float64).mean(axis=(0, 1))
    np.testing.assert_allclose((x[0, :, 50, 100].numpy() + 1) * 127.5, block, atol=1.0)
    same = aligned.to_tensor(None)
    assert tuple(same.shape) == (1, 3, 512, 512)


def test_dlib_backend_reduces_68_points(monkeypatch, tmp_path) -> None:
    import types

    # a stand-in for dlib and the face_recognition_models package (files only)
    models = tmp_path / "face_recognition_models" / "models"
    models.mkdir(parents=True)
    (models.parent / "__init__.py").write_text("")
    (models / "shape_predictor_68_face_landmarks.dat").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    pts68 = np.random.default_rng(0).uniform(0, 10, (68, 2))
    pts68[36:42] += (140, 100)  # eye on the image's right listed first, as dlib does not
    pts68[42:48] += (100, 100)
    pts68[30] = (120, 130)
    pts68[48], pts68[54] = (135, 160), (105, 160)

    class Rect:
        def left(self):
            return 80

        def top(self):
            return 70

        def right(self):
            return 170

        def bottom(self):
            return 180

    class Detector:
        def run(self, image, upsample, threshold):
            assert image.shape == (240, 240, 3) and upsample == 1
            return [Rect()], [1.5], [0]

    def shape_predictor(path):
        assert path.endswith("shape_predictor_68_face_landmarks.dat")
        point = types.SimpleNamespace
        parts = [point(x=float(x), y=float(y)) for x, y in pts68]
        return lambda image, rect: types.SimpleNamespace(parts=lambda: parts)

    fake = types.SimpleNamespace(
        get_frontal_face_detector=Detector, shape_predictor=shape_predictor
    )
    monkeypatch.setitem(sys.modules, "dlib", fake)
    faces = FaceDetector("dlib").detect(np.zeros((240, 240, 3), np.uint8))
    assert len(faces) == 1 and faces[0].score == 1.5
    np.testing.assert_allclose(faces[0].box, [80, 70, 170, 180])
    np.testing.assert_allclose(faces[0].landmarks68, pts68)
    five = faces[0].landmarks
    np.testing.assert_allclose(five[0], pts68[42:48].mean(0))  # left in the image first
    np.testing.assert_allclose(five[1], pts68[36:42].mean(0))
    np.testing.assert_allclose(five[3:], [pts68[54], pts68[48]])
