"""Word and character error rates, written by hand.

    python calc_metrics.py --refs DIR/transcriptions --hyps preds

Corpus rates: total edits / total reference words (or characters), not a mean of per-utterance
rates, so long utterances weigh what they contain. Both sides are normalised like the training text
(lower case, punctuation removed). CER counts spaces between words as characters.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from tokenizer import normalize_text


def edit_counts(ref: list, hyp: list) -> tuple[int, int, int]:
    """Levenshtein alignment of two sequences -> (substitutions, deletions, insertions)."""
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:
        return 0, n, m
    symbols: dict = {}
    r = np.array([symbols.setdefault(x, len(symbols)) for x in ref])
    h = np.array([symbols.setdefault(x, len(symbols)) for x in hyp])
    steps = np.arange(m + 1)
    d = np.empty((n + 1, m + 1), dtype=np.int64)  # d[i, j]: edits between ref[:i] and hyp[:j]
    d[0] = steps
    for i in range(1, n + 1):
        row = np.empty(m + 1, dtype=np.int64)
        row[0] = i
        row[1:] = np.minimum(d[i - 1, 1:] + 1, d[i - 1, :-1] + (r[i - 1] != h))  # deletion, substitution
        # insertions chain left to right: row[j] = min_k (row[k] + j - k)
        d[i] = np.minimum.accumulate(row - steps) + steps
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (r[i - 1] != h[j - 1]):
            subs += int(r[i - 1] != h[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            dels, i = dels + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return subs, dels, ins


def corpus_error_rates(refs: list[str], hyps: list[str]) -> dict:
    """Paired reference and hypothesis texts -> dict with wer, cer and the counts behind them."""
    assert len(refs) == len(hyps), "one hypothesis per reference"
    totals = dict(substitutions=0, deletions=0, insertions=0, ref_words=0, char_edits=0, ref_chars=0)
    for ref, hyp in zip(refs, hyps):
        ref, hyp = normalize_text(ref), normalize_text(hyp)
        s, d, i = edit_counts(ref.split(), hyp.split())
        totals["substitutions"] += s
        totals["deletions"] += d
        totals["insertions"] += i
        totals["ref_words"] += len(ref.split())
        totals["char_edits"] += sum(edit_counts(list(ref), list(hyp)))
        totals["ref_chars"] += len(ref)
    word_edits = totals["substitutions"] + totals["deletions"] + totals["insertions"]
    totals["wer"] = _rate(word_edits, totals["ref_words"])
    totals["cer"] = _rate(totals["char_edits"], totals["ref_chars"])
    totals["utterances"] = len(refs)
    return totals


def _rate(edits: int, total: int) -> float:
    if total == 0:  # nothing to say: any output is all insertions
        return 0.0 if edits == 0 else float("inf")
    return edits / total


def read_texts(folder: str | Path) -> dict[str, str]:
    """DIR/<id>.txt -> {id: text}."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    return {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(folder.glob("*.txt"))}


def format_report(m: dict) -> str:
    return (
        f"WER {100 * m['wer']:.2f}%  CER {100 * m['cer']:.2f}%  "
        f"(utterances {m['utterances']}, words {m['ref_words']}: "
        f"{m['substitutions']} substitutions, {m['deletions']} deletions, {m['insertions']} insertions)"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Corpus WER/CER of prediction files against references.")
    parser.add_argument("--refs", required=True, help="folder of reference <id>.txt files")
    parser.add_argument("--hyps", required=True, help="folder of predicted <id>.txt files")
    args = parser.parse_args(argv)
    try:
        refs, hyps = read_texts(args.refs), read_texts(args.hyps)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    if not refs:
        sys.exit(f"error: {args.refs}: no reference .txt files")
    missing = sorted(set(refs) - set(hyps))
    extra = sorted(set(hyps) - set(refs))
    if missing:
        print(f"warning: {len(missing)} reference(s) have no prediction and count as empty: {_ids(missing)}")
    if extra:
        print(f"warning: {len(extra)} prediction(s) have no reference and are ignored: {_ids(extra)}")
    ids = sorted(refs)
    metrics = corpus_error_rates([refs[i] for i in ids], [hyps.get(i, "") for i in ids])
    print(format_report(metrics))
    return metrics


def _ids(ids: list[str], shown: int = 10) -> str:
    return ", ".join(ids[:shown]) + (f" ... (+{len(ids) - shown} more)" if len(ids) > shown else "")


if __name__ == "__main__":
    main()
