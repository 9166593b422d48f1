"""Where training runs: the device (CUDA, MPS or CPU) and, under torchrun, the other processes.

Lecture lectures/pretraining.md, section "More than one process"; notebook notebooks/03_pretraining.ipynb.
`torchrun --nproc_per_node N -m minibert pretrain ...` starts N copies of the same command and tells each its
RANK and WORLD_SIZE in environment variables. Each copy computes its share of every batch; after backward,
DistributedDataParallel averages the gradients over all copies (all-reduce), so every copy takes the same
optimizer step and the parameters stay identical everywhere. Backend: NCCL between GPUs, gloo on CPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0             # this process's number, 0 .. world_size - 1
    world_size: int = 1
    local_rank: int = 0       # its number on this machine: which GPU it takes

    @property
    def is_main(self) -> bool:
        """Process 0 alone prints, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(request: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: CUDA if there is a GPU, else Apple's MPS, else the CPU. A forced device must exist."""
    if request not in DEVICES:
        raise ValueError(f"device {request!r} is unknown; choose one of {', '.join(DEVICES)}.")
    has = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if request == "auto":
        request = next(name for name in ("cuda", "mps", "cpu") if has[name])
    if not has[request]:
        raise RuntimeError(f"--device {request} was asked for, but this PyTorch sees no {request.upper()} device "
                           f"(torch {torch.__version__}). Use --device auto or --device cpu.")
    return torch.device(f"cuda:{local_rank}") if request == "cuda" else torch.device(request)


def start(device_request: str = "auto") -> Runtime:
    """Join the other processes if torchrun started us (WORLD_SIZE > 1); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_request, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, rank, world_size, local_rank)


def stop(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, runtime: Runtime) -> nn.Module:
    """DistributedDataParallel around the model when there are other processes; the model itself if not."""
    if not runtime.distributed:
        return model
    device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def sum_over_processes(values: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """The element-wise sum of `values` over all processes (the tensor itself when there is one)."""
    if runtime.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(value, runtime: Runtime) -> list:
    """[value of process 0, value of process 1, ...], on every process."""
    if not runtime.distributed:
        return [value]
    gathered = [None] * runtime.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()
