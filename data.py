"""Datasets: from folders on disk to padded batches of log-mel features and token ids.

Two folder layouts are understood:
  LibriSpeech  ROOT/<speaker>/<chapter>/<id>.flac + <speaker>-<chapter>.trans.txt
  custom       DIR/audio/<id>.{wav,flac,mp3,ogg,sph} + optional DIR/transcriptions/<id>.txt
"""

import argparse
import contextlib
import csv
import io
import os
import posixpath
import random
import shutil
import sys
import tarfile
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio import (
    AUDIO_EXTENSIONS,
    MIN_SECONDS,
    SAMPLE_RATE,
    audio_seconds,
    load_audio,
    log_mel_spectrogram,
    num_frames,
)
from calc_metrics import align_ids, left_out, read_texts
from cli import DataError, atomic_path
from download import download, extract, file_digest
from model import output_frames
from tokenizer import Tokenizer, normalize_text

OPENSLR_URL = "https://www.openslr.org/resources"
# Everything `python data.py download` fetches, the one place for addresses and checksums:
# name -> (OpenSLR resource, file, md5 as published on the resource's page; "" if none is published).
# 31: mini LibriSpeech; 12: LibriSpeech; 11: LibriSpeech's official language models (upper-case ARPA)
# and the text they were built from.
DOWNLOADS = {
    "train-clean-5": ("31", "train-clean-5.tar.gz", "5df7d4e78065366204ca6845bb08f490"),
    "dev-clean-2": ("31", "dev-clean-2.tar.gz", "6d7ab67ac6a1d2c993d050e16d61080d"),
    "dev-clean": ("12", "dev-clean.tar.gz", "42e2234ba48799c1f50f24a7926300a1"),
    "dev-other": ("12", "dev-other.tar.gz", "c8d0bcc9cca99d4f8b62fcc847357931"),
    "test-clean": ("12", "test-clean.tar.gz", "32fa31d27d2e1cad72775fee3f4849a9"),
    "test-other": ("12", "test-other.tar.gz", "fb5a50374b501bb3bac4815ee91d3135"),
    "train-clean-100": ("12", "train-clean-100.tar.gz", "2a93770f6d5c6c964bc36631d331a522"),
    "train-clean-360": ("12", "train-clean-360.tar.gz", "c0e676e450a7ff2f54aeade5171606fa"),
    "train-other-500": ("12", "train-other-500.tar.gz", "d1a0fd59409feb2c614ce4d30c387708"),
    "3-gram.pruned.3e-7": ("11", "3-gram.pruned.3e-7.arpa.gz", "8f67ec741827742eee05799ab7605b50"),
    "3-gram.pruned.1e-7": ("11", "3-gram.pruned.1e-7.arpa.gz", "9a0f1325bcaf3a0f7b7be4be10823c2a"),
    "4-gram": ("11", "4-gram.arpa.gz", "6abdcd5b055bd482e4f9defe91d40408"),
    "librispeech-vocab": ("11", "librispeech-vocab.txt", "bf3cc7a50112831ed8b0afa40cae96a5"),
    "librispeech-lm-norm": ("11", "librispeech-lm-norm.txt.gz", "c83c64c726a1aedfe65f80aa311de402"),
}
LIBRISPEECH_SPLITS = [name for name, (_, file, _) in DOWNLOADS.items() if file.endswith(".tar.gz")]
DOWNLOAD_GROUPS = {  # short names for what is often fetched together
    "mini": ["train-clean-5", "dev-clean-2"],  # 5.3 h + 2 h: the releases' development set
    "lm": ["3-gram.pruned.3e-7", "3-gram.pruned.1e-7", "librispeech-vocab"],  # 48 MB of ready LMs
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
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for u in utterances:
            f.write(f"{u.id}\t{u.path}\t{u.duration:.4f}\t{u.text or ''}\n")


def _read_manifest(path: Path) -> list[Utterance]:
    utterances = []
    for line in path.read_text(encoding="utf-8").splitlines():
        uid, audio, duration, text = line.split("\t")
        utterances.append(Utterance(uid, audio, float(duration), text))
    return utterances


def read_custom_dir(root: str | Path) -> list[Utterance]:
    """DIR/audio/<id>.<ext> with optional DIR/transcriptions/<id>.txt, in subfolders too: the id of
    audio/sub/x.wav is "sub/x", its transcription transcriptions/sub/x.txt (or x.wav.txt, X.TXT:
    the rules calc_metrics.py reads them by)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    audio_dir, text_dir = root / "audio", root / "transcriptions"
    if not audio_dir.is_dir():
        raise DataError(
            f"{root}: no audio/ folder; expected {root}/audio/<id>.wav (or .flac/.mp3/.ogg) "
            f"and optionally {root}/transcriptions/<id>.txt"
        )
    files = sorted(
        p.relative_to(audio_dir)
        for p in audio_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(audio_dir).parts)
    )  # hidden files and folders (.DS_Store, ._x.wav, .ipynb_checkpoints) are no one's audio
    audio_files = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    skipped = [p.as_posix() for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS]
    if skipped:
        warnings.warn(
            f"{audio_dir}: skipped {len(skipped)} file(s) with unknown extensions ({_names(skipped)}); "
            f"supported: {', '.join(AUDIO_EXTENSIONS)}",
            stacklevel=2,
        )
    if not audio_files:
        raise DataError(f"{audio_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    ids = [p.with_suffix("").as_posix() for p in audio_files]
    texts = _read_texts(text_dir, ids)
    utterances, seen = [], set()
    for uid, path in zip(ids, audio_files):
        if uid in seen:
            warnings.warn(
                f"{audio_dir / path}: another file has the id {uid!r}; this one is skipped", stacklevel=2
            )
            continue
        seen.add(uid)
        utterances.append(
            Utterance(uid, str(audio_dir / path), audio_seconds(audio_dir / path), texts.get(uid))
        )
    return utterances


def _read_texts(text_dir: Path, ids: list[str]) -> dict[str, str]:
    """The transcriptions of a custom folder -> {audio id: normalised text}; files that are not UTF-8
    text are named in a warning (their audio has no transcription)."""
    if not text_dir.is_dir():
        return {}
    texts = read_texts(text_dir)
    for uid in left_out(text_dir, texts):
        warnings.warn(
            f"{text_dir / uid}.txt: not UTF-8 text, so its audio has no transcription; save it as UTF-8",
            stacklevel=3,
        )
    return {uid: normalize_text(text) for uid, text in align_ids(texts, ids).items()}


def download_openslr(name: str, data_dir: str | Path) -> Path:
    """One entry of DOWNLOADS into DATA_DIR -> its path: a LibriSpeech split extracted to
    DATA_DIR/LibriSpeech/<split>, any other file kept as DATA_DIR/lm/<file>.

    The file is fetched and checked by download() (md5, and never a web page in its place) and an
    archive is extracted in a hidden folder beside its destination, then moved there, so a failure or
    an interrupted run leaves nothing half-written; what is done is not fetched again."""
    if name not in DOWNLOADS:
        raise DataError(f"unknown download {name!r}; choose from {', '.join([*DOWNLOAD_GROUPS, *DOWNLOADS])}")
    resource, file, md5 = DOWNLOADS[name]
    url, data_dir = f"{OPENSLR_URL}/{resource}/{file}", Path(data_dir)
    is_split = name in LIBRISPEECH_SPLITS
    dest = data_dir / "LibriSpeech" / name if is_split else data_dir / "lm" / file
    if (dest / ".complete").exists() or (not is_split and dest.is_file()):
        return dest
    try:
        fetched = download(url, data_dir, md5 and f"md5:{md5}", "archive" if is_split else None)
    except RuntimeError as e:
        raise DataError(str(e)) from None
    if not md5:  # never guessed: a user can compare it with the source's own listing
        print(
            f"warning: {url}: no published md5 to check; its md5 is {file_digest(fetched, 'md5')} (not verified)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if is_split:
            _extract_split(fetched, name, url, dest.parent)
        else:
            os.replace(fetched, dest)
    except (
        DataError
    ):  # a damaged archive is fetched again; after Ctrl-C or a full disk the checked one is kept
        shutil.rmtree(fetched.parent, ignore_errors=True)
        raise
    shutil.rmtree(fetched.parent, ignore_errors=True)  # extracted or moved: no second copy is kept
    return dest


def _extract_split(archive: Path, split: str, url: str, librispeech_dir: Path) -> None:
    """An OpenSLR LibriSpeech archive (LibriSpeech/<split>/... and LibriSpeech/*.TXT) -> LIBRISPEECH_DIR/<split>,
    extracted in a hidden folder first."""
    print(f"extracting {archive.name} ...")
    with tempfile.TemporaryDirectory(dir=librispeech_dir, prefix=f".{split}-") as tmp:
        try:
            extract(archive, tmp)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise DataError(f"{url}: a damaged archive ({e}); nothing was kept, run again") from None
        source = Path(tmp) / "LibriSpeech" / split
        if not source.is_dir():
            raise DataError(f"{url}: the archive holds no LibriSpeech/{split}/ folder")
        shutil.rmtree(librispeech_dir / split, ignore_errors=True)  # what an older version left half-done
        os.replace(source, librispeech_dir / split)
        for about in source.parent.glob("*.TXT"):  # SPEAKERS.TXT, CHAPTERS.TXT, ...: the same in every split
            os.replace(about, librispeech_dir / about.name)
    (librispeech_dir / split / ".complete").touch()


# the default clip list: Common Voice v1's validated dev set, or a later release's
COMMON_VOICE_TABLES = ("cv-valid-dev", "dev")


def _folder_and_name(path: str) -> str:
    """'a/b/cv-valid-dev/sample-000000.mp3' -> 'cv-valid-dev/sample-000000.mp3'."""
    return "/".join(posixpath.normpath(path).split("/")[-2:])


def convert_common_voice(source: str | Path, dest: str | Path, table: str = "") -> Path:
    """A Common Voice English release, as the .tar.gz Mozilla hands out (after accepting its terms) or the
    folder it unpacks to -> DEST in the custom layout: DEST/audio/<id>.mp3 + DEST/transcriptions/<id>.txt.

    `table` names the list of clips: v1's csv files (cv-valid-dev.csv: filename,text,... with paths
    beside it) or a later release's tsv files (dev.tsv: ...,path,sentence,... with the clips in clips/);
    by default the first of COMMON_VOICE_TABLES there is. The id is the clip's file name without .mp3.
    DEST is written under a hidden name and renamed at the end: a failed run leaves no half-made DEST."""
    source, dest = Path(source), Path(dest)
    if (dest / "audio").is_dir():
        return dest
    if not source.exists():
        raise DataError(
            f"{source}: not found; pass a Common Voice archive (.tar.gz) or the folder it unpacks to"
        )
    archive = tarfile.open(source) if source.is_file() and tarfile.is_tarfile(source) else None
    if source.is_file() and not archive:
        raise DataError(f"{source}: neither a folder nor a tar archive")
    with archive or contextlib.nullcontext():
        # every path below is a normalised posix path: the archive's member names or the folder's files
        names = (
            [posixpath.normpath(n) for n in archive.getnames()]
            if archive
            else [p.as_posix() for p in source.rglob("*") if p.is_file()]
        )
        tables = {Path(n).stem: n for n in names if n.endswith((".csv", ".tsv"))}
        name = table or next((t for t in COMMON_VOICE_TABLES if t in tables), "")
        if name not in tables:
            raise DataError(
                f"{source}: no {table or ' or '.join(COMMON_VOICE_TABLES)} table (.csv/.tsv); "
                f"found: {', '.join(sorted(tables)) or 'none'}"
            )
        path = tables[name]
        with (
            archive.extractfile(archive.getmembers()[names.index(path)]) if archive else open(path, "rb") as f
        ):
            text = f.read().decode("utf-8")
        # a clip is known by its folder and file name (cv-valid-dev/sample-000000.mp3, clips/x.mp3): the
        # copies on other sites nest the folders differently, and v1's splits reuse the file names
        clips = {}  # -> (id, transcript)
        for row in csv.DictReader(io.StringIO(text), delimiter="\t" if path.endswith(".tsv") else ","):
            audio = row.get("filename") or ("clips/" + row["path"] if row.get("path") else "")
            sentence = (row.get("text") or row.get("sentence") or "").strip()
            if audio and sentence:
                clips[_folder_and_name(audio)] = (Path(audio).stem, sentence)
        if not clips:
            raise DataError(
                f"{source}: {path} lists no clips with a transcript (columns filename/path, text/sentence)"
            )
        partial = dest.with_name(f".{dest.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "audio").mkdir(parents=True)
        (partial / "transcriptions").mkdir()
        done = 0
        first = {}  # each clip where it first appears
        for i, n in enumerate(names):
            first.setdefault(_folder_and_name(n), i)
        todo = sorted(first[key] for key in clips if key in first)  # in the archive's order: read once
        for i in tqdm(todo, desc=f"common voice {name}", unit="clip"):
            uid, sentence = clips[_folder_and_name(names[i])]
            with archive.extractfile(archive.getmembers()[i]) if archive else open(names[i], "rb") as f:
                with open(partial / "audio" / f"{uid}.mp3", "wb") as out:
                    shutil.copyfileobj(f, out)
            (partial / "transcriptions" / f"{uid}.txt").write_text(sentence + "\n", encoding="utf-8")
            done += 1
    if done < len(clips):
        print(f"warning: {source}: {len(clips) - done} of the {len(clips)} clips in {path} are missing")
    if not done:
        shutil.rmtree(partial)
        raise DataError(f"{source}: none of the clips listed in {path} is there")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, dest)
    print(f"{dest}: {done} clips")
    return dest


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
        elif source in LIBRISPEECH_SPLITS:
            if not download:
                raise DataError(f"{source}: not found locally and downloading is off")
            utterances += read_librispeech_dir(download_openslr(source, data_root))
        else:
            what = "not an audio file" if path.is_file() else "folder not found"
            raise DataError(
                f"{source}: {what}, and not a LibriSpeech split ({', '.join(LIBRISPEECH_SPLITS)})"
            )
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


UNKNOWN_CHARACTERS = "characters outside the vocabulary"


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
    kept, dropped, unknown = [], {}, set()
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
        elif need_text and tokenizer.unknown_characters(u.text):
            reason = UNKNOWN_CHARACTERS
            unknown.update(tokenizer.unknown_characters(u.text))
        elif need_text:
            try:
                targets = [tokenizer.encode(u.text)]
                if aux_tokenizer is not None:  # the auxiliary loss aligns its own labels to the same frames
                    targets.append(aux_tokenizer.encode(u.text))
            except ValueError as e:
                reason = str(e).split(":")[0]
            else:
                # CTC needs an output frame per label (more between repeats)
                frames = output_frames(num_frames(int(u.duration * SAMPLE_RATE / fastest)), cfg.stride)
                if frames < max(len(t) + sum(a == b for a, b in zip(t, t[1:])) for t in targets):
                    at_speed = f" at speed x{fastest:g}" if fastest > 1 else ""
                    reason = (
                        f"transcript too long for stride {cfg.stride}{at_speed} (CTC needs a frame per token)"
                    )
        if reason:
            dropped.setdefault(reason, []).append(u)
        else:
            kept.append(u)
    if unknown:  # name the characters, so that one can see what to spell out or fix
        dropped[f"{UNKNOWN_CHARACTERS} ({' '.join(sorted(unknown))})"] = dropped.pop(UNKNOWN_CHARACTERS)
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
            split_dir = download_openslr(split, root)
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


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    """`python data.py download DATA_DIR [NAME ...]` and `python data.py common_voice SOURCE DEST`."""
    parser = argparse.ArgumentParser(description="Get the data: public downloads, Common Voice conversion.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="fetch from OpenSLR, md5-checked, into DATA_DIR")
    get.add_argument("data_dir")
    names = [*DOWNLOAD_GROUPS, *DOWNLOADS]
    get.add_argument(
        "names", nargs="*", default=["mini"], metavar="NAME", help=f"default mini; one of {', '.join(names)}"
    )
    cv = sub.add_parser("common_voice", help="a Common Voice English archive or folder -> the custom layout")
    cv.add_argument("source", help="the .tar.gz as downloaded from Mozilla, or the folder it unpacks to")
    cv.add_argument("dest")
    cv.add_argument(
        "--table", default="", help=f"the clips' list (default: {' or '.join(COMMON_VOICE_TABLES)})"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "common_voice":
            convert_common_voice(args.source, args.dest, args.table)
            return
        if unknown := [n for n in args.names if n not in names]:
            raise DataError(f"unknown download {unknown[0]!r}; choose from {', '.join(names)}")
        for name in dict.fromkeys(n for group in args.names for n in DOWNLOAD_GROUPS.get(group, [group])):
            print(download_openslr(name, args.data_dir))
    except (DataError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
