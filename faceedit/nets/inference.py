"""Run-time settings of inference: arithmetic precision, flush-to-zero, fast paths.

- **Precision.** ``"float32"`` (the default) or ``"bf16"``: bfloat16 arithmetic where a
  network has a bfloat16 path (the pSp/e4e encoders, the AttGAN inference copy, the
  StyleGAN2 synthesis), float32 everywhere else and at every network's output. ``bf16``
  is opt-in and needs a CPU with AVX-512 BF16 or AMX (read from the CPU flags at run time,
  :func:`bf16_supported`): on older CPUs bfloat16 is emulated and slower than float32.
- **Flush-to-zero.** Inside :func:`inference_context` denormal floats are flushed to zero
  (``torch.set_flush_denormal(True)``) and the previous mode is restored on exit. Values
  below 1.2e-38 carry no visible information in an image, and on CPUs that handle them
  in microcode one layer full of them can cost several times its normal time (random or
  badly scaled weights drive activations there).
- **Fast paths.** Networks with an inference path (e.g. the encoders'
  :mod:`faceedit.nets.fast_encoder`) use it under ``torch.no_grad`` / inference mode;
  :func:`plain_paths` turns them off, for the parity tests and the benchmarks' reference.

Nothing here compiles or imports anything heavy: the settings are context variables read
by the networks at call time.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bf16": torch.bfloat16}

_DTYPE: contextvars.ContextVar[torch.dtype] = contextvars.ContextVar(
    "faceedit_inference_dtype", default=torch.float32
)
_FAST: contextvars.ContextVar[bool] = contextvars.ContextVar("faceedit_fast_paths", default=True)


class PrecisionError(ValueError):
    """An unknown precision, or bf16 asked for on a CPU without bfloat16 arithmetic.

    (``nets`` stands alone, so this is a ``ValueError``; the editor turns it into its own
    one-line :class:`~faceedit.editing.base.EditError`.)"""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str | torch.dtype | None) -> torch.dtype:
    """``"float32"`` / ``"bf16"`` (or the dtypes) -> the dtype; ``None`` is float32.

    Raises:
        PrecisionError: an unknown name, or bf16 on a CPU without native bfloat16.
    """
    if precision is None:
        return torch.float32
    if isinstance(precision, torch.dtype):
        names = {v: k for k, v in PRECISIONS.items()}
        if precision not in names:
            raise PrecisionError(f"precision {precision}: use one of {list(PRECISIONS)}")
        precision = names[precision]
    name = {"bfloat16": "bf16", "fp32": "float32"}.get(str(precision), str(precision))
    if name not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r}: use one of {list(PRECISIONS)}")
    if name == "bf16" and not bf16_supported():
        raise PrecisionError(
            "precision bf16: this CPU has no native bfloat16 arithmetic (avx512_bf16 or "
            "amx_bf16); use float32"
        )
    return PRECISIONS[name]


def current_dtype() -> torch.dtype:
    """The arithmetic dtype networks with a bf16 path should use now (float32 default)."""
    return _DTYPE.get()


def fast_paths_enabled() -> bool:
    """Whether networks may use their inference paths (see :func:`plain_paths`)."""
    return _FAST.get()


def flush_denormal_enabled() -> bool:
    """Whether denormals are flushed to zero on this thread (probed, torch has no getter)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)


@contextmanager
def flush_denormal() -> Iterator[None]:
    """Denormals flushed to zero inside; the previous mode restored on exit."""
    before = flush_denormal_enabled()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


@contextmanager
def inference_context(precision: str | torch.dtype | None = "float32") -> Iterator[torch.dtype]:
    """Inference settings for the block: ``precision`` and flush-to-zero (both restored).

    Yields the dtype in use. Raises :class:`PrecisionError` before changing anything.
    """
    dtype = resolve_precision(precision)
    token = _DTYPE.set(dtype)
    try:
        with flush_denormal():
            yield dtype
    finally:
        _DTYPE.reset(token)


@contextmanager
def plain_paths() -> Iterator[None]:
    """Networks run their plain (reference) modules inside, not their inference paths."""
    token = _FAST.set(False)
    try:
        yield
    finally:
        _FAST.reset(token)


def use_fast_path(module: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module`` may take its inference path for input ``x`` now: eval mode,
    no autograd, a CPU tensor, fast paths on."""
    return (
        fast_paths_enabled()
        and not module.training
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
    )


def weights_signature(module: torch.nn.Module) -> tuple:
    """Identity and in-place version of every tensor of ``module``: a cached inference
    copy built from it is stale once this changes (a load, an optimiser step, ``.to``)."""
    return tuple((id(t), t._version) for t in (*module.parameters(), *module.buffers()))
