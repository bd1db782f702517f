"""Join the parts written by scripts/pack_gpu_models.py and restore float32 weights.

    python scripts/unpack_gpu_models.py PACK_DIR DEST_DIR

DEST_DIR must not exist yet (nothing is overwritten).
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file


def main(pack: Path, dest: Path) -> None:
    parts = sorted(pack.glob("models.tar.[0-9][0-9][0-9]"))
    if not parts:
        sys.exit(f"{pack}: no models.tar.NNN parts")
    if dest.exists():
        sys.exit(f"{dest} exists; choose a new directory")
    data = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    for weights in sorted(dest.rglob("model.safetensors")):
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(tensors, str(weights), metadata=meta)
        print(f"restored {weights.parent.relative_to(dest)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
