"""Training in several processes (torchrun): batch norm over the global batch, and small
collectives. train.py holds the rest of the distributed logic, in its loop."""

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce


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
    """Every BatchNorm1d normalises over the global batch instead of this rank's share of it."""
    if device_type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same parameters and buffers
    for module in model.modules():
        if type(module) is torch.nn.BatchNorm1d:
            module.__class__ = SyncBatchNormCPU  # same parameters and buffers, another forward
    return model


def gather_ints(values: list[int], device) -> list[list[int]]:
    """Every rank's `values`, in rank order."""
    local = torch.tensor(values, device=device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [t.tolist() for t in gathered]
