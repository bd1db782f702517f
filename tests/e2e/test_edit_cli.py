"""``faceedit edit`` and the photo pipeline end to end on a real photo (matplotlib's
grace_hopper.jpg) with tiny random models: paste-back leaves the photo unchanged away from
the face and changes the face; several inputs; every error is one line with no output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit.cli import main
from faceedit.data.images import read_image
from tests.helpers.tiny_edit import ATTRS, GRACE, attgan_model, latent_bundle, read_only

STEPS = "4"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"latent": latent_bundle(root), "attgan": attgan_model(root)}


@pytest.fixture(scope="module")
def face_box():
    """The photo's face region (the aligned quad's bounds, dilated for the feather)."""
    from faceedit.faces import align_face

    face = align_face(str(GRACE), size=32)
    x0, y0 = np.floor(face.quad.min(0)).astype(int) - 3
    x1, y1 = np.ceil(face.quad.max(0)).astype(int) + 3
    return max(x0, 0), max(y0, 0), x1, y1


def _check_pasted(out: np.ndarray, original: np.ndarray, box) -> None:
    x0, y0, x1, y1 = box
    assert out.shape == original.shape
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], original[outside])
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    h, w = (y1 - y0) // 4, (x1 - x0) // 4
    centre = np.abs(
        out[cy - h : cy + h, cx - w : cx + w].astype(int)
        - original[cy - h : cy + h, cx - w : cx + w].astype(int)
    )
    assert centre.mean() > 10  # the face itself was replaced


def test_latent_edit_with_compare(models, face_box, tmp_path):
    out = tmp_path / "out.png"
    args = [
        "edit",
        str(GRACE),
        "--attr",
        "Smiling=1",
        "--attr",
        "Eyeglasses=0.5",
        "--model",
        str(models["latent"]),
        "--steps",
        STEPS,
        "--device",
        "cpu",
        "--compare",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    original = read_image(GRACE)
    edited = read_image(out)
    _check_pasted(edited, original, face_box)
    from faceedit.fileio import _umask

    # written through a private temp file, the output still gets the umask's permissions
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    compare = read_image(tmp_path / "out_compare.png")
    h, w = original.shape[:2]
    assert compare.shape == (h, 2 * w, 3)
    assert np.array_equal(compare[:, :w], original)
    assert np.array_equal(compare[:, w:], edited)
    # a different strength gives a different face: the edit reaches the pixels
    out2 = tmp_path / "out2.png"
    args2 = [a if a != "Smiling=1" else "Smiling=-1" for a in args[:-3]] + ["-o", str(out2)]
    assert main(args2) == 0
    assert not np.array_equal(read_image(out2), edited)


def test_attgan_edit(models, face_box, tmp_path):
    out = tmp_path / "a.jpg"
    assert (
        main(
            [
                "edit",
                str(GRACE),
                "--attr",
                "Eyeglasses=1",
                "--method",
                "attgan",
                "--model",
                str(models["attgan"]),
                "--device",
                "cpu",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    # JPEG: compare the PNG-exact API result instead of the lossy file
    from faceedit.editing.pipeline import edit_photo

    res = edit_photo(str(GRACE), {"Eyeglasses": 1.0}, method="attgan", model=models["attgan"])
    _check_pasted(res.image, read_image(GRACE), face_box)
    assert read_image(out).shape == res.image.shape
    # written at high JPEG quality: close to the exact result
    assert np.abs(read_image(out).astype(int) - res.image).mean() < 1.0
    assert res.faces[0].face.crop.shape == (32, 32, 3)


def test_individual_parts_and_aligned_input(models, tmp_path):
    crop = np.asarray(Image.open(GRACE).convert("RGB").crop((100, 60, 400, 360)).resize((64, 64)))
    Image.fromarray(crop).save(tmp_path / "crop.png")
    root = models["latent"]
    out = tmp_path / "crop_out.png"
    assert (
        main(
            [
                "edit",
                str(tmp_path / "crop.png"),
                "--aligned",
                "--attr",
                "Smiling",
                "--generator",
                str(root / "generator"),
                "--transformers",
                str(root / "transformers"),
                "--invert",
                "optimize",
                "--steps",
                STEPS,
                "--device",
                "cpu",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    edited = read_image(out)
    assert edited.shape == crop.shape
    assert np.abs(edited.astype(int) - crop.astype(int)).mean() > 10


def test_encoder_inversion_and_previous_code(models):
    """invert="encoder" uses the encoder alone; optimisation starts from a given code."""
    from faceedit.editing.latent_pipeline import LatentPipeline
    from faceedit.editing.pipeline import FaceEditor

    parts = LatentPipeline.from_pretrained(models["latent"])
    G = parts.generator
    calls = []

    class Encoder(torch.nn.Module):
        num_ws = G.num_ws

        def forward(self, img):
            calls.append(tuple(img.shape))
            return G.w_avg.expand(len(img), G.num_ws, G.w_dim).clone()

    parts.encoder = Encoder()
    crop = read_image(GRACE)[100:356, 150:406]
    fe = FaceEditor(parts.with_options(invert="encoder")).edit_crop(crop, {"Smiling": 1.0})
    assert calls == [(1, 3, 256, 256)]
    assert torch.equal(fe.ws, G.w_avg.expand(1, G.num_ws, G.w_dim))
    assert not torch.equal(fe.edited_ws, fe.ws)
    assert set(fe.scores) == set(ATTRS)
    # optimisation from a start code: with lr tiny the code stays there
    opt = FaceEditor(parts.with_options(invert="optimize", steps=2, lr=1e-8))
    start = torch.randn(1, G.num_ws, G.w_dim)
    assert torch.allclose(opt.invert_crop(crop, init=start), start, atol=1e-5)


def test_several_inputs_one_bad(models, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(GRACE).save(folder / "a.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    Image.new("RGB", (200, 200), (120, 130, 140)).save(folder / "noface.png")
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [
            "edit",
            str(folder),
            str(tmp_path / "missing.jpg"),
            "--attr",
            "Smiling=1",
            "--model",
            str(models["latent"]),
            "--steps",
            STEPS,
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "noface.png: no face found" in err
    assert "missing.jpg: no such file" in err and "3 of 4 photos failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # nothing partial


def _error(args, capsys) -> str:
    code = main(args)
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_errors_are_one_line_and_leave_no_output(models, tmp_path, capsys):
    base = [
        "edit",
        str(GRACE),
        "--model",
        str(models["latent"]),
        "--steps",
        STEPS,
        "--device",
        "cpu",
    ]
    out = tmp_path / "o.png"
    err = _error(base + ["--attr", "Bald=1", "-o", str(out)], capsys)
    assert f"{models['latent']}: unknown attribute 'Bald'" in err
    assert "Eyeglasses, Smiling" in err
    err = _error(base + ["--attr", "Smiling=nan", "-o", str(out)], capsys)
    assert "--attr Smiling=nan: strength must be a number" in err
    err = _error(base + ["--attr", "Smiling=abc", "-o", str(out)], capsys)
    assert "not a number" in err
    err = _error(base + ["--attr", "Smiling=50", "-o", str(out)], capsys)
    assert "strength" in err
    err = _error(
        [
            "edit",
            str(GRACE),
            "--attr",
            "Smiling=1",
            "--model",
            str(tmp_path / "nope"),
            "-o",
            str(out),
        ],
        capsys,
    )
    assert "nope" in err and "not found" in err
    err = _error(
        [
            "edit",
            str(GRACE),
            "--attr",
            "Smiling=1",
            "--generator",
            str(models["latent"] / "generator"),
            "-o",
            str(out),
        ],
        capsys,
    )
    assert "transformers" in err
    err = _error(base + ["--attr", "Smiling=1", "--invert", "encoder", "-o", str(out)], capsys)
    assert "no encoder" in err
    err = _error(base + ["--attr", "Smiling=1", "-o", str(tmp_path / "no" / "o.png")], capsys)
    assert "does not exist" in err
    ro = tmp_path / "ro"
    ro.mkdir()
    if read_only(ro):
        err = _error(base + ["--attr", "Smiling=1", "-o", str(ro / "o.png")], capsys)
        assert "not writable" in err
        assert list(ro.iterdir()) == []
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]


def test_all_faces(models):
    """Two photos side by side: --all-faces edits both faces, the default only one."""
    import skimage.data

    from faceedit.editing.pipeline import build_editor

    grace = np.asarray(Image.open(GRACE).convert("RGB").resize((512, 600)))
    astronaut = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((512, 512)))
    canvas = np.full((600, 1024, 3), 200, np.uint8)
    canvas[:, :512], canvas[:512, 512:] = grace, astronaut
    editor = build_editor("attgan", models["attgan"])
    both = editor.edit_photo(canvas, {"Eyeglasses": 1.0}, face_index="all")
    assert len(both.faces) == 2
    changed = np.abs(both.image.astype(int) - canvas).sum(axis=2) > 0
    assert changed[:, :512].any() and changed[:, 512:].any()
    one = editor.edit_photo(canvas, {"Eyeglasses": 1.0})
    changed = np.abs(one.image.astype(int) - canvas).sum(axis=2) > 0
    assert changed[:, :512].any() != changed[:, 512:].any()


def test_psp_file_gives_encoder_and_generator(models, tmp_path, monkeypatch):
    """A pSp/e4e file as --model: its encoder inverts and its decoder renders."""
    import faceedit.checkpoints
    from faceedit.editing.pipeline import build_editor
    from faceedit.nets.encoders import EncoderWithDecoder

    G = faceedit.checkpoints.load(models["latent"] / "generator")

    class Encoder(torch.nn.Module):
        num_ws = G.num_ws

        def forward(self, img):
            return G.w_avg.expand(len(img), G.num_ws, G.w_dim).clone()

    real_load = faceedit.checkpoints.load
    psp = tmp_path / "psp_ffhq_encode.pt"
    psp.write_bytes(b"stand-in")

    def load(path, **options):
        if str(path) == str(psp):
            return EncoderWithDecoder(Encoder(), G)
        return real_load(path, **options)

    monkeypatch.setattr(faceedit.checkpoints, "load", load)
    editor = build_editor("latent", psp, transformers=models["latent"] / "transformers")
    assert editor.editor.settings()["invert"] == "encoder"
    assert editor.editor.generator is G
    assert isinstance(editor.editor.encoder, Encoder)
    result = editor.edit_photo(str(GRACE), {"Eyeglasses": 1.0})
    assert torch.equal(result.faces[0].ws, G.w_avg.expand(1, G.num_ws, G.w_dim))
