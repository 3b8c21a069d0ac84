"""Data-parallel setup for ``torchrun``: process group, device per rank, and reductions.

``torchrun --nproc_per_node=N -m train.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; the loop
then joins a process group (NCCL on CUDA, gloo on CPU), wraps the model in DDP, gives each rank
its slice of every global batch (``ShardedBatchSampler``) and logs/checkpoints from rank 0 only.
Without those variables everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tritonlm.util.cli import UserError


class LaunchError(RuntimeError, UserError):
    """A data-parallel launch that cannot work as configured (environment, devices)."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Rank layout from the torchrun environment variables (a single process without them)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world > 1 and not 0 <= rank < world:
        raise LaunchError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the process group (NCCL for CUDA devices, gloo otherwise) once."""
    if not info.enabled or dist.is_initialized():
        return
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise LaunchError(f"WORLD_SIZE={info.world_size} but {var} is not set; launch with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_device(requested: str, info: DistInfo) -> torch.device:
    """The device a rank trains on: ``cuda:LOCAL_RANK`` for cuda/auto with CUDA, else the CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LaunchError("device='cuda' requested but CUDA is not available; use --device=cpu")
    if info.local_rank >= torch.cuda.device_count():
        raise LaunchError(f"LOCAL_RANK={info.local_rank} but only {torch.cuda.device_count()} GPU(s) are visible")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def mean_across_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (itself for one process)."""
    if not info.enabled:
        return value
    value = value.detach().clone().float()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def any_rank(flags: list[bool], info: DistInfo, device: torch.device) -> list[bool]:
    """Each flag true on every rank when it is true on any rank (stop decisions must agree)."""
    if not info.enabled:
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
