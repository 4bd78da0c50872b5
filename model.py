"""QuartzNet (Kriman et al., 2019, arXiv:1910.10261), written out from the paper's layer table.

    C1    separable conv, stride 2                       (c1_channels, c1_kernel)
    B1-B5 blocks of R time-channel separable sub-blocks  (block_channels, block_kernels), residual
    C2    separable conv, dilation 2                     (c2_channels, c2_kernel)
    C3    pointwise conv                                 (c3_channels)
    C4    pointwise conv to the vocabulary, with bias

QuartzNet BxR repeats each of the 5 blocks B/5 times: 5x5 has 6.7 M parameters, 15x5 18.9 M.

Checkpoints are plain dicts of tensors and values (loaded with weights_only=True): model, config,
tokenizer, and for training optimizer, step, epoch, epoch_batch; an exported checkpoint adds its
decoding settings (`python train.py export SRC DEST ...`: tools/export.py).
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cli import UsageError, atomic_path
from config import Config, config_from_dict
from kernels import Dropout, depthwise_conv
from tokenizer import Tokenizer

# 5 minutes of 10 ms feature frames per pass over a long recording, plus context. It bounds the
# model's activations; audio.MEL_CHUNK_FRAMES bounds the STFT's memory. Both give a whole-file pass's
# result at any size, so neither depends on the other (tests set them apart).
CHUNK_FRAMES = 30000


def output_frames(frames, stride: int):
    """Input frames (an int or a tensor of lengths) -> the model's output frames: its 'same'-padded
    stride keeps ceil(frames / stride). The one place this rule is written."""
    return (frames + stride - 1) // stride


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len, 1) float mask, 1 for real frames and 0 for padding."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(2).float()


class SeparableConv(nn.Module):
    """Depthwise conv over time, then pointwise conv across channels, then batch norm.

    Activations are time-major, (B, T, C): the pointwise conv is then one matmul and the depthwise
    conv takes oneDNN's fast path. Padded frames are zeroed before the depthwise conv so they never
    leak into real frames."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        assert kernel % 2 == 1, "odd kernels keep frames centred"
        self.stride, self.dilation = stride, dilation
        padding = dilation * (kernel - 1) // 2
        # Conv1d modules for their parameters only: checkpoints keep the (B, C, T) model's layout
        self.depthwise = nn.Conv1d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False)
        self.pointwise = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.norm = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # the mask in x's dtype: under autocast, bf16 times a float32 mask would be float32, twice the bytes
        x = depthwise_conv(
            x * mask.to(x.dtype), self.depthwise.weight, self.stride, self.dilation
        )  # (B, T', C_in)
        return pointwise(x, self.pointwise, self.norm)  # (B, T / stride, C_out)


def pointwise(x: torch.Tensor, conv: nn.Conv1d, norm: nn.BatchNorm1d) -> torch.Tensor:
    """x (B, T, C_in) -> batch norm of the 1x1 conv, (B, T, C_out): one matmul, and batch norm over
    the B * T frames as one (N, C) batch."""
    x = F.linear(x, conv.weight.squeeze(2), conv.bias)
    return norm(x.reshape(-1, x.shape[2])).view(x.shape)


@torch.no_grad()
def fold_batch_norm(model: "QuartzNet") -> "QuartzNet":
    """For inference: every batch norm (in eval mode a per-channel affine map) folded into the 1x1
    conv before it, which gains a bias; the norm becomes an identity. Same outputs, fewer passes
    over the activations. The model can no longer train."""
    pairs = [(m.pointwise, m, "norm") for m in model.modules() if isinstance(m, SeparableConv)]
    pairs += [(seq[0], seq, "1") for seq in [b.residual for b in model.blocks] + [model.c3]]  # conv, BN
    for conv, parent, name in pairs:
        norm = getattr(parent, name)
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (C_out,)
        conv.weight.mul_(scale[:, None, None])
        conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
        setattr(parent, name, nn.Identity())
    return model.eval()


class Block(nn.Module):
    """R separable sub-blocks; the residual (pointwise conv + BN of the input) is added before the
    last ReLU, as in the paper's figure 2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, repeats: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(
            SeparableConv(c_in if i == 0 else c_out, c_out, kernel) for i in range(repeats)
        )
        self.residual = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        residual = pointwise(x, *self.residual)
        for i, conv in enumerate(self.convs):
            x = conv(x, mask)
            if i == len(self.convs) - 1:
                x = x + residual
            x = self.dropout(F.relu(x))
        return x


class QuartzNet(nn.Module):
    def __init__(self, cfg, vocab_size: int, aux_vocab_size: int = 0):
        """aux_vocab_size > 0 adds a 1x1 conv output layer on the middle block's output, for an
        auxiliary CTC loss over other symbols (phonemes: --aux_phone_weight); training only."""
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
        self.aux_block = len(blocks) // 2  # the auxiliary output reads this block's output
        if aux_vocab_size:
            self.aux = nn.Conv1d(blocks[self.aux_block].residual[0].out_channels, aux_vocab_size, 1)
        self.dropout = Dropout(d)
        kernels = [cfg.c1_kernel] + [
            k for k in cfg.block_kernels for _ in range(cfg.block_repeat * cfg.repeats)
        ]
        # frames of input that one output frame sees: C1 at stride 1, then everything at stride s
        self.receptive_field = cfg.c1_kernel + cfg.stride * (
            sum(k - 1 for k in kernels[1:]) + 2 * (cfg.c2_kernel - 1)
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return output_frames(lengths, self.stride)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, aux: bool = False) -> tuple:
        """features (B, n_mels, T), lengths (B,) -> log_probs (B, T', V), out_lengths (B,), and with
        aux the auxiliary output layer's log-probs (B, T', V_aux)."""
        out_lengths = self.output_lengths(lengths)
        mask = frame_mask(out_lengths, output_frames(features.shape[2], self.stride))  # (B, T', 1)
        x = features.transpose(1, 2).contiguous()  # (B, T, n_mels): time-major from here on
        x = self.dropout(F.relu(self.c1(x, frame_mask(lengths, features.shape[2]))))  # (B, T', C1)
        for i, block in enumerate(self.blocks):
            x = block(x, mask)
            if aux and i == self.aux_block:
                aux_logits = F.linear(x, self.aux.weight.squeeze(2), self.aux.bias)  # (B, T', V_aux)
        x = self.dropout(F.relu(self.c2(x, mask)))
        x = self.dropout(F.relu(pointwise(x, *self.c3)))
        logits = F.linear(x, self.c4.weight.squeeze(2), self.c4.bias)  # (B, T', V)
        if aux:
            return (
                F.log_softmax(logits.float(), dim=-1),
                out_lengths,
                F.log_softmax(aux_logits.float(), dim=-1),
            )
        return F.log_softmax(logits.float(), dim=-1), out_lengths


@torch.no_grad()
def widen(state: dict, model: QuartzNet, seed: int = 0) -> dict:
    """A checkpoint's weights -> a state dict for `model`, which may have more channels in any layer
    and computes the same function (Net2WiderNet, Chen et al., 2016, arXiv:1511.05641).

    Each new channel of a layer copies a random old one: its pointwise conv row, batch norm and, in
    the layer that reads it, its depthwise kernel; the reading pointwise conv divides each copied
    channel's input weight by its number of copies. Copies stay equal under batch norm in training
    too; dropout then tells them apart."""
    generator = torch.Generator().manual_seed(seed)
    target = model.state_dict()
    # the channels each layer writes and reads: prefix -> (written, read)
    layers, read = {"c1": ("c1", "mels")}, "c1"
    for i, block in enumerate(model.blocks):
        layers[f"blocks.{i}.residual"] = (f"b{i}", read)
        for j in range(len(block.convs)):
            written = f"b{i}" if j == len(block.convs) - 1 else f"b{i}.{j}"
            layers[f"blocks.{i}.convs.{j}"], read = (written, read), written
    layers |= {
        "c2": ("c2", read),
        "c3": ("c3", "c2"),
        "c4": ("vocab", "c3"),
        "aux": ("aux", f"b{model.aux_block}"),
    }
    copies = {}  # channels -> (index of the old channel each new one copies, copies of each old one)

    def channels(name: str, old: int, new: int) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in copies:
            if new < old:
                raise ValueError(
                    f"the model has fewer channels ({new}) than the checkpoint ({old}) in {name}"
                )
            index = torch.cat([torch.arange(old), torch.randint(old, (new - old,), generator=generator)])
            copies[name] = index, torch.bincount(index, minlength=old).float()
        return copies[name]

    out = {}
    for key, new in target.items():
        if key.startswith("aux.") and key not in state:  # an auxiliary output layer the checkpoint lacks
            out[key] = new
            continue
        old = state[key]
        prefix, part = next((p, key[len(p) + 1 :]) for p in layers if key.startswith(p + "."))
        written, read = layers[prefix]
        if part.endswith("num_batches_tracked"):
            out[key] = old
        elif part == "depthwise.weight":  # (C_read, 1, K)
            out[key] = old[channels(read, old.shape[0], new.shape[0])[0]]
        elif old.dim() == 3:  # a pointwise conv (C_written, C_read, 1)
            rows = channels(written, old.shape[0], new.shape[0])[0]
            index, count = channels(read, old.shape[1], new.shape[1])
            out[key] = old[rows][:, index] / count[index][None, :, None]
        else:  # per written channel: batch norm, or c4's bias
            out[key] = old[channels(written, old.shape[0], new.shape[0])[0]]
    return out


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pick_device(name: str) -> str:
    """--device auto | cpu | cuda[:N] | mps -> a device torch can use; one it cannot is a UsageError."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: torch sees no CUDA GPU here; use --device cpu (or auto)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: torch sees no Apple GPU (MPS) here; use --device cpu (or auto)")
    if kind not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: not supported; use auto, cpu, cuda, cuda:N or mps")
    return name


@torch.no_grad()
def utterance_log_probs(model: QuartzNet, batch: dict, device) -> list[np.ndarray]:
    """A collated batch -> per-utterance log_probs (T'_i, V) as numpy, padding cut off. A batch
    longer than CHUNK_FRAMES (a long recording) runs chunk by chunk, in bounded memory."""
    features, lengths = batch["features"], batch["feature_lengths"]
    if features.shape[2] > CHUNK_FRAMES:
        return [
            chunked_log_probs(model, f[:, :n].to(device), CHUNK_FRAMES).cpu().numpy()
            for f, n in zip(features, lengths)
        ]
    log_probs, out_lengths = model(features.to(device), lengths.to(device))
    log_probs = log_probs.float().cpu().numpy()  # (B, T', V)
    return [np.ascontiguousarray(log_probs[i, : int(n)]) for i, n in enumerate(out_lengths)]


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to a temporary file, then rename: readers never see a half-written checkpoint, and a
    failed write (a full disk) leaves the previous one in place and no temporary file behind."""
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as RuntimeError
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise OSError(f"{path}: not saved ({reason}); free some disk space. The previous one is kept") from e


def load_checkpoint(path: str | Path, device="cpu") -> dict:
    """Load a checkpoint; only tensors and plain values are unpickled. Checkpoints written before the
    tokenizer was saved name their symbols under "vocab"; they load as the same character tokenizer."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:  # torch's own message suggests weights_only=False: unsafe advice for a stranger's file
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path}: not a checkpoint this program can load ({type(e).__name__}); "
            "pass a .pt file written by train.py"
        ) from None
    if not isinstance(checkpoint, dict) or not {"model", "config"} <= checkpoint.keys():
        raise ValueError(f"{path}: not a checkpoint of this project; pass a .pt file written by train.py")
    if "tokenizer" not in checkpoint:
        checkpoint["tokenizer"] = {"vocab": checkpoint.pop("vocab")}
    return checkpoint


def load_model(checkpoint: dict, device="cpu") -> tuple[QuartzNet, Config, Tokenizer]:
    """A loaded checkpoint -> (model in eval mode, its config, its tokenizer)."""
    cfg, tokenizer = (
        config_from_dict(checkpoint["config"]),
        Tokenizer.from_state_dict(checkpoint["tokenizer"]),
    )
    outputs = checkpoint["model"]["c4.weight"].shape[0]
    if outputs != len(tokenizer):
        raise ValueError(
            f"the checkpoint's model was trained with another vocabulary ({outputs} outputs) than its "
            f"tokenizer's {len(tokenizer)} symbols; use a checkpoint made by this version"
        )
    model = QuartzNet(cfg, len(tokenizer))
    model.load_state_dict({k: v.float() for k, v in checkpoint["model"].items() if not k.startswith("aux.")})
    return fold_batch_norm(model).to(device), cfg, tokenizer


@torch.no_grad()
def chunked_log_probs(
    model: QuartzNet, features: torch.Tensor, chunk_frames: int = CHUNK_FRAMES
) -> torch.Tensor:
    """features (n_mels, T) -> log_probs (ceil(T / stride), V) in memory bounded by chunk_frames.

    The model runs over chunks of chunk_frames frames, each with half its receptive field of real
    frames as context on either side, and keeps only the chunk's own output frames: every kept frame
    sees all the input it depends on, so the result is a whole-file pass's (in eval mode, where batch
    norm is per frame), for a recording of any length."""
    s = model.stride
    context = output_frames(model.receptive_field // 2, s) * s  # whole output frames: chunks stay aligned
    step = max(chunk_frames // s, 1) * s
    total = features.shape[1]
    pieces = []
    for start in range(0, total, step):
        lo, hi = max(start - context, 0), min(start + step + context, total)
        log_probs, _ = model(features[None, :, lo:hi], torch.tensor([hi - lo], device=features.device))
        first = (start - lo) // s
        pieces.append(log_probs[0, first : first + output_frames(min(step, total - start), s)])
    return torch.cat(pieces)
