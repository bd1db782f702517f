"""Hostile checkpoints are refused before anything in them runs or is allocated.

Each attack writes a marker file if its code ever ran; each test checks the refusal
message (naming the file), that the marker is absent and that peak memory barely moved.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

import faceedit
from faceedit.checkpoints import guards
from faceedit.errors import CheckpointError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _refused(path: Path, *fragments: str) -> str:
    before = _peak_mb()
    with pytest.raises(CheckpointError) as info:
        faceedit.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    # a refusal must not have allocated what the file declared (hundreds of GB here)
    assert _peak_mb() - before < 200
    return message


class _Call:
    """Pickles as ``func(*args)``: what an attacker's object would run on load."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _torch_zip(obj_pickle: bytes | None = None, tensors: dict | None = None) -> bytes:
    """A real ``torch.save`` zip, optionally with ``data.pkl`` replaced."""
    buf = io.BytesIO()
    torch.save(tensors if tensors is not None else {"w": torch.ones(4)}, buf)
    if obj_pickle is None:
        return buf.getvalue()
    return _rezip(buf.getvalue(), {"archive/data.pkl": obj_pickle})


def _rezip(data: bytes, replace: dict[str, bytes], compress: str | None = None) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            payload = replace.get(info.filename, src.read(info))
            kind = zipfile.ZIP_DEFLATED if info.filename == compress else zipfile.ZIP_STORED
            z.writestr(info.filename, payload, compress_type=kind)
    return out.getvalue()


def _legacy(obj_pickle: bytes) -> bytes:
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    return (
        magic
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
        + obj_pickle
        + pickle.dumps([], protocol=2)
    )


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "code from the checkpoint ran"


# -- code execution through globals ------------------------------------------------


def test_os_system_in_torch_zip(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "evil.pt"
    evil = pickle.dumps({"w": _Call(os.system, f"touch {marker}")}, protocol=2)
    path.write_bytes(_torch_zip(evil))
    _refused(path, "refused", "system", "not plain weights")


def test_builtins_eval_in_legacy_torch_file(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "evil_legacy.pth"
    code = f"open({str(marker)!r}, 'w')"
    path.write_bytes(_legacy(pickle.dumps(_Call(eval, code), protocol=2)))
    _refused(path, "refused", "builtin__.eval")  # protocol 2 spells builtins __builtin__


def test_subprocess_in_network_pickle(tmp_path: Path, marker: Path) -> None:
    # protocol 4 names the global with STACK_GLOBAL instead of GLOBAL
    path = tmp_path / "evil.pkl"
    evil = {"G_ema": _Call(subprocess.Popen, ["touch", str(marker)])}
    path.write_bytes(pickle.dumps(evil, protocol=4))
    _refused(path, "refused global subprocess.Popen")


def test_subprocess_hidden_in_torch_zip_with_stack_global(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "evil4.pt"
    evil = pickle.dumps({"w": [1, {"x": _Call(subprocess.call, ["touch", str(marker)])}]}, 4)
    path.write_bytes(_torch_zip(evil))
    _refused(path, "refused", "subprocess.call")


@pytest.fixture
def fake_persistence(monkeypatch: pytest.MonkeyPatch):
    """Lets the test pickle NVlabs persistence objects without NVlabs' code."""

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only pickled by name
        raise AssertionError("never called")

    pkg = types.ModuleType("torch_utils")
    mod = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    return _reconstruct_persistent_obj


def test_nvlabs_persistence_source_never_runs(
    tmp_path: Path, marker: Path, fake_persistence
) -> None:
    source = f"open({str(marker)!r}, 'w').write('ran')\nclass Generator: pass\n"
    meta = {
        "type": "class",
        "version": 4,
        "module_src": source,
        "class_name": "Generator",
        "state": {"_init_kwargs": {}, "_parameters": {}, "_buffers": {}, "_modules": {}},
    }
    path = tmp_path / "crafted.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Call(fake_persistence, meta)}, protocol=4))
    # the pickle is read (the source stays text) and then rejected as no usable generator
    _refused(path, "NVlabs network pickle")


def test_nvlabs_persistence_state_with_os_system(
    tmp_path: Path, marker: Path, fake_persistence
) -> None:
    meta = {
        "module_src": "",
        "class_name": "Generator",
        "state": {"_init_kwargs": _Call(os.system, f"touch {marker}")},
    }
    path = tmp_path / "crafted_state.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Call(fake_persistence, meta)}, protocol=2))
    _refused(path, "refused global", "system")


# -- zip bombs ------------------------------------------------------------------------


def test_deflate_bomb_entry(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    data = _torch_zip()
    zeros = bytes(64 * 1024**2)  # deflates about 1000:1
    path.write_bytes(_rezip(data, {"archive/data/0": zeros}, compress="archive/data/0"))
    _refused(path, "refused", "zip bomb")


def _patch_central_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size an entry's central directory record declares."""
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        name_len = struct.unpack("<H", data[at + 28 : at + 30])[0]
        if data[at + 46 : at + 46 + name_len] == name:
            return data[: at + 24] + struct.pack("<I", size) + data[at + 28 :]
        at += 4


def test_entry_declaring_absurd_size(tmp_path: Path) -> None:
    path = tmp_path / "liar.pt"
    path.write_bytes(_patch_central_sizes(_torch_zip(), b"archive/data/0", 0xFFFFFF00))
    _refused(path, "refused", "archive/data/0")


def test_too_many_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guards, "MAX_ZIP_ENTRIES", 5)  # a real bomb would take 100k entries
    path = tmp_path / "many.pt"
    path.write_bytes(_torch_zip())
    _refused(path, "refused", "entries")


# -- absurd storages and shapes ------------------------------------------------------


def _tensor_pickle(numel: int, size: tuple, stride: tuple) -> bytes:
    """``data.pkl`` of one float tensor, with the storage size and view chosen freely."""
    p = io.BytesIO()
    w = p.write
    w(b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage")
    w(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu")
    w(b"\x8a\x08" + struct.pack("<q", numel) + b"tQ")
    w(b"K\x00" + pickle.dumps(size, 2)[2:-1] + pickle.dumps(stride, 2)[2:-1])
    w(b"\x89ccollections\nOrderedDict\n)RtRu.")
    return p.getvalue()


def test_pickle_helper_builds_a_loadable_tensor() -> None:
    # the crafted pickle is valid: with honest numbers torch reads it
    data = _torch_zip(_tensor_pickle(4, (2, 2), (2, 1)))
    obj = torch.load(io.BytesIO(data), weights_only=True)
    assert obj["w"].shape == (2, 2) and obj["w"].sum() == 4


@pytest.mark.parametrize(
    ("numel", "reason"), [(10**11, "elements (limit"), (10**8, "but its entry holds 16")]
)
def test_storage_declaring_absurd_size(tmp_path: Path, numel: int, reason: str) -> None:
    path = tmp_path / "huge_storage.pt"
    path.write_bytes(_torch_zip(_tensor_pickle(numel, (numel,), (1,))))
    _refused(path, "refused", "storage", reason)


def test_tensor_with_absurd_shape(tmp_path: Path) -> None:
    # a zero-stride view would make a 10^13-element tensor of 4 real elements
    path = tmp_path / "huge_view.pt"
    path.write_bytes(_torch_zip(_tensor_pickle(4, (10**13,), (0,))))
    _refused(path, "refused", "shape")


def test_tensor_reaching_past_its_storage(tmp_path: Path) -> None:
    path = tmp_path / "overrun.pt"
    path.write_bytes(_torch_zip(_tensor_pickle(4, (1000, 1000), (1000, 1))))
    _refused(path, "refused", "reaches element")


def test_legacy_storage_declaring_absurd_size(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    # the element count 4 in the persistent id becomes 10^12
    honest = b"K\x04"
    assert data.count(honest) >= 1
    at = data.index(b"cpu") + 8
    at = data.index(honest, at - 8)
    hostile = data[:at] + b"\x8a\x06" + (10**12).to_bytes(6, "little") + data[at + 2 :]
    path = tmp_path / "legacy_huge.pt"
    path.write_bytes(hostile)
    _refused(path, "refused", "declares")


def _own_model_dir(tmp_path: Path) -> Path:
    from faceedit.nets.latent import LatentClassifier, LatentClassifierConfig

    model = LatentClassifier(LatentClassifierConfig(num_ws=2, w_dim=8, n_attrs=2, hidden=(8,)))
    return model.save_pretrained(tmp_path / "model")


def test_safetensors_header_with_absurd_shape(tmp_path: Path) -> None:
    import json

    directory = _own_model_dir(tmp_path)
    weights = directory / "model.safetensors"
    raw = weights.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**12, 10**6]
    new = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(CheckpointError, match="refused: a tensor declares shape"):
        faceedit.load(directory)


def test_safetensors_header_longer_than_file(tmp_path: Path) -> None:
    directory = _own_model_dir(tmp_path)
    weights = directory / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 2**62) + raw[8:])
    with pytest.raises(CheckpointError, match="refused: the header declares"):
        faceedit.load(directory)


def test_honest_files_still_load(tmp_path: Path) -> None:
    directory = _own_model_dir(tmp_path)
    assert faceedit.load(directory) is not None
    path = tmp_path / "plain.pt"
    path.write_bytes(_torch_zip(tensors={"a": torch.ones(2, 3), "b": torch.zeros(5)[1:]}))
    guards.check_torch_zip(path)  # no refusal for a normal file, views included
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf, _use_new_zipfile_serialization=False)
    (tmp_path / "legacy.pt").write_bytes(buf.getvalue())
    guards.check_legacy_torch(tmp_path / "legacy.pt")


@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_memo_index_bomb(tmp_path: Path, suffix: str) -> None:
    # LONG_BINPUT 0x7fffffff: the C unpickler would grow its memo to 16 GB
    bomb = b"\x80\x02}r\xff\xff\xff\x7f."
    path = tmp_path / f"memo{suffix}"
    path.write_bytes(_torch_zip(bomb) if suffix == ".pt" else bomb)
    before = _peak_mb()
    with pytest.raises(CheckpointError, match=path.name):
        faceedit.load(path)
    assert _peak_mb() - before < 200
