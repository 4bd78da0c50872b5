"""All settings in one dataclass, with named presets; every field is also a command-line flag.

python train.py --preset small --lr 3e-3 --block_channels 128 128 192
"""

import argparse
import dataclasses
import typing

from cli import UsageError
from tokenizer import KINDS


@dataclasses.dataclass
class Config:
    # data: comma-separated LibriSpeech split names (downloaded to data_root) or local folders
    # (LibriSpeech layout or custom layout DIR/audio + DIR/transcriptions)
    train_data: str = "train-clean-100"
    # auto: dev-clean when train_data names a LibriSpeech split (it downloads anyway), else a few
    # speakers held out of train_data (none with val_speakers); "" for no validation
    val_data: str = "auto"
    val_speakers: tuple[str, ...] = ()  # LibriSpeech speakers moved from train_data to validation
    data_root: str = "data"
    n_mels: int = 64
    max_duration: float = 17.0  # seconds; longer training utterances are skipped
    # padded audio seconds per training step, the global batch: under torchrun each of the N processes
    # (GPUs) takes a share of about batch_seconds / N, so a run means the same on any number of GPUs
    batch_seconds: float = 240.0
    num_workers: int = 2  # data loading processes per training process (per GPU under torchrun)

    # targets: characters, word pieces learned from the training transcripts, or phonemes through
    # the transcripts' pronunciation lexicon (tokenizer.py, lexicon.py)
    tokenizer: str = "char"  # char | bpe | phone
    vocab_size: int = 256  # word pieces, the blank included (bpe only)
    # > 0: plus this times a phoneme CTC loss on the middle block's output, through the transcripts'
    # pronunciation lexicon (multi-task: the model's own symbols are still what it decodes)
    aux_phone_weight: float = 0.0

    # model: QuartzNet BxR. Block b is repeated block_repeat times, each of `repeats` sub-blocks.
    c1_channels: int = 256
    c1_kernel: int = 33
    stride: int = 2
    block_channels: tuple[int, ...] = (256, 256, 512, 512, 512)
    block_kernels: tuple[int, ...] = (33, 39, 51, 63, 75)
    block_repeat: int = 1
    repeats: int = 5
    c2_channels: int = 512
    c2_kernel: int = 87
    c3_channels: int = 1024
    dropout: float = 0.0

    # optimisation
    optimizer: str = "novograd"  # novograd | adamw
    lr: float = 0.01
    weight_decay: float = 0.001
    betas: tuple[float, ...] = (0.95, 0.5)
    warmup_steps: int = 1000
    max_steps: int = 100_000
    max_minutes: float = 0.0  # also stop after this much training wall-clock time (0: no limit)
    min_lr: float = 1e-5
    grad_clip: float = 1.0
    eval_every: int = 1000  # steps between validations (and at the end of training)
    save_every: int = 200  # steps between checkpoint writes
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda
    # arithmetic on a GPU: auto = bf16 from Ampere (A100, RTX 30xx) on, else fp16 with a loss scaler
    # (T4, V100); fp32 = none mixed. A CPU always trains in fp32.
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    threads: int = 0  # torch CPU threads; 0 = torch's default

    # augmentation (training only; see augment.py). prob = chance per utterance.
    speed_prob: float = 0.5
    speed_min: float = 0.9
    speed_max: float = 1.1
    gain_prob: float = 0.5
    gain_db: float = 6.0  # gain drawn uniformly from [-gain_db, +gain_db]
    noise_prob: float = 0.3
    noise_snr_min: float = 10.0
    noise_snr_max: float = 40.0
    noise_dir: str = ""  # folder of noise recordings; empty = synthetic white/pink/brown noise
    reverb_prob: float = 0.2
    reverb_rt60_min: float = 0.1
    reverb_rt60_max: float = 0.6
    bandlimit_prob: float = 0.1  # telephone-like 300-3400 Hz band
    freq_masks: int = 2
    freq_mask_width: int = 15  # mel bins, at most
    time_masks: int = 2
    time_mask_width: int = 40  # frames, at most
    time_mask_ratio: float = 0.05  # and at most this fraction of the utterance per mask

    beam_size: int = 50  # validation also decodes with a beam this wide (1: greedy only)

    # logging and output
    out_dir: str = "runs/default"
    log_every: int = 10
    wandb_project: str = "quartznet-ctc"
    wandb_mode: str = "auto"  # auto (online with an API key, else offline) | online | offline | disabled
    num_examples: int = 8  # validation predictions shown in the logs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict] = {
    # for tests: trains in seconds on a CPU
    "tiny": dict(
        n_mels=32,
        c1_channels=64,
        c1_kernel=11,
        block_channels=(64, 96),
        block_kernels=(11, 13),
        repeats=2,
        c2_channels=128,
        c2_kernel=15,
        c3_channels=192,
        optimizer="adamw",
        lr=3e-3,
        betas=(0.9, 0.98),
        weight_decay=0.0,
        warmup_steps=20,
        max_steps=300,
        eval_every=100,
        save_every=50,
        batch_seconds=60.0,
    ),
    # trains on a 2-core CPU: short kernels because depthwise convs dominate CPU time
    "small": dict(
        c1_channels=128,
        c1_kernel=11,
        block_channels=(128, 160, 192, 224, 256),
        block_kernels=(11, 13, 15, 17, 19),
        repeats=3,
        c2_channels=320,
        c2_kernel=21,
        c3_channels=512,
        dropout=0.1,
        warmup_steps=300,
        max_steps=20_000,
        eval_every=500,
        batch_seconds=200.0,
    ),
    # QuartzNet 5x5 (6.7 M parameters)
    "base": dict(dropout=0.1),
    # QuartzNet 15x5 (18.9 M parameters)
    "large": dict(block_repeat=3, dropout=0.1),
}


DEFAULT_PRESET = "small"


# flags whose values must be >= 0, > 0, or probabilities; checked before any work (check_config)
NON_NEGATIVE = ("lr", "min_lr", "weight_decay", "warmup_steps", "max_steps", "max_minutes", "num_workers",
                "threads", "speed_min", "gain_db", "reverb_rt60_min", "freq_masks", "time_masks",
                "aux_phone_weight")  # fmt: skip
POSITIVE = ("batch_seconds", "max_duration", "n_mels", "stride", "grad_clip", "eval_every", "save_every",
            "log_every", "beam_size", "vocab_size", "repeats", "block_repeat")  # fmt: skip
PROBABILITIES = ("dropout", "speed_prob", "gain_prob", "noise_prob", "reverb_prob", "bandlimit_prob",
                 "time_mask_ratio")  # fmt: skip
CHOICES = {
    "optimizer": ("novograd", "adamw"),
    "tokenizer": KINDS,
    "precision": ("auto", "fp32", "bf16", "fp16"),
}


def check_config(cfg: Config) -> None:
    """UsageError naming the first flag whose value cannot work (a negative --lr, say)."""
    for name in NON_NEGATIVE + POSITIVE + PROBABILITIES:
        value = getattr(cfg, name)
        if name in NON_NEGATIVE and not value >= 0:
            raise UsageError(f"--{name} {value}: must be 0 or more")
        if name in POSITIVE and not value > 0:
            raise UsageError(f"--{name} {value}: must be more than 0")
        if name in PROBABILITIES and not 0 <= value <= 1:
            raise UsageError(f"--{name} {value}: must be between 0 and 1")
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise UsageError(f"--{name} {getattr(cfg, name)}: choose one of {', '.join(choices)}")


def get_config(preset: str = DEFAULT_PRESET, **overrides) -> Config:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(Config(), **{**PRESETS[preset], **overrides})


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field (tuples take several values). Flags default to SUPPRESS so only what
    the user typed is seen."""
    parser.add_argument("--preset", default=argparse.SUPPRESS, choices=list(PRESETS))
    for f in dataclasses.fields(Config):
        kwargs = dict(default=argparse.SUPPRESS, help=f"(default {f.default!r})", type=f.type)
        if typing.get_origin(f.type) is tuple:
            kwargs.update(nargs="*", type=typing.get_args(f.type)[0])
        parser.add_argument(f"--{f.name}", **kwargs)


def _fields(values: dict) -> dict:
    """The Config fields among values, with list values made into tuples."""
    names = {f.name for f in dataclasses.fields(Config)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The Config fields the user set on the command line."""
    return _fields(vars(args))


def config_from_args(args: argparse.Namespace) -> Config:
    return get_config(getattr(args, "preset", DEFAULT_PRESET), **overrides_from_args(args))


def config_from_dict(values: dict) -> Config:
    """Rebuild a Config saved in a checkpoint; unknown keys (from newer code) are dropped."""
    return dataclasses.replace(Config(), **_fields(values))
