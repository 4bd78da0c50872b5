"""Word and character error rates, written by hand.

    python calc_metrics.py --refs DIR/transcriptions --hyps preds

Corpus rates: total edits / total reference words (or characters), not a mean of per-utterance
rates, so long utterances weigh what they contain. Both sides are normalised like the training text
(lower case, punctuation removed). CER counts spaces between words as characters. A 1-hour
transcript scores in seconds: the edit tables are never held whole.

Files pair by id: DIR/<id>.txt, in subfolders too (DIR/sub/x.txt is sub/x), the suffix in any
case (X.TXT); a reference X.wav.txt is X's. inference.py pairs its predictions by the same rule
(`pair`) and prints the same figure. Files that are not UTF-8 text are skipped and named, with their
counterpart on the other side.
Exit codes: 0 every file scored; 3 scored, but some files were skipped, missing, extra or empty (each
named in a "warning:" line); 1 nothing to score (one "error:" line); 2 bad command line.
"""

import argparse
import posixpath
import sys
from pathlib import Path

import numpy as np

from cli import EXIT_WARNINGS
from tokenizer import normalize_text


def edit_counts(ref: list, hyp: list) -> tuple[int, int, int]:
    """Levenshtein alignment of two sequences -> (substitutions, deletions, insertions).

    Memory is linear in len(hyp): the table is filled one row at a time, and each cell also keeps the
    insertions on its backtrace (preferring substitution, then deletion, then insertion when walking
    back from the end), so the split of the edits is that of the full-table backtrace."""
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:
        return 0, n, m
    symbols: dict = {}
    r = np.array([symbols.setdefault(x, len(symbols)) for x in ref])
    h = np.array([symbols.setdefault(x, len(symbols)) for x in hyp])
    steps = np.arange(m + 1)
    d, ins = steps.copy(), steps.copy()  # row i: edits between ref[:i] and hyp[:j], insertions among them
    for i in range(1, n + 1):
        sub, dele = d[:-1] + (r[i - 1] != h), d[1:] + 1
        row = np.empty(m + 1, dtype=np.int64)
        row[0] = i
        row[1:] = np.minimum(dele, sub)
        row = np.minimum.accumulate(row - steps) + steps  # insertions chain left to right
        # where the backtrace leaves each cell: up-left, up, or (neither) left to the nearest cell that
        # goes up or up-left, inserting the hyp words in between
        diag = row[1:] == sub
        up = np.concatenate([[True], diag | (row[1:] == dele)])
        carried = np.concatenate([[0], np.where(diag, ins[:-1], ins[1:])])
        last = np.maximum.accumulate(np.where(up, steps, 0))
        d, ins = row, carried[last] + steps - last
    insertions = int(ins[m])
    deletions = insertions + n - m
    return int(d[m]) - deletions - insertions, deletions, insertions


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance of two strings in O(len(a) * len(b) / 64) time and O(len(a)) memory.

    Myers' bit-vector algorithm (J. ACM 1999, in Hyyro's form for global distance): one column of the
    table is held as the vertical +1/-1 differences packed in two Python ints of len(a) bits."""
    if not a or not b:
        return len(a) + len(b)
    peq: dict = {}  # character -> bit mask of its positions in a
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | 1 << i
    mask, last = (1 << len(a)) - 1, len(a) - 1
    pv, mv, score = mask, 0, len(a)
    for ch in b:  # ints with bits above len(a) (or negative, from ~) are fine: carries only go up
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        score += ((ph >> last) & 1) - ((mh >> last) & 1)  # the last row's change: +1, -1 or 0
        ph = (ph << 1) | 1  # the table's first row grows by one per column
        mh <<= 1
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


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
        totals["char_edits"] += edit_distance(ref, hyp)
        totals["ref_chars"] += len(ref)
    word_edits = totals["substitutions"] + totals["deletions"] + totals["insertions"]
    totals["wer"] = _rate(word_edits, totals["ref_words"])
    totals["cer"] = _rate(totals["char_edits"], totals["ref_chars"])
    totals["utterances"] = len(refs)
    return totals


def phoneme_error_rate(refs: list[list[str]], hyps: list[list[str]]) -> float:
    """Paired reference and hypothesis phoneme sequences -> corpus phoneme error rate (edits over
    reference phonemes), as the WER is over words."""
    assert len(refs) == len(hyps), "one hypothesis per reference"
    return _rate(sum(sum(edit_counts(r, h)) for r, h in zip(refs, hyps)), sum(map(len, refs)))


def _rate(edits: int, total: int) -> float:
    if total == 0:  # nothing to say: any output is all insertions
        return 0.0 if edits == 0 else float("inf")
    return edits / total


def read_texts(folder: str | Path) -> dict[str, str]:
    """DIR/<id>.txt, in subfolders too -> {id: text}; the id of DIR/sub/x.txt is "sub/x". The
    suffix may be upper-case (X.TXT). Files that are not UTF-8 text are left out (`left_out` names
    them); hidden files and folders (.ipynb_checkpoints) are not read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    texts = {}
    for uid, p in text_files(folder).items():
        try:
            texts[uid] = p.read_text(encoding="utf-8").strip()
        except (UnicodeDecodeError, OSError):
            pass
    return texts


def text_files(folder: Path) -> dict[str, Path]:
    """{id: path} of the .txt files under folder (see read_texts)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".txt" and p.is_file())
    return {
        p.relative_to(folder).with_suffix("").as_posix(): p
        for p in files
        if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def left_out(folder: str | Path, texts: dict[str, str]) -> list[str]:
    """Ids of DIR/<id>.txt that read_texts could not read."""
    return sorted(set(text_files(Path(folder))) - set(texts))


def align_ids(texts: dict[str, str], ids) -> dict[str, str]:
    """texts keyed by the ids they transcribe: a text whose id is X.wav (from X.wav.txt, as some
    tools name transcriptions) belongs to X when X is among ids and has no text of its own."""
    ids = set(ids)
    aligned = {}
    for uid, text in texts.items():
        base = posixpath.splitext(uid)[0]
        aligned[base if uid not in ids and base != uid and base in ids and base not in texts else uid] = text
    return aligned


def pair(refs: dict[str, str], hyps: dict[str, str], skipped=()) -> tuple[list[str], list[tuple], dict]:
    """The rule that pairs references with predictions, for calc_metrics.py and inference.py alike:
    every reference is scored (one with no prediction as empty), except the ids in `skipped` (files
    that could not be read); a prediction without a reference is ignored. -> (ids to score,
    warnings as (ids, what), refs keyed by the ids of hyps as align_ids does)."""
    refs = align_ids(refs, hyps)
    ids = sorted(set(refs) - set(skipped))
    warnings = [
        (sorted(set(ids) - set(hyps)), "reference(s) have no prediction and count as empty"),
        (sorted(set(hyps) - set(refs) - set(skipped)), "prediction(s) have no reference and are ignored"),
        ([i for i in ids if not normalize_text(refs[i])], "reference(s) are empty; words predicted count as insertions"),
    ]  # fmt: skip
    return ids, [(names, what) for names, what in warnings if names], refs


def format_report(m: dict) -> str:
    if m["ref_words"] == 0:
        return f"WER and CER undefined: all {m['utterances']} reference(s) are empty"
    return (
        f"WER {100 * m['wer']:.2f}%  CER {100 * m['cer']:.2f}%  "
        f"(utterances {m['utterances']}, words {m['ref_words']}: "
        f"{m['substitutions']} substitutions, {m['deletions']} deletions, {m['insertions']} insertions)"
    )


def main(argv=None) -> dict:
    """Prints the report and returns the metrics, with the number of warning lines under "warnings"."""
    parser = argparse.ArgumentParser(description="Corpus WER/CER of prediction files against references.")
    parser.add_argument("--refs", required=True, help="folder of reference <id>.txt files")
    parser.add_argument("--hyps", required=True, help="folder of predicted <id>.txt files")
    args = parser.parse_args(argv)
    try:
        refs, hyps = read_texts(args.refs), read_texts(args.hyps)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    bad_refs, bad_hyps = left_out(args.refs, refs), left_out(args.hyps, hyps)
    ids, paired, refs = pair(refs, hyps, skipped=bad_refs + bad_hyps)
    if not ids:
        sys.exit(f"error: {args.refs}: no readable reference .txt files")
    warnings = [
        ([f"{i}.txt" for i in bad_refs], f"file(s) in {args.refs} are not UTF-8 text, skipped; save as UTF-8"),
        ([f"{i}.txt" for i in bad_hyps], f"file(s) in {args.hyps} are not UTF-8 text; their utterances skipped"),
    ]  # fmt: skip
    warnings = [(names, what) for names, what in warnings if names] + paired
    print_warnings(warnings)
    metrics = corpus_error_rates([refs[i] for i in ids], [hyps.get(i, "") for i in ids])
    if metrics["ref_words"] == 0:
        sys.exit(f"error: {args.refs}: every reference is empty; there is nothing to score against")
    print(format_report(metrics))
    return metrics | dict(warnings=len(warnings))


def print_warnings(warnings: list[tuple]) -> None:
    for names, what in warnings:
        print(f"warning: {len(names)} {what}: {_ids(names)}")


def _ids(ids: list[str], shown: int = 10) -> str:
    return ", ".join(ids[:shown]) + (f" ... (+{len(ids) - shown} more)" if len(ids) > shown else "")


if __name__ == "__main__":
    sys.exit(EXIT_WARNINGS if main()["warnings"] else 0)
