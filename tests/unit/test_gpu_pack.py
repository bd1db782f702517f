"""scripts/pack_gpu_models.py and unpack_gpu_models.py: models travel as float16 parts
and come back as float32 with their configs and metadata; skipped models stay behind."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(folder: Path, seed: int) -> dict[str, torch.Tensor]:
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    tensors = {"w": torch.randn(300, 200, generator=g), "steps": torch.tensor([7])}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"step": "7"})
    (folder / "config.json").write_text('{"kind": "test"}')
    return tensors


def test_models_come_back_within_float16_rounding(tmp_path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    kept = _model(runs / "attgan-wide-b" / "model", 0)
    _model(runs / "attgan-wide" / "model", 1)
    _model(runs / "perception-oracle", 2)
    (runs / "logs").mkdir()
    (runs / "logs" / "attgan.log").write_text("trained\n")
    monkeypatch.setenv("PACK_SKIP", "attgan-wide/model")
    pack = _script("pack_gpu_models")
    monkeypatch.setattr(pack, "PART_BYTES", 50_000)  # several parts
    pack.main(runs, tmp_path / "pack")
    parts = sorted((tmp_path / "pack").iterdir())
    assert len(parts) > 1 and all(p.stat().st_size <= 50_000 for p in parts)

    _script("unpack_gpu_models").main(tmp_path / "pack", tmp_path / "back")
    back = tmp_path / "back" / "attgan-wide-b" / "model"
    with safe_open(str(back / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"step": "7"}
        w, steps = f.get_tensor("w"), f.get_tensor("steps")
    assert w.dtype == torch.float32 and torch.equal(steps, kept["steps"])
    assert torch.allclose(w, kept["w"], rtol=1e-3, atol=1e-4) and not torch.equal(w, kept["w"])
    assert (back / "config.json").read_text() == '{"kind": "test"}'
    assert (tmp_path / "back" / "records" / "logs" / "attgan.log").read_text() == "trained\n"
    assert not (tmp_path / "back" / "attgan-wide").exists()
    assert not (tmp_path / "back" / "perception-oracle").exists()


def test_unpack_never_overwrites(tmp_path) -> None:
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "models.tar.000").write_bytes(b"")
    (tmp_path / "back").mkdir()
    with pytest.raises(SystemExit, match="exists"):
        _script("unpack_gpu_models").main(tmp_path / "pack", tmp_path / "back")
