"""The distributed, resumable sample stream."""

from __future__ import annotations

import pytest

from skysense.core.errors import TrainingError
from skysense.training.sampling import EpochShardStream


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (7, 3)])
def test_every_sample_is_seen_once_per_epoch_across_ranks(n: int, world: int) -> None:
    streams = [EpochShardStream(n, r, world, batch_size=1, seed=5) for r in range(world)]
    for epoch in range(3):
        seen = sorted(i for s in streams for i in s.epoch_indices(epoch))
        assert seen == list(range(n))
    # epochs are shuffled differently
    assert streams[0].epoch_indices(0) != streams[0].epoch_indices(1)


def test_batches_are_full_and_cross_epoch_boundaries() -> None:
    s = EpochShardStream(5, rank=0, world_size=1, batch_size=4, seed=0)
    b1, b2 = s.next_batch(), s.next_batch()
    assert len(b1) == len(b2) == 4
    assert sorted(b1 + b2[:1]) == list(range(5))
    assert s.epoch == 1 and s.consumed == 8


def test_resume_reproduces_the_order() -> None:
    a = EpochShardStream(9, rank=1, world_size=2, batch_size=3, seed=1)
    for _ in range(3):
        a.next_batch()
    state = a.state_dict()
    expected = [a.next_batch() for _ in range(4)]
    b = EpochShardStream(9, rank=1, world_size=2, batch_size=3, seed=1)
    b.load_state_dict(state)
    assert [b.next_batch() for _ in range(4)] == expected


def test_resume_with_other_world_size_or_too_small_dataset_is_refused() -> None:
    state = EpochShardStream(9, 0, 2, 3, 1).state_dict()
    with pytest.raises(TrainingError, match="world_size"):
        EpochShardStream(9, 0, 3, 3, 1).load_state_dict(state)
    with pytest.raises(TrainingError, match="fewer than the 4 ranks"):
        EpochShardStream(3, 0, 4, 1, 0)
