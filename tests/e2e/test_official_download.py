"""The official weights in one command, end to end: a local HTTP server (127.0.0.1, Range
requests) serves official-format files with random weights (tests/helpers/official_files),
``$FACEEDIT_REGISTRY`` points the registry at it and ``$FACEEDIT_CACHE`` is a temporary
folder; ``faceedit download lt-ffhq-e4e`` (interrupted once, then resumed) assembles the
bundle and ``faceedit edit`` of a real photo with no ``--model`` uses it. A checksum
mismatch is refused, and the AttGAN release folder is taken in with ``--from``."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import faceedit
from faceedit import hub
from faceedit.cli import main
from faceedit.data.images import read_image
from tests.helpers import official_files as official
from tests.helpers.file_server import RangeServer
from tests.helpers.tiny_edit import GRACE
from tests.parity.fixtures import require_parity

CUT_AFTER = 3_000_000  # bytes the first transfer of the encoder gets before the drop


# registry entry -> the path the server gives its file under
SERVED = {
    "e4e-ffhq-encode": "/e4e_ffhq_encode.pt",
    "latent-transformer-models": "/pretrained_models.zip",
    "latent-classifier": "/latent_classifier_epoch_20.pth",
}


@pytest.fixture(scope="module")
def server():
    parity = require_parity()
    s = RangeServer(
        {
            SERVED["e4e-ffhq-encode"]: official.e4e_file(parity),
            SERVED["latent-transformer-models"]: official.transformers_zip(),
            SERVED["latent-classifier"]: official.classifier_file(),
        }
    )
    yield s
    s.close()


def _registry_file(server: RangeServer, path, **sha_overrides: str):
    """A ``$FACEEDIT_REGISTRY`` file pointing the parts at the server (url, size, sha256)."""
    rows = []
    for name, served in SERVED.items():
        data = server.files[served]
        sha = sha_overrides.get(name.replace("-", "_"), hashlib.sha256(data).hexdigest())
        rows.append({"name": name, "url": server.url(served), "size": len(data), "sha256": sha})
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACEEDIT_CACHE", str(cache))
    monkeypatch.setenv("FACEEDIT_REGISTRY", str(_registry_file(server, tmp_path / "reg.json")))
    return cache


def _face_box():
    """The photo's face region (the aligned quad's bounds, dilated for the feather)."""
    from faceedit.faces import align_face

    face = align_face(str(GRACE), size=32)
    x0, y0 = np.floor(face.quad.min(0)).astype(int) - 3
    x1, y1 = np.ceil(face.quad.max(0)).astype(int) + 3
    return max(x0, 0), max(y0, 0), x1, y1


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_download_bundle_resumes_then_edit_uses_it_without_model(
    server, env, tmp_path, capsys, monkeypatch
):
    cache = env
    out = tmp_path / "out.png"
    edit = ["edit", str(GRACE), "--attr", "Smiling=1", "--device", "cpu", "-o", str(out)]
    # nothing downloaded: exit 2 naming the command to run and `faceedit models`
    assert main(edit) == 2
    err = _one_line(capsys.readouterr().err)
    assert "faceedit download lt-ffhq-e4e" in err and "faceedit models" in err
    assert not out.exists()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "\nlt-ffhq-e4e  [not downloaded]" in listing
    assert "\nlt-ffhq-psp  [not downloaded]" in listing

    # the first transfer of the encoder is dropped: one line, the .part kept for resuming
    server.cut[SERVED["e4e-ffhq-encode"]] = CUT_AFTER
    assert main(["download", "lt-ffhq-e4e", "-q"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "run the same command again to resume" in err
    part = cache / "e4e-ffhq-encode.part"
    assert part.stat().st_size == CUT_AFTER
    assert not (cache / "e4e_ffhq_encode.pt").exists() and not (cache / "lt-ffhq-e4e").exists()

    assert main(["download", "lt-ffhq-e4e", "-q"]) == 0
    assert capsys.readouterr().out.strip() == f"lt-ffhq-e4e: {cache / 'lt-ffhq-e4e'}"
    encoder_requests = [r for p, r in server.requests if p == SERVED["e4e-ffhq-encode"]]
    assert encoder_requests[-1] == f"bytes={CUT_AFTER}-"  # resumed, not restarted
    got = (cache / "e4e_ffhq_encode.pt").read_bytes()
    assert got == server.files[SERVED["e4e-ffhq-encode"]] and not part.exists()
    # nothing but the parts, the unpacked zip and the bundle: no temporary leftovers
    assert sorted(p.name for p in cache.iterdir()) == [
        "e4e_ffhq_encode.pt",
        "latent-transformer-models",
        "latent_classifier_epoch_20.pth",
        "lt-ffhq-e4e",
    ]
    spec = json.loads((cache / "lt-ffhq-e4e" / "bundle.json").read_text())
    assert spec["method"] == "latent" and spec["domain"] == "ffhq"
    assert spec["encoder"] == "../e4e_ffhq_encode.pt"
    assert spec["transformers"] == "../latent-transformer-models/001"
    assert spec["classifier"] == "../latent_classifier_epoch_20.pth"

    # a second call finds everything in place: no request at all
    n = len(server.requests)
    assert main(["download", "lt-ffhq-e4e", "-q"]) == 0 and len(server.requests) == n
    capsys.readouterr()
    assert hub.catalogue()["lt-ffhq-e4e"].path == cache / "lt-ffhq-e4e"
    assert hub.default_model() == "lt-ffhq-e4e"
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "\nlt-ffhq-e4e  [downloaded]" in listing
    assert "\nlt-ffhq-psp  [not downloaded]" in listing  # its pSp part is missing
    pipe = faceedit.load("lt-ffhq-e4e")
    assert isinstance(pipe, faceedit.LatentPipeline) and pipe.domain == "ffhq"
    assert sorted(pipe.attributes) == ["Eyeglasses", "Smiling"]
    del pipe

    # the edit with no --model: says which model on one stderr line, edits the face only
    assert main(edit) == 0
    captured = capsys.readouterr()
    used = [line for line in captured.err.splitlines() if "--model" in line]
    assert len(used) == 1 and "using lt-ffhq-e4e" in used[0]
    original, edited = read_image(GRACE), read_image(out)
    assert edited.shape == original.shape
    x0, y0, x1, y1 = _face_box()
    outside = np.ones(edited.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(edited[outside], original[outside])
    cy, cx, h, w = (y0 + y1) // 2, (x0 + x1) // 2, (y1 - y0) // 4, (x1 - x0) // 4
    centre = np.abs(
        edited[cy - h : cy + h, cx - w : cx + w].astype(int)
        - original[cy - h : cy + h, cx - w : cx + w].astype(int)
    )
    assert centre.mean() > 10  # the face itself was replaced

    # the bundle names its parts relative to itself: a moved cache still resolves them
    moved = tmp_path / "moved-cache"
    cache.rename(moved)
    monkeypatch.setenv("FACEEDIT_CACHE", str(moved))
    parts = hub.read_bundle(hub.resolve("lt-ffhq-e4e"))
    for key in ("encoder", "transformers", "classifier"):
        assert (moved / "lt-ffhq-e4e" / spec[key]).exists()
        assert parts[key] == str(moved / "lt-ffhq-e4e" / spec[key])


def test_a_checksum_mismatch_is_refused(server, env, tmp_path, monkeypatch, capsys):
    cache = env
    bad = _registry_file(server, tmp_path / "bad.json", e4e_ffhq_encode="0" * 64)
    monkeypatch.setenv("FACEEDIT_REGISTRY", str(bad))
    assert main(["download", "lt-ffhq-e4e", "-q"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "e4e-ffhq-encode: SHA-256" in err and "does not match" in err
    # nothing left in the final places, not even the part
    assert list(cache.iterdir()) == []
    assert hub.catalogue()["lt-ffhq-e4e"].path is None


def test_the_attgan_release_folder_in_one_command(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACEEDIT_CACHE", str(cache))
    downloads = tmp_path / "Downloads"
    release = official.attgan_release_folder(downloads, "128_shortcut1_inject1_none", 128)
    # without --from: the message says the exact command
    assert main(["download", "attgan-128"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "faceedit download attgan-128 --from FOLDER" in err and "bit.ly" in err
    assert main(["edit", str(GRACE), "--attr", "Smiling=1", "--method", "attgan",
                 "--model", "attgan-128", "-o", str(tmp_path / "o.png")]) == 2  # fmt: skip
    assert "faceedit download attgan-128 --from FOLDER" in _one_line(capsys.readouterr().err)

    # a folder of the other release (32 px here), one without weights, broken weights:
    # one line each, nothing in the cache
    small = official.attgan_release_folder(tmp_path / "other", "small", 32)
    empty = tmp_path / "empty"
    (empty / "checkpoint").mkdir(parents=True)
    (empty / "setting.txt").write_text((release / "setting.txt").read_text())
    broken = tmp_path / "broken"
    (broken / "checkpoint").mkdir(parents=True)
    (broken / "setting.txt").write_text((release / "setting.txt").read_text())
    (broken / "checkpoint" / "weights.3.pth").write_bytes(b"not torch" * 100)
    for folder, says in (
        (small, "holds a 32 px AttGAN, attgan-128 is 128 px"),
        (empty, "no weights.<N>.pth"),
        (broken, "does not load"),
        (tmp_path / "nowhere", "no such folder"),
        (tmp_path, "no setting.txt"),
    ):
        assert main(["download", "attgan-128", "--from", str(folder)]) == 2, folder
        assert says in _one_line(capsys.readouterr().err)
        assert not cache.exists() or list(cache.iterdir()) == []

    # the parent folder that holds the release folder is accepted as well as the folder
    assert main(["download", "attgan-128", "--from", str(downloads)]) == 0
    final = cache / "128_shortcut1_inject1_none"
    assert capsys.readouterr().out.strip() == f"attgan-128: {final}"
    assert sorted(p.name for p in cache.iterdir()) == [final.name]
    assert (final / "checkpoint" / "weights.0.pth").read_bytes() == (
        release / "checkpoint" / "weights.0.pth"
    ).read_bytes()
    assert hub.resolve("attgan-128") == final
    assert hub.catalogue()["attgan-128"].path == final
    from faceedit.editing.methods import attgan_editor

    editor = attgan_editor("attgan-128")
    assert editor.config.img_size == 128
    # the release folder itself, for the 384 px entry's name: refused (another release)
    assert main(["download", "attgan-384-hq", "--from", str(release)]) == 2
    assert "holds a 128 px AttGAN" in _one_line(capsys.readouterr().err)


def test_video_without_model_names_the_download_command(tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    from tests.helpers.tiny_edit import make_video

    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    make_video(tmp_path / "in.mp4", n_frames=2, audio=None)
    out = tmp_path / "out.mp4"
    assert main(["video", str(tmp_path / "in.mp4"), "--attr", "Smiling=1", "-o", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "faceedit download lt-ffhq-e4e" in err and "faceedit models" in err
    assert not out.exists()
