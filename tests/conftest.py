"""Shared test settings: one intra-op thread and a deterministic seed per test.

Test models are tiny: with several OpenMP threads their many small ops spend more time
synchronising than computing (10x slower on a busy 2-core machine), so tests use one.
``FACEEDIT_TEST_THREADS`` overrides it.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("FACEEDIT_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
