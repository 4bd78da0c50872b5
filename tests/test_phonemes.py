"""Phoneme targets: the pronunciation lexicon (CMUdict, the numpy G2P model), phonemes back to
words (the greedy mapping; the beam search over the pronunciation trie by brute force, with and
without an LM), and the `lm.py lexicon` command."""

import dataclasses
import itertools
import sys
import types

import numpy as np
import pytest
from conftest import EXACT, collapse, random_log_probs

import lexicon
from decode import DecodingOptions, pronunciation_search_nbest
from kneser_ney import build_kneser_ney
from lexicon import PHONEMES, Lexicon, build_lexicon, cmu_dictionary, describe, load_lexicon
from lm import NGramLM
from lm import main as lm_command
from tokenizer import PhoneTokenizer, Tokenizer, train_tokenizer

COMMON = (
    "the of and to in that was he it his with as had for you not be her on at by which have or from "
    "this him but all she they were my are me one their so an said them we who would been will no when "
    "there if more out up into do any your what has man could other than our some very time upon about "
    "may its only now like little then can should made did us such great before must two these see know"
).split()


def test_lexicon_takes_cmudict_then_the_g2p_model_and_names_what_it_cannot_convert():
    lex = build_lexicon(["the", "tomato", "quartznet", "route", "66", "x1"])
    assert lex.entries["the"] == [("DH", "AH"), ("DH", "IY")]  # every pronunciation, stress removed
    assert lex.entries["tomato"] == [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")]
    assert lex.g2p_words == ["quartznet"] and lex.failed == ["66", "x1"]
    (guess,) = lex.entries["quartznet"]
    assert guess[:2] == ("K", "W") and set(guess) <= set(PHONEMES)
    assert list(lex.entries) == ["the", "tomato", "quartznet", "route"]  # the given order, kept
    assert describe(lex) == "4 words, 1 pronounced by G2P (quartznet); 2 cannot be converted (66, x1)"
    assert all(set(p) <= set(PHONEMES) for prons in cmu_dictionary().values() for p in prons)
    assert len(PHONEMES) == len(set(PHONEMES)) == 39


def test_g2p_model_reads_words_as_cmudict_does():
    # the model learned CMUdict: it gets most of the common words exactly right
    guesses = lexicon.g2p().predict(COMMON)
    right = sum(guess in cmu_dictionary()[w] for w, guess in zip(COMMON, guesses))
    assert right > 0.7 * len(COMMON)
    # a batch of words of mixed lengths gives each word its own prediction
    alone = [lexicon.g2p().predict([w])[0] for w in ("cat", "quartznet")]
    assert lexicon.g2p().predict(["cat", "quartznet", "cat"]) == [alone[0], alone[1], alone[0]]


def test_g2p_model_matches_g2p_en_s_own_forward_pass(monkeypatch):
    # g2p_en imports NLTK (and downloads its data) at import: stand-ins let its model code load
    nltk = types.ModuleType("nltk")
    nltk.pos_tag, nltk.data = None, types.SimpleNamespace(find=lambda name: True)
    corpus, tokenize = types.ModuleType("nltk.corpus"), types.ModuleType("nltk.tokenize")
    corpus.cmudict = types.SimpleNamespace(dict=dict)
    tokenize.TweetTokenizer = lambda: types.SimpleNamespace(tokenize=None)
    inflect = types.SimpleNamespace(engine=lambda: None)
    for name, module in {
        "nltk": nltk,
        "nltk.corpus": corpus,
        "nltk.tokenize": tokenize,
        "inflect": inflect,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    g2p_en = pytest.importorskip("g2p_en.g2p")
    reference = g2p_en.G2p.__new__(g2p_en.G2p)
    reference.load_variables()
    reference.graphemes = lexicon.G2P.GRAPHEMES
    reference.g2idx = {g: i for i, g in enumerate(reference.graphemes)}
    reference.idx2p = dict(enumerate(lexicon.g2p().symbols))
    words = ["quartznet", "activationist", "librispeech", "zzz", "a", "abcdefghijklmnopqrstuvwxyz"]
    for word, guess in zip(words, lexicon.g2p().predict(words)):
        assert guess == lexicon.strip_stress(reference.predict(word))


# ----------------------------------------------------------------------------- phonemes -> words


def phones(text: str) -> list[int]:
    """ "DH AH | K AE T" -> PhoneTokenizer ids."""
    vocab = ["", " ", *PHONEMES]
    return [1 if p == "|" else vocab.index(p) for p in text.split()]


def levenshtein(a, b) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_greedy_mapping_exact_homophones_and_nearest():
    lex = Lexicon(
        {
            "there": [("DH", "EH", "R")],
            "the": [("DH", "AH"), ("DH", "IY")],
            "their": [("DH", "EH", "R")],
            "cat": [("K", "AE", "T")],
            "cut": [("K", "AH", "T")],
        }
    )
    tok = PhoneTokenizer(lex)
    assert tok.decode(phones("DH IY | K AE T")) == "the cat"  # any pronunciation of a word
    assert tok.decode(phones("DH EH R")) == "there"  # homophones: the more frequent
    assert tok.decode(phones("DH EH R") + [len(tok.vocab)]) == "their"  # the beam's second homophone
    assert tok.decode([0] + phones("| | K AE T |") + [0]) == "cat"  # blanks, spare boundaries
    # no exact match: the nearest pronunciation, the more frequent on a tie (cat and cut are 1 apart)
    assert tok.decode(phones("K AE T S | K EH T")) == "cat cat"
    assert tok.decode(phones("DH EH")) == "there"  # 1 from there, their, the; there is first
    assert tok.encode("the cat") == phones("DH AH | K AE T")
    assert tok.encode("the dog") == phones("DH AH | D AO G")  # not in the lexicon: CMUdict's
    with pytest.raises(ValueError, match=r"without a pronunciation .*: \['12'\]"):
        tok.encode("the dog 12")
    again = Tokenizer.from_state_dict(tok.state_dict())
    assert isinstance(again, PhoneTokenizer) and again == tok and again.lexicon == lex


@pytest.mark.parametrize("seed", range(3))
def test_nearest_pronunciation_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    entries = {w: [tuple(rng.choice(PHONEMES[:6], size=rng.integers(1, 7)))] for w in words}
    lex = Lexicon(entries)
    for _ in range(20):
        query = tuple(rng.choice(PHONEMES[:7], size=rng.integers(1, 8)))
        distances = [levenshtein(query, entries[w][0]) for w in words]
        assert lex.nearest(query) == words[int(np.argmin(distances))]


# ----------------------------------------------------------------------------- the beam search

TINY = ["", " ", "AA", "B"]  # blank, word boundary, two phonemes
# most frequent first; "ba", "bah" and "baa" are homophones
TINY_LEXICON = Lexicon(
    {
        "a": [("AA",)],
        "ba": [("B", "AA")],
        "ab": [("AA", "B")],
        "bah": [("B", "AA")],
        "b": [("B",)],
        "baa": [("B", "AA")],
        "bob": [("B", "AA", "B")],
    }
)
# the LM lacks "ba", the most frequent of its homophones, and "bob"
TINY_LM_TEXT = ["bah a", "a bah b", "baa ab", "b a", "ab b a", "bah bah"]


def pronunciation_totals(log_probs) -> dict[tuple, float]:
    """log P_ctc of every sequence of phoneme words, summing every alignment (a path of tokens,
    repeats merged and blanks dropped, split at boundaries) that spells it."""
    T, V = log_probs.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        words = "".join(" " if k == 1 else f"{TINY[k]}." for k in collapse(path)).split()
        key = tuple(tuple(w.rstrip(".").split(".")) for w in words)
        totals[key] = np.logaddexp(totals.get(key, -np.inf), log_probs[np.arange(T), path].sum())
    return totals


def result_pronunciations(ids) -> list[tuple[tuple[str, ...], int]]:
    """(phoneme word, homophone) of a search result: words end at a boundary, or at one of its
    copies past the vocabulary, the k-th for the k-th homophone."""
    words, current = [], []
    for i in list(ids) + [1]:
        if i == 1 or i >= len(TINY):
            if current:
                words.append((tuple(current), max(0, i - len(TINY) + 1)))
            current = []
        else:
            current.append(TINY[i])
    return words


def result_words(ids) -> tuple[str, ...]:
    return tuple(TINY_LEXICON.word(pron, k) for pron, k in result_pronunciations(ids))


@pytest.mark.parametrize("seed", range(6))
def test_pronunciation_search_without_lm_is_exact_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    log_probs = random_log_probs(rng, int(rng.integers(2, 7)), len(TINY))
    totals = {
        k: v
        for k, v in pronunciation_totals(log_probs).items()
        if all(p in TINY_LEXICON.homophones for p in k)
    }
    beams = pronunciation_search_nbest(
        log_probs, DecodingOptions(beam_size=10_000, **EXACT), TINY, TINY_LEXICON
    )
    found = [(ids, score) for ids, score in beams if score > -np.inf]
    assert len(found) == len(totals)  # every sequence of lexicon words once, and nothing else
    for ids, score in found:
        assert all(k == 0 for _, k in result_pronunciations(ids))  # homophones: the most frequent
        assert score == pytest.approx(totals[tuple(p for p, _ in result_pronunciations(ids))])
    best = max(totals, key=totals.get)
    assert result_words(beams[0][0]) == tuple(TINY_LEXICON.word(p) for p in best)


@pytest.mark.parametrize("seed", range(6))
def test_pronunciation_search_with_lm_is_exact_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    lm = NGramLM.from_ngrams(build_kneser_ney(TINY_LM_TEXT, order=2))
    log_probs = random_log_probs(rng, int(rng.integers(2, 7)), len(TINY))
    alpha, beta = rng.uniform(0.2, 2.0), rng.uniform(0, 3)
    # every sequence of LM words whose pronunciations the acoustics can spell, homophones each
    fused = {}
    for key, total in pronunciation_totals(log_probs).items():
        choices = [[w for w in TINY_LEXICON.homophones.get(p, []) if w in lm.vocab] for p in key]
        for words in itertools.product(*choices):
            fused[words] = total + alpha * lm.sentence_log_prob(list(words)) + beta * len(words)
    beams = pronunciation_search_nbest(
        log_probs, DecodingOptions(beam_size=10_000, alpha=alpha, beta=beta, **EXACT), TINY, TINY_LEXICON, lm
    )
    found = {result_words(ids): score for ids, score in beams if score > -np.inf}
    assert len(found) == len([s for _, s in beams if s > -np.inf])  # each word sequence once
    assert found.keys() == fused.keys()  # ... and all of them: "ba" and "bob" never (not in the LM)
    for words, score in found.items():
        assert score == pytest.approx(fused[words])
    assert result_words(beams[0][0]) == max(fused, key=fused.get)


def clear_log_probs(frames: list[dict[int, float]]) -> np.ndarray:
    """Per frame {token: probability} -> (T, V) log-probs over TINY, every other token nearly 0."""
    probs = np.full((len(frames), len(TINY)), 1e-6)
    for t, frame in enumerate(frames):
        for k, p in frame.items():
            probs[t, k] = p
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def test_homophones_follow_the_lm(tmp_path):
    """Clear acoustics for B AA | AA: the LM picks which "ba" it is from the word after."""
    lm = NGramLM.from_ngrams(build_kneser_ney(["baa a", "baa a", "bah b"], order=2))
    log_probs = clear_log_probs([{3: 1.0}, {2: 1.0}, {1: 1.0}, {2: 1.0}])  # B AA | AA
    (ids, _), *_ = pronunciation_search_nbest(
        log_probs, DecodingOptions(beam_size=8, alpha=1.0, beta=0.0), TINY, TINY_LEXICON, lm
    )
    assert result_words(ids) == ("baa", "a")
    (ids, _), *_ = pronunciation_search_nbest(log_probs, DecodingOptions(beam_size=8), TINY, TINY_LEXICON)
    assert result_words(ids) == ("ba", "a")  # without an LM: the most frequent homophone


def test_an_lm_without_any_of_the_largest_homophone_set_decodes():
    """The search has a boundary copy per homophone of the lexicon's largest set (3: ba, bah, baa);
    an LM that knows none of them leaves the trie narrower: the extra copies end no word."""
    lm = NGramLM.from_ngrams(build_kneser_ney(["a ab", "ab b a", "b a"], order=2))
    log_probs = clear_log_probs([{2: 1.0}, {1: 1.0}, {2: 1.0}, {3: 1.0}])  # AA | AA B
    (ids, _), *_ = pronunciation_search_nbest(
        log_probs, DecodingOptions(beam_size=8, alpha=1.0, beta=0.0), TINY, TINY_LEXICON, lm
    )
    assert result_words(ids) == ("a", "ab")


@pytest.mark.parametrize(
    "with_lm, frames, hotword",
    [
        # no LM: AA is a little likelier than B, so "a"; listed, "b" earns a bonus for its phoneme
        (False, [{2: 0.55, 3: 0.45}], "b"),
        # B AA B is clear, but "bob" is no LM word: the search reads "bah b", paying for a boundary the
        # acoustics barely allow; listed, "bob" is found, the LM scoring it as <unk>
        (True, [{3: 1.0}, {2: 1.0}, {0: 0.99, 1: 0.01}, {3: 1.0}], "bob"),
    ],
)
def test_hotwords_find_a_lexicon_word_and_change_nothing_else(with_lm, frames, hotword):
    lm = NGramLM.from_ngrams(build_kneser_ney(TINY_LM_TEXT, order=2)) if with_lm else None
    plain = DecodingOptions("beam_lm" if with_lm else "beam", 8, alpha=1.0, beta=0.0)
    listed = dataclasses.replace(plain, hotwords=hotword, hotword_boost=3.0 if with_lm else 1.0)
    log_probs = clear_log_probs(frames)
    assert result_words(pronunciation_search_nbest(log_probs, plain, TINY, TINY_LEXICON, lm)[0][0]) != (
        hotword,
    )
    assert result_words(pronunciation_search_nbest(log_probs, listed, TINY, TINY_LEXICON, lm)[0][0]) == (
        hotword,
    )
    for other in ([{2: 1.0}, {1: 1.0}, {2: 1.0}, {3: 1.0}], [{3: 1.0}, {2: 1.0}, {1: 1.0}, {2: 1.0}]):
        log_probs = clear_log_probs(other)  # AA | AA B, B AA | AA
        assert (
            pronunciation_search_nbest(log_probs, listed, TINY, TINY_LEXICON, lm)[0][0]
            == pronunciation_search_nbest(log_probs, plain, TINY, TINY_LEXICON, lm)[0][0]
        )
    with pytest.raises(ValueError, match="--hotwords zzz: not in the lexicon"):
        pronunciation_search_nbest(
            log_probs, dataclasses.replace(plain, hotwords="zzz"), TINY, TINY_LEXICON, lm
        )
    if with_lm:  # an LM with no <unk> cannot score a hotword it lacks
        no_unk = NGramLM.from_ngrams([{(w,): (-1.0, 0.0) for w in ("<s>", "</s>", "a", "b")}])
        with pytest.raises(ValueError, match=f"--hotwords {hotword}: not in the LM, which has no <unk>"):
            pronunciation_search_nbest(log_probs, listed, TINY, TINY_LEXICON, no_unk)


def test_a_lexicon_favouring_words_puts_them_first_among_their_homophones():
    lexicon = TINY_LEXICON.favouring(["baa", "cab"])
    assert list(lexicon.entries)[:2] == ["baa", "cab"] and lexicon.entries["cab"] == [
        ("K", "AE", "B")
    ]  # CMUdict's
    assert list(lexicon.entries)[2:] == [w for w in TINY_LEXICON.entries if w != "baa"]
    assert lexicon.homophones[("B", "AA")] == ["baa", "ba", "bah"]
    assert lexicon.favouring(["baa"]) is lexicon and TINY_LEXICON.favouring([]) is TINY_LEXICON
    with pytest.raises(ValueError, match="日本"):
        TINY_LEXICON.favouring(["日本"])


@pytest.mark.parametrize("with_lm", [False, True])
def test_a_hotword_is_written_rather_than_its_homophones(with_lm):
    """Clear B AA: "ba", "bah" and "baa" sound alike. Without an LM the first is written; with one,
    the LM's choice (it lacks "ba"). Listed, "ba" or "baa" is written, and the others stay as they were."""
    lm = NGramLM.from_ngrams(build_kneser_ney(TINY_LM_TEXT, order=2)) if with_lm else None
    plain = DecodingOptions("beam_lm" if with_lm else "beam", 8, alpha=1.0, beta=0.0)
    log_probs = clear_log_probs([{3: 1.0}, {2: 1.0}])  # B AA

    def words(lexicon, options):
        (ids, _), *_ = pronunciation_search_nbest(log_probs, options, TINY, lexicon, lm)
        return [lexicon.word(pron, k) for pron, k in result_pronunciations(ids)]

    before = words(TINY_LEXICON, plain)
    for hotword in ("ba", "baa"):
        if [hotword] == before:
            continue
        favoured = TINY_LEXICON.favouring([hotword])
        assert words(favoured, dataclasses.replace(plain, hotwords=hotword, hotword_boost=3.0)) == [hotword]
    assert words(TINY_LEXICON.favouring(["ab"]), dataclasses.replace(plain, hotwords="ab")) == before


def test_recombination_frees_a_beam_place_for_the_best_words():
    """x is said AA or B; the LM much prefers y (AA B AA). After AA|B, B|_ the two ways of saying
    "x" end alike (the same history, word state and last token) and outscore y's start (beta 4 a
    word): without recombination they fill a beam of 2 and y is lost; with it, the second "x"
    trails the first in both of its log-probs and gives its place to y."""
    lex = Lexicon({"y": [("AA", "B", "AA")], "x": [("AA",), ("B",)]})
    unigrams = {"<s>": 0.0, "</s>": 0.0, "<unk>": -20.0, "y": np.log(0.5), "x": np.log(0.02)}
    lm = NGramLM.from_ngrams([{(w,): (logp, 0.0) for w, logp in unigrams.items()}])
    log_probs = clear_log_probs([{2: 0.5, 3: 0.5}, {3: 0.5, 1: 0.5}, {2: 1.0}, {1: 1.0}])
    for beam_size, recombine, words in [(3, False, ["y"]), (2, False, ["x", "x"]), (2, True, ["y"])]:
        (ids, _), *_ = pronunciation_search_nbest(
            log_probs,
            DecodingOptions(beam_size=beam_size, alpha=1.0, beta=4.0, recombine=recombine),
            TINY,
            lex,
            lm,
        )
        assert [lex.word(pron, k) for pron, k in result_pronunciations(ids)] == words


# ----------------------------------------------------------------------------- files and commands


def test_lm_lexicon_command_orders_words_by_the_lm(tmp_path, capsys):
    from arpa import write_arpa

    arpa = tmp_path / "words.arpa"
    write_arpa(
        build_kneser_ney(["the cat", "the quartznet", "the", "cat ω"], order=2), str(arpa)
    )  # digits would be spelled out
    out = tmp_path / "words.lexicon.gz"
    lm_command(["lexicon", "--lm", str(arpa), "--out", str(out)])
    assert "1 pronounced by G2P (quartznet); 1 cannot be converted (ω)" in capsys.readouterr().err
    lex, lm = Lexicon.load(out), NGramLM.from_arpa(str(arpa))
    assert list(lex.entries) == sorted(["the", "cat", "quartznet"], key=lambda w: -lm.log_prob(w))
    assert lex.entries["the"] == cmu_dictionary()["the"]
    assert load_lexicon(str(out)) == lex and lexicon.lexicon_beside(arpa) == out
    bad = tmp_path / "bad.lexicon.gz"
    bad.write_text("not gzip")
    with pytest.raises(ValueError, match="bad.lexicon.gz: not a pronunciation lexicon"):
        Lexicon.load(bad)


def test_training_lexicon_counts_guesses_and_skips(tmp_path):
    tok = train_tokenizer(["the cat", "the dacab", "route 66", "the"], "phone")
    assert list(tok.lexicon.entries) == ["the", "cat", "dacab", "route"]  # most frequent first
    assert tok.lexicon.g2p_words == ["dacab"] and tok.lexicon.failed == ["66"]


def test_phoneme_error_rate_of_best_paths_against_reference_pronunciations():
    from calc_metrics import phoneme_error_rate

    lex = Lexicon({"the": [("DH", "AH"), ("DH", "IY")], "cat": [("K", "AE", "T")]})
    # words outside the lexicon: CMUdict's first pronunciation, or none for a number
    refs = lexicon.spoken(["the cat", "the dog 12"], lex)
    assert refs == [["DH", "AH", "K", "AE", "T"], ["DH", "AH", "D", "AO", "G"]]
    tok = PhoneTokenizer(lex)
    hyps = [tok.phonemes(phones("DH | K AH T S")), tok.phonemes(phones("DH AH D AO G") + [len(tok.vocab)])]
    assert hyps == [["DH", "K", "AH", "T", "S"], ["DH", "AH", "D", "AO", "G"]]
    # a deletion (AH), a substitution (AE -> AH), an insertion (S) over 10 reference phonemes
    assert phoneme_error_rate(refs, hyps) == pytest.approx(3 / 10)
