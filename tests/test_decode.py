import dataclasses
import itertools
from collections import defaultdict

import numpy as np
import pytest
from conftest import EXACT, collapse, random_log_probs

import decode
import fusion
from arpa import write_arpa
from decode import (
    DecodingOptions,
    decode_batch,
    decoder_pool,
    frame_candidates,
    greedy_decode,
    prefix_beam_search,
    prefix_beam_search_nbest,
)
from inference import format_table, grid_search_lm
from kneser_ney import build_kneser_ney
from lm import NGramLM
from tokenizer import Tokenizer

TOKENIZER = Tokenizer()
VOCAB = TOKENIZER.vocab


def ids_to_text(ids, vocab):
    return Tokenizer(vocab).decode(ids)


def spell(frames, floor=1e-4):
    """(T, V) log-probs from one {token or char: probability} dict per frame; the rest share a floor."""
    probs = np.full((len(frames), len(VOCAB)), floor)
    for t, frame in enumerate(frames):
        for k, p in frame.items():
            probs[t, VOCAB.index(k) if isinstance(k, str) else k] = p
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def spell_text(text, p=0.9, floor=1e-4):
    """Each character for one frame, then a blank frame."""
    return spell([f for ch in text for f in ({ch: p}, {0: p})], floor)


def labelling_totals(log_probs, key=lambda ids: ids):
    """log P of every labelling (under key), summing the probability of every alignment."""
    T, V = log_probs.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        k = key(collapse(path))
        totals[k] = np.logaddexp(totals.get(k, -np.inf), log_probs[np.arange(T), path].sum())
    return totals


def brute_force_best(log_probs, key=lambda ids: ids):
    """Most probable labelling (under key) by summing the probability of every alignment."""
    return max(labelling_totals(log_probs, key).items(), key=lambda kv: kv[1])


def test_greedy_hand_built():
    a, b = VOCAB.index("a"), VOCAB.index("b")
    frames = [{"a": 0.9}, {"a": 0.9}, {0: 0.9}, {"a": 0.9}, {"b": 0.9}, {"b": 0.9}, {0: 0.9}]
    assert greedy_decode(spell(frames)) == [a, a, b]  # repeats merged, a blank keeps a repeat
    assert greedy_decode(spell([{0: 0.9}] * 5)) == []
    assert greedy_decode(spell([{"c": 0.5}, {"c": 0.9}, {"a": 0.9}, {"t": 0.9}])) == [5, 3, 22]
    assert greedy_decode(np.zeros((0, len(VOCAB)))) == []


def test_beam_size_one_is_the_best_path():
    """One beam ranked by its prefix's summed probability stays on "a" (0.6 * (0.3 + 0.3): a blank or a
    repeat in frame 2) where the best path goes on to "ab" (0.6 * 0.4); beam_size=1 is the best path."""
    a, b = VOCAB.index("a"), VOCAB.index("b")
    log_probs = spell([{"a": 0.6, "b": 0.4}, {"b": 0.4, 0: 0.3, "a": 0.3}])
    one = DecodingOptions(beam_size=1)
    assert prefix_beam_search_nbest(log_probs, one)[0][0] == [a]  # what beam_size=1 must not return
    assert prefix_beam_search(log_probs, one) == prefix_beam_search(log_probs, one, vocab=VOCAB) == [a, b]
    rng = np.random.default_rng(0)
    for _ in range(8):
        log_probs = random_log_probs(rng, 50, len(VOCAB), scale=3.0)
        best_path = list(collapse(log_probs.argmax(axis=1)))  # best token per frame, merged, no blanks
        assert (
            prefix_beam_search(log_probs, one) == prefix_beam_search(log_probs, one, vocab=VOCAB) == best_path
        )


@pytest.mark.parametrize("seed", range(12))
def test_beam_search_finds_most_probable_labelling(seed):
    rng = np.random.default_rng(seed)
    T, V = int(rng.integers(1, 7)), int(rng.integers(3, 5))
    log_probs = random_log_probs(rng, T, V)
    best, best_logp = brute_force_best(log_probs)
    (ids, score), *_ = prefix_beam_search_nbest(log_probs, DecodingOptions(beam_size=2000, **EXACT))
    assert tuple(ids) == best
    assert score == pytest.approx(best_logp)

    # with a space token: labellings that differ only in spaces around words are the same text
    vocab = ["", " ", "a", "b"][:V]
    text = lambda ids: " ".join("".join(vocab[i] for i in ids).split())  # noqa: E731
    best, best_logp = brute_force_best(log_probs, text)
    (ids, score), *_ = prefix_beam_search_nbest(
        log_probs, DecodingOptions(beam_size=2000, **EXACT), vocab=vocab
    )
    assert text(ids) == best
    assert score == pytest.approx(best_logp)


def reference_beam_search(log_probs, beam_size, blank=0):
    """Textbook CTC prefix beam search over dicts: prefix -> [p_b, p_nb]; the beam_size best by total."""
    beams = {(): [0.0, -np.inf]}
    for lp in log_probs:
        nxt = defaultdict(lambda: [-np.inf, -np.inf])
        for prefix, (p_b, p_nb) in beams.items():
            total = np.logaddexp(p_b, p_nb)
            nxt[prefix][0] = np.logaddexp(nxt[prefix][0], total + lp[blank])
            if prefix:
                nxt[prefix][1] = np.logaddexp(nxt[prefix][1], p_nb + lp[prefix[-1]])
            for k in range(len(lp)):
                if k != blank:
                    before = p_b if prefix and prefix[-1] == k else total
                    nxt[prefix + (k,)][1] = np.logaddexp(nxt[prefix + (k,)][1], before + lp[k])
        beams = dict(sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam_size])
    return max(((list(p), np.logaddexp(*s)) for p, s in beams.items()), key=lambda x: x[1])


@pytest.mark.parametrize("seed", range(10))
def test_small_beams_match_reference_search(seed):
    # small beams prune prefixes that come back later: they must merge with their old children
    rng = np.random.default_rng(seed)
    log_probs = random_log_probs(rng, 12, 4)
    for beam_size in (2, 3, 5):
        ids, score = reference_beam_search(log_probs, beam_size)
        (got_ids, got_score), *_ = prefix_beam_search_nbest(
            log_probs, DecodingOptions(beam_size=beam_size, **EXACT)
        )
        assert got_ids == ids
        assert got_score == pytest.approx(score)


def test_nbest_scores_are_labelling_probabilities():
    rng = np.random.default_rng(0)
    log_probs = random_log_probs(rng, 4, 3)
    beams = prefix_beam_search_nbest(log_probs, DecodingOptions(beam_size=2000, **EXACT))
    # every labelling of 4 frames over 2 symbols is found and their probabilities sum to 1
    assert np.logaddexp.reduce([score for _, score in beams]) == pytest.approx(0.0)
    assert [s for _, s in beams] == sorted((s for _, s in beams), reverse=True)


def peaky_log_probs(rng, T=120):
    """CTC-like: mostly confident blanks, character spikes, some competing characters."""
    logits = rng.normal(size=(T, len(VOCAB)))
    target = np.where(rng.random(T) < 0.35, rng.integers(1, len(VOCAB), T), 0)
    logits[np.arange(T), target] += rng.uniform(5, 12, T)
    rival = np.flatnonzero(rng.random(T) < 0.2)
    logits[rival, rng.integers(1, len(VOCAB), len(rival))] = logits[rival, target[rival]] - rng.uniform(
        0, 1, len(rival)
    )
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(4))
def test_pruning_keeps_best_path(seed):
    log_probs = peaky_log_probs(np.random.default_rng(seed))
    (wide_ids, _), *_ = prefix_beam_search_nbest(
        log_probs, DecodingOptions(beam_size=64, **EXACT), vocab=VOCAB
    )
    (exact_ids, exact_score), *_ = prefix_beam_search_nbest(
        log_probs, DecodingOptions(beam_size=16, **EXACT), vocab=VOCAB
    )
    # default token floor, top-k, margin and blank skipping, at the same beam size
    (ids, score), *_ = prefix_beam_search_nbest(log_probs, DecodingOptions(beam_size=16), vocab=VOCAB)
    assert ids == exact_ids == wide_ids
    assert score == pytest.approx(exact_score, abs=1e-2)


def test_frame_candidates():
    log_probs = np.log(
        np.array(
            [
                [0.5, 0.3, 0.15, 0.05 - 1e-9, 1e-9],  # floor drops the last one, top_k=2 keeps 1 and 2
                [0.99999, 1e-5, 0, 0, 0],  # near-certain blank: skipped
                [0.1, 0.06, 0.05, 0.04, 0.75],
                [0.97, 0.01, 0.01, 0.005, 0.005],  # best is blank, nothing above the floor
            ]
        )
        + 1e-30
    )
    cands = frame_candidates(log_probs, blank=0, token_min_logp=np.log(0.02), top_k=2, blank_skip_logp=-1e-3)
    assert [c.tolist() for c in cands] == [[1, 2], [], [1, 4], []]
    cands = frame_candidates(log_probs, blank=0, token_min_logp=np.log(0.9), top_k=None, blank_skip_logp=0.0)
    assert [c.tolist() for c in cands] == [[], [], [4], []]  # the best token always stays


def kat_or_cat():
    """'the kat' by a hair over 'the cat', acoustically."""
    frames = [f for ch in "the " for f in ({ch: 0.9}, {0: 0.9})]
    frames += [{"k": 0.5, "c": 0.45}, {0: 0.9}]
    frames += [f for ch in "at" for f in ({ch: 0.9}, {0: 0.9})]
    return spell(frames)


@pytest.fixture(scope="module")
def cat_lm():
    return NGramLM.from_ngrams(
        build_kneser_ney(["the cat sat", "the cat ran", "a cat", "the dog sat"], order=3)
    )


def test_lm_fusion_prefers_likely_words(cat_lm):
    log_probs = kat_or_cat()
    assert (
        ids_to_text(prefix_beam_search(log_probs, DecodingOptions(beam_size=8), vocab=VOCAB), VOCAB)
        == "the kat"
    )
    fused = prefix_beam_search(
        log_probs, DecodingOptions(beam_size=8, alpha=0.5, beta=1.0), vocab=VOCAB, lm=cat_lm
    )
    assert ids_to_text(fused, VOCAB) == "the cat"
    # alpha = 0 and no unknown-word score leave only the word bonus, which both spellings get
    plain = prefix_beam_search(
        log_probs, DecodingOptions(beam_size=8, alpha=0.0, beta=1.0, unk_score=0.0), vocab=VOCAB, lm=cat_lm
    )
    assert ids_to_text(plain, VOCAB) == "the kat"
    # the partial word "k" starts no LM word: with unk_score -inf it is pruned as soon as it appears
    pruned = prefix_beam_search_nbest(
        log_probs, DecodingOptions(beam_size=8, unk_score=-np.inf), vocab=VOCAB, lm=cat_lm
    )
    texts = [ids_to_text(ids, VOCAB) for ids, _ in pruned]
    assert texts[0] == "the cat" and not any("k" in text for text in texts)
    unpruned = prefix_beam_search_nbest(log_probs, DecodingOptions(beam_size=8), vocab=VOCAB, lm=cat_lm)
    assert any("k" in ids_to_text(ids, VOCAB) for ids, _ in unpruned)


def test_lm_score_adds_up(cat_lm):
    # certain acoustics: the score is just alpha * log P_lm(sentence) + beta * words
    log_probs = spell_text("the cat", p=1.0, floor=1e-12)
    (ids, score), *_ = prefix_beam_search_nbest(
        log_probs, DecodingOptions(beam_size=4, alpha=0.7, beta=2.0), vocab=VOCAB, lm=cat_lm
    )
    assert ids_to_text(ids, VOCAB) == "the cat"
    assert score == pytest.approx(0.7 * cat_lm.sentence_log_prob(["the", "cat"]) + 2.0 * 2, abs=1e-6)


def run_on(words, space_p=0.3):
    """Each word spelled clearly, with a weak space between words (blank is likelier): greedy runs on."""
    frames = []
    for i, word in enumerate(words):
        if i:
            frames.append({" ": space_p, 0: 1 - space_p})
        frames += [f for ch in word for f in ({ch: 0.9}, {0: 0.9})]
    return spell(frames)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_lm_fusion_splits_run_on_words(cat_lm, alpha):
    log_probs = run_on(["the", "cat", "sat", "the", "dog", "ran"])
    assert ids_to_text(greedy_decode(log_probs), VOCAB) == "thecatsatthedogran"
    fused = prefix_beam_search(
        log_probs, DecodingOptions(beam_size=16, alpha=alpha, beta=1.0), vocab=VOCAB, lm=cat_lm
    )
    assert ids_to_text(fused, VOCAB) == "the cat sat the dog ran"


def fused_score(log_probs, text, lm, alpha, beta, unk_score):
    """log P_ctc(text) summed over every alignment by brute force, plus the LM terms of its words."""
    T, V = log_probs.shape
    ctc = -np.inf
    for path in itertools.product(range(V), repeat=T):
        if " ".join("".join(VOCAB_AB[i] for i in collapse(path)).split()) == text:
            ctc = np.logaddexp(ctc, log_probs[np.arange(T), path].sum())
    return ctc + lm_terms(text, lm, alpha, beta, unk_score)


def lm_terms(text, lm, alpha, beta, unk_score):
    """alpha * log P_lm(words) + beta * words + unk_score * the unknown characters of the words."""
    words = text.split()
    # characters of "word$" past its longest start shared with some "vocabulary word$"
    starts = {w[:i] for w in lm.vocab for w in [w + "$"] for i in range(len(w) + 1)}
    unknown = sum(
        len(w) - max(i for i in range(len(w) + 1) if w[:i] in starts) for w in (w + "$" for w in words)
    )
    return alpha * lm.sentence_log_prob(words) + beta * len(words) + unk_score * unknown


VOCAB_AB = ["", " ", "a", "b"]


@pytest.mark.parametrize("seed", range(6))
def test_fused_score_is_ctc_plus_lm_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    lm = NGramLM.from_ngrams(build_kneser_ney(["a b", "ab a", "b b a", "a ab"], order=2))  # no "ba", "bb"
    log_probs = random_log_probs(rng, 6, len(VOCAB_AB))
    alpha, beta, unk = rng.uniform(0.2, 2.0), rng.uniform(0, 3), -rng.uniform(1, 5)
    beams = prefix_beam_search_nbest(
        log_probs,
        DecodingOptions(beam_size=4000, alpha=alpha, beta=beta, unk_score=unk, **EXACT),
        vocab=VOCAB_AB,
        lm=lm,
    )
    texts = {" ".join("".join(VOCAB_AB[i] for i in ids).split()) for ids, _ in beams}
    assert len(texts) == len(beams)  # texts that differ only in spaces were merged
    for ids, score in beams[:5]:
        text = " ".join("".join(VOCAB_AB[i] for i in ids).split())
        assert score == pytest.approx(fused_score(log_probs, text, lm, alpha, beta, unk))
    best = max(texts, key=lambda text: fused_score(log_probs, text, lm, alpha, beta, unk))
    assert " ".join("".join(VOCAB_AB[i] for i in beams[0][0]).split()) == best


# word pieces: a token that begins with " " begins a word; " " alone is a word start with no piece
PIECES = ["", " ", " a", " ab", "b", "ba"]


def piece_labelling(ids, vocab=PIECES):
    """A labelling as the search gives it: no space at either end, after another space, or before a
    token that begins a word itself (the text is the same without it)."""
    space, out = vocab.index(" "), []
    for t in ids:
        if vocab[t].startswith(" ") and out and out[-1] == space:
            out.pop()
        if t != space or out:
            out.append(t)
    return tuple(out[:-1] if out and out[-1] == space else out)


def piece_text(ids, vocab=PIECES):
    return Tokenizer(vocab).decode(ids)


@pytest.mark.parametrize("seed", range(6))
def test_word_piece_search_is_exact_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    log_probs = random_log_probs(rng, int(rng.integers(2, 6)), len(PIECES))
    totals = labelling_totals(log_probs, piece_labelling)
    beams = prefix_beam_search_nbest(log_probs, DecodingOptions(beam_size=10_000, **EXACT), vocab=PIECES)
    assert len(beams) == len(totals)  # each labelling once: with and without a silent space merged
    for ids, score in beams:
        assert score == pytest.approx(totals[tuple(ids)])

    # with an LM: the words of the pieces are scored, and unknown characters counted one by one
    lm = NGramLM.from_ngrams(build_kneser_ney(["a b", "ab a", "b b a", "a ab"], order=2))  # no "ba", "aba"
    alpha, beta, unk = rng.uniform(0.2, 2.0), rng.uniform(0, 3), -rng.uniform(1, 5)
    fused = {k: v + lm_terms(piece_text(k), lm, alpha, beta, unk) for k, v in totals.items()}
    beams = prefix_beam_search_nbest(
        log_probs,
        DecodingOptions(beam_size=10_000, alpha=alpha, beta=beta, unk_score=unk, **EXACT),
        vocab=PIECES,
        lm=lm,
    )
    assert len(beams) == len(fused)
    for ids, score in beams:
        assert score == pytest.approx(fused[tuple(ids)])
    assert tuple(beams[0][0]) == max(fused, key=fused.get)


# log10 values, a bigram model; "the" and "there" are words, "re" is not
PIECE_ARPA = """\\data\\
ngram 1=6
ngram 2=2

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.3
-0.7\t</s>
-0.6\tthe\t-0.2
-1.2\tthere
-0.9\tcat

\\2-grams:
-0.4\t<s> the
-0.3\tthe cat

\\end\\
"""


def test_lm_fusion_scores_the_words_of_word_pieces(tmp_path):
    path = tmp_path / "pieces.arpa"
    path.write_text(PIECE_ARPA)
    lm = NGramLM.from_arpa(str(path), cache=False)
    vocab = ["", " ", " the", "re", " ca", "t", "ts"]
    alpha, beta, unk = 0.7, 2.0, -1.5

    def score_of(pieces):
        """The fused score of certain acoustics: one frame per piece, then a blank."""
        frames = [f for piece in pieces for f in ({vocab.index(piece): 1.0}, {0: 1.0})]
        probs = np.full((len(frames), len(vocab)), 1e-12)
        for t, frame in enumerate(frames):
            for k, p in frame.items():
                probs[t, k] = p
        log_probs = np.log(probs / probs.sum(axis=1, keepdims=True))
        (ids, score), *_ = prefix_beam_search_nbest(
            log_probs, DecodingOptions(beam_size=8, alpha=alpha, beta=beta, unk_score=unk), vocab=vocab, lm=lm
        )
        assert [vocab[i] for i in ids] == pieces
        return score

    ln = np.log(10)
    # P(the | <s>) P(cat | the) P(</s> | cat), each a listed n-gram but the last: back-off 0 of "cat"
    assert score_of([" the", " ca", "t"]) == pytest.approx(
        alpha * (-0.4 - 0.3 - 0.7) * ln + 2 * beta, abs=1e-6
    )
    # one word "there", never "the" + "re": back-off of <s> + P(there), then P(</s>)
    assert score_of([" the", "re"]) == pytest.approx(alpha * (-0.3 - 1.2 - 0.7) * ln + beta, abs=1e-6)
    # "cats" leaves the vocabulary at its "s", half way through the piece "ts": one unknown
    # character, and one more for ending as no word; the LM scores it as <unk>
    assert score_of([" ca", "ts"]) == pytest.approx(
        alpha * (-0.3 - 1.0 - 0.7) * ln + beta + 2 * unk, abs=1e-6
    )


def test_leaving_the_vocabulary_pays_unk_score_and_keeps_the_look_ahead(cat_lm):
    scorer = fusion.LMScorer(cat_lm, VOCAB, alpha=0.8, beta=1.0, unk_score=-2.5)
    trie, tok = scorer.trie, np.array([VOCAB.index(ch) for ch in "caxy"])
    c = trie.step(np.array([0]), tok[:1])
    ca = trie.step(c, tok[1:2])
    (cax,), (change,) = scorer.extend(ca, tok[2:3])
    assert cax < 0 and change == -2.5  # not a refund of "ca"'s look-ahead
    (caxy,), (change,) = scorer.extend(np.array([cax]), tok[3:4])
    assert caxy == cax and change == -2.5
    assert scorer.look[caxy] == scorer.look[ca][0] == 0.8 * cat_lm.log_prob("cat")


def test_the_scorers_node_tables_grow_together_past_a_jump_in_node_ids(cat_lm):
    """A frame of a wide beam can make more new prefixes than the tables hold: each per-node table
    must then cover the largest node id, not only double."""
    scorer = fusion.LMScorer(cat_lm, VOCAB, alpha=0.8, beta=1.0, unk_score=-2.5)
    space, c = VOCAB.index(" "), VOCAB.index("c")
    scorer.add_words(np.array([5000]), np.array([1]), np.array([space]), np.array([c]))
    tables = (scorer.word_start, scorer.context, scorer.ended, scorer.context_after)
    assert all(len(table) > 5000 for table in tables)


def test_larger_lm_weight_degrades_gracefully(cat_lm):
    # a clear acoustic path with words outside the LM: no alpha may empty the output or drop words,
    # and the lexicon-constrained search still gives vocabulary words
    log_probs = spell_text("the cat sat on the mat")
    previous = "the cat sat on the mat"
    for alpha in np.linspace(0.0, 2.0, 9):
        options = DecodingOptions(beam_size=16, alpha=alpha, beta=1.0)
        text = ids_to_text(prefix_beam_search(log_probs, options, VOCAB, cat_lm), VOCAB)
        assert len(text.split()) == 6 and sum(a != b for a, b in zip(text, previous)) <= 4, (alpha, text)
        previous = text
        vocabulary_only = dataclasses.replace(options, unk_score=-np.inf)
        text = ids_to_text(prefix_beam_search(log_probs, vocabulary_only, VOCAB, cat_lm), VOCAB)
        assert len(text.split()) >= 4 and set(text.split()) <= set(cat_lm.vocab), (alpha, text)


WORDS = ["one", "two", "three", "four", "five", "six", "seventeen"]


def texts(log_probs_list, options, pool=None):
    return [TOKENIZER.decode(ids) for ids in decode_batch(log_probs_list, VOCAB, options, pool)]


def test_decode_batch_keeps_input_order(tmp_path):
    utterances = [spell_text(w) for w in WORDS]
    assert texts(utterances, DecodingOptions("greedy", 1)) == WORDS
    with decoder_pool("", num_workers=2) as pool:
        assert texts(utterances, DecodingOptions("beam", 8), pool) == WORDS
    path = tmp_path / "words.arpa"
    write_arpa(build_kneser_ney(WORDS + ["the cat sat"], order=2), str(path))
    utterances.append(kat_or_cat())
    with decoder_pool(str(path), num_workers=2) as pool:
        assert texts(utterances, DecodingOptions("beam_lm", 8, lm=str(path)), pool) == WORDS + ["the cat"]
    with pytest.raises(ValueError):
        texts(utterances, DecodingOptions("nope", 8))
    with pytest.raises(ValueError, match="needs an LM"):
        texts(utterances, DecodingOptions("beam_lm", 8))


def test_decode_batch_reuses_workers_and_reports_errors(tmp_path):
    utterances = [spell_text(w) for w in WORDS[:3]]
    path = tmp_path / "words.arpa"
    write_arpa(build_kneser_ney(WORDS, order=2), str(path))
    options = DecodingOptions("beam_lm", 4, lm=str(path))
    with decoder_pool(str(path), num_workers=2) as pool:
        workers = sorted(p.pid for p in pool._pool)
        assert texts(utterances, options, pool) == WORDS[:3]
        assert texts(utterances[::-1], options, pool) == WORDS[2::-1]
        assert sorted(p.pid for p in pool._pool) == workers  # the workers and their LM are kept between calls
    # a failed LM load in the workers is raised here (a failing pool initializer would hang instead)
    missing = DecodingOptions("beam_lm", 4, lm=str(tmp_path / "missing.arpa"))
    with decoder_pool(missing.lm, num_workers=2) as pool, pytest.raises(FileNotFoundError):
        texts(utterances, missing, pool)
    with pytest.raises(FileNotFoundError):
        texts(utterances, missing)


def test_recombination_drops_only_beams_that_trail_one_of_their_key_in_both_log_probs():
    keys = np.array([5, 7, 5, 5, 7, 9])
    p_b = np.log([0.4, 0.1, 0.2, 0.5, 0.1, 0.3])
    p_nb = np.log([0.4, 0.3, 0.1, 0.1, 0.2, 0.3])
    # key 5: row 0 is the best (0.8); row 2 trails it in both, row 3 has the larger p_b: kept;
    # key 7: row 4 ties row 1 in p_b and trails it in p_nb: dropped
    assert decode._recombine(keys, p_b, p_nb).tolist() == [0, 1, 3, 5]
    assert decode._recombine(np.array([1, 2, 3]), p_b[:3], p_nb[:3]) is None  # no key twice


def test_options_reach_the_search(tmp_path):
    # the LM makes "the kat" "the cat", unless the token floor keeps "c" (log 0.45) out of its frame:
    # the options travel whole through decode_batch and decode to the search
    path = tmp_path / "cat.arpa"
    write_arpa(build_kneser_ney(["the cat sat", "the cat ran", "a cat", "the dog sat"], order=3), str(path))
    options = DecodingOptions("beam_lm", 8, lm=str(path))
    assert texts([kat_or_cat()], options) == ["the cat"]
    assert texts([kat_or_cat()], dataclasses.replace(options, token_min_logp=-0.7)) == ["the kat"]
    assert texts([kat_or_cat()], dataclasses.replace(options, decoder="beam")) == ["the kat"]


def test_grid_search_lm(tmp_path):
    path = tmp_path / "cat.arpa"
    write_arpa(build_kneser_ney(["the cat sat", "the cat ran", "a cat", "the dog sat"], order=3), str(path))
    utterances = [kat_or_cat(), spell_text("the dog")]
    options = DecodingOptions("beam_lm", 8, lm=str(path), unk_score=0.0)  # alpha 0: acoustics only
    grid = [dict(alpha=0.0, beta=0.5), dict(alpha=1.0, beta=0.5)]
    rows = grid_search_lm(utterances, ["the cat", "the dog"], TOKENIZER, options, grid)
    assert [(r["alpha"], r["beta"]) for r in rows] == [(0.0, 0.5), (1.0, 0.5)]
    assert rows[0]["wer"] == pytest.approx(0.25) and rows[1]["wer"] == 0.0
    assert rows[1]["cer"] == 0.0 < rows[0]["cer"]


def test_search_grid_line_searches_a_big_grid_with_few_evaluations():
    from inference import search_grid

    calls = []

    def evaluate(points):
        calls.extend(points)
        return [
            dict(p, wer=(p["alpha"] - 1.2) ** 2 + abs(p["beta"] - 3) + 0.1 * p["unk"] ** 2, cer=0.0)
            for p in points
        ]

    axes = dict(alpha=[0.2, 0.6, 1.2, 2.0], beta=[0, 1, 2, 3, 4, 5], unk=[-2.0, -1.0, 0.0])
    best, rows = search_grid(evaluate, axes, dict(alpha=0.6, beta=1.0, unk=-1.0))
    assert best == dict(alpha=1.2, beta=3, unk=0.0)
    assert len(rows) == len(calls) == len({tuple(p.values()) for p in calls}) < 4 * 6 * 3  # none twice


def test_search_grid_decodes_a_small_grid_whole_and_finds_what_line_search_misses():
    """A valley along the diagonal: from (1.0, 1.0) each line alone finds nothing better than (1.0, 0.5)
    (value 1), but the grid's best is (0.6, 0) (value 0), which only the whole grid shows."""
    from inference import search_grid

    table = {(0.6, 0.0): 0, (0.8, 0.0): 3, (1.0, 0.0): 3, (0.6, 0.5): 3, (0.8, 0.5): 2, (1.0, 0.5): 1,
             (0.6, 1.0): 3, (0.8, 1.0): 3, (1.0, 1.0): 2}  # fmt: skip
    calls = []

    def evaluate(points):
        calls.extend(points)
        return [dict(p, wer=table[p["alpha"], p["beta"]], cer=0.0) for p in points]

    axes = dict(alpha=[0.6, 0.8, 1.0], beta=[0.0, 0.5, 1.0])
    best, rows = search_grid(evaluate, axes, dict(alpha=1.0, beta=1.0))
    assert best == dict(alpha=0.6, beta=0.0) and len(rows) == len(calls) == 9
    calls.clear()  # one round of line search costs 6 decodings, fewer than the grid's 9: it searches lines
    best, _ = search_grid(evaluate, axes, dict(alpha=1.0, beta=1.0), rounds=1)
    assert best == dict(alpha=1.0, beta=0.5) and len(calls) < 9


def test_format_table():
    rows = [
        dict(alpha=0.5, beta=1.0, wer=0.1, cer=0.05),
        dict(alpha=1.0, beta=0.0, unk_score=-3.0, wer=0.08, cer=0.04),
    ]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4 and "alpha" in lines[0]
    assert "8.00%" in lines[3] and lines[3].endswith("*") and not lines[2].endswith("*")


@pytest.mark.parametrize("decoder", ["beam", "beam_lm"])
def test_hotwords_find_a_word_the_search_misses_and_change_nothing_else(decoder):
    """The word "cat" is a hair less likely than "kat" and not in the LM, which with unk_score
    lexicon cannot spell it at all: listed, it is found; other utterances read as before, those
    with its first letters ("cap") or a clear "kat" too."""
    lm = NGramLM.from_ngrams(build_kneser_ney(["the kat sat", "the dog sat", "a dog", "the cap"], order=2))
    unrelated = [spell_text("the cap"), spell_text("a dog sat"), spell_text("the kat sat")]
    plain = DecodingOptions(decoder, 8, unk_score=-np.inf if decoder == "beam_lm" else -3.0)
    listed = DecodingOptions(**{**plain.__dict__, "hotwords": "cat, Quartz"})
    assert TOKENIZER.decode(decode.decode(kat_or_cat(), VOCAB, plain, lm)) == "the kat"
    assert TOKENIZER.decode(decode.decode(kat_or_cat(), VOCAB, listed, lm)) == "the cat"
    for log_probs in unrelated:
        assert decode.decode(log_probs, VOCAB, listed, lm) == decode.decode(log_probs, VOCAB, plain, lm)


def test_hotwords_read_from_a_list_or_a_file(tmp_path):
    (tmp_path / "words.txt").write_text("QuartzNet\nNew York, cat\n\ncat\n")
    assert decode.read_hotwords(str(tmp_path / "words.txt")) == ("quartznet", "new", "york", "cat")
    assert decode.read_hotwords("cat, dog,") == ("cat", "dog") and decode.read_hotwords("") == ()
