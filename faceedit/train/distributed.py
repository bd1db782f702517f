"""The one distributed helper of the training loops: ``torchrun`` + DistributedDataParallel.

``torchrun`` puts ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment; without them
(or with ``WORLD_SIZE=1``) everything runs in one process and every function here is a
no-op. The helpers, in the order a loop uses them:

- :func:`setup_distributed` joins the process group (gloo on CPU, nccl on CUDA) and
  returns a :class:`DistInfo`; :func:`distributed` does that and always cleans up;
- :func:`wrap_ddp` wraps a module in DistributedDataParallel (unchanged in one process);
- :func:`average_gradients` averages gradients by hand, for loops whose steps run several
  differently-shaped passes through one module (StyleGAN2), which DDP does not support;
- :func:`gather_generator_states` collects every rank's ``torch.Generator`` state, so a
  checkpoint written by rank 0 resumes every rank's random stream;
- :func:`barrier` and :func:`cleanup_distributed`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(backend: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group if the environment asks for one.

    Uses ``gloo`` on CPU (and ``nccl`` when CUDA is available, unless ``backend`` says
    otherwise). Returns ``DistInfo()`` (one process) when ``WORLD_SIZE`` is unset or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group (no-op in one process or when already left)."""
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def distributed(backend: str | None = None) -> Iterator[DistInfo]:
    """``with distributed() as info:``: :func:`setup_distributed`, always cleaned up."""
    info = setup_distributed(backend)
    try:
        yield info
    finally:
        cleanup_distributed(info)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel under torchrun, else ``module`` itself."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(module, device_ids=[index])
    return DistributedDataParallel(module)


def average_gradients(module: nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``module`` across processes."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world_size)


def gather_generator_states(gen: torch.Generator, info: DistInfo) -> list[torch.Tensor]:
    """Every rank's ``gen`` state, in rank order (a collective: all ranks must call it)."""
    state = gen.get_state()
    if not info.enabled:
        return [state]
    import torch.distributed as dist

    # nccl gathers CUDA tensors only, gloo CPU ones
    where = (
        torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    )
    local = state if where is None else state.to(where)
    gathered = [torch.empty_like(local) for _ in range(info.world_size)]
    dist.all_gather(gathered, local)
    return [g.cpu() for g in gathered]
