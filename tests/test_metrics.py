import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import python

import calc_metrics
from calc_metrics import corpus_error_rates, edit_counts, edit_distance
from cli import EXIT_WARNINGS


def full_table_edit_counts(ref: list, hyp: list) -> tuple[int, int, int]:
    """The reference: the whole (n+1, m+1) table, then a backtrace from the end that prefers
    substitution, then deletion, then insertion."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            dels, i = dels + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return subs, dels, ins


def test_identical_is_zero():
    m = corpus_error_rates(["the cat sat"], ["the cat sat"])
    assert (m["wer"], m["cer"]) == (0.0, 0.0)
    assert (m["substitutions"], m["deletions"], m["insertions"]) == (0, 0, 0)


def test_empty_hypothesis_is_all_deletions():
    m = corpus_error_rates(["the cat sat"], [""])
    assert m["deletions"] == 3 and m["substitutions"] == m["insertions"] == 0
    assert m["wer"] == 1.0
    assert m["cer"] == 1.0  # 11 characters, spaces included, all deleted


def test_insertions_only():
    # ref: a b   hyp: a x b y  -> 2 insertions over 2 reference words
    m = corpus_error_rates(["a b"], ["a x b y"])
    assert (m["substitutions"], m["deletions"], m["insertions"]) == (0, 0, 2)
    assert m["wer"] == 1.0
    # characters: "a b" -> "a x b y" inserts "x " and " y": 4 edits over 3 characters
    assert m["cer"] == pytest.approx(4 / 3)


def test_mixed_edits_by_hand():
    # ref: the cat sat on the mat / hyp: the bat sat the mat too
    # the=the, cat->bat (S), sat=sat, on deleted (D), the=the, mat=mat, too inserted (I)
    assert edit_counts("the cat sat on the mat".split(), "the bat sat the mat too".split()) == (1, 1, 1)
    # kitten -> sitting: k->s, e->i, +g
    assert edit_counts(list("kitten"), list("sitting")) == (2, 0, 1)


def test_corpus_rate_is_total_edits_over_total_words_not_a_mean():
    # utterance 1: 1 error in 1 word (100 %), utterance 2: 0 errors in 3 words (0 %)
    m = corpus_error_rates(["a", "b c d"], ["x", "b c d"])
    assert m["wer"] == pytest.approx(1 / 4)  # a mean of rates would give 0.5
    assert m["ref_words"] == 4 and m["utterances"] == 2


def test_normalisation_applies_to_both_sides():
    m = corpus_error_rates(["Hello, World!"], ["hello world"])
    assert m["wer"] == 0.0 and m["cer"] == 0.0


def test_cli_reports_missing_ids(tmp_path, capsys):
    refs, hyps = tmp_path / "refs", tmp_path / "hyps"
    refs.mkdir()
    hyps.mkdir()
    (refs / "u1.txt").write_text("A B C\n")
    (refs / "u2.txt").write_text("D E\n")
    (hyps / "u1.txt").write_text("a b x\n")
    (hyps / "u9.txt").write_text("extra\n")
    m = calc_metrics.main(["--refs", str(refs), "--hyps", str(hyps)])
    out = capsys.readouterr().out
    assert "u2" in out and "no prediction" in out
    assert "u9" in out and "no reference" in out
    # u1: 1 substitution; u2 missing -> 2 deletions; 3 edits over 5 words
    assert m["wer"] == pytest.approx(3 / 5)
    assert "WER 60.00%" in out


def test_cli_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="folder not found"):
        calc_metrics.main(["--refs", str(tmp_path / "nope"), "--hyps", str(tmp_path)])


def test_same_counts_as_the_full_table_on_random_pairs():
    rng = random.Random(0)
    for _ in range(3000):
        alphabet = rng.choice(["ab", "abc", "abcdefgh"])
        ref = [rng.choice(alphabet) for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice(alphabet) for _ in range(rng.randint(0, 12))]
        counts = full_table_edit_counts(ref, hyp)
        assert edit_counts(ref, hyp) == counts, (ref, hyp)
        assert edit_distance("".join(ref), "".join(hyp)) == sum(counts), (ref, hyp)
    for _ in range(20):  # longer, mostly aligned, like real transcripts
        ref = [rng.choice("abcde") for _ in range(rng.randint(50, 120))]
        hyp = [rng.choice("abcdef") if rng.random() < 0.1 else x for x in ref if rng.random() > 0.1]
        counts = full_table_edit_counts(ref, hyp)
        assert edit_counts(ref, hyp) == counts
        assert edit_distance("".join(ref), "".join(hyp)) == sum(counts)


def test_one_hour_transcript_scores_with_bounded_memory():
    """An hour of speech: 10,000 random words, 10 % substituted and 3 % deleted (as bench/memory.py,
    which times it)."""
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 8))) for _ in range(3000)]
    ref = list(rng.choice(vocab, size=10_000))
    hyp = [w if rng.random() > 0.1 else rng.choice(vocab) for w in ref if rng.random() > 0.03]
    tracemalloc.start()
    m = corpus_error_rates([" ".join(ref)], [" ".join(hyp)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert m["ref_words"] == 10_000 and 0.1 < m["wer"] < 0.2 and 0.05 < m["cer"] < 0.2
    # a full table would be 10,000 x 9,700 words (0.8 GB) and 55,000 x 53,000 characters (23 GB)
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def write_pair(tmp_path, refs: dict, hyps: dict) -> tuple[Path, Path]:
    """refs/<id>.txt and hyps/<id>.txt; bytes are written as they are, str as UTF-8."""
    for name, texts in (("refs", refs), ("hyps", hyps)):
        (tmp_path / name).mkdir()
        for uid, text in texts.items():
            path = tmp_path / name / f"{uid}.txt"
            path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding="utf-8")
    return tmp_path / "refs", tmp_path / "hyps"


def test_cli_skips_and_names_files_that_are_not_utf8(tmp_path, capsys):
    refs, hyps = write_pair(
        tmp_path,
        {"u1": "a b", "u2": "caf\xe9 au lait".encode("latin-1"), "u3": "c d"},
        {"u1": "a b", "u2": "cafe", "u3": "c x".encode("utf-16")},
    )
    m = calc_metrics.main(["--refs", str(refs), "--hyps", str(hyps)])
    out = capsys.readouterr().out
    assert f"1 file(s) in {refs} are not UTF-8 text, skipped; save as UTF-8: u2.txt" in out
    assert f"1 file(s) in {hyps} are not UTF-8 text; their utterances skipped: u3.txt" in out
    assert m["utterances"] == 1 and m["wer"] == 0.0 and m["warnings"] == 2


def test_cli_names_empty_references_and_refuses_when_all_are_empty(tmp_path, capsys):
    refs, hyps = write_pair(tmp_path, {"u1": "a b", "u2": "  \n"}, {"u1": "a b", "u2": "noise"})
    m = calc_metrics.main(["--refs", str(refs), "--hyps", str(hyps)])
    assert "1 reference(s) are empty; words predicted count as insertions: u2" in capsys.readouterr().out
    assert m["insertions"] == 1 and m["wer"] == 0.5
    for uid in ("u1", "u2"):
        (refs / f"{uid}.txt").write_text("...\n")  # empty once punctuation is removed
    with pytest.raises(SystemExit, match="every reference is empty"):
        calc_metrics.main(["--refs", str(refs), "--hyps", str(hyps)])


def test_exit_code_says_whether_anything_was_skipped(tmp_path):
    refs, hyps = write_pair(tmp_path, {"u1": "a b"}, {"u1": "a c"})
    assert calc_metrics.main(["--refs", str(refs), "--hyps", str(hyps)])["warnings"] == 0  # exit code 0
    (refs / "u2.txt").write_bytes(b"\xe9t\xe9")
    done = python("calc_metrics.py", "--refs", str(refs), "--hyps", str(hyps))
    assert done.returncode == EXIT_WARNINGS, done.stderr
    assert "u2.txt" in done.stdout and "WER 50.00%" in done.stdout
