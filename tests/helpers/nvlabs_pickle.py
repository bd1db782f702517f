"""Write NVlabs-style network pickles for tests, the way the official persistence code does.

Each module becomes ``_reconstruct_persistent_obj(meta)`` with ``meta["state"]`` a copy of
the module's ``__dict__``; tensors are pickled by torch itself (``_rebuild_tensor_v2`` over
``_load_from_bytes`` storages). A fake ``torch_utils.persistence`` module is installed in
``sys.modules`` only while pickling, so that ``pickle`` can name the function.
"""

from __future__ import annotations

import copy
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
from torch import nn


def _reconstruct_persistent_obj(meta):  # never called by faceedit's loader
    raise AssertionError("faceedit must not call the persistence hook")


class _Persistent:
    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _stub(module: nn.Module, class_name: str, init_kwargs: dict) -> _Persistent:
    state = {
        "training": False,
        "_parameters": OrderedDict(module._parameters),
        "_buffers": OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_backward_hooks": OrderedDict(),
        "_forward_hooks": OrderedDict(),
        "_modules": OrderedDict(
            (name, _stub(child, type(child).__name__, {}))
            for name, child in module._modules.items()
        ),
        "_init_args": (),
        "_init_kwargs": copy.deepcopy(init_kwargs),
        "weight_gain": np.float64(0.5),  # plain attributes are numpy scalars in real pickles
        "activation": "lrelu",
    }
    meta = {
        "type": "class",
        "version": 6,
        "module_src": "raise SystemExit('module_src must never run')\n",
        "class_name": class_name,
        "state": state,
    }
    return _Persistent(meta)


def write_generator_pickle(G, path: Path, protocol: int = 4, extra_globals: object = None) -> Path:
    """Pickle faceedit generator ``G`` as an official ``network-snapshot.pkl`` would hold it."""
    c = G.config
    init_kwargs = {
        "z_dim": c.z_dim,
        "c_dim": 0,
        "w_dim": c.w_dim,
        "img_resolution": c.img_resolution,
        "img_channels": c.img_channels,
        "mapping_kwargs": {"num_layers": c.mapping_layers},
        "synthesis_kwargs": {
            "channel_base": c.channel_base,
            "channel_max": c.channel_max,
            "num_fp16_res": 0,
            "conv_clamp": c.conv_clamp,
        },
    }
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"] = types.ModuleType("torch_utils")
    sys.modules["torch_utils.persistence"] = fake
    try:
        g_stub = _stub(G, "Generator", init_kwargs)
        data = {
            "training_set_kwargs": {"resolution": c.img_resolution},
            "G": g_stub,
            "D": None,
            "G_ema": g_stub,
            "augment_pipe": None,
        }
        if extra_globals is not None:
            data["extra"] = extra_globals
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path
