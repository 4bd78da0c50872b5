"""Datasets: from folders on disk to padded batches of log-mel features and token ids.

Two folder layouts are understood:
  LibriSpeech  ROOT/<speaker>/<chapter>/<id>.flac + <speaker>-<chapter>.trans.txt
  custom       DIR/audio/<id>.{wav,flac,mp3,ogg,sph} + optional DIR/transcriptions/<id>.txt
"""

import math
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    DataError,
    audio_seconds,
    load_audio,
    log_mel_spectrogram,
    num_frames,
)
from download import download, extract
from tokenizer import Tokenizer, normalize_text

LIBRISPEECH_URL = "https://www.openslr.org/resources/12"
LIBRISPEECH_MD5 = {  # from the mirror's md5sum.txt
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}


# ----------------------------------------------------------------------------- manifests


@dataclass
class Utterance:
    id: str
    path: str
    duration: float  # seconds; -1 when the file could not be read
    text: str | None  # normalised transcript, None when there is none


def read_librispeech_dir(root: str | Path) -> list[Utterance]:
    """All utterances under a LibriSpeech-layout folder (a split, a speaker or a chapter)."""
    root = Path(root)
    manifest = root / "manifest.tsv"
    if manifest.exists():
        return _read_manifest(manifest)
    utterances = []
    trans_files = sorted(root.rglob("*.trans.txt"))
    for trans in tqdm(trans_files, desc=f"indexing {root.name}", unit="chapter", leave=False):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            path = (trans.parent / f"{uid}.flac").resolve()  # the cached manifest works from any folder
            utterances.append(Utterance(uid, str(path), audio_seconds(path), normalize_text(text)))
    if not utterances:
        loose = any(p.suffix.lower() in AUDIO_EXTENSIONS for p in root.iterdir())  # audio/ itself, say
        todo = (
            f"it holds audio files: pass the folder above its audio/, or move them into {root}/audio/"
            if loose
            else f"expected {root}/audio/<id>.wav (or .flac/.mp3/.ogg), optionally {root}/transcriptions/<id>.txt"
        )
        raise DataError(f"{root}: neither an audio/ folder nor LibriSpeech transcripts (*.trans.txt); {todo}")
    try:  # cache for the next run; read-only folders simply go without
        _write_manifest(manifest, utterances)
    except OSError:
        pass
    return utterances


def _write_manifest(path: Path, utterances: list[Utterance]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for u in utterances:
            f.write(f"{u.id}\t{u.path}\t{u.duration:.4f}\t{u.text or ''}\n")
    os.replace(tmp, path)


def _read_manifest(path: Path) -> list[Utterance]:
    utterances = []
    for line in path.read_text(encoding="utf-8").splitlines():
        uid, audio, duration, text = line.split("\t")
        utterances.append(Utterance(uid, audio, float(duration), text))
    return utterances


def read_custom_dir(root: str | Path) -> list[Utterance]:
    """DIR/audio/<id>.<ext> with optional DIR/transcriptions/<id>.txt."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    audio_dir, text_dir = root / "audio", root / "transcriptions"
    if not audio_dir.is_dir():
        raise DataError(
            f"{root}: no audio/ folder; expected {root}/audio/<id>.wav (or .flac/.mp3/.ogg) "
            f"and optionally {root}/transcriptions/<id>.txt"
        )
    files = sorted(p for p in audio_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    audio_files = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    skipped = [p.name for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS]
    if skipped:
        warnings.warn(
            f"{audio_dir}: skipped {len(skipped)} file(s) with unknown extensions ({_names(skipped)}); "
            f"supported: {', '.join(AUDIO_EXTENSIONS)}",
            stacklevel=2,
        )
    if not audio_files:
        raise DataError(f"{audio_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    utterances, seen = [], set()
    for path in audio_files:
        if path.stem in seen:
            warnings.warn(f"{path}: another file has the id {path.stem!r}; this one is skipped", stacklevel=2)
            continue
        seen.add(path.stem)
        utterances.append(
            Utterance(path.stem, str(path), audio_seconds(path), _read_text(text_dir / f"{path.stem}.txt"))
        )
    return utterances


def _read_text(path: Path) -> str | None:
    """A transcription file -> its normalised text; None when there is none or it is not UTF-8 text."""
    if not path.exists():
        return None
    try:
        return normalize_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        warnings.warn(
            f"{path}: not UTF-8 text, so its audio has no transcription; save it as UTF-8", stacklevel=3
        )
        return None


def download_librispeech(split: str, root: str | Path) -> Path:
    """Download, md5-check and extract one LibriSpeech split; returns ROOT/LibriSpeech/<split>."""
    if split not in LIBRISPEECH_MD5:
        raise DataError(f"unknown LibriSpeech split {split!r}; choose one of {', '.join(LIBRISPEECH_MD5)}")
    split_dir = Path(root) / "LibriSpeech" / split
    if (split_dir / ".complete").exists():
        return split_dir
    try:
        archive = download(
            f"{LIBRISPEECH_URL}/{split}.tar.gz", root, checksum=f"md5:{LIBRISPEECH_MD5[split]}"
        )
    except RuntimeError as e:
        raise DataError(f"{e}; run again") from e
    print(f"extracting {archive.name} ...")
    extract(archive, root)
    (split_dir / ".complete").touch()
    return split_dir


def read_data(spec: str, data_root: str = "data", download: bool = True) -> list[Utterance]:
    """Comma-separated sources -> utterances. A source is a LibriSpeech split name (downloaded to
    data_root), or a local folder in LibriSpeech or custom layout."""
    utterances = []
    for source in [s.strip() for s in spec.split(",") if s.strip()]:
        path = Path(source).expanduser()
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:  # one recording, no transcription
            utterances.append(Utterance(path.stem, str(path), audio_seconds(path), None))
        elif path.is_dir():
            if (path / "audio").is_dir():
                utterances += read_custom_dir(path)
            else:
                utterances += read_librispeech_dir(path)
        elif source in LIBRISPEECH_MD5:
            if not download:
                raise DataError(f"{source}: not found locally and downloading is off")
            utterances += read_librispeech_dir(download_librispeech(source, data_root))
        else:
            what = "not an audio file" if path.is_file() else "folder not found"
            raise DataError(f"{source}: {what}, and not a LibriSpeech split ({', '.join(LIBRISPEECH_MD5)})")
    return utterances


def _names(names: list[str], shown: int = 20) -> str:
    """Every name up to `shown`, so each bad file can be found; then a count."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def make_output_dir(path: str | Path, flag: str) -> Path:
    """Create an output folder, or end in one line naming the flag that chose it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"{flag} {path}: cannot create it ({e.strerror}); choose a folder you can write to"
        ) from None
    return path


def speaker_of(utterance_id: str) -> str:
    return utterance_id.split("-")[0]


# ----------------------------------------------------------------------------- datasets


MIN_SECONDS = 0.1  # shorter clips carry no speech the model can recognise


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances -> dict(id, features (n_mels, T), tokens (L,), text), and aux_tokens (L',) by an
    aux_tokenizer (the phonemes of an auxiliary loss). With `train`, waveform and spectrogram
    augmentations from augment.py are applied and over-long utterances skipped. A file that fails
    to load becomes dict(id, error) instead of stopping the run."""

    def __init__(
        self,
        utterances: list[Utterance],
        cfg,
        tokenizer=None,
        train=False,
        need_text=True,
        aux_tokenizer=None,
    ):
        self.cfg, self.train, self.need_text, self.epoch = cfg, train, need_text, 0
        self.tokenizer = tokenizer or Tokenizer()
        self.aux_tokenizer = aux_tokenizer
        self.utterances = _usable(utterances, cfg, self.tokenizer, need_text, train, aux_tokenizer)
        kept = {u.id for u in self.utterances}
        self.skipped = [u for u in utterances if u.id not in kept]  # with a warning per reason

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def waveform(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The utterance's audio (N,) at 16 kHz, augmented when training: with `rng`, or else with
        the draws its dataset item gets (seeded by (seed, epoch, index), so a resumed run sees
        exactly the same augmentations)."""
        audio = load_audio(self.utterances[index].path)
        if self.train:
            import augment  # training only: inference never needs it

            rng = rng or np.random.default_rng([self.cfg.seed, self.epoch, index])
            audio = augment.augment_waveform(audio, SAMPLE_RATE, self.cfg, rng)
        return audio

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """key: an index, or (epoch, index) as DurationBatchSampler yields them: a persistent
        DataLoader worker's copy of the dataset never hears of set_epoch."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        utt = self.utterances[index]
        rng = np.random.default_rng([self.cfg.seed, epoch, index])
        try:
            audio = self.waveform(index, rng)
        except DataError as e:  # a DataLoader worker must not die of one bad file
            return dict(id=utt.id, error=str(e), text=utt.text)
        features = log_mel_spectrogram(audio, self.cfg.n_mels)  # (n_mels, T)
        if self.train:
            import augment

            features = augment.augment_spectrogram(features, self.cfg, rng)
        ids = self.tokenizer.encode(utt.text) if self.need_text else []
        item = dict(id=utt.id, features=features, tokens=torch.tensor(ids, dtype=torch.long), text=utt.text)
        if self.aux_tokenizer is not None:
            item["aux_tokens"] = torch.tensor(self.aux_tokenizer.encode(utt.text), dtype=torch.long)
        return item


def _usable(utterances, cfg, tokenizer, need_text: bool, train: bool, aux_tokenizer=None) -> list[Utterance]:
    """Drop what cannot be used, with one warning per reason that counts and names an example.

    In training, utterances over max_duration go too, and the CTC check allows for the fastest speed
    perturbation, which shortens the audio: none becomes too short for its transcript in any epoch."""
    kept, dropped = [], {}
    max_duration = cfg.max_duration if train else None
    fastest = max(cfg.speed_max, 1.0) if train and cfg.speed_prob > 0 else 1.0
    for u in utterances:
        reason = None
        if u.duration < 0:
            reason = "unreadable audio"
        elif u.duration == 0:
            reason = "empty audio"
        elif u.duration < MIN_SECONDS:
            reason = f"too short (under {MIN_SECONDS} s)"
        elif need_text and u.text is None:
            reason = "no transcription"
        elif need_text and not u.text:
            reason = "empty transcription"
        elif max_duration and u.duration > max_duration:
            reason = f"longer than max_duration={max_duration}s"
        elif need_text:
            try:
                tokens = tokenizer.encode(u.text)
                if aux_tokenizer is not None:
                    aux_tokenizer.encode(u.text)
            except ValueError as e:
                reason = str(e).split(":")[0]
            else:
                # CTC needs an output frame per label (more between repeats); the model's
                # 'same'-padded stride gives ceil(frames / stride) output frames
                frames = math.ceil(num_frames(int(u.duration * SAMPLE_RATE / fastest)) / cfg.stride)
                if frames < len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:])):
                    at_speed = f" at speed x{fastest:g}" if fastest > 1 else ""
                    reason = (
                        f"transcript too long for stride {cfg.stride}{at_speed} (CTC needs a frame per token)"
                    )
        if reason:
            dropped.setdefault(reason, []).append(u)
        else:
            kept.append(u)
    for reason, us in dropped.items():
        warnings.warn(
            f"skipped {len(us)} utterance(s): {reason}: {_names([u.path for u in us])}", stacklevel=3
        )
    if not kept:
        raise DataError(
            "no usable utterances left: " + "; ".join(f"{len(v)} {k}" for k, v in dropped.items())
        )
    return kept


class LibriSpeechDataset(SpeechDataset):
    def __init__(
        self, root: str, split: str, cfg, download=True, train=False, tokenizer=None, need_text=True
    ):
        split_dir = Path(root) / "LibriSpeech" / split
        if not split_dir.is_dir():
            if not download:
                raise DataError(f"{split_dir}: not found; pass download=True to fetch {split}")
            split_dir = download_librispeech(split, root)
        super().__init__(read_librispeech_dir(split_dir), cfg, tokenizer, train, need_text)


class CustomDirDataset(SpeechDataset):
    """Local folders (comma-separated) in the custom layout or in LibriSpeech's; transcriptions are
    optional unless need_text."""

    def __init__(self, root: str, cfg, train=False, need_text=False, tokenizer=None):
        super().__init__(read_data(str(root), download=False), cfg, tokenizer, train, need_text)


class DurationBatchSampler(torch.utils.data.Sampler):
    """Batches of similar duration whose padded length sums to at most `batch_seconds`.

    Durations are jittered by up to 10 % per epoch before sorting, so batches vary between epochs
    while padding stays small. `start_batch` skips the first batches of an epoch (for resuming).

    With several processes (distributed training), `batch_seconds` is the global batch: every rank
    builds the same batches and takes its share of each, utterances rank, rank + world_size, ...
    of the duration-sorted batch (so the shares are alike in length). All ranks take one share per
    batch, so they take the same number of steps, and a step's shares together are the batch one
    process would take. A batch with fewer utterances than ranks leaves some share empty; the
    training loop skips such a step on every rank. `start_batch` counts global batches."""

    def __init__(
        self,
        durations: list[float],
        batch_seconds: float,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.durations, self.batch_seconds, self.shuffle, self.seed = durations, batch_seconds, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        keys = [d * (1 + 0.1 * rng.random()) if self.shuffle else d for d in self.durations]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        batches, batch, longest = [], [], 0.0
        for i in order:
            longest_if_added = max(longest, self.durations[i])
            if batch and longest_if_added * (len(batch) + 1) > self.batch_seconds:
                batches.append(batch)
                batch, longest_if_added = [], self.durations[i]
            batch.append(i)
            longest = longest_if_added
        if batch:
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):  # (epoch, index) pairs: the epoch seeds the dataset's augmentation draws
        for batch in self.batches()[self.start_batch :]:
            yield [(self.epoch, i) for i in batch[self.rank :: self.world_size]]

    def __len__(self) -> int:
        return len(self.batches()) - self.start_batch


def lower_priority(worker_id: int) -> None:
    """DataLoader worker_init_fn: the lowest CPU priority, so the worker runs when the model's threads
    wait instead of taking a core from them mid-step."""
    if hasattr(os, "nice"):  # not on Windows
        os.nice(19)


def collate(items: list[dict]) -> dict:
    """Pad dataset items into a batch; items that failed to load go to `errors` as (id, message)."""
    errors = [(it["id"], it["error"]) for it in items if "error" in it]
    items = [it for it in items if "error" not in it]
    if not items:
        return dict(ids=[], texts=[], errors=errors)
    lengths = torch.tensor([it["features"].shape[1] for it in items])
    features = torch.zeros(len(items), items[0]["features"].shape[0], int(lengths.max()))  # (B, n_mels, T)
    for i, it in enumerate(items):
        features[i, :, : lengths[i]] = it["features"]
    tokens, token_lengths = pad_tokens([it["tokens"] for it in items])
    batch = dict(
        ids=[it["id"] for it in items],
        texts=[it["text"] for it in items],
        features=features,
        feature_lengths=lengths,
        tokens=tokens,
        token_lengths=token_lengths,
        errors=errors,
    )
    if "aux_tokens" in items[0]:
        batch["aux_tokens"], batch["aux_token_lengths"] = pad_tokens([it["aux_tokens"] for it in items])
    return batch


def pad_tokens(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id sequences -> (B, L) zero-padded (L at least 1), and their lengths (B,)."""
    lengths = torch.tensor([len(t) for t in sequences])
    tokens = torch.zeros(len(sequences), max(int(lengths.max()), 1), dtype=torch.long)
    for i, t in enumerate(sequences):
        tokens[i, : lengths[i]] = t
    return tokens, lengths
