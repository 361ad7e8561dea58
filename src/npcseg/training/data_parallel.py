"""One step of the training loop, single-process or one rank's share of a data-parallel (DDP) step.

Batches. ``TrainingConfig.batch_size`` is the GLOBAL batch B of one optimiser step, whatever the number of
processes W. Every rank holds the same :class:`npcseg.data.dataset.SliceSampler` (a pure function of the seed and
the epoch), so every rank knows the step's B slice indices; rank r takes the contiguous block
:func:`shard_positions` ``(B, r, W)`` of them: ``ceil(B / W)`` slices on the first ``B mod W`` ranks and
``floor(B / W)`` on the others (as ``numpy.array_split``). Every rank draws the augmentation transforms of all B
slices from the shared augmentation generator and applies only its own (:func:`batch_share`), so the generators
stay in step and each slice is augmented exactly as in single-process training.

Gradients. DDP averages the ranks' gradients (sum / W). Rank r back-propagates its mean loss over its b_r slices
times ``b_r * W / B`` (:func:`training_step`), so the average is ``sum_r (b_r / B) * grad(mean_r) = grad(global
mean over the B slices)``: for a per-sample mean loss (the default Dice loss, ``batch_dice: false``) one step
equals a single-process step on the concatenated batch up to floating-point reduction order, also for an uneven
last batch of an epoch. A rank with no slice in a short last batch runs its forward on the batch's first slice
with weight 0 (DDP needs every rank in every step). Losses that couple the samples of a batch
(``batch_dice: true``) are not decomposable this way; they train, but the steps differ from single-process ones.
The networks use group normalisation, which has no batch statistics, so no synchronised batch norm is needed.

How the workers are launched: :mod:`npcseg.training.distributed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as torch_distributed

from npcseg.data.augmentation import AugmentationConfig, apply_transform, draw_transform

if TYPE_CHECKING:
    from npcseg.data.dataset import SliceDataset

__all__ = ["DistributedContext", "OnDevice", "batch_share", "shard_positions", "training_step", "wrap_model"]


def shard_positions(count: int, rank: int, world_size: int) -> list[int]:
    """Positions (into a global batch of ``count`` items) that rank ``rank`` of ``world_size`` takes.

    Contiguous blocks as ``numpy.array_split``: the first ``count mod world_size`` ranks take
    ``ceil(count / world_size)`` positions, the others ``floor``; together the ranks take every position once.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size} process(es)")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    base, extra = divmod(count, world_size)
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (1 if rank < extra else 0)))


@dataclass(frozen=True)
class DistributedContext:
    """Where one worker stands in a data-parallel run (an initialised default process group).

    Attributes:
        rank: this process's rank, 0 ... world_size - 1; rank 0 writes the run folder.
        world_size: number of processes W.
        device: this process's device (``cuda:<local rank>`` under NCCL, else the CPU).
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes files and shows progress)."""
        return self.rank == 0

    def shard(self, count: int) -> list[int]:
        """This rank's positions in a global batch of ``count`` (:func:`shard_positions`)."""
        return shard_positions(count, self.rank, self.world_size)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.device.type == "cuda":
            torch_distributed.barrier(device_ids=[self.device.index or 0])
        else:
            torch_distributed.barrier()

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a small tensor (a copy on this rank's device; all-reduce)."""
        total = value.detach().clone().to(self.device)
        torch_distributed.all_reduce(total, op=torch_distributed.ReduceOp.SUM)
        return total


def wrap_model(model: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """``model`` (already on ``context.device``) in ``DistributedDataParallel``."""
    from torch.nn.parallel import DistributedDataParallel

    if context.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[context.device.index or 0])
    return DistributedDataParallel(model)


def training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_function: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    global_batch_size: int,
    num_own: int,
    context: DistributedContext | None,
) -> float:
    """One optimiser step on this rank's share of a global batch; returns the global batch's mean loss.

    Args:
        model: the network (wrapped in DDP when ``context`` is given).
        optimizer: its optimiser.
        loss_function: a per-sample mean loss (see the module docstring).
        images: this rank's slices ``(b, C, H, W)`` (a placeholder of one slice when ``num_own`` is 0).
        labels: their labels ``(b, 1, H, W)``.
        global_batch_size: B, the slices of the step over all ranks.
        num_own: b_r, this rank's real slices (0: ``images`` is a placeholder with weight 0).
        context: the distributed context, or ``None`` for single-process training (plain loss, no scaling).
    """
    optimizer.zero_grad(set_to_none=True)
    loss = loss_function(model(images), labels)
    if context is None:
        loss.backward()
        optimizer.step()
        return float(loss.item())
    (loss * (num_own * context.world_size / global_batch_size)).backward()
    optimizer.step()
    return float(context.sum(loss.detach() * (num_own / global_batch_size)).item())


def batch_share(
    dataset: SliceDataset,
    indices: list[int],
    positions: list[int],
    augmentation: AugmentationConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented slices ``indices[p]`` for ``p`` in ``positions`` (this rank's share of a global batch).

    The transforms of ALL ``indices`` are drawn from ``generator``, in order, whatever ``positions`` is, so every
    rank's generator stays in step and slice ``indices[p]`` gets the transform single-process training gives it
    (with every position, this is the single-process batch).

    Returns:
        Images ``(len(positions), C, H, W)`` and labels ``(len(positions), 1, H, W)``, on the CPU.
    """
    transforms = [draw_transform(augmentation, generator) for _ in indices] if augmentation.enabled else []
    images, labels = [], []
    for position in positions:
        image, label = dataset[indices[position]]
        if transforms:
            image, label = apply_transform(image, label, transforms[position], augmentation.label_interpolation)
        images.append(image)
        labels.append(label)
    return torch.stack(images), torch.stack(labels)


class OnDevice(torch.nn.Module):
    """A network on an accelerator seen from the CPU: inputs go to its device, logits come back to the CPU
    (validation works on CPU arrays).

    Attributes:
        network: the wrapped network (its ``state_dict`` is the one to save).
        device: where it runs.
    """

    def __init__(self, network: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.network = network
        self.device = device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``images`` (any device), on the CPU."""
        result: torch.Tensor = self.network(images.to(self.device)).cpu()
        return result
