"""The samplers under DDP, without processes: every rank's shards together cover each example as intended."""

from __future__ import annotations

import pytest

from lra.data.sampling import EpochShuffle, EvalShard
from lra.errors import LRAError


@pytest.mark.parametrize("size,replicas", [(17, 2), (16, 2), (10, 3), (5, 1)])
def test_evaluation_shards_count_every_example_exactly_once(size, replicas):
    shards = [list(EvalShard(size, rank, replicas)) for rank in range(replicas)]
    assert sorted(i for shard in shards for i in shard) == list(range(size))
    assert [len(EvalShard(size, rank, replicas)) for rank in range(replicas)] == [len(s) for s in shards]
    assert shards[0] == sorted(shards[0])  # in order: a rank's batches are the same at every evaluation


def test_evaluation_needs_an_example_per_rank():
    with pytest.raises(LRAError, match="3 examples cannot give each of 4 processes one: run on at most 3"):
        EvalShard(3, 0, 4)


def test_training_shards_are_equal_and_cover_the_epoch_permutation():
    shards = [list(EpochShuffle(17, seed=0, rank=rank, replicas=2)) for rank in range(2)]
    assert len(shards[0]) == len(shards[1]) == 9  # equal, so every rank takes the same number of optimizer steps
    assert set(shards[0]) | set(shards[1]) == set(range(17))
    assert len(shards[0]) + len(shards[1]) - 17 == 1  # one example repeated to even them out


def test_a_resumed_training_shard_continues_where_it_stopped():
    sampler = EpochShuffle(17, seed=3, rank=1, replicas=2)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.skip = 4
    assert list(sampler) == whole[4:]
    assert list(sampler) == whole  # skip applies to the next iteration only
