"""One photo edited end to end with the official architectures, stage by stage, on the CPU.

Builds the released full-size networks with random weights and saves them in the
official file formats in a temporary folder: a pSp and an e4e file (encoder + config-F
1024 px rosinality decoder + latent_avg), released-size latent transformers
(``tnet_<k>.pth.tar``) and the latent classifier (``latent_classifier_epoch_20.pth``),
and the 384 px AttGAN (``weights.<epoch>.pth`` + ``setting.txt``). The weight recipe
is the parity fixtures' (../shared/parity/README.md: unit-size activations). Then:

1. the machine: load (``uptime``), the 3x3 convolution throughput (512 channels, 64x64,
   float32 and bf16) that every "x limit" figure below divides by, flush-to-zero;
2. the networks alone, interleaved in one process (median of ``--repeats``): the plain
   modules (the reference: the same layers as the original code) against faceedit's
   inference path in float32 and bf16, with FLOPs (``torch.utils.flop_counter``);
3. ``FaceEditor.edit_photo`` on grace_hopper.jpg per stage (load, detect + align,
   invert, edit, synthesise, paste back) for each model and precision, with each
   stage's FLOPs and its distance from the FLOP limit;
4. flush-to-zero on and off around the same call (random weights can drive activations
   into denormals, which must not be what a benchmark measures);
5. ``faceedit edit`` and one frame of ``faceedit video`` as the command line runs them,
   each in a fresh process: wall time and peak memory (max RSS);
6. the visible effect of bf16: PSNR of the bf16 edited photo against the float32 one.

Run:  PYTHONPATH=. python benchmarks/bench_photo_edit.py [--repeats 3] [--threads 2]
      [--models psp e4e attgan] [--skip-cli]

The CPU may be shared: ratios measured in one process (interleaved) are the figures to
trust; absolute seconds need a quiet machine (compare the load printed beside them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARITY = Path(os.environ.get("FACEEDIT_PARITY_DIR", REPO.parent / "shared" / "parity"))
EDIT_ATTRS = {"Smiling": 1.0, "Eyeglasses": 1.0}  # indices 31, 15 of the 40 CelebA attrs
ATTGAN_EDIT = {"Eyeglasses": 1.0}


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the machine


def conv_gflops(dtype: torch.dtype, repeats: int = 7) -> tuple[float, float]:
    """GFLOP/s of a 3x3, 512 -> 512 channel convolution on a 64x64 map (batch 1): per
    second of wall time (best run) and per CPU-second (all threads, median run)."""
    x = torch.randn(1, 512, 64, 64).to(dtype).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(512, 512, 3, 3) * 0.02).to(dtype).contiguous(memory_format=torch.channels_last)
    flops = 2 * 512 * 512 * 9 * 64 * 64
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        wall, cpu = [], []
        for _ in range(repeats):
            c = time.process_time()
            wall.append(_timed(lambda: torch.nn.functional.conv2d(x, w, padding=1)))
            cpu.append(time.process_time() - c)
    return flops / min(wall) / 1e9, flops / statistics.median(cpu) / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def flops_of(fn) -> float:
    """Floating-point operations of one call (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


BEST: dict[str, float] = {}  # the best run of the last interleaved() call, per name
CPU: dict[str, float] = {}  # its median CPU-seconds (all threads), per name


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn ``repeats`` times after a warm-up
    (the best run of each is left in :data:`BEST`: others' load only slows a run)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c = time.process_time()
            times[k].append(_timed(fn))
            cpu[k].append(time.process_time() - c)
    BEST.clear()
    BEST.update({k: min(v) for k, v in times.items()})
    CPU.clear()
    CPU.update({k: statistics.median(v) for k, v in cpu.items()})
    return {k: statistics.median(v) for k, v in times.items()}


# --------------------------------------------------------------------------- official files


def _keys(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    rows = json.loads((PARITY / name / "full_keys.json").read_text())
    rows = rows["keys"] if isinstance(rows, dict) else rows
    return [(k, tuple(s), d) for k, s, d in rows]


def _normal(shape, std: float, mean: float = 0.0, g=None) -> torch.Tensor:
    return torch.randn(shape, generator=g) * std + mean


def _module_kinds(model: torch.nn.Module) -> dict[str, type]:
    """``state-dict key -> type of the module that owns it``."""
    out = {}
    for name, module in model.named_modules():
        for key in list(module._parameters) + list(module._buffers):
            out[f"{name}.{key}" if name else key] = type(module)
    return out


def _plain_weight(key: str, shape: tuple, kind: type, gain: float, g) -> torch.Tensor:
    """The fixtures' recipe for non-equalised weights: about ``gain / sqrt(fan_in)``;
    batch norm 1 + 0.1 N, its shift and running mean 0.1 N, its variance 1 + 0.1 U."""
    from torch import nn

    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    if key.endswith("running_var"):
        return 1 + 0.1 * torch.rand(shape, generator=g)
    if key.endswith(("running_mean", "bias")):
        return _normal(shape, 0.1, g=g)
    if issubclass(kind, (nn.BatchNorm2d, nn.BatchNorm1d)):
        return _normal(shape, 0.1, 1.0, g)
    if issubclass(kind, nn.PReLU):
        return _normal(shape, 0.05, 0.25, g)
    if issubclass(kind, nn.ConvTranspose2d):  # [in, out, k, k], stride 2: in * (k/2)^2 taps
        fan_in = shape[0] * shape[2] * shape[3] // 4
    else:
        fan_in = int(np.prod(shape[1:]))
    return _normal(shape, gain / fan_in**0.5, g=g)


def rosinality_decoder(g) -> dict[str, torch.Tensor]:
    """``Generator(1024, 512, 8)`` state dict in rosinality's names (config F)."""
    from safetensors.torch import load_file

    small = load_file(str(PARITY / "stylegan2_rosinality" / "weights.safetensors"))
    kernels = {k.split(".")[-2]: v.float() for k, v in small.items() if k.endswith("kernel")}
    out = {}
    for key, shape, _ in _keys("stylegan2_rosinality"):
        if key.endswith("kernel"):  # FIR filters keep their constructor values
            out[key] = kernels[key.split(".")[-2]].clone()
        elif key.startswith("style."):  # lr multiplier 0.01: stored 100x the effective value
            out[key] = _normal(shape, 100.0 if key.endswith("weight") else 10.0, g=g)
        elif key.endswith("modulation.bias"):
            out[key] = _normal(shape, 0.1, 1.0, g)
        elif key.endswith(("bias", "noise.weight")):
            out[key] = _normal(shape, 0.1, g=g)
        else:  # equalised-lr weights, input constant, noise maps
            out[key] = _normal(shape, 1.0, g=g)
    return out


def encoder_state(kind: str, g) -> dict[str, torch.Tensor]:
    from faceedit.nets.encoders import E4EEncoder, PSPEncoder

    with torch.device("meta"):
        model = PSPEncoder() if kind == "psp" else E4EEncoder()
    kinds = _module_kinds(model)
    out = {}
    for key, t in model.state_dict().items():
        if key == "latent_avg":
            continue
        if key.endswith("linear.weight"):  # EqualLinear: scaled at run time
            out["encoder." + key] = _normal(t.shape, 1.0, g=g)
            continue
        gain = 2**0.5 if key.startswith("styles.") else 1.0  # LeakyReLU heads
        out["encoder." + key] = _plain_weight(key, tuple(t.shape), kinds[key], gain, g)
    return out


def write_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """Every official file the benchmark loads, in ``root``."""
    from faceedit.nets.attgan import (
        AttGAN,
        AttGANConfig,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )

    g = torch.Generator().manual_seed(seed)
    paths: dict[str, Path] = {}
    decoder = {"decoder." + k: v for k, v in rosinality_decoder(g).items()}
    for kind, encoder_type in (("psp", "GradualStyleEncoder"), ("e4e", "Encoder4Editing")):
        state = {**encoder_state(kind, g), **decoder}
        ckpt = {
            "state_dict": state,
            "opts": {
                "encoder_type": encoder_type,
                "input_nc": 3,
                "output_size": 1024,
                "start_from_latent_avg": True,
                "learn_in_w": False,
            },
            "latent_avg": _normal((512,), 1.0, g=g).repeat(18, 1),
        }
        paths[kind] = root / f"{kind}_ffhq_encode.pt"
        torch.save(ckpt, paths[kind])
        del ckpt, state
    del decoder
    from faceedit.data.latents import CELEBA_ATTRS

    tdir = root / "logs" / "001"
    tdir.mkdir(parents=True)
    for name in EDIT_ATTRS:
        k = CELEBA_ATTRS.index(name)
        state = {}
        for i in range(18):
            state[f"dense.{i}.weight"] = _normal((512, 512), 1.0, g=g)
            state[f"dense.{i}.bias"] = _normal((512,), 0.1, g=g)
        torch.save(state, tdir / f"tnet_{k}.pth.tar")
    paths["transformers"] = tdir
    widths = (9216, 2048, 512, 40)
    cls = {}
    for i in range(3):
        cls[f"fcs.{i}.weight"] = _normal((widths[i + 1], widths[i]), widths[i] ** -0.5, g=g)
        cls[f"fcs.{i}.bias"] = _normal((widths[i + 1],), 0.1, g=g)
    paths["classifier"] = root / "models" / "latent_classifier_epoch_20.pth"
    paths["classifier"].parent.mkdir()
    torch.save(cls, paths["classifier"])

    from faceedit.checkpoints.attgan import save_release_checkpoint, setting_from_config

    gc = AttGANGeneratorConfig(img_size=384, inject_layers=1)
    dc = AttGANDiscriminatorConfig(img_size=384)
    with torch.device("meta"):
        shape_model = AttGAN(AttGANConfig(G=gc, D=dc))
    model = AttGAN(AttGANConfig(G=gc, D=dc))
    kinds = _module_kinds(shape_model)
    state = {
        k: _plain_weight(k, tuple(t.shape), kinds[k], 2**0.5, g)
        for k, t in shape_model.state_dict().items()
    }
    model.load_state_dict(state)
    exp = root / "output" / "384_shortcut1_inject1_none_hq"
    (exp / "checkpoint").mkdir(parents=True)
    (exp / "setting.txt").write_text(json.dumps(setting_from_config(model)))
    paths["attgan"] = save_release_checkpoint(model, exp / "checkpoint" / "weights.199.pth")
    return paths


# --------------------------------------------------------------------------- measurements


def networks(paths: dict[str, Path], repeats: int, rates: dict, bf16: bool) -> None:
    """The networks alone: plain module vs inference path, float32 and bf16."""
    import faceedit
    from faceedit.nets import inference
    from faceedit.nets.attgan import fast_generate

    print("\n== networks alone (median of interleaved runs; x limit = time / (FLOPs / rate))")
    print("   CPU-seconds (all threads) are the figures least disturbed by other processes;")
    print("   'cpu x limit' divides them by the convolution's FLOPs per CPU-second")
    print(
        f"{'network':34s} {'GFLOP':>6s} {'path':>9s} {'median s':>9s} {'best s':>7s} "
        f"{'ref/this':>8s} {'x limit':>8s} {'cpu s':>7s} {'ref/this':>8s} {'cpu x limit':>11s}"
    )

    def report(name: str, flops: float, times: dict[str, float], per: int = 1) -> None:
        ref, ref_cpu = times["plain"], CPU["plain"]
        for path, t in times.items():
            key = "bf16" if path == "bf16" else "float32"
            limit = flops / (rates[key] * 1e9)
            cpu_limit = flops / (rates[key + " cpu"] * 1e9)
            cpu = CPU[path] / per
            print(
                f"{name:34s} {flops / 1e9:6.1f} {path:>9s} {t:9.3f} {BEST[path] / per:7.3f} "
                f"{ref / t:7.2f}x {t / limit:7.2f}x {cpu:7.3f} {ref_cpu / per / cpu:7.2f}x "
                f"{cpu / cpu_limit:10.2f}x"
            )
        print(f"{'':34s} ({load()})")

    def precisions(fn) -> dict:
        def plain():
            with torch.no_grad(), inference.plain_paths():
                return fn()

        def fast(p="float32"):
            with torch.no_grad(), inference.inference_context(p):
                return fn()

        out = {"plain": plain, "float32": fast}
        if bf16:
            out["bf16"] = lambda: fast("bf16")
        return out

    x = torch.rand(1, 3, 256, 256) * 2 - 1
    decoder = None
    for kind in ("psp", "e4e"):
        pair = faceedit.load(paths[kind]).eval()
        E = pair.encoder
        with torch.no_grad(), inference.plain_paths():
            flops = flops_of(lambda E=E: E(x))
        fns = precisions(lambda E=E: E(x))
        with torch.no_grad():
            ref = fns["plain"]()
            diff = (fns["float32"]() - ref).abs().max().item()
        report(f"{kind} encoder 256 px, batch 1", flops, interleaved(fns, repeats))
        print(f"{'':34s} float32 path vs plain: max |diff| {diff:.1e}")
        decoder = pair.decoder
        del pair, E
    G = decoder
    ws = G.mapping(torch.randn(1, 512)).detach()
    with torch.no_grad():
        flops = flops_of(lambda: G.synthesis(ws))
    fns = precisions(lambda: G.synthesis(ws))
    # the float32 synthesis has one path (its fast path is the module itself)
    report("config-F synthesis 1024 px", flops, interleaved(fns, repeats))
    del G, decoder

    model = faceedit.load(paths["attgan"]).eval()
    G = model.G
    fast = G.inference_copy()
    for batch in (1, 8):
        img = torch.rand(batch, 3, 384, 384) * 2 - 1
        att = (torch.rand(batch, 13) > 0.5).float() - 0.5

        def plain(img=img, att=att):
            with torch.no_grad():
                return G(img, att)

        def run(p, img=img, att=att):
            with inference.inference_context(p):
                return fast_generate(fast, img, att)

        with torch.no_grad():
            flops = flops_of(plain) / batch
        fns = {"plain": plain, "float32": lambda: run("float32")}
        if bf16:
            fns["bf16"] = lambda: run("bf16")
        times = {k: v / batch for k, v in interleaved(fns, repeats).items()}
        report(f"AttGAN 384 px G, batch {batch} (/img)", flops, times, per=batch)


def _stages_latent(editor, rgb):
    from faceedit.editing.base import resize_crops
    from faceedit.faces.align import align_face

    inner = editor.editor
    st = {}
    st["detect + align"] = lambda: st.__setitem__(
        "_face", align_face(rgb, size=editor.crop_size, detector=editor.detector)
    )
    st["invert"] = lambda: st.__setitem__("_code", inner.invert(st["_face"].crop[None]))
    st["edit"] = lambda: st.__setitem__(
        "_ws", (inner.edit_latents(st["_code"], EDIT_ATTRS), inner.scores(st["_code"]))[0]
    )
    st["synthesise"] = lambda: st.__setitem__("_img", inner.render(st["_ws"]))
    st["paste back"] = lambda: st["_face"].paste_back(
        resize_crops(st["_img"], st["_face"].crop.shape[0])[0], blend=editor.blend
    )
    return st


def _stages_attgan(editor, rgb):
    from faceedit.editing.base import resize_crops
    from faceedit.faces.align import align_face

    inner = editor.editor
    st = {}
    st["detect + align"] = lambda: st.__setitem__(
        "_face", align_face(rgb, size=editor.crop_size, detector=editor.detector)
    )
    st["invert"] = lambda: st.__setitem__("_code", inner.invert(st["_face"].crop[None]))
    st["edit + synthesise"] = lambda: st.__setitem__(
        "_out", inner.edit_codes(st["_code"], ATTGAN_EDIT)
    )
    st["paste back"] = lambda: st["_face"].paste_back(
        resize_crops(st["_out"].images, st["_face"].crop.shape[0])[0], blend=editor.blend
    )
    return st


def photo_edit(paths, model: str, repeats: int, rates: dict, precisions: list[str]) -> dict:
    """``FaceEditor.edit_photo`` per stage; returns the edited photos per precision."""
    import matplotlib

    from faceedit.editing.pipeline import build_editor
    from faceedit.faces.align import load_rgb
    from faceedit.nets import inference

    grace = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    rgb, _ = load_rgb(str(grace))
    t0 = time.perf_counter()
    if model == "attgan":
        editor = build_editor("attgan", str(paths["attgan"]))
        edits, stages_of = ATTGAN_EDIT, _stages_attgan
    else:
        editor = build_editor(
            "latent",
            None,
            encoder=str(paths[model]),
            transformers=str(paths["transformers"]),
            classifier=str(paths["classifier"]),
        )
        edits, stages_of = EDIT_ATTRS, _stages_latent
    t_load = time.perf_counter() - t0
    print(f"\n== {model}: FaceEditor.edit_photo(grace_hopper.jpg, {edits}), 1 face")
    print(f"load {t_load:.2f} s (official files, {load()})")
    stages = stages_of(editor, rgb)
    names = [k for k in stages if not k.startswith("_")]
    flops = {}
    with inference.inference_context("float32"), torch.no_grad():
        for k in names:
            flops[k] = flops_of(stages[k])
    results, cpus, images = {}, {}, {}
    for p in precisions:
        editor.precision = p
        runs: dict[str, list[float]] = {k: [] for k in [*names, "edit_photo"]}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        for i in range(repeats + 1):  # the first run warms up (allocations, detector)
            with inference.inference_context(p):
                for k in names:
                    c = time.process_time()
                    t = _timed(stages[k])
                    if i:
                        runs[k].append(t)
                        cpu[k].append(time.process_time() - c)
            c, t = time.process_time(), time.perf_counter()
            out = editor.edit_photo(str(grace), edits)
            if i:
                runs["edit_photo"].append(time.perf_counter() - t)
                cpu["edit_photo"].append(time.process_time() - c)
        images[p] = out.image
        results[p] = {k: statistics.median(v) for k, v in runs.items()}
        cpus[p] = {k: statistics.median(v) for k, v in cpu.items()}

    def ratio(t: float, flops: float, rate: float) -> str:
        return f"{t / (flops / (rate * 1e9)):7.2f}x" if flops > 1e8 else f"{'-':>8s}"

    print("(median s of wall time and of CPU-seconds, all threads; x limit as above)")
    print(f"{'stage':18s} {'GFLOP':>7s}", end="")
    for p in precisions:
        print(f" {p + ' s':>10s} {'x limit':>8s} {'cpu s':>7s} {'x limit':>8s}", end="")
    print()
    rows = [(k, flops[k]) for k in names] + [("sum of stages", sum(flops.values()))]
    for k, fl in rows:
        print(f"{k:18s} {fl / 1e9:7.1f}", end="")
        for p in precisions:
            t = sum(results[p][n] for n in names) if k == "sum of stages" else results[p][k]
            c = sum(cpus[p][n] for n in names) if k == "sum of stages" else cpus[p][k]
            print(
                f" {t:10.3f} {ratio(t, fl, rates[p])} {c:7.3f} {ratio(c, fl, rates[p + ' cpu'])}",
                end="",
            )
        print()
    print(f"{'edit_photo call':18s} {'':7s}", end="")
    for p in precisions:
        print(
            f" {results[p]['edit_photo']:10.3f} {'':8s} {cpus[p]['edit_photo']:7.3f} {'':8s}",
            end="",
        )
    print(f"\npeak RSS of this process so far {peak_mb():.0f} MB; {load()}")
    if "bf16" in images:
        a, b = images["float32"].astype(np.float64), images["bf16"].astype(np.float64)
        mse = ((a - b) ** 2).mean()
        psnr = 10 * np.log10(255.0**2 / max(mse, 1e-12))
        print(
            f"bf16 edited photo vs float32: PSNR {psnr:.1f} dB, max |diff| {np.abs(a - b).max():.0f}/255"
        )
    editor.precision = "float32"
    return {"editor": editor, "grace": grace, "edits": edits}


def denormals(ctx: dict, repeats: int) -> None:
    """The same edit with flush-to-zero off and on (interleaved)."""
    from faceedit.faces.align import align_face
    from faceedit.nets import inference

    editor, grace, edits = ctx["editor"], ctx["grace"], ctx["edits"]

    def call(ftz: bool):
        def run():
            # FaceEditor turns it on; the 'off' run bypasses that context on purpose
            with torch.no_grad():
                torch.set_flush_denormal(ftz)
                try:
                    face = align_face(str(grace), size=editor.crop_size, detector=editor.detector)
                    code = editor.editor.invert(face.crop[None])
                    return editor.editor.edit_codes(code, edits)
                finally:
                    torch.set_flush_denormal(False)

        return run

    before = inference._FAST.get()
    times = interleaved({"flush off": call(False), "flush on": call(True)}, repeats)
    assert inference._FAST.get() == before
    print(
        f"flush-to-zero: off {times['flush off']:.3f} s, on {times['flush on']:.3f} s per "
        f"detect+invert+edit+synthesise ({times['flush off'] / times['flush on']:.2f}x); {load()}"
    )


def cli_runs(paths: dict[str, Path], root: Path, threads: int) -> None:
    """``faceedit edit`` and one frame of ``faceedit video``, each in a fresh process."""
    import matplotlib

    from tests.helpers.tiny_edit import make_video

    grace = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    clip = root / "clip.mp4"
    make_video(clip, n_frames=1, size=480, audio=None)
    latent = [
        "--encoder",
        str(paths["e4e"]),
        "--transformers",
        str(paths["transformers"]),
        "--classifier",
        str(paths["classifier"]),
        "--attr",
        "Smiling=1",
    ]
    runs = {
        "faceedit edit (e4e)": ["edit", str(grace), *latent, "-o", str(root / "e4e.png")],
        "faceedit edit (psp)": [
            "edit",
            str(grace),
            *latent,
            "--encoder",
            str(paths["psp"]),
            "-o",
            str(root / "p.png"),
        ],
        "faceedit edit (attgan)": [
            "edit",
            str(grace),
            "--method",
            "attgan",
            "--model",
            str(paths["attgan"]),
            "--attr",
            "Eyeglasses=1",
            "-o",
            str(root / "a.png"),
        ],
        "faceedit video, 1 frame (e4e)": [
            "video",
            str(clip),
            *latent,
            "-o",
            str(root / "out.mp4"),
            "--quiet",
        ],
    }
    print("\n== the command line, fresh processes (wall includes import and model loading)")
    for name, argv in runs.items():
        code = (
            "import time; t = time.perf_counter(); import torch; "
            f"torch.set_num_threads({threads}); from faceedit.cli import main; "
            f"rc = main({argv!r}); "
            # VmHWM: this process's own peak (ru_maxrss would carry the parent's over exec)
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
            "print('RESULT', rc, time.perf_counter() - t, int(hwm[0].split()[1]) / 1024)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        m = re.search(r"RESULT (\S+) (\S+) (\S+)", out.stdout)
        if not m or m.group(1) != "0":
            print(f"{name}: failed\n{out.stdout[-800:]}{out.stderr[-1500:]}")
            continue
        print(
            f"{name:32s} {float(m.group(2)):7.2f} s  peak {float(m.group(3)):6.0f} MB  ({load()})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=["psp", "e4e", "attgan"])
    ap.add_argument("--skip-networks", action="store_true")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--keep", help="write the model files into this folder and keep them")
    args = ap.parse_args()
    # a stopped run removes its 3.7 GB of model files too (TemporaryDirectory's cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    torch.set_num_threads(args.threads)
    from faceedit.nets import inference

    bf16 = inference.bf16_supported()
    torch.set_flush_denormal(True)  # the throughput probe must not meet denormals either
    rates = {}
    rates["float32"], rates["float32 cpu"] = conv_gflops(torch.float32)
    rates["bf16"], rates["bf16 cpu"] = (
        conv_gflops(torch.bfloat16) if bf16 else (float("nan"), float("nan"))
    )
    torch.set_flush_denormal(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load()}")
    print(
        f"3x3 conv 512 ch 64x64: float32 {rates['float32']:.0f} GFLOP/s "
        f"({rates['float32 cpu']:.0f} per CPU-second), bf16 {rates['bf16']:.0f} GFLOP/s "
        f"({rates['bf16 cpu']:.0f} per CPU-second); native bf16: {bf16}; "
        "inference flushes denormals"
    )
    precisions = ["float32", "bf16"] if bf16 else ["float32"]
    folder = contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()
    with folder as tmp:
        root = Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        paths = write_models(root)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**30
        print(f"official files written in {time.perf_counter() - t:.1f} s ({size:.2f} GB)")
        if not args.skip_networks:
            networks(paths, args.repeats, rates, bf16)
        ctx = None
        for model in args.models:
            c = photo_edit(paths, model, args.repeats, rates, precisions)
            if model == "e4e":
                ctx = c
            else:
                del c
        if ctx is not None:
            denormals(ctx, args.repeats)
            del ctx
        if not args.skip_cli:
            cli_runs(paths, root, args.threads)


if __name__ == "__main__":
    main()
