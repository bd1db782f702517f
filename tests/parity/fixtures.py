"""Access to ``../shared/parity``: specs, inputs/outputs and weights (stored or rebuilt).

Weights rebuilt from ``init.json`` are checked against its checksums first: a different
torch RNG stream would make every comparison meaningless.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
PARITY = Path(os.environ.get("FACEEDIT_PARITY_DIR", REPO.parent / "shared" / "parity"))


@dataclass
class Fixture:
    name: str
    spec: dict
    io: dict[str, torch.Tensor]
    path: Path

    @property
    def atol(self) -> float:
        return float(self.spec["atol"])

    @property
    def rtol(self) -> float:
        return float(self.spec["rtol"])

    def full_keys(self) -> list[tuple[str, tuple[int, ...], str]]:
        rows = json.loads((self.path / "full_keys.json").read_text())
        rows = rows["keys"] if isinstance(rows, dict) else rows
        return [(k, tuple(s), d) for k, s, d in rows]

    def weights(self) -> dict[str, torch.Tensor]:
        """State dict as float32 (stored file if present, else rebuilt from init.json)."""
        stored = self.path / "weights.safetensors"
        if stored.exists():
            state = load_file(str(stored))
        else:
            state = rebuild_from_init(self.path / "init.json")
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}

    def assert_close(self, name: str, mine: torch.Tensor, key: str) -> None:
        ref = self.io[key]
        assert tuple(mine.shape) == tuple(ref.shape), f"{name}: shape {mine.shape} vs {ref.shape}"
        diff = (mine.detach().float() - ref.float()).abs().max().item()
        assert torch.allclose(mine.detach().float(), ref.float(), atol=self.atol, rtol=self.rtol), (
            f"{self.name}/{name}: max abs diff {diff:.3e} (atol {self.atol}, rtol {self.rtol})"
        )


def require_parity() -> Path:
    if not PARITY.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"parity fixtures missing at {PARITY} (CI must have ../shared)")
        pytest.skip(f"parity fixtures not found at {PARITY}")
    return PARITY


@cache
def load_fixture(name: str) -> Fixture:
    root = require_parity() / name
    spec = json.loads((root / "spec.json").read_text())
    io = load_file(str(root / "io.safetensors"))
    return Fixture(name=name, spec=spec, io=io, path=root)


def rebuild_from_init(init_path: Path) -> dict[str, torch.Tensor]:
    """Regenerate the random weights exactly as the fixture recipe describes."""
    init = json.loads(init_path.read_text())
    float16 = "float16" in init.get("procedure", "")
    torch.manual_seed(int(init["seed"]))
    state: dict[str, torch.Tensor] = {}
    for entry in init["entries"]:
        shape = tuple(entry["shape"])
        kind = entry["kind"]
        if kind == "normal":
            t = torch.randn(shape) * entry["std"]
            if entry.get("mean", 0.0):
                t = t + entry["mean"]
        elif kind == "uniform":
            t = torch.rand(shape) * entry["scale"]
            if entry.get("offset", 0.0):
                t = t + entry["offset"]
        elif kind == "keep":
            dtype = getattr(torch, entry.get("dtype", "float32"))
            value = entry.get("value", 0)
            t = (
                torch.tensor(value, dtype=dtype).reshape(shape)
                if isinstance(value, list)
                else torch.full(shape, value, dtype=dtype)
            )
        else:
            raise ValueError(f"unknown init kind {kind!r}")
        if float16 and t.is_floating_point():
            t = t.half().float()
        check = entry.get("checksum")
        if check and t.is_floating_point():
            got = t.double().sum().item()
            assert math.isclose(got, check["sum"], rel_tol=1e-6, abs_tol=1e-6), (
                f"{init_path}: checksum of {entry['key']} differs ({got} vs {check['sum']}): "
                "the torch RNG stream differs from the fixture's"
            )
        state[entry["key"]] = t
    return state
