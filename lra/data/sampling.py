"""The samplers of every split: a training order that a resumed run, on one process or several, continues exactly
where it stopped, and evaluation shards that count every example once under DDP."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

from lra.errors import LRAError


class EpochShuffle(DistributedSampler):
    """A fresh permutation per epoch, a pure function of (seed, epoch), so no sampler state needs saving; under DDP
    each of `replicas` ranks takes every `replicas`-th index of it (the last few repeated so all shards are equal).

    It is a `DistributedSampler` so that Lightning uses it as it is instead of wrapping it in its
    `DistributedSamplerWrapper`, which reshuffles and would not honour `skip`. Lightning calls `set_epoch` at every
    epoch start; `skip` drops the first examples of this rank's shard of the next epoch iterated, which is how a
    resumed run continues from the batch where its checkpoint was taken. `len` is the whole shard: Lightning counts
    the resumed epoch's batches from where it stopped.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, replicas: int = 1) -> None:
        if not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} outside {replicas} replicas")
        super().__init__(range(size), num_replicas=replicas, rank=rank, shuffle=True, seed=seed)
        self.size = size
        self.shard = math.ceil(size / replicas)
        self.skip = 0

    def __len__(self) -> int:
        return self.shard

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        padding = self.shard * self.num_replicas - self.size
        if padding:
            order = torch.cat([order, order[:padding]])
        mine = order[self.rank :: self.num_replicas][self.skip :]
        self.skip = 0
        return iter(mine.tolist())


class EvalShard(DistributedSampler):
    """Rank `rank` of `replicas` evaluates examples rank, rank + replicas, ... in order: the shards partition the
    split, so DDP's validation and test accuracy count every example exactly once.

    Lightning's own sampler (a `DistributedSampler`) repeats the first few examples so that every rank has as many;
    they would then count twice in a published test accuracy. Uneven shards are safe in evaluation: no gradients are
    all-reduced, and the metrics sum their counts over ranks once, at the epoch's end. Being a `DistributedSampler`,
    it is used as it is."""

    def __init__(self, size: int, rank: int = 0, replicas: int = 1) -> None:
        if not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} outside {replicas} replicas")
        if size < replicas:  # a rank without batches would never join the metrics' reduction: every rank would hang
            raise LRAError(f"an evaluation split of {size} examples cannot give each of {replicas} processes one: "
                           f"run on at most {size} (trainer.devices x trainer.num_nodes)")
        super().__init__(range(size), num_replicas=replicas, rank=rank, shuffle=False)
        self.indices = range(rank, size, replicas)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
