"""Split a custom-layout folder into train and validation by sentence text, as 16 kHz flac.

    python recipes/split_by_text.py DATA/cv-dev DATA/cv --val_fraction 0.08     # as recipes/get_data.sh runs it

In Common Voice one sentence is read by several people: a random split by clip would put the same
sentence in training and validation, and the validation WER would reward memorised sentences. Here
every clip of a sentence goes to the same side, chosen by a hash of its normalised text, so the split
is the same on every machine. The hash reads the text as normalised before titles were spelled out
(`normalize_text(titles=False)`), so that rule moves no clip; a later rule must be pinned the same
way. Audio is decoded and resampled once (mp3 at 48 kHz costs the data loader more than the model on
a small CPU) and written as DEST/{train,val}/audio/<id>.flac with DEST/{train,val}/transcriptions/<id>.txt.
"""

import argparse
import hashlib
import sys
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio import SAMPLE_RATE, load_audio  # noqa: E402
from calc_metrics import align_ids, read_texts  # noqa: E402
from cli import DataError, run  # noqa: E402
from data import read_custom_dir  # noqa: E402
from tokenizer import normalize_text  # noqa: E402


def side(text: str, val_fraction: float) -> str:
    """'val' or 'train' for a normalised sentence: a stable hash, not a random draw."""
    h = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="custom layout: SOURCE/audio + SOURCE/transcriptions")
    parser.add_argument("dest")
    parser.add_argument("--val_fraction", type=float, default=0.08, help="of the distinct sentences")
    args = parser.parse_args(argv)
    everything = read_custom_dir(args.source)
    text_dir = Path(args.source) / "transcriptions"
    raw = align_ids(read_texts(text_dir), [u.id for u in everything]) if text_dir.is_dir() else {}
    utterances = [u for u in everything if u.text]
    counts = {"train": [0, 0.0], "val": [0, 0.0]}
    for u in tqdm(utterances, desc="split", unit="file"):
        name = side(normalize_text(raw[u.id], titles=False), args.val_fraction)
        out = Path(args.dest) / name
        flac = out / "audio" / f"{u.id}.flac"
        if not flac.exists():
            try:
                audio = load_audio(u.path)
            except DataError as e:
                tqdm.write(f"warning: skipped: {e}")
                continue
            flac.parent.mkdir(parents=True, exist_ok=True)
            partial = flac.parent / f".{flac.name}"  # hidden: data loaders skip a half-written file
            sf.write(partial, audio, SAMPLE_RATE)
            partial.rename(flac)
        (out / "transcriptions").mkdir(parents=True, exist_ok=True)
        (out / "transcriptions" / f"{u.id}.txt").write_text(u.text + "\n")
        counts[name][0] += 1
        counts[name][1] += max(u.duration, 0)
    for name, (n, seconds) in counts.items():
        print(f"{Path(args.dest) / name}: {n} clips, {seconds / 3600:.2f} h")


if __name__ == "__main__":
    run(main, DataError, OSError)  # no audio/ folder, an unwritable DEST
