"""``faceedit edit`` on the bad-input matrix (issue 7): each file gives a correct result or
a one-line error naming it, a non-zero exit code and no output file."""

from __future__ import annotations

from faceedit.cli import main
from faceedit.data.images import read_image
from tests.helpers.bad_images import bad_image_files
from tests.helpers.tiny_edit import attgan_model


def test_edit_matrix(tmp_path, capsys):
    model = attgan_model(tmp_path)
    cases = bad_image_files(tmp_path / "in")
    for name, case in cases.items():
        out = tmp_path / "out" / f"{case.path.stem}_edited.png"
        out.parent.mkdir(exist_ok=True)
        argv = ["edit", str(case.path), "--attr", "Eyeglasses=1", "--method", "attgan",
                "--model", str(model), "--device", "cpu", "-o", str(out)]  # fmt: skip
        code = main(argv)
        err = capsys.readouterr().err.strip()
        if case.for_faces is None:
            assert code == 0, (name, err)
            assert read_image(out).shape == read_image(case.path).shape, name
        else:
            assert code != 0, name
            # a readable file without a usable face may also just be "no face found"
            expected = [case.for_faces] + (["no face found"] if case.unreadable is None else [])
            assert name in err and any(e in err for e in expected), (name, err)
            assert len(err.splitlines()) == 1 and "Traceback" not in err, err
            assert not out.exists(), name
    # an output in a missing directory: one line, nothing written
    missing = tmp_path / "nowhere" / "x.png"
    good = cases["rgba.png"].path
    argv = ["edit", str(good), "--attr", "Eyeglasses=1", "--method", "attgan",
            "--model", str(model), "-o", str(missing)]  # fmt: skip
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and len(err.splitlines()) == 1
    assert not missing.parent.exists()
