"""Train a QuartzNet CTC model.

    python train.py --preset small                                   # LibriSpeech train-clean-100 / dev-clean
    python train.py --preset small --train_data MY_FOLDER                # validates on a few held-out speakers
    python train.py --preset small --train_data PATH/train-clean-5 --val_speakers 19 32 --max_steps 5000
    python train.py --resume --out_dir runs/default                  # continue exactly where it stopped
    torchrun --standalone --nproc_per_node 4 train.py --preset base  # 4 GPUs, DistributedDataParallel
    python train.py plot runs/a runs/b --out curves.png              # loss / WER / CER / LR curves
    python train.py export runs/a/best.pt checkpoints/model.pt --decoder beam_lm --lm lm.arpa.gz  # tools/export.py

The loop is written out top to bottom: data, model, optimiser, then steps with periodic validation
and checkpoints. Checkpoints are written atomically (temporary file, then rename), so a crash or
Ctrl-C at any moment leaves the last good one in place.

Under torchrun every process (rank) trains on its share of each batch with DistributedDataParallel;
rank 0 alone prints, logs, validates and writes checkpoints. --batch_seconds is the global batch.

Exit codes: 0 every file used; 3 done, but some utterance could not be used (unreadable, empty, no
usable transcription; a "warning:" line names each); 1 nothing done (one "error:" line); 2 bad
command line (the line names the flag); 130 stopped (last.pt saved). Utterances over --max_duration
are left out by choice: named, but they do not make it 3.
"""

import argparse
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

# Set before torch loads OpenMP. On a CPU the data workers share the cores with the model's threads;
# threads that sleep while they wait, instead of spinning, leave those cycles to the workers
# (about 1.07x the training loop's audio-s/s on 2 cores over 200 steps; no slower without workers).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from audio import HOP_LENGTH, SAMPLE_RATE
from calc_metrics import corpus_error_rates, phoneme_error_rate
from cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, EXIT_WARNINGS, DataError, UsageError, warning_line
from config import (
    Config,
    add_config_args,
    check_config,
    config_from_args,
    config_from_dict,
    overrides_from_args,
)
from data import (
    LIBRISPEECH_SPLITS,
    DurationBatchSampler,
    SpeechDataset,
    collate,
    lower_priority,
    make_output_dir,
    read_data,
    speaker_of,
)
from decode import DecodingOptions, decode_batch, decoder_pool
from distributed import gather_ints, setup, teardown, wrap
from lexicon import describe as describe_lexicon
from lexicon import spoken
from logger import RunLogger, plot_main
from model import (
    QuartzNet,
    load_checkpoint,
    num_params,
    pick_device,
    save_checkpoint,
    utterance_log_probs,
    widen,
)
from tokenizer import BLANK, Tokenizer, train_tokenizer

# ----------------------------------------------------------------------------- optimisation


class NovoGrad(torch.optim.Optimizer):
    """NovoGrad (Ginsburg et al., 2019): Adam-like, but the second moment is one scalar per layer
    (the squared gradient norm), which QuartzNet was trained with."""

    def __init__(self, params, lr=0.01, betas=(0.95, 0.5), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad_sq = p.grad.float().pow(2).sum()
                if not state:
                    state["m"] = torch.zeros_like(p)
                    state["v"] = grad_sq.clone()
                else:
                    state["v"].mul_(beta2).add_(grad_sq, alpha=1 - beta2)
                g = p.grad / (state["v"].sqrt() + group["eps"])
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state["m"].mul_(beta1).add_(g)
                p.add_(state["m"], alpha=-group["lr"])


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    # no weight decay on norms and biases
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [dict(params=decay, weight_decay=cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)]
    if cfg.optimizer == "novograd":
        return NovoGrad(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use novograd or adamw")


def get_lr(step: int, cfg: Config, minutes: float = 0.0) -> float:
    """Linear warmup, then cosine decay to min_lr at max_steps, or with --max_minutes at whichever
    comes first: on the clock, a run that shares its machine still ends its schedule in time."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    if cfg.max_minutes:
        progress = max(progress, minutes / cfg.max_minutes)
    progress = min(1.0, progress)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def continue_schedule(cfg: Config, checkpoint: dict) -> dict:
    """Where the learning-rate schedule of a resumed run starts: dict(step, minutes, lr), get_lr's
    step 0 (see schedule_config). A run resumed with its own max_steps and max_minutes keeps its
    schedule. With others (a longer run, say) its learning rate goes on from the value it had, in a
    cosine from there to min_lr at the new end, instead of jumping to where the new schedule is."""
    start = checkpoint.get("schedule", dict(step=0, minutes=0.0, lr=None))
    old = config_from_dict(checkpoint["config"])
    step, minutes = checkpoint["step"], checkpoint.get("minutes", 0.0)
    if (old.max_steps, old.max_minutes) == (cfg.max_steps, cfg.max_minutes) or step < cfg.warmup_steps:
        return start  # in warmup no schedule has begun to decay: none jumps
    lr = get_lr(step - start["step"], schedule_config(old, start), minutes - start["minutes"])
    return dict(step=step, minutes=minutes, lr=lr)


def schedule_config(cfg: Config, start: dict) -> Config:
    """The settings get_lr reads for a schedule that starts at `start` (continue_schedule), with
    steps and minutes counted from there: cfg's own for a run that began at step 0."""
    if start["lr"] is None:
        return cfg
    left = max(cfg.max_minutes - start["minutes"], 1e-9) if cfg.max_minutes else 0.0
    return replace(
        cfg, lr=start["lr"], warmup_steps=0, max_steps=cfg.max_steps - start["step"], max_minutes=left
    )


class Share(NamedTuple):
    """One rank's share of a global batch, as the ranks exchange it (distributed.gather_ints)."""

    utterances: int
    longest: int  # frames of its longest utterance: every rank pads its features to the longest share's
    frames: int  # of all its utterances: the training speed in audio seconds per second
    clock_ms: int  # training time so far: rank 0's is the one all ranks follow (get_lr, --max_minutes)


class GlobalBatch(NamedTuple):
    """A step's batch over all ranks (global_batch)."""

    utterances: int  # all ranks'
    fewest: int  # utterances of the rank with the fewest: 0 skips the step on every rank
    longest: int  # frames of the longest utterance: every rank pads its features to it
    frames: int  # of all utterances: the training speed in audio seconds per second
    clock: float  # rank 0's training minutes, which all ranks follow (get_lr, --max_minutes)


def global_batch(batch: dict, minutes: float, device, ddp: bool) -> GlobalBatch:
    """This rank's batch and clock -> the global batch, exchanged between the ranks under DDP."""
    lengths = batch["feature_lengths"].tolist() if batch["ids"] else []
    share = Share(len(lengths), max(lengths, default=0), sum(lengths), round(minutes * 60000))
    shares = [Share(*s) for s in gather_ints(share, device)] if ddp else [share]
    return GlobalBatch(
        sum(s.utterances for s in shares),
        min(s.utterances for s in shares),
        max(s.longest for s in shares),
        sum(s.frames for s in shares),
        shares[0].clock_ms / 60000,
    )


def name_unreadable(batch: dict, named: set) -> None:
    """Warn once for each file of the batch that could not be read; named collects their ids (the count
    goes to the final line)."""
    for uid, error in batch["errors"]:
        if uid not in named:
            named.add(uid)
            tqdm.write(f"warning: skipped in training: {error}")


class WaitClock:
    """Iterates a data loader, adding up the seconds the training loop waits for its batches: a GPU
    starved by the CPU workers' loading and augmentation shows here as a share of the wall time."""

    def __init__(self, loader):
        self.loader, self.waited = loader, 0.0

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            self.waited += time.perf_counter() - start
            if batch is None:
                return
            yield batch


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """--precision on this device -> the dtype the model computes in under autocast; None for fp32."""
    if torch.device(device).type != "cuda":
        if precision in ("bf16", "fp16"):
            raise UsageError(
                f"--precision {precision}: mixed precision needs a CUDA device; use fp32 or auto"
            )
        return None
    # not torch.cuda.is_bf16_supported(): it says yes on a T4 too, where bf16 is emulated and slow
    if precision == "auto":
        precision = "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def ctc_loss(log_probs, out_lengths, tokens, token_lengths, batch_size: float | None = None) -> torch.Tensor:
    """The per-utterance CTC loss divided by its transcript length, summed over the batch and divided
    by batch_size: by default the batch's size, the mean (F.ctc_loss's reduction="mean")."""
    losses = F.ctc_loss(
        log_probs.transpose(0, 1),
        tokens,
        out_lengths,
        token_lengths,
        blank=BLANK,
        reduction="none",
        zero_infinity=True,
    )
    return (losses / token_lengths.clamp_min(1)).sum() / (batch_size or len(losses))


def train_step(model, optimizer, scaler, batch, lr, frames, share_size, amp_dtype, cfg) -> tuple:
    """Forward, backward and update on this rank's share of the global batch, its features padded to
    the longest share's `frames` (batch norm sees the same padding on every rank) -> (loss, the
    gradient norm before clipping). share_size: the global batch over the world size (ctc_loss)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = next(model.parameters()).device
    features = batch["features"].to(device, non_blocking=True)
    if frames > features.shape[2]:
        features = F.pad(features, (0, frames - features.shape[2]))
    feature_lengths = batch["feature_lengths"].to(device, non_blocking=True)
    aux = "aux_tokens" in batch
    with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=amp_dtype is not None):
        outputs = model(features, feature_lengths, aux=aux)
    log_probs, out_lengths = outputs[:2]
    # divided by the global batch over world_size: DDP's mean of the ranks' gradients is then the
    # gradient of the mean over the global batch, however unevenly it is shared
    targets = [batch[k].to(device, non_blocking=True) for k in ("tokens", "token_lengths")]
    loss = ctc_loss(log_probs, out_lengths, *targets, share_size)
    if aux:  # the middle block's phonemes
        aux_targets = [batch[k].to(device, non_blocking=True) for k in ("aux_tokens", "aux_token_lengths")]
        loss = loss + cfg.aux_phone_weight * ctc_loss(outputs[2], out_lengths, *aux_targets, share_size)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss, grad_norm


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def evaluate(model, loader, device, cfg: Config, tokenizer: Tokenizer) -> tuple[dict, list[dict], dict]:
    """Greedy (and beam, no LM) WER/CER over a loader, per-utterance examples, and the loader's
    first batch (its spectrogram goes to the logs without reading it again)."""
    model.eval()
    ids, refs, all_log_probs, first_batch = [], [], [], None
    for batch in loader:
        if not batch["ids"]:  # every file in it failed to load (named by the dataset's warnings)
            continue
        first_batch = first_batch or batch
        ids += batch["ids"]
        refs += batch["texts"]
        all_log_probs += utterance_log_probs(model, batch, device)
    model.train()
    best_paths = decode_batch(all_log_probs, tokenizer.vocab, DecodingOptions("greedy"))
    greedy = [tokenizer.decode(t) for t in best_paths]
    m = corpus_error_rates(refs, greedy)
    metrics = {"val/wer": m["wer"], "val/cer": m["cer"]}
    if tokenizer.lexicon is not None:  # phonemes: the acoustic errors apart from the lexical ones
        phonemes = [tokenizer.phonemes(t) for t in best_paths]
        metrics["val/per"] = phoneme_error_rate(spoken(refs, tokenizer.lexicon), phonemes)
    if cfg.beam_size > 1:
        with decoder_pool(lexicon=tokenizer.lexicon) as pool:
            options = DecodingOptions("beam", cfg.beam_size)
            beam = decode_batch(all_log_probs, tokenizer.vocab, options, pool, tokenizer.lexicon)
        b = corpus_error_rates(refs, [tokenizer.decode(t) for t in beam])
        metrics.update({"val/beam_wer": b["wer"], "val/beam_cer": b["cer"]})
    examples = []
    for i in random.Random(0).sample(range(len(refs)), min(cfg.num_examples, len(refs))):
        e = corpus_error_rates([refs[i]], [greedy[i]])
        examples.append(dict(id=ids[i], target=refs[i], prediction=greedy[i], cer=e["cer"], wer=e["wer"]))
    return metrics, examples, first_batch


def describe_targets(tokenizer: Tokenizer, utterances, cfg: Config) -> str:
    """One line on the training targets: tokens per word and per second of audio, against the output
    frames per second that CTC has to place them in."""
    tokens = sum(len(tokenizer.encode(u.text)) for u in utterances)
    words = sum(len(u.text.split()) for u in utterances)
    seconds = sum(u.duration for u in utterances)
    name = {"char": "characters", "bpe": "word pieces (bpe)", "phone": "phonemes"}[tokenizer.kind]
    return (
        f"tokenizer: {len(tokenizer)} {name}; {tokens / max(words, 1):.2f} tokens per word, "
        f"{tokens / max(seconds, 1e-9):.1f} per second of audio "
        f"(the model outputs {SAMPLE_RATE / HOP_LENGTH / cfg.stride:.0f} frames per second)"
    )


def first_waveform(dataset: SpeechDataset, batch: dict):
    """The audio (N,) of a batch's first utterance as the model heard it (augmented when training)."""
    index = next(i for i, u in enumerate(dataset.utterances) if u.id == batch["ids"][0])
    return dataset.waveform(index)


# ----------------------------------------------------------------------------- setup: config, data


# what --init_from takes from its checkpoint: the fields that shape the weights
ARCHITECTURE = (
    "n_mels", "c1_channels", "c1_kernel", "stride", "block_channels", "block_kernels",
    "block_repeat", "repeats", "c2_channels", "c2_kernel", "c3_channels",
)  # fmt: skip


WIDTHS = ("c1_channels", "block_channels", "c2_channels", "c3_channels")  # these may grow (model.widen)


def wider_than(new, old) -> bool:
    """Channel counts (one, or one per block): at least as many everywhere, and more somewhere."""
    new, old = (list(new), list(old)) if isinstance(old, (list, tuple)) else ([new], [old])
    return len(new) == len(old) and all(n >= o for n, o in zip(new, old)) and new != old


def config_for_resume(args) -> tuple[Config, dict, Tokenizer, Tokenizer | None]:
    """--resume: the config of the run being resumed with the command line's flags over it, its
    checkpoint, its tokenizer and its aux tokenizer (the phonemes of --aux_phone_weight, or None)."""
    out_dir = getattr(args, "out_dir", Config.out_dir)
    checkpoint = load_checkpoint(args.resume or Path(out_dir) / "last.pt")
    cfg = config_from_dict({**checkpoint["config"], **overrides_from_args(args)})
    tokenizer = Tokenizer.from_state_dict(checkpoint["tokenizer"])
    if cfg.tokenizer != tokenizer.kind:
        raise ValueError(f"--tokenizer {cfg.tokenizer}: the run being resumed uses {tokenizer.kind}")
    if ("aux_tokenizer" in checkpoint) != (cfg.aux_phone_weight > 0):
        raise ValueError(
            f"--aux_phone_weight {cfg.aux_phone_weight}: the run being resumed has "
            f"{'an' if 'aux_tokenizer' in checkpoint else 'no'} auxiliary phoneme layer; "
            "change the weight in a new run (--init_from)"
        )
    aux_tokenizer = (
        Tokenizer.from_state_dict(checkpoint["aux_tokenizer"]) if "aux_tokenizer" in checkpoint else None
    )
    return cfg, checkpoint, tokenizer, aux_tokenizer


def config_for_init(args, cfg: Config) -> tuple[Config, Tokenizer | None, dict, bool, bool]:
    """--init_from (fine-tuning): the architecture is the checkpoint's, but for channels the command
    line widens, the rest cfg's (the command line's) -> (cfg, the checkpoint's tokenizer or None for a
    new one, the checkpoint, whether the output layer is new, whether the model is widened)."""
    if args.resume is not None:
        raise ValueError("--init_from starts a new run: leave out --resume")
    init = load_checkpoint(args.init_from)
    given = overrides_from_args(args)
    wider = {k: given[k] for k in WIDTHS if k in given and wider_than(given[k], init["config"][k])}
    clash = [k for k in ARCHITECTURE if k in given and given[k] != init["config"][k] and k not in wider]
    if clash:
        raise ValueError(
            f"--init_from {args.init_from}: its architecture is fixed but for more channels, drop --{clash[0]}"
        )
    tokenizer = Tokenizer.from_state_dict(init["tokenizer"])
    new_output = given.get("tokenizer", tokenizer.kind) != tokenizer.kind
    fixed = {k: init["config"][k] for k in ARCHITECTURE} | wider
    if new_output:  # other symbols: learned from the transcripts, with a new output layer
        tokenizer = None
    else:
        fixed |= {"tokenizer": tokenizer.kind} | (
            {"vocab_size": len(tokenizer)} if tokenizer.kind == "bpe" else {}
        )
    return config_from_dict({**asdict(cfg), **fixed}), tokenizer, init, new_output, bool(wider)


def init_weights(model: QuartzNet, weights: dict, new_output: bool, seed: int) -> None:
    """Load --init_from's weights into the model, widened to its channels (model.widen); with
    new_output the output layer starts afresh, its inputs as many as the checkpoint's c3 has."""
    weights = dict(weights)
    if new_output:
        fresh = model.state_dict()
        weights["c4.weight"] = fresh["c4.weight"][:, : weights["c3.0.weight"].shape[0]]
        weights["c4.bias"] = fresh["c4.bias"]
    model.load_state_dict(widen(weights, model, seed))


VAL_HOLD_OUT = 0.05  # at least this much of the training data, in whole speakers: --val_data auto


def hold_out(utterances: list, fraction: float = VAL_HOLD_OUT) -> tuple[list, list]:
    """(train, validation): whole speakers (speaker_of; in the custom layout an id without a
    speaker is one of its own), in an order fixed by a hash of their names, until `fraction` of
    the utterances, skipping any that would hold out more than twice that; never every speaker. The
    same data holds out the same ones on --resume."""
    speakers = sorted({speaker_of(u.id) for u in utterances}, key=lambda s: (zlib.crc32(s.encode()), s))
    size = Counter(speaker_of(u.id) for u in utterances)
    held, count = set(), 0
    for speaker in speakers[:-1]:
        if count >= fraction * len(utterances):
            break
        if count + size[speaker] <= 2 * fraction * len(utterances):  # never most of the data (one "speaker"
            held.add(speaker)  # may be a whole corpus whose ids name none, as Common Voice's sample-NNNNNN)
            count += size[speaker]
    train = [u for u in utterances if speaker_of(u.id) not in held]
    return train, [u for u in utterances if speaker_of(u.id) in held]


def read_flag_data(flag: str, spec: str, data_root: str) -> list:
    """read_data, with the flag that named the data in its error."""
    try:
        return read_data(spec, data_root)
    except DataError as e:
        raise DataError(f"{flag}: {e}") from None


def read_utterances(cfg: Config, master_process: bool = True) -> tuple[list, list]:
    """The training and validation utterances of --train_data, --val_data and --val_speakers.
    --val_data auto: LibriSpeech's dev set for its training splits, else whole speakers held out of
    the training data (hold_out), so a first run on one's own folder needs no download. Under torchrun
    rank 0 reads first: it downloads and indexes what is missing, the others read its manifests."""
    if dist.is_initialized() and not master_process:
        dist.barrier()
    train_utts = read_flag_data("--train_data", cfg.train_data, cfg.data_root)
    val_data, held_out_slice = cfg.val_data, False
    if val_data == "auto":
        names = [s.strip() for s in cfg.train_data.split(",")]
        splits = any(name in LIBRISPEECH_SPLITS for name in names)
        mini = "train-clean-5" in names  # mini LibriSpeech validates on its own 2-hour dev set
        val_data = ("dev-clean-2" if mini else "dev-clean") if splits else ""
        held_out_slice = not splits and not cfg.val_speakers
    val_utts = read_flag_data(f"--val_data {cfg.val_data}", val_data, cfg.data_root) if val_data else []
    if dist.is_initialized() and master_process:
        dist.barrier()
    if held_out_slice:
        train_utts, val_utts = hold_out(train_utts)
        if master_process and val_utts:
            print(
                f"validation: {len(val_utts)} utterances of {len({speaker_of(u.id) for u in val_utts})} "
                f"speaker(s) held out of --train_data (--val_data auto; --val_data DIR or '' to choose)"
            )
        elif master_process:
            warnings.warn(
                "--val_data auto: no whole speaker could be held out of --train_data (its ids name too few "
                "speakers), so this run has no validation; pass --val_data DIR",
                stacklevel=3,  # where main was called, as for the warnings main gives itself
            )
    if cfg.val_speakers:
        held_out = set(cfg.val_speakers)
        val_utts += [u for u in train_utts if speaker_of(u.id) in held_out]
        train_utts = [u for u in train_utts if speaker_of(u.id) not in held_out]
    # validation counts each file once: a folder listed twice in train_data weights training only
    return train_utts, list({u.path: u for u in val_utts}.values())


def learn_tokenizers(cfg: Config, train_utts: list, tokenizer, aux_tokenizer, master_process: bool = True):
    """(tokenizer, aux tokenizer): those given (None for none), else learned from the training
    transcripts; word pieces and lexicons never see validation's."""
    texts, learned = [u.text for u in train_utts if u.text], []
    if tokenizer is None:
        tokenizer = train_tokenizer(texts, cfg.tokenizer, cfg.vocab_size)
        learned.append(tokenizer)
    if cfg.aux_phone_weight > 0 and aux_tokenizer is None:
        if tokenizer.kind == "phone":
            raise ValueError("--aux_phone_weight: the model's own symbols are phonemes already")
        aux_tokenizer = train_tokenizer(texts, "phone")
        learned.append(aux_tokenizer)
    for t in learned:
        if t.lexicon is not None and master_process:
            print(f"pronunciation lexicon of the training transcripts: {describe_lexicon(t.lexicon)}")
    return tokenizer, aux_tokenizer


class Data(NamedTuple):
    """The training and validation sets and their loaders (make_loaders)."""

    train_set: SpeechDataset
    train_loader: torch.utils.data.DataLoader  # this rank's share of each global batch of --batch_seconds
    val_set: SpeechDataset | None  # None: no validation
    val_loader: torch.utils.data.DataLoader | None


def make_loaders(
    cfg: Config, train_utts, val_utts, tokenizer, aux_tokenizer, rank, world_size, device_type
) -> Data:
    """The data sets and loaders; rank 0 prints what the training data holds."""
    train_set = SpeechDataset(train_utts, cfg, tokenizer, train=True, aux_tokenizer=aux_tokenizer)
    sampler = DurationBatchSampler(  # the global batch of batch_seconds, this rank's share of it
        [u.duration for u in train_set.utterances],
        cfg.batch_seconds,
        seed=cfg.seed,
        rank=rank,
        world_size=world_size,
    )
    # The training workers get each utterance's epoch (it seeds the augmentations) from the sampler,
    # so they live for the whole run; validation's start at each validation. "spawn": a forked worker
    # would copy, page by page, the gigabytes of freed activation memory in this process.
    # On a CPU the workers run at low priority: they fill the model's idle moments instead of stalling
    # both of its threads. With a GPU the workers are what the model waits for, so they keep theirs.
    loader_args = dict(
        collate_fn=collate,
        num_workers=cfg.num_workers,
        worker_init_fn=lower_priority if device_type == "cpu" else None,  # called in workers only
        multiprocessing_context="spawn" if cfg.num_workers > 0 else None,
        pin_memory=device_type == "cuda",  # page-locked batches: copied to the GPU while it computes
    )
    val_loader, val_set = None, None
    if val_utts:
        val_set = SpeechDataset(val_utts, cfg, tokenizer)
        val_batches = DurationBatchSampler(
            [u.duration for u in val_set.utterances], cfg.batch_seconds, shuffle=False
        )
        val_loader = torch.utils.data.DataLoader(val_set, batch_sampler=val_batches, **loader_args)
    # one set of workers for the whole run: a new one each epoch took seconds to start (spawn)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, persistent_workers=cfg.num_workers > 0, **loader_args
    )
    if rank == 0:
        hours = sum(u.duration for u in train_set.utterances) / 3600
        skipped = f", {len(train_set.skipped)} skipped (named above)" if train_set.skipped else ""
        print(
            f"train: {len(train_set)} utterances ({hours:.2f} h{skipped}); validation: {len(val_utts)} utterances"
        )
        print(describe_targets(tokenizer, train_set.utterances, cfg))
    return Data(train_set, train_loader, val_set, val_loader)


def existing_run(out_dir: str) -> list[str]:
    """The files of a run in out_dir that a new run would overwrite or append to."""
    return [name for name in ("last.pt", "best.pt", "metrics.jsonl") if (Path(out_dir) / name).exists()]


# ----------------------------------------------------------------------------- main


def _stop(signum, frame):
    raise KeyboardInterrupt  # `kill`, a notebook's stop button or a job scheduler save like Ctrl-C


def catch_stop_signals() -> dict:
    """Make SIGTERM, and SIGINT even where a background shell ignores it, raise KeyboardInterrupt.
    Returns the previous handlers for `signal.signal` to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers
    return {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _stop),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
    }


class Start(NamedTuple):
    """What a run starts from (configure)."""

    cfg: Config
    device: str
    amp_dtype: torch.dtype | None  # what the model computes in under autocast; None: fp32
    resume: dict | None  # the checkpoint --resume continues
    init: dict | None  # the checkpoint --init_from fine-tunes
    tokenizer: Tokenizer | None  # None: learned from the training transcripts
    aux_tokenizer: Tokenizer | None
    new_output: bool  # --init_from with other symbols: a new output layer
    wider: bool  # --init_from with more channels
    init_from: str | None  # the --init_from path


def configure(args) -> Start:
    """The config: the command line's over that of the checkpoint resumed or fine-tuned."""
    resume, init, tokenizer, aux_tokenizer, new_output, wider = None, None, None, None, False, False
    if args.resume is not None:
        cfg, resume, tokenizer, aux_tokenizer = config_for_resume(args)
    else:
        cfg = config_from_args(args)
    if args.init_from:
        cfg, tokenizer, init, new_output, wider = config_for_init(args, cfg)
    check_config(cfg)
    device = pick_device(cfg.device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    if resume is None and existing_run(cfg.out_dir):
        raise UsageError(
            f"--out_dir {cfg.out_dir} already holds a run ({', '.join(existing_run(cfg.out_dir))}): continue it "
            f"with --resume --out_dir {cfg.out_dir}, or start a new one in another --out_dir"
        )
    return Start(
        cfg, device, amp_dtype, resume, init, tokenizer, aux_tokenizer, new_output, wider, args.init_from
    )


def restore(model, optimizer, start: Start, master_process: bool) -> tuple:
    """Load the weights (and the optimiser) the run starts from -> (step, epoch, batch in the epoch,
    best validation WER, minutes trained before, the schedule's start: see continue_schedule)."""
    cfg, checkpoint, init = start.cfg, start.resume, start.init
    progress = 0, 0, 0, float("inf"), 0.0, dict(step=0, minutes=0.0, lr=None)  # a new run: get_lr's step 0
    if init is not None:
        init_weights(model, init["model"], start.new_output, cfg.seed)
        if master_process:
            grown = f", widened to {num_params(model) / 1e6:.2f} M parameters" if start.wider else ""
            grown += f", a new output layer for {cfg.tokenizer}" if start.new_output else ""
            print(f"weights from {start.init_from} (step {init['step']}){grown}, new optimiser and schedule")
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, epoch, epoch_batch = checkpoint["step"], checkpoint["epoch"], checkpoint["epoch_batch"]
        schedule_start = continue_schedule(cfg, checkpoint)
        if master_process:
            print(f"resumed from step {step} (epoch {epoch}, batch {epoch_batch})")
            if schedule_start["step"] == step and step:
                print(f"a schedule of another length: the lr goes on from {schedule_start['lr']:.3g}")
        best_wer, minutes = checkpoint.get("best_wer", float("inf")), checkpoint.get("minutes", 0.0)
        progress = step, epoch, epoch_batch, best_wer, minutes, schedule_start
    if master_process:
        print(
            f"model: {num_params(model) / 1e6:.2f} M parameters, receptive field {model.receptive_field} frames"
        )
    return progress


def validate(model, data: Data, train_batch, step: int, minutes, log, cfg: Config, tokenizer) -> dict:
    """Rank 0's validation -> its metrics, logged with examples and the spectrogram and audio of the
    first validation utterance and of the last training batch's first (train_batch; None: none).
    minutes() -> the run's training minutes, printed once validation is done."""
    device = next(model.parameters()).device
    metrics, examples, val_batch = evaluate(model, data.val_loader, device, cfg, tokenizer)
    shown = {"val": (data.val_set, val_batch)} | (
        {"train": (data.train_set, train_batch)} if train_batch else {}
    )
    spectrograms = {k: b["features"][0, :, : b["feature_lengths"][0]].numpy() for k, (_, b) in shown.items()}
    audio = {k: first_waveform(dataset, b) for k, (dataset, b) in shown.items()}
    log.log_validation(step, metrics, examples, spectrograms, audio, sample_rate=SAMPLE_RATE)
    tqdm.write(f"step {step} ({minutes():.1f} min): " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics


def report(
    log, bar, step: int, epoch: int, loss, lr: float, grad_norm, speed: float, data_wait: float
) -> None:
    """The training metrics of a --log_every step, to the logs (log: rank 0's, else None) and the bar;
    the loss as the mean over the global batch."""
    train_loss = loss.detach().clone()
    if dist.is_initialized():
        dist.all_reduce(train_loss)
        train_loss /= dist.get_world_size()
    if log is None:
        return
    metrics = {
        "train/loss": train_loss.item(),
        "train/lr": lr,
        "train/grad_norm": grad_norm.item(),
        "train/audio_sec_per_sec": speed,
        "train/data_wait": data_wait,  # share of the time spent waiting for data
        "train/epoch": epoch,
    }
    log.log(step, metrics)
    bar.set_postfix(
        loss=f"{metrics['train/loss']:.3f}", lr=f"{lr:.2e}", audio_x=f"{speed:.0f}", wait=f"{data_wait:.0%}"
    )


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a QuartzNet CTC speech recognizer.")
    add_config_args(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="CHECKPOINT",
        help="continue from CHECKPOINT (default: OUT_DIR/last.pt)",
    )
    parser.add_argument(
        "--init_from",
        metavar="CHECKPOINT",
        help="start a new run (new optimiser and schedule) from CHECKPOINT's weights and tokenizer; "
        "channel flags may widen it (the copies compute the same function); another --tokenizer gets "
        "a new output layer",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["plot"], ["export"]):  # tools: the curves of runs, a checkpoint for release
        return tool_main(argv)
    args = parse_args(argv)

    # -------- config: bad flags end the run here, before any data is read or anything is written
    start = configure(args)
    cfg, device, amp_dtype = start.cfg, start.device, start.amp_dtype
    tokenizer, aux_tokenizer = start.tokenizer, start.aux_tokenizer  # None: learned from the transcripts
    out_dir = make_output_dir(cfg.out_dir, "--out_dir")

    # -------- several processes: torchrun sets RANK for each, one process group among them
    ddp_rank, ddp_world_size, master_process, device = setup(device)
    ddp = dist.is_initialized()
    device_type = torch.device(device).type
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    # -------- data
    train_utts, val_utts = read_utterances(cfg, master_process)
    tokenizer, aux_tokenizer = learn_tokenizers(cfg, train_utts, tokenizer, aux_tokenizer, master_process)
    data = make_loaders(
        cfg, train_utts, val_utts, tokenizer, aux_tokenizer, ddp_rank, ddp_world_size, device_type
    )

    # -------- model and optimiser
    model = QuartzNet(cfg, len(tokenizer), len(aux_tokenizer) if aux_tokenizer else 0).to(device)
    optimizer = make_optimizer(model, cfg)
    step, epoch, epoch_batch, best_wer, minutes_before, schedule_start = restore(
        model, optimizer, start, master_process
    )
    schedule = schedule_config(cfg, schedule_start)
    if ddp:
        model = wrap(model, device)
    raw_model = model.module if ddp else model  # what is saved and validated
    # fp16's small range needs the loss scaled up (and the step skipped when a gradient overflows)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    log = RunLogger(cfg, out_dir) if master_process else None

    def save(name: str, **extra):  # rank 0's: all that --resume needs to go on exactly (extra: best.pt's val)
        checkpoint = {
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "config": cfg.to_dict(),
            "tokenizer": tokenizer.state_dict(),
            "step": step,
            "epoch": epoch,
            "epoch_batch": epoch_batch,
            **({"aux_tokenizer": aux_tokenizer.state_dict()} if aux_tokenizer is not None else {}),
            "minutes": minutes(),
            "schedule": schedule_start,
            "best_wer": best_wer,
            **extra,
        }
        save_checkpoint(out_dir / name, checkpoint)

    def minutes() -> float:  # of training wall-clock time, across resumes
        return minutes_before + (time.time() - start_time) / 60

    # -------- training loop
    start_time, metrics = time.time(), {}
    if data.val_loader is not None and step == 0:
        if master_process:  # the untrained baseline, so every curve starts at step 0
            metrics = validate(raw_model, data, None, step, minutes, log, cfg, tokenizer)
        if ddp:
            dist.barrier()  # the others wait for rank 0's validation
    model.train()
    bar = tqdm(
        total=cfg.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True, disable=ddp_rank > 0
    )
    last_batch, audio_seconds, t0, unreadable, interrupted = None, 0.0, time.time(), set(), False
    previous_handlers = catch_stop_signals()
    try:
        done = step >= cfg.max_steps or 0 < cfg.max_minutes <= minutes_before
        loader = WaitClock(data.train_loader)
        while not done:
            data.train_set.set_epoch(epoch)  # for first_waveform; the workers get the epoch from the sampler
            data.train_loader.batch_sampler.set_epoch(epoch, start_batch=epoch_batch)
            for batch in loader:
                name_unreadable(batch, unreadable)
                world = global_batch(batch, minutes(), device, ddp)
                if world.fewest == 0:  # all files failed to load, or there were fewer than one per rank
                    epoch_batch += 1  # every rank skips the step
                    continue

                # forward, backward, update; dropout depends on the step (resumable) and differs between ranks
                lr = get_lr(step - schedule_start["step"], schedule, world.clock - schedule_start["minutes"])
                torch.manual_seed(cfg.seed + step * ddp_world_size + ddp_rank)
                share_size = world.utterances / ddp_world_size
                loss, grad_norm = train_step(
                    model, optimizer, scaler, batch, lr, world.longest, share_size, amp_dtype, cfg
                )
                step, epoch_batch, last_batch = step + 1, epoch_batch + 1, batch
                audio_seconds += world.frames * HOP_LENGTH / SAMPLE_RATE

                # logging, checkpoints, validation
                if step % cfg.log_every == 0:
                    elapsed, t0 = time.time() - t0, time.time()
                    speed, audio_seconds = audio_seconds / max(elapsed, 1e-9), 0.0
                    data_wait, loader.waited = loader.waited / max(elapsed, 1e-9), 0.0
                    report(log, bar, step, epoch, loss, lr, grad_norm, speed, data_wait)
                bar.update(1)
                if step % cfg.save_every == 0 and master_process:
                    save("last.pt")
                done = step >= cfg.max_steps or 0 < cfg.max_minutes <= world.clock
                if data.val_loader is not None and (step % cfg.eval_every == 0 or done):
                    if master_process:
                        metrics = validate(raw_model, data, last_batch, step, minutes, log, cfg, tokenizer)
                        if metrics["val/wer"] < best_wer:
                            best_wer = metrics["val/wer"]
                            save("best.pt", val=metrics)
                        save("last.pt")
                    if ddp:
                        dist.barrier()  # the others wait for rank 0's validation
                if done:
                    break
            else:
                epoch, epoch_batch = epoch + 1, 0
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if master_process:
            log.close(exit_code=1)  # marks the run as failed; the last checkpoint stays as it was
        raise
    finally:
        bar.close()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    # utterances over --max_duration are left out by choice; the others could not be used (exit 3)
    unusable = [u for u in data.train_set.skipped if u.duration <= cfg.max_duration] + (
        data.val_set.skipped if data.val_set else []
    )
    if master_process:  # one writer: the other ranks hold the same weights
        save("last.pt")
        log.close()
        skipped = f" ({len(unreadable)} unreadable file(s) skipped, named above)" if unreadable else ""
        skipped += f" ({len(unusable)} utterance(s) unusable, named above)" if unusable else ""
        print(
            f"interrupted: saved {out_dir / 'last.pt'} at step {step}; continue with --resume --out_dir {out_dir}"
            if interrupted
            else f"done: {step} steps; checkpoints in {out_dir}{skipped}"
        )
    if ddp:
        del model  # before the process group (distributed.teardown)
        teardown()
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    return dict(step=step, best_wer=best_wer, unreadable=len(unreadable), unusable=len(unusable), **metrics)


def tool_main(argv: list[str]):
    """`train.py plot RUN...` (the curves of runs) or `train.py export ...` (a checkpoint for release):
    tools, loaded only when asked for."""
    if argv[0] == "plot":
        return plot_main(argv[1:])
    from tools.export import export_main

    return export_main(argv[1:])


def cli(argv: list[str] | None = None) -> int:
    """The command line: main(), with warnings as one "warning: ..." line each and bad input as one
    "error: ..." line, no traceback -> the exit code (see the module's docstring)."""
    formatwarning = warnings.formatwarning
    warnings.formatwarning = warning_line
    try:
        result = main(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.formatwarning = formatwarning
    unused = isinstance(result, dict) and (result.get("unreadable") or result.get("unusable"))
    return EXIT_WARNINGS if unused else 0


if __name__ == "__main__":
    sys.exit(cli())
