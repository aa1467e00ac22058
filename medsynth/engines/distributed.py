"""One process or many: the few ``torch.distributed`` facts a bundle needs, in one place.

A bundle's ``train.yaml`` runs in one process; layered with its ``multi_gpu_train.yaml`` (``distributed: true``)
under ``torchrun`` it runs one process per GPU (or per CPU worker with gloo). The same configuration serves both:

- :func:`local_device` is ``cuda:<LOCAL_RANK>`` on a GPU machine and the CPU otherwise;
- :func:`init_process_group` joins the group (NCCL on CUDA, gloo on CPU) and pins this process's GPU;
- :func:`wrap` puts a network in ``DistributedDataParallel`` when the run is distributed, and returns it as it
  is otherwise;
- :func:`is_rank0` tells the handlers whether this process logs, renders, evaluates and writes files. It reads
  the group when one is up and ``torchrun``'s ``RANK`` variable before that, so a handler built before
  :func:`init_process_group` still answers right.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: the group's when it is up, else ``$RANK`` (set by torchrun), else 0."""
    return dist.get_rank() if is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes train: the group's size when it is up, else ``$WORLD_SIZE`` (set by torchrun), else 1."""
    return dist.get_world_size() if is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def is_rank0() -> bool:
    """True in a single process and on rank 0 of a group: where logging, files and evaluation happen."""
    return rank() == 0


def local_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` (0 outside torchrun) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")


def init_process_group(backend: str | None = None) -> None:
    """Join the process group started by torchrun (once) and pin this process's GPU; NCCL on CUDA, else gloo."""
    if not is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_device())


def destroy_process_group() -> None:
    if is_initialized():
        dist.destroy_process_group()


def wrap(network: nn.Module, device: torch.device | str, distributed: bool, **ddp_kwargs) -> nn.Module:
    """``DistributedDataParallel(network)`` on ``device`` when ``distributed``, else ``network`` itself.

    Refuses ``distributed`` before :func:`init_process_group`: a network left unwrapped would train on its own
    in every process without a word.
    """
    if not distributed:
        return network
    if not is_initialized():
        raise RuntimeError("distributed training needs the process group first: call init_process_group() "
                           "(multi_gpu_train.yaml does, in `initialize`) and start the run with torchrun")
    device = torch.device(device)
    device_ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(network, device_ids=device_ids, **ddp_kwargs)
