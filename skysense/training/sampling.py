"""Distributed, resumable sample order: each epoch's permutation sharded across ranks.

Epoch ``e`` draws one permutation of the dataset from ``seed + e``; rank ``r`` of ``W`` takes
positions ``r, r + W, ...``, so every sample is seen exactly once per epoch across all ranks
(nothing padded, nothing dropped). Micro-batches are cut from the rank's endless stream of
epochs, so every batch is full and all ranks take the same number of steps. The only state is
how many samples this rank has consumed; resuming from it reproduces the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from skysense.core.errors import TrainingError


class EpochShardStream:
    """Endless micro-batches of dataset indices for one rank.

    Args:
        num_samples: dataset length.
        rank: this rank.
        world_size: number of data-parallel ranks.
        batch_size: micro-batch size per rank.
        seed: base seed; epoch ``e`` uses ``seed + e``.
    """

    def __init__(
        self, num_samples: int, rank: int, world_size: int, batch_size: int, seed: int
    ) -> None:
        if num_samples < world_size:
            raise TrainingError(
                f"the dataset holds {num_samples} chips, fewer than the {world_size} ranks; "
                "chip more scenes (skysense data chip) or use fewer processes (--nproc)"
            )
        self.num_samples = num_samples
        self.rank = rank
        self.world_size = world_size
        self.batch_size = batch_size
        self.seed = seed
        self.consumed = 0
        self._cached: tuple[int, list[int]] = (-1, [])

    @property
    def shard_len(self) -> int:
        """Samples this rank sees per epoch."""
        return len(range(self.rank, self.num_samples, self.world_size))

    @property
    def epoch(self) -> int:
        """The epoch the next sample comes from."""
        return self.consumed // self.shard_len

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's indices for an epoch, in order."""
        if self._cached[0] == epoch:
            return self._cached[1]
        gen = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.num_samples, generator=gen)
        indices = order[self.rank :: self.world_size].tolist()
        self._cached = (epoch, indices)
        return indices

    def next_batch(self) -> list[int]:
        """The next micro-batch of indices (may span two epochs)."""
        batch: list[int] = []
        while len(batch) < self.batch_size:
            epoch, pos = divmod(self.consumed, self.shard_len)
            indices = self.epoch_indices(epoch)
            take = indices[pos : pos + self.batch_size - len(batch)]
            batch.extend(take)
            self.consumed += len(take)
        return batch

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, int]:
        """Position (samples consumed) and the settings that must match on resume."""
        return {
            "consumed": self.consumed,
            "num_samples": self.num_samples,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved position.

        Raises:
            TrainingError: the dataset, rank count or batch size changed since the checkpoint.
        """
        for key in ("num_samples", "world_size", "batch_size", "seed"):
            if int(state[key]) != getattr(self, key):
                raise TrainingError(
                    f"cannot resume the exact data order: {key} was {state[key]} in the checkpoint "
                    f"and is {getattr(self, key)} now; use the same chips, --nproc and train "
                    "settings, or start a fresh run without --resume"
                )
        self.consumed = int(state["consumed"])


def batch_iterator(
    stream: EpochShardStream,
    dataset: Any,
    collate: Callable[[list[Any]], Any],
    num_workers: int = 0,
    seed: int = 0,
) -> Iterator[Any]:
    """Collated micro-batches in ``stream`` order, read in this process or by worker processes.

    With workers, batches are read ahead, so ``stream`` runs ahead of training: keep the
    resumable position in a separate stream advanced per batch used (as the loop does). Worker
    seeds come from their own generator, so the global RNG streams are left untouched.
    """
    if num_workers == 0:
        while True:
            yield collate([dataset[i] for i in stream.next_batch()])
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_sampler=iter(stream),
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    yield from loader
