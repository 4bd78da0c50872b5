"""QuartzNet (Kriman et al., 2019, arXiv:1910.10261), written out from the paper's layer table.

    C1    separable conv, stride 2                       (c1_channels, c1_kernel)
    B1-B5 blocks of R time-channel separable sub-blocks  (block_channels, block_kernels), residual
    C2    separable conv, dilation 2                     (c2_channels, c2_kernel)
    C3    pointwise conv                                 (c3_channels)
    C4    pointwise conv to the vocabulary, with bias

QuartzNet BxR repeats each of the 5 blocks B/5 times: 5x5 has 6.7 M parameters, 15x5 18.9 M.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, 1, max_len) float mask, 1 for real frames and 0 for padding."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()


class SeparableConv(nn.Module):
    """Depthwise conv over time, then pointwise conv across channels, then batch norm.

    Padded frames are zeroed before the depthwise conv so they never leak into real frames."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        assert kernel % 2 == 1, "odd kernels keep frames centred"
        self.stride = stride
        padding = dilation * (kernel - 1) // 2
        self.depthwise = nn.Conv1d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False)
        self.pointwise = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.norm = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x * mask)  # (B, C_in, T / stride)
        return self.norm(self.pointwise(x))  # (B, C_out, T / stride)


class Block(nn.Module):
    """R separable sub-blocks; the residual (pointwise conv + BN of the input) is added before the
    last ReLU, as in the paper's figure 2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, repeats: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(
            SeparableConv(c_in if i == 0 else c_out, c_out, kernel) for i in range(repeats)
        )
        self.residual = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        residual = self.residual(x)
        for i, conv in enumerate(self.convs):
            x = conv(x, mask)
            if i == len(self.convs) - 1:
                x = x + residual
            x = self.dropout(F.relu(x))
        return x


class QuartzNet(nn.Module):
    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.stride = cfg.stride
        d = cfg.dropout
        self.c1 = SeparableConv(cfg.n_mels, cfg.c1_channels, cfg.c1_kernel, stride=cfg.stride)
        blocks, c_in = [], cfg.c1_channels
        for c_out, kernel in zip(cfg.block_channels, cfg.block_kernels, strict=True):
            for _ in range(cfg.block_repeat):
                blocks.append(Block(c_in, c_out, kernel, cfg.repeats, d))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.c2 = SeparableConv(c_in, cfg.c2_channels, cfg.c2_kernel, dilation=2)
        self.c3 = nn.Sequential(
            nn.Conv1d(cfg.c2_channels, cfg.c3_channels, 1, bias=False), nn.BatchNorm1d(cfg.c3_channels)
        )
        self.c4 = nn.Conv1d(cfg.c3_channels, vocab_size, 1)
        self.dropout = nn.Dropout(d)
        kernels = [cfg.c1_kernel] + [
            k for k in cfg.block_kernels for _ in range(cfg.block_repeat * cfg.repeats)
        ]
        # frames of input that one output frame sees: C1 at stride 1, then everything at stride s
        self.receptive_field = cfg.c1_kernel + cfg.stride * (
            sum(k - 1 for k in kernels[1:]) + 2 * (cfg.c2_kernel - 1)
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + self.stride - 1) // self.stride  # 'same' padding: ceil(T / stride)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, n_mels, T), lengths (B,) -> log_probs (B, T', V), out_lengths (B,)."""
        out_lengths = self.output_lengths(lengths)
        mask = frame_mask(out_lengths, (features.shape[2] + self.stride - 1) // self.stride)  # (B, 1, T')
        x = self.dropout(F.relu(self.c1(features, frame_mask(lengths, features.shape[2]))))  # (B, C1, T')
        for block in self.blocks:
            x = block(x, mask)
        x = self.dropout(F.relu(self.c2(x, mask)))
        x = self.dropout(F.relu(self.c3(x)))
        logits = self.c4(x).transpose(1, 2)  # (B, T', V)
        return F.log_softmax(logits.float(), dim=-1), out_lengths


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
