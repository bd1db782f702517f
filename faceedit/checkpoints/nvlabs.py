"""NVlabs ``.pkl`` network pickles (stylegan2-ada-pytorch / stylegan3), read without
running any code they contain.

Such a pickle stores each network as ``torch_utils.persistence._reconstruct_persistent_obj
(meta)`` where ``meta`` holds the defining module's source (``module_src``) and the
module's ``__dict__`` (``state``). The official loader executes ``module_src``; faceedit
never does. A restricted unpickler allows only the handful of globals this format uses,
maps the persistence hook to "return meta", rebuilds tensors with torch's own safe
loader, and then reads the parameters and buffers out of the nested ``state`` dicts in
``state_dict()`` order. Any other global (``os.system``, ``builtins.eval``, ...) is
refused before it could be called.
"""

from __future__ import annotations

import codecs
import io
import pickle
import struct
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceedit.checkpoints.guards import BoundedReader, check_legacy_bytes, check_tensor_shape
from faceedit.checkpoints.registry import Handler, register
from faceedit.errors import CheckpointError

# Upper bound on a pickle we are willing to parse (the FFHQ 1024 pickle is ~380 MB).
MAX_PICKLE_BYTES = 4 * 1024**3


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asks for a global outside the allow-list (nothing was called)."""


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""


def _persistent_meta(meta: dict) -> dict:
    if not isinstance(meta, dict) or "state" not in meta or "class_name" not in meta:
        raise pickle.UnpicklingError("malformed persistent object")
    # module_src is kept only as text; it is never compiled or executed.
    return {"class_name": meta["class_name"], "state": meta["state"], "persistent": True}


def _rebuild_parameter(
    data: torch.Tensor, requires_grad: bool, backward_hooks: Any
) -> torch.Tensor:
    return data


def _load_storage(data: bytes) -> Any:
    check_legacy_bytes(data, "a storage in the pickle")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_tensor_checked(storage: Any, offset: int, size: Any, stride: Any, *rest: Any) -> Any:
    # Shapes come from the file: check them before torch builds a view of that size.
    with warnings.catch_warnings():  # TypedStorage's deprecation notice, not the user's concern
        warnings.simplefilter("ignore", UserWarning)
        numel = storage.nbytes() // storage.element_size() if hasattr(storage, "nbytes") else None
    try:
        check_tensor_shape(size, stride, offset, numel)
    except ValueError as e:
        raise pickle.UnpicklingError(f"refused: {e}") from None
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, *rest)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
    return codecs.encode(text, encoding)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_meta,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_checked,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy.core.multiarray", "scalar"): None,  # filled below (numpy 1/2 spelling)
    ("numpy._core.multiarray", "scalar"): None,
    ("numpy", "dtype"): np.dtype,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _codecs_encode,
}


def _numpy_scalar() -> Any:
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


class RestrictedUnpickler(pickle._Unpickler):
    """Builds only tensors, numbers, strings and containers; refuses every other global.

    Pure-Python base on purpose: the C unpickler sizes its memo by the largest index a
    hostile ``LONG_BINPUT`` names (gigabytes); this one keeps a dict.
    """

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in _ALLOWED:
            if module.startswith("dnnlib.tflib"):
                raise CheckpointError(
                    "this is a TensorFlow-era StyleGAN pickle; convert it to the PyTorch "
                    "format first (stylegan2-ada-pytorch's legacy.py), then load the result"
                )
            raise RefusedGlobal(f"refused global {module}.{name}")
        value = _ALLOWED[key]
        return _numpy_scalar() if value is None else value

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a network pickle")


def read_network_pickle(path: str | Path) -> dict[str, Any]:
    """Unpickle an NVlabs network pickle into plain data (no code executed).

    Returns:
        The top-level dict; each network (``G``, ``D``, ``G_ema``, ...) is a dict
        ``{"class_name", "state", "persistent"}``.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise CheckpointError(f"{path}: {size / 1e9:.1f} GB is too large for a network pickle")
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(BoundedReader(f, size)).load()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except RefusedGlobal as e:
        raise CheckpointError(
            f"{path}: {e}: a network pickle holds only weights and settings"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        RuntimeError,
        MemoryError,
        OverflowError,
        RecursionError,
        struct.error,
    ) as e:
        raise CheckpointError(
            f"{path}: truncated or corrupt pickle ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: a pickle of {type(obj).__name__}, not a network dict")
    return obj


def persistent_state_dict(net: dict) -> OrderedDict[str, torch.Tensor]:
    """``state_dict()`` of a pickled persistent module: own params, persistent buffers,
    then children, recursively, as ``nn.Module.state_dict`` orders them."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()

    def walk(node: dict, prefix: str) -> None:
        state = node["state"]
        for name, value in (state.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = value
        skip = state.get("_non_persistent_buffers_set") or set()
        for name, value in (state.get("_buffers") or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
        for name, child in (state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, dict) or "state" not in child:
                raise CheckpointError(f"submodule {prefix + name} is not a persistent network")
            walk(child, f"{prefix}{name}.")

    walk(net, "")
    return out


def _init_kwargs(net: dict) -> dict[str, Any]:
    kwargs = net["state"].get("_init_kwargs") or {}
    return {k: dict(v) if isinstance(v, dict) else v for k, v in kwargs.items()}


def generator_from_network_pickle(obj: dict[str, Any], key: str = "G_ema"):
    """Build a :class:`StyleGAN2Generator` from the ``G_ema`` (or ``G``) entry of a pickle."""
    from faceedit.nets.base import load_state_dict_checked
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    net = obj.get(key)
    if not isinstance(net, dict) or "state" not in net:
        raise CheckpointError(f"the pickle has no {key} network (keys: {sorted(obj)})")
    if net["class_name"] != "Generator":
        raise CheckpointError(f"{key} is a {net['class_name']}, not a Generator")
    kw = _init_kwargs(net)
    if kw.get("c_dim", 0):
        raise CheckpointError(f"conditional generators (c_dim={kw['c_dim']}) are not supported")
    mapping_kw = kw.get("mapping_kwargs") or {}
    synth_kw = kw.get("synthesis_kwargs") or {}
    arch = synth_kw.get("architecture", "skip")
    if arch != "skip":
        raise CheckpointError(f"synthesis architecture {arch!r} is not supported (only 'skip')")
    state = persistent_state_dict(net)
    if any(k.startswith("synthesis.L") for k in state):
        raise CheckpointError("this is a StyleGAN3 generator; faceedit supports StyleGAN2 pickles")
    conv_clamp = synth_kw.get("conv_clamp")
    config = StyleGAN2Config(
        z_dim=int(kw["z_dim"]),
        w_dim=int(kw["w_dim"]),
        img_resolution=int(kw["img_resolution"]),
        img_channels=int(kw.get("img_channels", 3)),
        mapping_layers=int(mapping_kw.get("num_layers", 8)),
        mapping_lr_multiplier=float(mapping_kw.get("lr_multiplier", 0.01)),
        channel_base=int(synth_kw.get("channel_base", 32768)),
        channel_max=int(synth_kw.get("channel_max", 512)),
        # fp16 layers (num_fp16_res) run in float32 here: same weights, less rounding.
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
    )
    G = StyleGAN2Generator(config)
    load_state_dict_checked(G, dict(state), source=key)
    return G.eval()


def _matches(subject: Path) -> bool:
    return True  # any non-torch pickle is offered here; errors explain what it is


def _build(subject: Path, path: Path, **_: Any):
    obj = read_network_pickle(path)
    return generator_from_network_pickle(obj, "G_ema" if "G_ema" in obj else "G")


register(Handler(name="NVlabs network pickle", kind="pickle", matches=_matches, build=_build))
