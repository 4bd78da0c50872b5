import gzip
import math

import numpy as np
import pytest

from lm import BOS, EOS, LN10, NGramLM, build_kneser_ney, main, write_arpa
from tokenizer import normalize_text

# upper-case words as in LibriSpeech's ARPA files; log10 values
ARPA = """\\data\\
ngram 1=5
ngram 2=3
ngram 3=1

\\1-grams:
-1.0\t<UNK>\t0
-99\t<s>\t-0.5
-0.5\t</s>
-0.3\tTHE\t-0.2
-0.7\tCAT\t-0.1

\\2-grams:
-0.2\t<s> THE\t-0.3
-0.4\tTHE CAT\t-0.15
-0.6\tCAT </s>

\\3-grams:
-0.1\t<s> THE CAT

\\end\\
"""


@pytest.fixture(scope="module", params=["plain", "gz"])
def arpa_lm(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("arpa") / ("small.arpa" + (".gz" if request.param == "gz" else ""))
    with gzip.open(path, "wt") if request.param == "gz" else open(path, "w") as f:
        f.write(ARPA)
    return NGramLM.from_arpa(str(path))


def test_arpa_reader_backoff(arpa_lm):
    lm = arpa_lm
    assert lm.order == 3
    assert {"the", "cat", "<unk>", BOS, EOS} == set(lm.vocab)
    # trigram present: log10 P = -0.1
    assert lm.log_prob("cat", (BOS, "the")) == pytest.approx(-0.1 * LN10)
    # bigram present: -0.2
    assert lm.log_prob("the", (BOS,)) == pytest.approx(-0.2 * LN10)
    # "the the cat" absent, context "the the" absent (no weight), bigram "the cat": -0.4
    assert lm.log_prob("cat", ("the", "the")) == pytest.approx(-0.4 * LN10)
    # "the cat the" absent: bow(the cat) -0.15; "cat the" absent: bow(cat) -0.1; unigram the -0.3
    assert lm.log_prob("the", ("the", "cat")) == pytest.approx((-0.15 - 0.1 - 0.3) * LN10)
    # an unknown word is <unk>: "the <unk>" absent: bow(the) -0.2 + unigram <unk> -1.0
    assert lm.log_prob("dog", ("the",)) == pytest.approx((-0.2 - 1.0) * LN10)
    # only the last order-1 words of a long history count
    assert lm.log_prob("cat", ("cat", "cat", BOS, "the")) == pytest.approx(-0.1 * LN10)
    # case-insensitive queries
    assert lm.log_prob("CAT", (BOS, "THE")) == pytest.approx(-0.1 * LN10)
    # P(the|<s>) + P(cat|<s> the) + P(</s>|the cat) = -0.2 - 0.1 + (bow(the cat) -0.15 + P(</s>|cat) -0.6)
    assert lm.sentence_log_prob(["the", "cat"]) == pytest.approx((-0.2 - 0.1 - 0.15 - 0.6) * LN10)


def test_arpa_without_unk_uses_fixed_penalty(tmp_path):
    path = tmp_path / "no_unk.arpa"
    path.write_text(ARPA.replace("ngram 1=5", "ngram 1=4").replace("-1.0\t<UNK>\t0\n", ""))
    lm = NGramLM.from_arpa(str(path), unk_logp=-7.5)
    assert lm.log_prob("dog", ("the",)) == -7.5
    assert lm.log_prob("cat", (BOS, "the")) == pytest.approx(-0.1 * LN10)


CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat ate the fish",
    "The dog ate!",
    "a fish swam in the sea",
    "i saw san francisco",
    "san francisco is in california",
    "my glasses are on the table",
    "where are my glasses",
    "we saw san francisco",
    "he wore glasses",
    "she lost her glasses",
    "san francisco san francisco",
] * 2 + ["the end"]


def _all_contexts(ngrams):
    """Every seen context of every order (including the empty one), as word tuples."""
    contexts = {()}
    for table in ngrams[:-1]:
        contexts |= {g for g in table if g[-1] != EOS}
    return contexts


@pytest.mark.parametrize("prune,max_vocab", [(1, 0), (2, 0), (1, 12)])
def test_kneser_ney_distributions_sum_to_one(prune, max_vocab):
    ngrams = build_kneser_ney(CORPUS, order=3, prune=prune, max_vocab=max_vocab)
    lm = NGramLM.from_ngrams(ngrams)
    predicted = [w for w in lm.vocab if w != BOS]  # every word, <unk> and </s>
    if max_vocab:
        assert len(predicted) == max_vocab + 2
    for h in _all_contexts(ngrams):
        total = sum(math.exp(lm.log_prob(w, h)) for w in predicted)
        assert total == pytest.approx(1.0, abs=1e-9), h


def test_kneser_ney_prefers_words_seen_in_many_contexts():
    # "francisco" is as frequent as "glasses", but only ever follows "san"
    lm = NGramLM.from_ngrams(build_kneser_ney(CORPUS, order=3))
    assert lm.log_prob("francisco") < lm.log_prob("glasses")
    assert lm.log_prob("francisco", ("i", "saw")) < lm.log_prob("glasses", ("i", "saw"))
    assert lm.log_prob("francisco", ("saw", "san")) > lm.log_prob("glasses", ("saw", "san"))


def test_written_arpa_reads_back(tmp_path):
    ngrams = build_kneser_ney(CORPUS, order=3, prune=2)
    path = tmp_path / "kn.arpa.gz"
    write_arpa(ngrams, str(path))
    built, read = NGramLM.from_ngrams(ngrams), NGramLM.from_arpa(str(path))
    assert read.order == 3 and set(read.vocab) == set(built.vocab)
    for h in _all_contexts(ngrams) | {("san", "cat"), ("zebra",)}:
        for w in built.vocab:
            if w != BOS:
                assert read.log_prob(w, h) == pytest.approx(built.log_prob(w, h), abs=1e-5)


def test_normalize_text():
    assert normalize_text("Hello, World!  It's 'quoted' - fine.") == "hello world it's quoted fine"


def test_build_cli(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS) + "\n")
    out = tmp_path / "lm.arpa"
    main(["build", "--text", str(text), "--order", "2", "--out", str(out), "--min_count", "3"])
    lm = NGramLM.from_arpa(str(out))
    assert lm.order == 2
    assert "glasses" in lm.vocab and "swam" not in lm.vocab  # seen 8 and 2 times
    assert lm.log_prob("swam") == lm.log_prob("<unk>")


def test_word_trie():
    alphabet = ["", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    lm = NGramLM.from_ngrams(build_kneser_ney(["the then cat the", "don't"], order=1))
    trie = lm.word_trie(alphabet)

    def walk(word):
        state = np.array(0)
        for ch in word:
            state = trie.step(state, np.array(alphabet.index(ch)))
        return int(state)

    def next_chars(word):
        return {
            ch for t, ch in enumerate(alphabet[2:], 2) if trie.step(np.array(walk(word)), np.array(t)) >= 0
        }

    assert next_chars("") == {"t", "c", "d"}
    assert next_chars("the") == {"n"}
    assert next_chars("don") == {"'"}
    assert next_chars("cat") == set()
    assert walk("x") == -1 and walk("thex") == -1 and walk("catx") == -1
    assert trie.is_word[walk("the")] and trie.is_word[walk("then")] and not trie.is_word[walk("th")]
    # look-ahead: the best unigram below a state ("the" is seen twice, "then" once)
    assert lm.log_prob("the") > lm.log_prob("then")
    assert trie.best[walk("th")] == pytest.approx(lm.log_prob("the"))
    assert trie.best[walk("then")] == pytest.approx(lm.log_prob("then"))
    # tokens of several characters (word pieces) walk each character; states broadcast
    pieces = ["", " ", "th", "e", "n", "cat", "x"]
    piece_trie = lm.word_trie(pieces)
    states = piece_trie.step(np.zeros(3, np.int64), np.array([2, 5, 6]))  # "th", "cat", "x"
    assert states[2] == -1 and piece_trie.is_word[states[1]]
    assert piece_trie.is_word[piece_trie.step(states[:1], np.array([3]))[0]]  # "th" + "e"
