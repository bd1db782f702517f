"""Shared training helpers: device choice."""

from __future__ import annotations

import pytest
import torch

from faceedit.errors import FaceeditError
from faceedit.train.common import DistInfo, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(FaceeditError, match="not a device name"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(FaceeditError, match="CUDA is not available"):
            resolve_device("cuda", DistInfo(rank=1, world_size=2, local_rank=1))
