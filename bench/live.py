"""Live transcription's latency, real-time factor and distance from the offline transcript.

    python bench/live.py [--data_dir samples] [--checkpoint checkpoints/model.pt] [--hop 1.0] [--lookahead 1.0]

Each file of DIR/audio is streamed through live.LiveTranscriber (the core of inference.py --live) in
pieces of one hop, as a real-time source would hand them out, then all the files one after another
as one stream. The clock is simulated from measured compute: a piece arrives when its audio has been
spoken, its pass starts then (or when the pass before ends, if the machine falls behind) and takes
the time it took here. Latency = when a word is given out - the end of the word in the audio: the
look-ahead, the wait for the next hop and the compute. RTF = compute / audio duration. "changed" counts
the word edits between the live transcript and the offline greedy one (the normalisation by the audio
so far, live.py); WER against DIR/transcriptions when there are some.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import live  # noqa: E402
from audio import AUDIO_EXTENSIONS, SAMPLE_RATE, load_audio, log_mel_spectrogram  # noqa: E402
from calc_metrics import edit_counts  # noqa: E402
from decode import greedy_path  # noqa: E402
from model import load_checkpoint, load_model  # noqa: E402
from tokenizer import normalize_text  # noqa: E402
from transcript import FEATURE_SECONDS, words_with_times  # noqa: E402

GAP_SECONDS = 0.5  # silence between the files of the one long stream


def offline_words(model, tokenizer, audio: np.ndarray) -> list:
    features = log_mel_spectrogram(audio, model.c1.depthwise.in_channels)  # (n_mels, T)
    with torch.no_grad():
        log_probs = model(features[None], torch.tensor([features.shape[1]]))[0][0].numpy()  # (T', V)
    ids, frames = greedy_path(log_probs, tokenizer.blank)
    return words_with_times(ids, frames, log_probs, tokenizer, model.stride * FEATURE_SECONDS)


def stream(model, tokenizer, audio: np.ndarray, hop: float, lookahead: float) -> tuple[list, list, float]:
    """-> (words, latency of each in seconds, compute seconds) for audio (N,) streamed in hops."""
    transcriber = live.LiveTranscriber(model, tokenizer, hop_seconds=hop, lookahead_seconds=lookahead)
    piece, clock, compute, words, latencies = int(hop * SAMPLE_RATE), 0.0, 0.0, [], []
    for i in range(0, len(audio) + piece, piece):
        last = i >= len(audio)
        arrives = min(i + piece, len(audio)) / SAMPLE_RATE  # the piece's audio has been spoken
        began = time.perf_counter()
        out = transcriber.finish() if last else transcriber.feed(audio[i : i + piece])
        took = time.perf_counter() - began
        compute += took
        clock = max(clock, arrives) + took  # a pass waits for its audio and for the pass before
        words += out
        latencies += [clock - w.end for w in out]
        if last:
            break
    return words, latencies, compute


def wer(ref: list | None, hyp: list) -> str:
    return f"{100 * sum(edit_counts(ref, hyp)) / len(ref):.1f} %" if ref else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", default="samples")
    parser.add_argument("--checkpoint", default="checkpoints/model.pt")
    parser.add_argument("--hop", type=float, default=live.HOP_SECONDS)
    parser.add_argument("--lookahead", type=float, default=live.LOOKAHEAD_SECONDS)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _, tokenizer = load_model(load_checkpoint(args.checkpoint))
    stream(model, tokenizer, np.zeros(3 * SAMPLE_RATE, np.float32), args.hop, args.lookahead)  # warm-up
    files = sorted(p for p in (Path(args.data_dir) / "audio").iterdir() if p.suffix in AUDIO_EXTENSIONS)
    refs = {}
    for p in files:
        text = Path(args.data_dir) / "transcriptions" / f"{p.stem}.txt"
        refs[p.stem] = normalize_text(text.read_text()).split() if text.exists() else None
    audios = {p.stem: load_audio(p) for p in files}
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.float32)
    audios["all, one stream"] = np.concatenate([x for a in audios.values() for x in (a, gap)])
    refs["all, one stream"] = sum(refs.values(), []) if all(r is not None for r in refs.values()) else None
    print(f"hop {args.hop} s, look-ahead {args.lookahead} s, {args.threads} threads, greedy decoding")
    print("| stream | audio s | words | changed | WER offline | WER live | latency mean | p90 | max | RTF |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, audio in audios.items():
        offline = [w.word for w in offline_words(model, tokenizer, audio)]
        words, latencies, compute = stream(model, tokenizer, audio, args.hop, args.lookahead)
        hyp, ref = [w.word for w in words], refs[name]
        changed = sum(edit_counts(offline, hyp))
        lat = np.array(latencies) if latencies else np.zeros(1)
        seconds = len(audio) / SAMPLE_RATE
        print(
            f"| {name} | {seconds:.1f} | {len(hyp)} | {changed} | {wer(ref, offline)} | {wer(ref, hyp)} | "
            f"{lat.mean():.2f} | {np.percentile(lat, 90):.2f} | {lat.max():.2f} | {compute / seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
