"""The weights registry and downloader against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import time
import zipfile

import numpy as np
import pytest
import torch

from faceedit import registry
from faceedit.checkpoints import download as downloader
from faceedit.checkpoints.download import DownloadError, download
from faceedit.cli import main
from faceedit.nets.latent import LatentClassifier, LatentTransformer
from tests.helpers.file_server import RangeServer


@pytest.fixture
def server():
    s = RangeServer()
    yield s
    s.close()


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _classifier_file(hidden: int = 16) -> bytes:
    """A small released-format latent classifier (LCNet keys, 2 x 512 inputs)."""
    g = torch.Generator().manual_seed(0)
    state = {
        "fcs.0.weight": torch.randn(hidden, 1024, generator=g),
        "fcs.0.bias": torch.randn(hidden, generator=g),
        "fcs.1.weight": torch.randn(3, hidden, generator=g),
        "fcs.1.bias": torch.randn(3, generator=g),
    }
    return _torch_bytes(state)


def _point(monkeypatch, name: str, url: str, data: bytes | None, **changes) -> None:
    """Point a registry entry at the local server (with the served file's size/sha256)."""
    entry = registry.REGISTRY[name]
    if data is not None:
        changes.setdefault("size", len(data))
        changes.setdefault("sha256", hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(registry.REGISTRY, name, dataclasses.replace(entry, url=url, **changes))


def test_full_download_verifies_and_validates(server, monkeypatch, tmp_path):
    data = _classifier_file()
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    path = download("latent-classifier", cache=tmp_path, progress=False)
    assert path == tmp_path / "latent_classifier_epoch_20.pth"
    assert path.read_bytes() == data
    assert not (tmp_path / "latent-classifier.part").exists()
    assert isinstance(downloader._load_model(path), LatentClassifier)
    # a second call finds it in the cache and does not download again
    n = len(server.requests)
    assert download("latent-classifier", cache=tmp_path, progress=False) == path
    assert len(server.requests) == n


def test_resume_after_interruption_adds_no_duplicate_bytes(server, monkeypatch, tmp_path):
    data = _classifier_file(hidden=600)  # ~2.5 MB: several download chunks
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    server.cut_after = 300_000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download("latent-classifier", cache=tmp_path, progress=False)
    part = tmp_path / "latent-classifier.part"
    assert part.stat().st_size == 300_000
    assert not (tmp_path / "latent_classifier_epoch_20.pth").exists()
    path = download("latent-classifier", cache=tmp_path, progress=False)
    assert server.requests[-1][1] == "bytes=300000-"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert path.stat().st_size == len(data)


def test_server_ignoring_range_restarts_cleanly(server, monkeypatch, tmp_path):
    data = _classifier_file()
    server.files["/c.pth"] = data
    server.ignore_range = True
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    (tmp_path / "latent-classifier.part").write_bytes(data[:1000])
    path = download("latent-classifier", cache=tmp_path, progress=False)
    assert path.read_bytes() == data


def test_bad_checksum_is_refused_and_not_left_complete(server, monkeypatch, tmp_path):
    data = _classifier_file()
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data, sha256="0" * 64)
    with pytest.raises(DownloadError, match="SHA-256 .* does not match"):
        download("latent-classifier", cache=tmp_path, progress=False)
    assert not (tmp_path / "latent_classifier_epoch_20.pth").exists()
    assert not (tmp_path / "latent-classifier.part").exists()


def test_file_that_does_not_load_is_refused(server, monkeypatch, tmp_path):
    data = b"not a checkpoint at all" * 10
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    with pytest.raises(DownloadError, match="does not load as latent-transformer classifier"):
        download("latent-classifier", cache=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_zip_release_is_unpacked_and_its_checkpoints_validated(server, monkeypatch, tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {}
    for i in range(3):
        state[f"dense.{i}.weight"] = torch.randn(8, 8, generator=g)
        state[f"dense.{i}.bias"] = torch.randn(8, generator=g)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("001/tnet_15.pth.tar", _torch_bytes(state))
        z.writestr("__MACOSX/001/._tnet_15.pth.tar", b"resource fork")  # not a checkpoint
    data = buf.getvalue()
    server.files["/m.zip"] = data
    _point(monkeypatch, "latent-transformer-models", server.url("/m.zip"), data)
    path = download("latent-transformer-models", cache=tmp_path, progress=False)
    assert path == tmp_path / "latent-transformer-models" and path.is_dir()
    model = downloader._load_model(path / "001" / "tnet_15.pth.tar")
    assert isinstance(model, LatentTransformer) and model.config.attr_name == "Eyeglasses"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latent-transformer-models"]


def test_npy_data_is_checked(server, monkeypatch, tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 40), np.float32))
    data = buf.getvalue()
    server.files["/a.npy"] = data
    _point(monkeypatch, "latent-transformer-data-2", server.url("/a.npy"), data)
    path = download("latent-transformer-data-2", cache=tmp_path, progress=False)
    assert np.load(path).shape == (4, 40)


def test_unreachable_host_fails_fast_with_the_url(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.pth"
    _point(monkeypatch, "latent-classifier", url, None)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=f"cannot reach {url}"):
        download("latent-classifier", cache=tmp_path, progress=False, timeout=1.0)
    assert time.perf_counter() - t0 < 5


def test_silent_server_times_out(monkeypatch, tmp_path):
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/x.pth"
        _point(monkeypatch, "latent-classifier", url, None)
        t0 = time.perf_counter()
        with pytest.raises(DownloadError, match=r"no answer within 0.5 s"):
            download("latent-classifier", cache=tmp_path, progress=False, timeout=0.5)
        assert time.perf_counter() - t0 < 5


def test_unknown_and_manual_names(tmp_path):
    with pytest.raises(DownloadError, match="unknown model 'nope'; known: .*psp-ffhq-encode"):
        download("nope", cache=tmp_path)
    with pytest.raises(DownloadError, match="no direct download link.*bit.ly"):
        download("attgan-384-hq", cache=tmp_path)


def test_cli_models_lists_entries_and_download_errors(server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("stylegan2-ffhq-config-f", "stylegan2-ffhq-1024x1024", "psp-ffhq-encode",
                 "e4e-ffhq-encode", "ir-se50", "attgan-384-hq", "attgan-128",
                 "latent-classifier", "latent-transformer-models"):  # fmt: skip
        assert f"\n{name}  [" in out
    assert "pSp/e4e checkpoint" in out and "NVIDIA Source Code License-NC" in out
    assert f"cache: {tmp_path}" in out
    assert main(["download", "nope"]) == 2
    assert "known: " in capsys.readouterr().err
    data = _classifier_file()
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    assert main(["download", "latent-classifier"]) == 0
    assert (tmp_path / "latent_classifier_epoch_20.pth").read_bytes() == data
    assert main(["models"]) == 0
    assert "latent-classifier  [downloaded]" in capsys.readouterr().out


def test_complete_part_and_unsafe_zip(server, monkeypatch, tmp_path):
    data = _classifier_file()
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    (tmp_path / "latent-classifier.part").write_bytes(data)  # interrupted just before rename
    path = download("latent-classifier", cache=tmp_path, progress=False)
    assert server.requests[-1][1] == f"bytes={len(data)}-" and path.read_bytes() == data
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.pth", b"x")
    server.files["/m.zip"] = buf.getvalue()
    _point(monkeypatch, "latent-transformer-models", server.url("/m.zip"), buf.getvalue())
    with pytest.raises(DownloadError, match="unsafe path '../evil.pth'"):
        download("latent-transformer-models", cache=tmp_path, progress=False)
    assert not (tmp_path.parent / "evil.pth").exists()
    assert not (tmp_path / "latent-transformer-models").exists()


def test_a_registry_file_adds_and_overrides_entries(server, monkeypatch, tmp_path, capsys):
    """$FACEEDIT_REGISTRY (mirrors, tests): an override changes a built-in entry's url and
    checksum, a new entry downloads, resolves by name and is listed; a bad checksum in
    the file is refused like any other."""
    import json

    import faceedit
    from faceedit.hub import resolve

    data = _classifier_file()
    server.files["/mirror/c.pth"] = data
    server.files["/own.pth"] = data
    sha = hashlib.sha256(data).hexdigest()
    table = tmp_path / "registry.json"
    table.write_text(
        json.dumps(
            [
                {"name": "latent-classifier", "url": server.url("/mirror/c.pth"), "sha256": sha},
                {
                    "name": "my-classifier",
                    "filename": "mine.pth",
                    "url": server.url("/own.pth"),
                    "loads_as": "latent-transformer classifier",
                    "sha256": sha,
                    "size": len(data),
                },
            ]
        )
    )
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACEEDIT_REGISTRY", str(table))
    monkeypatch.setenv("FACEEDIT_CACHE", str(cache))
    assert download("latent-classifier", progress=False).read_bytes() == data
    assert server.requests[-1][0] == "/mirror/c.pth"
    assert download("my-classifier", progress=False) == cache / "mine.pth"
    assert isinstance(faceedit.load("my-classifier"), LatentClassifier)
    assert resolve("my-classifier") == cache / "mine.pth"
    assert main(["models"]) == 0
    assert "my-classifier  [downloaded]" in capsys.readouterr().out
    # a wrong checksum in the file: refused, nothing left complete
    table.write_text(
        json.dumps(
            [
                {
                    "name": "other",
                    "filename": "o.pth",
                    "url": server.url("/own.pth"),
                    "loads_as": "x",
                    "sha256": "0" * 64,
                }
            ]
        )
    )
    with pytest.raises(DownloadError, match="SHA-256"):
        download("other", progress=False)
    assert not (cache / "o.pth").exists()
    # a malformed file is one line naming it
    table.write_text('[{"name": "x", "colour": "red"}]')
    with pytest.raises(DownloadError, match="registry.json: entry 0: unknown field"):
        download("x", progress=False)


def test_a_registry_file_can_add_a_bundle_of_parts(server, monkeypatch, tmp_path, capsys):
    """A bundle entry from $FACEEDIT_REGISTRY (parts as {role: name}) downloads its parts;
    a bundle that does not load is refused in one line with no bundle folder left, and
    an unknown part is named before anything is fetched."""
    import json

    data = _classifier_file()
    server.files["/c.pth"] = data
    _point(monkeypatch, "latent-classifier", server.url("/c.pth"), data)
    table = tmp_path / "registry.json"
    rows = [
        {"name": "only-classifier", "filename": "x", "url": "", "loads_as": "bundle",
         "kind": "bundle", "parts": {"classifier": "latent-classifier"}},
        {"name": "bad-parts", "filename": "y", "url": "", "loads_as": "bundle",
         "kind": "bundle", "parts": [["encoder", "no-such-entry"]]},
    ]  # fmt: skip
    table.write_text(json.dumps(rows))
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACEEDIT_REGISTRY", str(table))
    monkeypatch.setenv("FACEEDIT_CACHE", str(cache))
    entry = registry.entries()["only-classifier"]
    assert entry.parts == (("classifier", "latent-classifier"),)
    from faceedit.editing.latent_pipeline import LatentPipeline

    with pytest.raises(DownloadError, match="only-classifier: the assembled bundle does not load"):
        download("only-classifier", progress=False, check_bundle=LatentPipeline.from_pretrained)
    # the part is downloaded and kept; the bundle is not left half-made
    assert sorted(p.name for p in cache.iterdir()) == ["latent_classifier_epoch_20.pth"]
    n = len(server.requests)
    with pytest.raises(DownloadError, match="'no-such-entry' is unknown"):
        download("bad-parts", progress=False)
    assert len(server.requests) == n
    # without the loading check the bundle is written, naming its part relative to itself
    path = download("only-classifier", progress=False)
    spec = json.loads((path / "bundle.json").read_text())
    assert spec["classifier"] == "../latent_classifier_epoch_20.pth"
    assert spec["domain"] == "ffhq" and spec["parts"] == {"classifier": "latent-classifier"}


def test_from_is_only_for_manual_entries(tmp_path):
    from faceedit.checkpoints.download import install_folder

    with pytest.raises(DownloadError, match="--from takes in folders of manual entries"):
        install_folder("latent-classifier", tmp_path, cache=tmp_path / "cache")


def test_malformed_bundle_parts_in_a_registry_file_are_one_line(monkeypatch, tmp_path):
    import json

    table = tmp_path / "registry.json"
    table.write_text(json.dumps([{"name": "lt-ffhq-e4e", "parts": [["encoder"]]}]))
    monkeypatch.setenv("FACEEDIT_REGISTRY", str(table))
    with pytest.raises(DownloadError, match=r"registry.json: entry 'lt-ffhq-e4e': 'parts' must"):
        registry.entries()
