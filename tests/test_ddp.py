"""Distributed training: two processes on the CPU (gloo), as `torchrun --nproc_per_node 2` starts them,
train like one process with the same global batch."""

import numpy as np

from data import DurationBatchSampler


def test_ranks_share_each_global_batch():
    """Every rank takes a share of every global batch: disjoint, together the batch, the same number
    of steps on every rank, and resuming (start_batch) counts global batches."""
    durations = list(np.random.default_rng(0).uniform(1, 15, size=200)) + [40.0]  # alone in its batch
    whole = DurationBatchSampler(durations, batch_seconds=60, seed=3)
    whole.set_epoch(2, start_batch=4)
    batches = list(whole)
    assert min(len(b) for b in batches) == 1  # so some rank gets an empty share
    for world in (2, 3):
        ranks = [DurationBatchSampler(durations, 60, seed=3, rank=r, world_size=world) for r in range(world)]
        for sampler in ranks:
            sampler.set_epoch(2, start_batch=4)
        shares = [list(sampler) for sampler in ranks]
        assert [len(s) for s in shares] == [len(sampler) for sampler in ranks] == [len(batches)] * world
        for batch, *parts in zip(batches, *shares, strict=True):
            assert sorted(i for p in parts for i in p) == sorted(batch)  # disjoint, together the batch
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            longest = max(durations[i] for i in batch)
            assert all(longest * len(p) <= 60 / world + longest for p in parts)  # 1/world, give or take one
