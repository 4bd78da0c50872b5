import pytest

import calc_metrics
from calc_metrics import corpus_error_rates, edit_counts


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
