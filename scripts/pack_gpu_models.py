"""Pack the models a GPU run produced into a few small files (scripts/avatar_gpu_runs.sh).

    python scripts/pack_gpu_models.py RUNS_DIR PACK_DIR

Copies every exported model directory of RUNS_DIR (config files as they are, floating
weights rounded to float16, which halves them so they fit the transfer), each run's
small records (run.json, config files, losses.jsonl, the last sample grid), into one
tar, written as parts of at most 15 MB: models.tar.000, .001, ...
``python scripts/unpack_gpu_models.py PACK_DIR DEST`` joins them and restores float32.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

PART_BYTES = 15 * 1024 * 1024
# model directories left out: PACK_SKIP (space-separated, relative to RUNS_DIR), and the
# perception oracle, which only the GPU run's encoder training reads
SKIP = set(os.environ.get("PACK_SKIP", "").split()) | {"perception-oracle"}
SMALL_RECORDS = ("run.json", "config.yaml", "setting.txt", "losses.jsonl", "config.json")


def half_weights(path: Path) -> bytes:
    """A safetensors file with its floating tensors in float16 and its metadata kept."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    return save(tensors, metadata=meta)


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main(runs: Path, pack: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for weights in sorted(runs.rglob("model.safetensors")):
            model_dir = weights.parent
            rel = model_dir.relative_to(runs)
            if str(rel) in SKIP:
                continue
            add_bytes(tar, f"{rel}/model.safetensors", half_weights(weights))
            for extra in model_dir.iterdir():
                if extra.is_file() and extra.suffix in (".json", ".md", ".yaml", ".txt"):
                    tar.add(extra, f"{rel}/{extra.name}")
            print(f"packed {rel} ({weights.stat().st_size / 1e6:.1f} MB in float32)")
        for run in sorted(p for p in runs.iterdir() if p.is_dir()):
            for name in SMALL_RECORDS:
                if (run / name).is_file():
                    tar.add(run / name, f"records/{run.name}/{name}")
            grids = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
            if grids:
                tar.add(grids[-1], f"records/{run.name}/{grids[-1].name}")
        for log in sorted((runs / "logs").glob("*.log")):
            tar.add(log, f"records/logs/{log.name}")
        for yaml in sorted(runs.glob("*.yaml")):
            tar.add(yaml, f"records/{yaml.name}")
    data = buf.getvalue()
    pack.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(data), PART_BYTES):
        (pack / f"models.tar.{i // PART_BYTES:03d}").write_bytes(data[i : i + PART_BYTES])
    print(f"models.tar: {len(data) / 1e6:.1f} MB in {-(-len(data) // PART_BYTES)} parts")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    torch.set_grad_enabled(False)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
