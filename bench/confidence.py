"""Is a word's confidence (transcript.py) the chance that it is right? Calibration on labelled audio.

    python bench/confidence.py --data_dir samples [--checkpoint checkpoints/model.pt] [--decoder greedy]

DIR (audio/ + transcriptions/) is transcribed with word times and confidences (inference.transcribe,
--format json); each transcript's words are aligned to its reference's (Levenshtein, as the WER is
counted): a hypothesis word is correct when the alignment matches it to the same reference word, and
wrong when it is a substitution or an insertion. Words are binned by confidence; the table gives
each bin's words and its share of correct ones, which for a calibrated confidence lies in the bin.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import inference  # noqa: E402
from calc_metrics import read_texts  # noqa: E402
from tokenizer import normalize_text  # noqa: E402

BINS = 10


def matched(ref: list[str], hyp: list[str]) -> list[bool]:
    """-> per hypothesis word, whether a minimal edit alignment of hyp to ref matches it (same word)
    rather than substituting or inserting it. Ties prefer a match, then a substitution."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int64)  # d[i, j]: edits between ref[:i] and hyp[:j]
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1, d[i, j - 1] + 1)
    correct, i, j = [False] * m, n, m
    while j > 0:
        if i > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            correct[j - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            i -= 1  # a deleted reference word
        else:
            j -= 1  # an inserted hypothesis word: wrong
    return correct


def calibration(
    pairs: list[tuple[float, bool]], bins: int = BINS
) -> list[tuple[float, float, int, float, float]]:
    """(confidence, correct) per word -> per bin of [0, 1]: (low, high, words, share correct, mean confidence)."""
    conf = np.array([c for c, _ in pairs], float)
    ok = np.array([k for _, k in pairs], bool)
    which = np.minimum((conf * bins).astype(int), bins - 1)  # confidence 1.0 in the top bin
    rows = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        rows.append(
            (b / bins, (b + 1) / bins, n, ok[sel].mean() if n else np.nan, conf[sel].mean() if n else np.nan)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="DIR with audio/ and transcriptions/")
    parser.add_argument("--checkpoint", default=str(inference.DEFAULT_CHECKPOINT))
    parser.add_argument("--decoder", default="greedy", choices=["greedy", "beam", "beam_lm"])
    parser.add_argument("--bins", type=int, default=BINS)
    args = parser.parse_args()
    refs = read_texts(Path(args.data_dir) / "transcriptions")
    with tempfile.TemporaryDirectory() as out:
        inference.transcribe(
            args.data_dir, out, args.checkpoint, decoder=args.decoder, formats=("json",), num_workers=0
        )
        pairs = []
        for uid, text in sorted(refs.items()):
            path = Path(out) / f"{uid}.json"
            if not path.exists():
                continue
            words = json.loads(path.read_text())["words"]
            correct = matched(normalize_text(text).split(), [w["word"] for w in words])
            pairs += [(w["confidence"], ok) for w, ok in zip(words, correct)]
    print(f"\n{len(pairs)} words of {len(refs)} utterances, {args.decoder} decoding, {args.checkpoint}")
    print("| confidence | words | share correct | mean confidence |")
    print("|---|---|---|---|")
    for low, high, n, share, mean in calibration(pairs, args.bins):
        cells = f"{100 * share:.0f} % | {mean:.2f}" if n else "- | -"
        print(f"| {low:.1f}-{high:.1f} | {n} | {cells} |")
    total = sum(ok for _, ok in pairs)
    print(
        f"| all | {len(pairs)} | {100 * total / max(len(pairs), 1):.0f} % | {np.mean([c for c, _ in pairs]):.2f} |"
    )


if __name__ == "__main__":
    main()
