"""Fixtures and helpers shared by the tests. The data they use is written here, so the tests need
no download.

The 'tone language' gives every letter its own pair of tones (70 ms each), so a tiny model can
learn to read it in seconds, while the files still go through the real loaders and features."""

import functools
import http.server
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

LETTER_SECONDS = 0.07
WORDS = ["a", "bad", "cab", "dad", "bed", "fade", "face", "cafe", "bead", "deaf"]


def tone_speech(text: str, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Text -> waveform (N,): two tones per letter, silence for a space, a little noise."""
    rng = np.random.default_rng(seed)
    n = int(LETTER_SECONDS * sample_rate)
    t = np.arange(n) / sample_rate
    envelope = np.hanning(n)
    pieces = [np.zeros(n // 2)]
    for ch in text:
        if ch == " ":
            pieces.append(np.zeros(n))
            continue
        k = ord(ch) - ord("a")
        f1, f2 = 300 + 110 * k, 2600 - 70 * k
        pieces.append(envelope * (0.5 * np.sin(2 * np.pi * f1 * t) + 0.3 * np.sin(2 * np.pi * f2 * t)))
    pieces.append(np.zeros(n // 2))
    audio = np.concatenate(pieces)
    return (0.5 * audio + 0.003 * rng.standard_normal(len(audio))).astype(np.float32)


def tone_word_times(text: str) -> list[tuple[str, float, float]]:
    """The words of a tone utterance with their exact (start, end) in seconds, as tone_speech lays
    them out: half a letter of silence first, then a letter or a space every LETTER_SECONDS."""
    words, at = [], LETTER_SECONDS / 2
    for word in text.split(" "):
        words.append((word, at, at + LETTER_SECONDS * len(word)))
        at += LETTER_SECONDS * (len(word) + 1)
    return words


def write_custom_dir(root: Path, texts: dict[str, str], sample_rate: int = 16000, ext: str = "wav") -> Path:
    """Write root/audio/<id>.<ext> and root/transcriptions/<id>.txt."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "transcriptions").mkdir(parents=True, exist_ok=True)
    for i, (uid, text) in enumerate(texts.items()):
        sf.write(root / "audio" / f"{uid}.{ext}", tone_speech(text, sample_rate, seed=i), sample_rate)
        (root / "transcriptions" / f"{uid}.txt").write_text(text.upper() + "\n")
    return root


def peak_hz(audio: np.ndarray, sample_rate: int = 16000) -> float:
    """The strongest frequency in a waveform (N,)."""
    return float(np.argmax(np.abs(np.fft.rfft(audio))) * sample_rate / len(audio))


def random_texts(n: int, seed: int = 0, words: int = 3) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    return {f"utt{i:03d}": " ".join(rng.choice(WORDS, size=words)) for i in range(n)}


TONE_TEXTS = {"a1": "bad cab", "a2": "face", "a3": "dad fade", "a4": "bead deaf"}


def write_librispeech(split: Path) -> Path:
    """A LibriSpeech split folder of one chapter, as OpenSLR's archives hold it: two utterances,
    19-198-0000 ("BAD CAB") and 19-198-0001 ("FACE DEAF"), as .flac, and the chapter's .trans.txt."""
    chapter, texts = split / "19" / "198", {"19-198-0000": "BAD CAB", "19-198-0001": "FACE DEAF"}
    chapter.mkdir(parents=True)
    for i, (uid, text) in enumerate(texts.items()):
        sf.write(chapter / f"{uid}.flac", tone_speech(text.lower(), seed=i), 16000)
    (chapter / "19-198.trans.txt").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
    return split


# fp32 is fp32 in the tests: no TF32 convolutions (torch's default on a GPU from Ampere on), which keep
# 10 bits of mantissa and could not be held to a CPU reference's tolerance
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

# Tests that take a `device` run on the CPU everywhere and on CUDA where there is a GPU (bench/gpu.py
# runs them there); CUDA marks the cases that only mean something on a GPU.
CUDA = pytest.param(
    "cuda",
    marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: runs on a GPU only"),
)


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> str:
    return request.param


def python(*args) -> subprocess.CompletedProcess:
    """`python ARGS` in the repository, as a user types it; output captured."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def infer(data_dir, out, checkpoint, *extra) -> dict:
    """inference.main on a folder, greedy, in this process; extra comes last and may override these."""
    import inference

    return inference.main(
        ["--data_dir", str(data_dir), "--out", str(out), "--checkpoint", str(checkpoint), "--num_workers", "0",
         "--decoder", "greedy", *extra]
    )  # fmt: skip


def tiny_args(train_data, out_dir, *extra) -> list[str]:
    """train.main's arguments for a test run of the tiny preset: no wandb, data read in this process,
    a log line every 5 steps. extra comes last, and argparse keeps a flag's last value, so a test may
    override any of these."""
    return [
        "--preset", "tiny", "--train_data", str(train_data), "--out_dir", str(out_dir),
        "--num_workers", "0", "--wandb_mode", "disabled", "--log_every", "5", *extra,
    ]  # fmt: skip


# CTC: prefix_beam_search_nbest's settings for a search without pruning (exact up to beam_size), and
# the brute-force references' pieces
EXACT = dict(token_min_logp=-np.inf, top_k=None, beam_margin=np.inf, blank_skip_logp=0.0, recombine=False)


def random_log_probs(rng, T, V, scale=1.5) -> np.ndarray:
    x = rng.normal(size=(T, V)) * scale
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)  # (T, V)


def collapse(path, blank=0) -> tuple:
    """A CTC path -> its labelling: repeats merged, blanks dropped."""
    return tuple(k for k, _ in itertools.groupby(path) if k != blank)


@pytest.fixture
def tone_dataset(tmp_path) -> Path:
    """A custom-layout folder of 4 short utterances."""
    return write_custom_dir(tmp_path / "tones", TONE_TEXTS)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny model trained once for the whole session: 150 steps on the 4 tone utterances, which
    it learns (validated on the same folder) -> (run folder with last.pt and best.pt, train.main's result)."""
    import train

    tmp = tmp_path_factory.mktemp("tiny_run")
    data = write_custom_dir(tmp / "tones", TONE_TEXTS)
    result = train.main(
        tiny_args(data, tmp / "run", "--val_data", str(data), "--max_steps", "150", "--eval_every", "150",
                  "--batch_seconds", "100", "--beam_size", "1")
    )  # fmt: skip
    return tmp / "run", result


@pytest.fixture
def http_folder(tmp_path):
    """Serve tmp_path/served on 127.0.0.1; yields (folder, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb offline and quiet, all its files under tmp_path; its service process stopped after."""
    wandb = pytest.importorskip("wandb")
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
    }.items():
        monkeypatch.setenv(name, value)
    yield
    wandb.teardown()
