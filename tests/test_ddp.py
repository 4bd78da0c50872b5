"""Distributed training: two processes on the CPU (gloo), as `torchrun --nproc_per_node 2` starts them,
train like one process with the same global batch."""

import json
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import random_texts, tiny_args, write_custom_dir

import train
from data import DurationBatchSampler, read_data


def test_ranks_share_each_global_batch():
    """Every rank takes a share of every global batch: disjoint, together the batch, the same number
    of steps on every rank, and resuming (start_batch) counts global batches."""
    durations = list(np.random.default_rng(0).uniform(1, 15, size=200)) + [40.0]  # alone in its batch
    whole = DurationBatchSampler(durations, batch_seconds=60, seed=3)
    whole.set_epoch(2, start_batch=4)
    batches = [[i for _, i in b] for b in whole]
    assert min(len(b) for b in batches) == 1  # so some rank gets an empty share
    for world in (2, 3):
        ranks = [DurationBatchSampler(durations, 60, seed=3, rank=r, world_size=world) for r in range(world)]
        for sampler in ranks:
            sampler.set_epoch(2, start_batch=4)
        shares = [[[i for epoch, i in b if epoch == 2] for b in sampler] for sampler in ranks]
        assert [len(s) for s in shares] == [len(sampler) for sampler in ranks] == [len(batches)] * world
        for batch, *parts in zip(batches, *shares, strict=True):
            assert sorted(i for p in parts for i in p) == sorted(batch)  # disjoint, together the batch
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            longest = max(durations[i] for i in batch)
            assert all(longest * len(p) <= 60 / world + longest for p in parts)  # 1/world, give or take one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record_calls(module, setattr_=setattr) -> tuple[list, list]:
    """Make train.py note the utterances of every training batch it asks for (its sampler's shares)
    and every checkpoint it writes."""
    shares, saves = [], []
    save_checkpoint = module.save_checkpoint

    class NotingSampler(DurationBatchSampler):
        def __iter__(self):
            for share in super().__iter__():
                if self.shuffle:  # training, not validation: the utterances of its (epoch, index) pairs
                    shares.append([i for _, i in share])
                yield share

    def noting_save(path, state):
        saves.append([os.path.basename(path), state["step"]])
        save_checkpoint(path, state)

    setattr_(module, "DurationBatchSampler", NotingSampler)
    setattr_(module, "save_checkpoint", noting_save)
    return shares, saves


def _rank_main(rank, world, port, argv, record_dir):
    """One process of the distributed run, with the environment torchrun gives it."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    batches, saves = _record_calls(train)
    train.main(argv)
    with open(os.path.join(record_dir, f"rank{rank}.json"), "w") as f:
        json.dump(dict(batches=batches, saves=saves), f)


def _spawn(fn, args, nprocs, timeout):
    """torch.multiprocessing.spawn, ended (and failed) if it runs past `timeout` seconds."""
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.time() + timeout
    while not context.join(timeout=1):
        if time.time() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"distributed run still going after {timeout} s")


def _metrics(run) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/loss" in r]
    assert len({r["step"] for r in train_rows}) == len(train_rows)  # one writer: no step twice
    return {r["step"]: r for r in train_rows}


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, monkeypatch):
    data = write_custom_dir(tmp_path / "d", random_texts(8, seed=1))
    flags = [
        "--val_data", str(data), "--device", "cpu", "--batch_seconds", "3", "--max_steps", "6",
        "--save_every", "2", "--eval_every", "3", "--beam_size", "1", "--log_every", "1", "--threads", "1",
        # NovoGrad, not the preset's AdamW, whose first steps are about lr * sign(gradient): that
        # would hide a wrongly weighted gradient and make rounding in a near-zero one a whole step
        "--optimizer", "novograd", "--betas", "0.95", "0.5", "--lr", "0.01",
    ]  # fmt: skip
    durations = [u.duration for u in read_data(str(data))]
    sampler = DurationBatchSampler(durations, 3, seed=train.Config.seed)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert min(map(len, sampler.batches())) >= 2  # no share is empty: both runs take every batch

    _spawn(_rank_main, (2, _free_port(), tiny_args(data, tmp_path / "ddp", *flags), str(tmp_path)), 2, 120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    threads = torch.get_num_threads()
    batches, saves = _record_calls(train, monkeypatch.setattr)
    try:
        train.main(tiny_args(data, tmp_path / "one", *flags))
    finally:
        torch.set_num_threads(threads)

    # the sharding: each rank saw its own utterances, together each step's batch, and the whole epoch
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) == len(batches) == 6
    for share0, share1, batch in zip(ranks[0]["batches"], ranks[1]["batches"], batches, strict=True):
        assert share0 and share1 and not set(share0) & set(share1)
        assert sorted(share0 + share1) == sorted(batch)
    epoch = [i for b in ranks[0]["batches"][:3] + ranks[1]["batches"][:3] for i in b]  # 3 batches an epoch
    assert sorted(epoch) == list(range(len(durations)))

    # one checkpoint writer, at the steps one process writes
    assert ranks[1]["saves"] == [] and ranks[0]["saves"] == saves

    # the same training: loss and gradient norm at every step, then weights, optimizer and sampler state
    one, ddp = _metrics(tmp_path / "one"), _metrics(tmp_path / "ddp")
    assert one.keys() == ddp.keys() == set(range(1, 7))
    for step in one:
        for key in ("train/loss", "train/grad_norm"):
            assert ddp[step][key] == pytest.approx(one[step][key], rel=1e-5), (step, key)
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert (a["step"], a["epoch"], a["epoch_batch"]) == (b["step"], b["epoch"], b["epoch_batch"]) == (6, 1, 3)
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for p, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(b["optimizer"]["state"][p][key], value, rtol=1e-4, atol=1e-5)
