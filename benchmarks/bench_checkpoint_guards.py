"""What the hostile-checkpoint guards cost when loading full-size checkpoints.

A config-F StyleGAN2 generator (1024 px, random weights) is written as a ``torch.save``
zip (rosinality layout is irrelevant here: a state dict) and as an NVlabs network pickle.
Prints seconds for: the zip guard alone (central directory + dry-run of ``data.pkl``), a
plain ``torch.load(weights_only=True)``, and reading the network pickle with the
restricted unpickler on the pure-Python base (what faceedit uses: its memo is a dict) vs
the C base (its memo grows to a hostile index). The CPU may be shared: read the figures as
indicative.

    python benchmarks/bench_checkpoint_guards.py [--resolution 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from faceedit.checkpoints import guards, nvlabs
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
    from tests.helpers.nvlabs_pickle import write_generator_pickle

    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    G = StyleGAN2Generator(StyleGAN2Config(img_resolution=args.resolution)).eval()
    n = sum(p.numel() for p in G.state_dict().values())
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "G.pt"
        torch.save(G.state_dict(), pt)
        pkl = write_generator_pickle(G, Path(tmp) / "G.pkl")
        print(f"generator {args.resolution} px: {n / 1e6:.1f} M values, "
              f".pt {pt.stat().st_size / 1e6:.0f} MB, .pkl {pkl.stat().st_size / 1e6:.0f} MB")  # fmt: skip
        guard = _best(lambda: guards.check_torch_zip(pt), args.repeats)
        load = _best(lambda: torch.load(pt, weights_only=True), args.repeats)
        print(
            f"zip guard {guard:.3f} s, torch.load {load:.3f} s: guard = {guard / load:.1%} of a load"
        )

        def read(base):
            class Restricted(base):
                find_class = nvlabs.RestrictedUnpickler.find_class
                persistent_load = nvlabs.RestrictedUnpickler.persistent_load

            with open(pkl, "rb") as f:
                Restricted(guards.BoundedReader(f, pkl.stat().st_size)).load()

        py = _best(lambda: read(pickle._Unpickler), args.repeats)
        c = _best(lambda: read(pickle.Unpickler), args.repeats)
        print(f"network pickle: pure-Python unpickler {py:.3f} s, C unpickler {c:.3f} s "
              f"(ratio {py / c:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
