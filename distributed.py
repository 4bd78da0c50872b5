"""Training in several processes (torchrun): each process's setup and teardown, batch norm over the
global batch, and small collectives. train.py holds the rest of the distributed logic, in its loop."""

import os
import warnings
from collections.abc import Sequence
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce
from torch.nn.parallel import DistributedDataParallel as DDP


def setup(device: str) -> tuple[int, int, bool, str]:
    """This process of a torchrun (which sets RANK, LOCAL_RANK and WORLD_SIZE for each), in its process
    group and on its own GPU -> (rank, world size, master, device); without torchrun the one
    process, (0, 1, True, device). The master, rank 0, alone prints, logs, validates and writes
    checkpoints."""
    if int(os.environ.get("RANK", -1)) == -1:
        return 0, 1, True, device
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"  # one GPU per process
        torch.cuda.set_device(device)
    # the others wait while rank 0 indexes new data or validates: an hour, not NCCL's 10 minutes
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timedelta(hours=1))
    if rank != 0:
        warnings.filterwarnings("ignore")  # every rank reads the same data: rank 0 names what is wrong
    return rank, world_size, rank == 0, device


def teardown() -> None:
    """Leave the process group. Delete the DDP-wrapped model first: freed after its process group, it
    can hang the exit on gloo (the group's worker threads wait for the interpreter lock the freeing
    thread holds)."""
    dist.destroy_process_group()


class SyncBatchNormCPU(torch.nn.BatchNorm1d):
    """torch.nn.SyncBatchNorm for processes on CPUs (gloo), where torch's own does not run: in
    training, mean and variance are those of all ranks' batches together, and the gradients flow back
    through the all-reduces, as in one process over the whole batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C): the model's B * T frames
        if not self.training:
            return super().forward(x)
        sums = all_reduce(torch.cat([x.sum(0), x.new_tensor([x.shape[0]])]))
        count, mean = sums[-1], sums[:-1] / sums[-1]
        centred = x - mean
        var = all_reduce(centred.pow(2).sum(0)) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1), self.momentum)  # unbiased, as torch's
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


def sync_batch_norm(model: torch.nn.Module, device_type: str) -> torch.nn.Module:
    """Every BatchNorm1d normalises over the global batch instead of this rank's share of it: the
    model trains as one process's would with the same batch_seconds (tests/test_ddp.py), where per-rank
    statistics over a share of a few long utterances would be noisy and change with the number of
    GPUs. The price: a few small collectives per BatchNorm layer and step."""
    if device_type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same parameters and buffers
    for module in model.modules():
        if type(module) is torch.nn.BatchNorm1d:
            module.__class__ = SyncBatchNormCPU  # same parameters and buffers, another forward
    return model


def wrap(model: torch.nn.Module, device: str) -> DDP:
    """The model for training in this process of several (on the GPU that setup gave it): its batch
    norm over the global batch (sync_batch_norm), its gradients the mean over all ranks' (DDP)."""
    device_type = torch.device(device).type
    model = sync_batch_norm(model, device_type)
    return DDP(model, device_ids=[torch.cuda.current_device()] if device_type == "cuda" else None)


def gather_ints(values: Sequence[int], device) -> list[list[int]]:
    """Every rank's `values`, in rank order."""
    local = torch.tensor(values, device=device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [t.tolist() for t in gathered]
