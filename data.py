"""Audio, text and datasets: from files on disk to padded batches of log-mel features.

Two folder layouts are understood:
  LibriSpeech  ROOT/<speaker>/<chapter>/<id>.flac + <speaker>-<chapter>.trans.txt
  custom       DIR/audio/<id>.{wav,flac,mp3,ogg,sph} + optional DIR/transcriptions/<id>.txt
"""

import hashlib
import os
import random
import re
import tarfile
import unicodedata
import urllib.request
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms: one feature frame
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".sph")

# blank = 0, then space, apostrophe and the letters
VOCAB = ["", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
BLANK = 0
_CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB) if i != BLANK}

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


class DataError(Exception):
    """Bad input data: the message names the file and what to do."""


# ----------------------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """Lower-case a-z, apostrophe and single spaces; other punctuation becomes a space.

    Characters that are neither letters nor punctuation (digits, symbols) are kept, so that
    `text_to_ids` can report them instead of silently changing what was said."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = re.sub(r"[^\w' ]|_", " ", text)  # punctuation -> space
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not apostrophes
    return " ".join(text.split())


def text_to_ids(text: str) -> list[int]:
    """Normalised text -> token ids (no blank). Raises ValueError naming unknown characters."""
    unknown = sorted({c for c in text if c not in _CHAR_TO_ID})
    if unknown:
        raise ValueError(f"characters outside the vocabulary (a-z, space, apostrophe): {unknown}")
    return [_CHAR_TO_ID[c] for c in text]


def ids_to_text(ids) -> str:
    return "".join(VOCAB[i] for i in ids if i != BLANK).strip()


# ----------------------------------------------------------------------------- audio


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any soundfile-readable file -> mono float32 waveform (N,) at `sample_rate`."""
    try:
        audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt or unknown files
        raise DataError(f"{path}: cannot read audio ({e}); convert it to 16 kHz wav or flac") from e
    if audio.shape[0] == 0:
        raise DataError(f"{path}: the file has no samples; remove it or re-record it")
    audio = audio.mean(axis=1)  # stereo -> mono
    if file_rate != sample_rate:
        audio = torchaudio.functional.resample(torch.from_numpy(audio), file_rate, sample_rate).numpy()
    return np.ascontiguousarray(audio, dtype=np.float32)


@lru_cache(maxsize=4)
def _mel_transform(n_mels: int, sample_rate: int) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH, n_mels=n_mels
    )


def log_mel_spectrogram(audio, n_mels: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Waveform (N,) -> log-mel features (n_mels, N // 160 + 1), each mel band normalised to zero
    mean and unit variance over the utterance (so loudness and channel differ less)."""
    audio = torch.as_tensor(audio, dtype=torch.float32)
    with torch.no_grad():
        mel = _mel_transform(n_mels, sample_rate)(audio)  # (n_mels, T)
        log_mel = torch.log(mel + 1e-6)
        mean = log_mel.mean(dim=1, keepdim=True)
        std = log_mel.std(dim=1, keepdim=True) if log_mel.shape[1] > 1 else torch.ones_like(mean)
    return (log_mel - mean) / (std + 1e-5)


def num_frames(num_samples: int) -> int:
    return num_samples // HOP_LENGTH + 1


# ----------------------------------------------------------------------------- manifests


@dataclass
class Utterance:
    id: str
    path: str
    duration: float  # seconds; -1 when the file could not be read
    text: str | None  # normalised transcript, None when there is none


def _duration(path: Path) -> float:
    try:
        return sf.info(str(path)).duration
    except Exception:
        return -1.0


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
            utterances.append(Utterance(uid, str(path), _duration(path), normalize_text(text)))
    if not utterances:
        raise DataError(f"{root}: no LibriSpeech transcripts (*.trans.txt) found")
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
            f"{audio_dir}: skipped {len(skipped)} file(s) with unknown extensions (e.g. {skipped[0]}); "
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
        text_path = text_dir / f"{path.stem}.txt"
        text = normalize_text(text_path.read_text(encoding="utf-8")) if text_path.exists() else None
        utterances.append(Utterance(path.stem, str(path), _duration(path), text))
    return utterances


def download_librispeech(split: str, root: str | Path) -> Path:
    """Download, md5-check and extract one LibriSpeech split; returns ROOT/LibriSpeech/<split>."""
    if split not in LIBRISPEECH_MD5:
        raise DataError(f"unknown LibriSpeech split {split!r}; choose one of {', '.join(LIBRISPEECH_MD5)}")
    root = Path(root)
    split_dir = root / "LibriSpeech" / split
    if (split_dir / ".complete").exists():
        return split_dir
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{split}.tar.gz"
    if not archive.exists() or file_digest(archive) != LIBRISPEECH_MD5[split]:
        download_file(f"{LIBRISPEECH_URL}/{split}.tar.gz", archive)
        if file_digest(archive) != LIBRISPEECH_MD5[split]:
            archive.unlink()
            raise DataError(f"{archive}: md5 mismatch after download; the file was removed, run again")
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in tqdm(members, desc=f"extracting {split}", unit="file"):
            tar.extract(member, root, filter="data")
    (split_dir / ".complete").touch()
    return split_dir


def download_file(url: str, dest: Path) -> None:
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url) as response, open(tmp, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
    os.replace(tmp, dest)


def file_digest(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_data(spec: str, data_root: str = "data", download: bool = True) -> list[Utterance]:
    """Comma-separated sources -> utterances. A source is a LibriSpeech split name (downloaded to
    data_root), or a local folder in LibriSpeech or custom layout."""
    utterances = []
    for source in [s.strip() for s in spec.split(",") if s.strip()]:
        path = Path(source).expanduser()
        if path.is_dir():
            if (path / "audio").is_dir():
                utterances += read_custom_dir(path)
            else:
                utterances += read_librispeech_dir(path)
        elif source in LIBRISPEECH_MD5:
            if not download:
                raise DataError(f"{source}: not found locally and downloading is off")
            utterances += read_librispeech_dir(download_librispeech(source, data_root))
        else:
            raise DataError(
                f"{source}: no such folder, and not a LibriSpeech split ({', '.join(LIBRISPEECH_MD5)})"
            )
    return utterances


def speaker_of(utterance_id: str) -> str:
    return utterance_id.split("-")[0]


# ----------------------------------------------------------------------------- datasets


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances -> dict(id, features (n_mels, T), tokens (L,), text, audio). With `train`, waveform
    and spectrogram augmentations from augment.py are applied and over-long utterances skipped."""

    def __init__(self, utterances: list[Utterance], cfg, train: bool = False, need_text: bool = True):
        self.cfg, self.train, self.epoch = cfg, train, 0
        self.utterances = _usable(
            utterances, cfg, need_text, max_duration=cfg.max_duration if train else None
        )

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        utt = self.utterances[index]
        audio = load_audio(utt.path, self.cfg.sample_rate)
        if self.train:
            import augment  # training only: inference never needs it

            # seeded by (seed, epoch, index) so a resumed run sees exactly the same augmentations
            rng = np.random.default_rng([self.cfg.seed, self.epoch, index])
            audio = augment.augment_waveform(audio, self.cfg.sample_rate, self.cfg, rng)
        features = log_mel_spectrogram(audio, self.cfg.n_mels, self.cfg.sample_rate)
        if self.train:
            features = augment.augment_spectrogram(features, self.cfg, rng)
        tokens = torch.tensor(text_to_ids(utt.text) if utt.text is not None else [], dtype=torch.long)
        return dict(id=utt.id, features=features, tokens=tokens, text=utt.text, audio=audio)


def _usable(utterances, cfg, need_text: bool, max_duration: float | None) -> list[Utterance]:
    """Drop what cannot be used, with one warning per reason that counts and names an example."""
    kept, dropped = [], {}
    for u in utterances:
        reason = None
        if u.duration < 0:
            reason = "unreadable audio"
        elif u.duration == 0:
            reason = "empty audio"
        elif need_text and u.text is None:
            reason = "no transcription"
        elif need_text and not u.text:
            reason = "empty transcription"
        elif max_duration and u.duration > max_duration:
            reason = f"longer than max_duration={max_duration}s"
        elif need_text:
            try:
                text_to_ids(u.text)
            except ValueError as e:
                reason = str(e).split(":")[0]
            else:
                # CTC needs at least one output frame per label (more between repeats)
                frames = num_frames(int(u.duration * cfg.sample_rate)) // cfg.stride
                if frames < len(u.text) + sum(a == b for a, b in zip(u.text, u.text[1:])):
                    reason = "transcript too long for the audio"
        if reason:
            dropped.setdefault(reason, []).append(u)
        else:
            kept.append(u)
    for reason, us in dropped.items():
        warnings.warn(f"skipped {len(us)} utterance(s): {reason} (e.g. {us[0].path})", stacklevel=3)
    if not kept:
        raise DataError(
            "no usable utterances left: " + "; ".join(f"{len(v)} {k}" for k, v in dropped.items())
        )
    return kept


class LibriSpeechDataset(SpeechDataset):
    def __init__(self, root: str, split: str, cfg, download: bool = True, train: bool = False):
        split_dir = Path(root) / "LibriSpeech" / split
        if not split_dir.is_dir():
            if not download:
                raise DataError(f"{split_dir}: not found; pass download=True to fetch {split}")
            split_dir = download_librispeech(split, root)
        super().__init__(read_librispeech_dir(split_dir), cfg, train=train)


class CustomDirDataset(SpeechDataset):
    def __init__(self, root: str, cfg, train: bool = False, need_text: bool = False):
        super().__init__(read_custom_dir(root), cfg, train=train, need_text=need_text)


class DurationBatchSampler(torch.utils.data.Sampler):
    """Batches of similar duration whose padded length sums to at most `batch_seconds`.

    Durations are jittered by up to 10 % per epoch before sorting, so batches vary between epochs
    while padding stays small. `start_batch` skips the first batches of an epoch (for resuming)."""

    def __init__(self, durations: list[float], batch_seconds: float, shuffle: bool = True, seed: int = 0):
        self.durations, self.batch_seconds, self.shuffle, self.seed = durations, batch_seconds, shuffle, seed
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

    def __iter__(self):
        yield from self.batches()[self.start_batch :]

    def __len__(self) -> int:
        return len(self.batches()) - self.start_batch


def collate(items: list[dict]) -> dict:
    """Pad a list of dataset items into a batch."""
    lengths = torch.tensor([it["features"].shape[1] for it in items])
    token_lengths = torch.tensor([len(it["tokens"]) for it in items])
    features = torch.zeros(len(items), items[0]["features"].shape[0], int(lengths.max()))  # (B, n_mels, T)
    tokens = torch.zeros(len(items), max(int(token_lengths.max()), 1), dtype=torch.long)  # (B, L)
    for i, it in enumerate(items):
        features[i, :, : lengths[i]] = it["features"]
        tokens[i, : token_lengths[i]] = it["tokens"]
    return dict(
        ids=[it["id"] for it in items],
        texts=[it["text"] for it in items],
        audio=[it["audio"] for it in items],
        features=features,
        feature_lengths=lengths,
        tokens=tokens,
        token_lengths=token_lengths,
    )
