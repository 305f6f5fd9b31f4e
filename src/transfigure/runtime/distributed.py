"""Multi-process training with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node=N`` (and ``--nnodes/--node_rank/--master_addr`` for several
machines) sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``; the training code is unchanged:
:func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU), the engine
wraps every trainable network of the variant in ``DistributedDataParallel``, shards each
epoch over the ranks, and only rank 0 writes checkpoints and MLflow runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from transfigure.runtime.config import launch_env

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); idempotent."""
    launch = launch_env()
    if launch.world_size <= 1:
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(launch.local_rank)
        dist.init_process_group(backend=backend)
        logger.info("joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), launch.local_rank)


def device_for(ctx: DistContext, requested: torch.device) -> torch.device:
    """Each rank uses its own GPU (``cuda:LOCAL_RANK``) when the run is on CUDA."""
    if ctx.enabled and requested.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return requested


def wrap_trainable_children(model: nn.Module, ctx: DistContext) -> list[str]:
    """Replace each direct child network holding trainable parameters by a DDP wrapper.

    Variants call their networks (``self.G_A(x)``) as before; DDP all-reduces their
    gradients in backward, so every rank applies the same update. Returns the names wrapped.
    """
    wrapped = []
    for name, child in list(model.named_children()):
        if isinstance(child, DistributedDataParallel) or not any(p.requires_grad for p in child.parameters()):
            continue
        device_ids = [ctx.local_rank] if next(child.parameters()).is_cuda else None
        setattr(model, name, DistributedDataParallel(child, device_ids=device_ids))
        wrapped.append(name)
    return wrapped


def unwrap_children(model: nn.Module) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, DistributedDataParallel):
            setattr(model, name, child.module)


def plain_state_dict(model: nn.Module) -> dict[str, Any]:
    """``model.state_dict()`` without DDP's ``module.`` infix, so checkpoints load at any world size."""
    out = {}
    wrapped = {n for n, c in model.named_children() if isinstance(c, DistributedDataParallel)}
    for key, value in model.state_dict().items():
        head, _, rest = key.partition(".")
        if head in wrapped and rest.startswith("module."):
            key = f"{head}.{rest[len('module.') :]}"
        out[key] = value
    return out


def broadcast_object(obj: Any, ctx: DistContext, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (identity when not distributed)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_rank_zero(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` on rank 0 only and hand its result to every rank.

    For the steps that talk to MLflow or the registry (register, evaluate, promote): one rank
    must do it, and every rank must return the same outputs, since Kedro writes them on all
    ranks. Without torchrun it just calls ``fn``.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = init_distributed()
        return broadcast_object(fn(*args, **kwargs) if ctx.is_main else None, ctx)

    return wrapper
