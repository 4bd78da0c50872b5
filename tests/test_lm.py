import gzip
import math
import os
from collections import Counter

import numpy as np
import pytest
from conftest import python

import kneser_ney
from arpa import ARPA_DECIMALS, BOS, EOS, LN10, read_arpa, write_arpa
from fusion import spelling_trie
from kneser_ney import build_kneser_ney, corpus_ids
from lm import BINARY_SUFFIX, NGramLM, main
from recipes import corpus
from tokenizer import TEXT_RULES, normalize_text

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


def _table_counts(tables, words):
    """count_ngrams' tables as {n-gram: raw count} and {n-gram: its suffix}, n-grams as word tuples."""
    counts, suffixes = {}, {}
    grams = [(w,) for w in words]  # the rows of the latest table, as words
    for n, table in enumerate(tables):
        if n:
            rows = [grams[c] + (words[w],) for c, w in zip(table["context"], table["word"])]
            suffixes.update((g, grams[s]) for g, s in zip(rows, table["suffix"]))
            grams = rows
        counts.update((g, int(c)) for g, c in zip(grams, table["count"]))
    return counts, suffixes


def test_count_ngrams_by_hand():
    words, ids = corpus_ids(["a b a", "B A!", "c"], max_vocab=2)  # "c" is the rarest: <unk>
    assert words == [BOS, EOS, "<unk>", "a", "b"]
    assert ids.tolist() == [0, 3, 4, 3, 1, 0, 4, 3, 1, 0, 2, 1]
    counts, suffixes = _table_counts(kneser_ney.count_ngrams(ids, 3, len(words), eos=1), words)
    assert {g: c for g, c in counts.items() if c} == {
        (BOS,): 3, (EOS,): 3, ("<unk>",): 1, ("a",): 3, ("b",): 2,
        (BOS, "a"): 1, ("a", "b"): 1, ("b", "a"): 2, ("a", EOS): 2, (BOS, "b"): 1,
        (BOS, "<unk>"): 1, ("<unk>", EOS): 1,
        (BOS, "a", "b"): 1, ("a", "b", "a"): 1, ("b", "a", EOS): 2, (BOS, "b", "a"): 1,
        (BOS, "<unk>", EOS): 1,
    }  # fmt: skip
    # nothing crosses a sentence end, and unseen words still get a unigram row
    assert ("a", EOS, BOS) not in counts and (EOS, BOS) not in counts and counts[("a",)] == 3
    # continuation counts come from the suffix links: "b a" completes 2 distinct trigrams
    assert sorted(g for g, s in suffixes.items() if s == ("b", "a")) == [(BOS, "b", "a"), ("a", "b", "a")]
    assert suffixes[("b", "a", EOS)] == ("a", EOS)


@pytest.mark.parametrize(
    "order,prune,max_vocab,unk_counts",
    [
        (3, 1, 0, False),
        (3, 2, 0, False),
        (3, 1, 12, False),
        (3, 2, 12, True),
        (4, 1, 0, False),
        (4, [1, 1, 2, 2], 0, False),
        (4, [1, 2, 2, 3], 10, False),
        (4, [1, 1, 2, 2], 10, True),
    ],
)
def test_kneser_ney_distributions_sum_to_one(order, prune, max_vocab, unk_counts):
    ngrams = build_kneser_ney(CORPUS, order=order, prune=prune, max_vocab=max_vocab, unk_counts=unk_counts)
    lm = NGramLM.from_ngrams(ngrams)
    assert lm.order == order
    if prune != 1:  # kept n-grams were seen at least their order's cut-off times
        cutoffs = [prune] * order if isinstance(prune, int) else prune
        counts = Counter()
        for s in CORPUS:
            ids = [BOS] + [w if w in lm.vocab else "<unk>" for w in normalize_text(s).split()] + [EOS]
            counts.update(tuple(ids[i : i + n]) for n in range(2, order + 1) for i in range(len(ids) - n + 1))
        assert all(counts[g] >= cutoffs[len(g) - 1] for table in ngrams[1:] for g in table)
        assert len(ngrams[-1]) < sum(1 for g in counts if len(g) == order)
    predicted = [w for w in lm.vocab if w != BOS]  # every word, <unk> and </s>
    if max_vocab:
        assert len(predicted) == max_vocab + 2
    for h in _all_contexts(ngrams):
        total = sum(math.exp(lm.log_prob(w, h)) for w in predicted)
        assert total == pytest.approx(1.0, abs=1e-9), h


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_queries_at_once_give_the_back_off_by_hand(order):
    # the decoder asks many queries in one call: histories of any length (only the last order - 1
    # words count: the scalar code before it kept one word of two for a 4-gram), padded on the left
    # with -1; calls this small are answered from a cache the second time
    ngrams = build_kneser_ney(CORPUS, order=order)
    lm = NGramLM.from_ngrams(ngrams)

    def by_hand(word, history):
        backoff, history = 0.0, history[max(len(history) - order + 1, 0) :] if order > 1 else ()
        for start in range(len(history)):  # the longest history first
            context = history[start:]
            if context + (word,) in ngrams[len(context)]:
                return backoff + ngrams[len(context)][context + (word,)][0]
            backoff += ngrams[len(context) - 1].get(context, (0.0, 0.0))[1]
        return backoff + ngrams[0][(word,)][0]

    rng = np.random.default_rng(order)
    words = [w for w in lm.vocab if w != BOS]
    histories = sorted(_all_contexts(ngrams)) + [("fish", "the"), ("dog",), (BOS, "a"), ("a", "cat", "sat")]
    for size in (1, 7, 60):
        queries = [(str(rng.choice(words)), histories[rng.integers(len(histories))]) for _ in range(size)]
        ids = np.array([lm.vocab[w] for w, _ in queries])
        rows = np.array([[-1] * (3 - len(h)) + [lm.vocab[w] for w in h] for _, h in queries]).reshape(size, 3)
        got = lm.log_probs(ids, rows).tolist()
        assert got == pytest.approx([by_hand(w, h) for w, h in queries], abs=1e-12)
        assert lm.log_probs(ids, rows).tolist() == got


def test_unk_is_as_unlikely_as_an_unseen_word():
    # a decoder that spells freely scores misspellings as <unk>: it must not be likelier than real words
    closed = NGramLM.from_ngrams(build_kneser_ney(CORPUS, order=3, max_vocab=8, unk_counts=True))
    lm = NGramLM.from_ngrams(build_kneser_ney(CORPUS, order=3, max_vocab=8))
    assert lm.log_prob("zebra") == min(lm.log_prob(w) for w in lm.vocab if w != BOS)
    for h in [(), ("the",), (BOS, "the"), ("swam", "in")]:  # "swam" is <unk> too
        assert lm.log_prob("zebra", h) < closed.log_prob("zebra", h) - 1
    assert closed.log_prob("zebra") > closed.log_prob("dog")  # <unk> stands for 30 rarer words there


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
    rounding = 0.5 * 10.0**-ARPA_DECIMALS * LN10  # the most a written value may be off (natural log)
    for h in _all_contexts(ngrams) | {("san", "cat"), ("zebra",)}:
        for w in built.vocab:
            if w != BOS:  # a probability backed off twice adds up three written values
                assert read.log_prob(w, h) == pytest.approx(built.log_prob(w, h), abs=3 * rounding)
    words, tables = read_arpa(str(path))  # and each value is the built one rounded, no further off
    for n, (table, (ids, logp, backoff)) in enumerate(zip(ngrams, tables), start=1):
        assert len(ids) == len(table)
        for gram, p, b in zip(np.asarray(words, dtype=object)[ids].tolist(), logp, backoff):
            want_p, want_b = table[tuple(gram)]
            written = [(p, want_p)] + [(b, want_b)] * (n < len(ngrams))  # the last order has no back-off
            for got, want in written:
                if want > -90 * LN10:  # -inf and ARPA's -99 (<s>) are written as -99
                    assert got == pytest.approx(round(want / LN10, ARPA_DECIMALS) * LN10, abs=1e-9)


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
    # an order whose n-grams are all pruned away is a model still: it backs off to the order below
    pruned = tmp_path / "pruned.arpa"
    main(["build", "--text", str(text), "--order", "3", "--prune", "1", "1", "99", "--out", str(pruned)])
    lm = NGramLM.from_arpa(str(pruned))
    assert lm.counts[2] == 0 and lm.log_prob("sat", ("the", "cat")) == lm.log_prob("sat", ("cat",)) < 0
    # as a user runs it: a missing or empty file is one error line, exit 1, and nothing written;
    # a bad order is a usage error
    (tmp_path / "empty.txt").write_text("\n")
    for command, code, message in (
        (["build", "--text", "missing.txt"], 1, "error: [Errno 2] No such file or directory: 'missing.txt'"),
        (["build", "--text", str(tmp_path / "empty.txt")], 1, "no words to build an LM from"),
        (["build", "--text", str(text), "--order", "0"], 2, "--order 0 --prune 1: an order of at least 1"),
        (
            ["lexicon", "--lm", "missing.arpa"],
            1,
            "error: [Errno 2] No such file or directory: 'missing.arpa'",
        ),
    ):
        run = python("lm.py", *command, "--out", str(tmp_path / "new"))
        assert run.returncode == code and message in run.stderr.splitlines()[-1], run.stderr
        assert not (tmp_path / "new").exists()


def test_word_trie():
    alphabet = ["", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    lm = NGramLM.from_ngrams(build_kneser_ney(["the then cat the", "don't"], order=1))
    trie = spelling_trie(lm, alphabet)

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
    piece_trie = spelling_trie(lm, pieces)
    states = piece_trie.step(np.zeros(3, np.int64), np.array([2, 5, 6]))  # "th", "cat", "x"
    assert states[2] == -1 and piece_trie.is_word[states[1]]
    assert piece_trie.is_word[piece_trie.step(states[:1], np.array([3]))[0]]  # "th" + "e"


def test_word_trie_walks_word_pieces():
    lm = NGramLM.from_ngrams(build_kneser_ney(["the then cat the"], order=1))
    pieces = ["", " ", " th", "e", "en", " cat", "xe", "ex"]
    trie = spelling_trie(lm, pieces)
    th = trie.step(np.array(0), np.array(2))  # a word-beginning piece reads its characters after " "
    the = trie.step(th, np.array(3))
    assert th > 0 and trie.is_word[the] and trie.is_word[trie.step(th, np.array(4))]  # "then"
    assert trie.step(np.array(0), np.array(1)) == 0  # " " alone reads nothing
    # leaving the trie part way: the last state inside, and how many characters were read outside
    # (a word that left the trie after state s is in word state -1 - s, and walks no further)
    states, outside = trie.walk(np.array([the, th, the, -1 - th]), np.array([6, 7, 3, 3]))
    assert states.tolist() == [-1 - the, -1 - the, -1 - the, -1 - th] and outside.tolist() == [2, 1, 1, 1]


def test_binary_cache_gives_the_arpa_scores(tmp_path, monkeypatch):
    ngrams = build_kneser_ney(CORPUS, order=4, prune=[1, 1, 2, 2])
    path = tmp_path / "kn.arpa.gz"
    write_arpa(ngrams, str(path))
    parsed = NGramLM.from_arpa(str(path), cache=False)
    NGramLM.from_arpa(str(path))  # parses, and writes the binary beside the file
    binary = str(path) + BINARY_SUFFIX
    assert os.path.exists(binary)

    def no_parsing(*args):
        raise AssertionError("the binary should have been used")

    monkeypatch.setattr("lm.read_arpa", no_parsing)
    loaded = NGramLM.from_arpa(str(path))
    assert not loaded._keys[0].flags.writeable  # mapped from the read-only file, not read into memory
    assert (loaded.order, loaded.words, loaded.counts) == (parsed.order, parsed.words, parsed.counts)
    for h in _all_contexts(ngrams) | {("san", "cat", "zebra"), ()}:
        for w in parsed.vocab:
            if w != BOS:
                assert loaded.log_prob(w, h) == parsed.log_prob(w, h)
    assert loaded.sentence_log_prob(["i", "saw", "a", "zebra"]) == parsed.sentence_log_prob(
        ["i", "saw", "a", "zebra"]
    )
    alphabet = ["", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    t1, t2 = spelling_trie(loaded, alphabet), spelling_trie(parsed, alphabet)
    for name in ("best", "is_word", "child"):
        assert np.array_equal(getattr(t1, name), getattr(t2, name))

    # the binary belongs to the ARPA file's content, not its mtime: touching the file keeps it...
    os.utime(binary, (os.path.getmtime(path) - 10,) * 2)
    assert NGramLM.from_arpa(str(path)).counts == parsed.counts
    # ...and another model put in its place with an older mtime (cp -p, tar, unzip) is read again
    write_arpa(build_kneser_ney(CORPUS[:5], order=2), str(path))
    os.utime(path, (os.path.getmtime(binary) - 100,) * 2)
    with pytest.raises(AssertionError, match="binary"):
        NGramLM.from_arpa(str(path))
    monkeypatch.undo()
    assert NGramLM.from_arpa(str(path)).order == 2  # and the binary made again from it
    assert NGramLM.from_binary(binary).order == 2
    # ...and so is a binary made under other text rules: its words were normalised differently
    monkeypatch.setattr("lm.read_arpa", no_parsing)
    assert NGramLM.from_arpa(str(path)).order == 2  # the binary, still good
    monkeypatch.setattr("lm.TEXT_RULES", TEXT_RULES + 1)
    with pytest.raises(AssertionError, match="binary"):
        NGramLM.from_arpa(str(path))
    monkeypatch.undo()
    # a damaged binary is made again, not trusted
    with open(binary, "r+b") as f:
        f.write(b"garbage!")
    assert NGramLM.from_arpa(str(path)).order == 2 and NGramLM.from_binary(binary).order == 2


def _arpa_lines(n_words: int) -> str:
    """A unigram ARPA model of n_words words."""
    rows = "".join(f"-{1 + i / n_words:.4f}\tw{i}\n" for i in range(n_words))
    return f"\\data\\\nngram 1={n_words}\n\n\\1-grams:\n{rows}\n\\end\\\n"


@pytest.mark.parametrize("name", ["lm.arpa", "lm.arpa.gz"])
def test_a_language_model_cut_short_is_refused_and_never_cached(tmp_path, name):
    """A download or copy that stopped part way: the header promises more n-grams than the body holds
    (plain), or the compressed stream ends early (.gz). Either is one ValueError naming the file (and
    for a plain file the counts), and no binary cache is written that a later run could trust."""
    whole = _arpa_lines(3000).encode()
    path = tmp_path / name
    path.write_bytes(whole[: len(whole) // 2] if name == "lm.arpa" else gzip.compress(whole)[:-2000])
    with pytest.raises(ValueError) as e:
        NGramLM.from_arpa(str(path))
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message and "--lm" in message
    if name == "lm.arpa":
        kept = len([line for line in whole[: len(whole) // 2].decode().splitlines() if line.startswith("-")])
        assert f"1-grams: 3000 in the header, {kept} found" in message
    assert not os.path.exists(str(path) + BINARY_SUFFIX)
    # the whole file, even with an older mtime than anything before, reads
    path.write_bytes(whole if name == "lm.arpa" else gzip.compress(whole))
    os.utime(path, (1_000_000_000,) * 2)
    assert NGramLM.from_arpa(str(path)).counts == [3000]


def test_more_ngrams_than_the_header_promises_or_a_garbled_line_are_refused(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text(ARPA.replace("ngram 3=1", "ngram 3=0"))
    with pytest.raises(ValueError, match="3-grams: 0 in the header, 1 found"):
        NGramLM.from_arpa(str(path), cache=False)
    path.write_text(ARPA.replace("-0.4\tTHE CAT", "minus\tTHE CAT"))
    with pytest.raises(ValueError, match=r"lm.arpa: line 15 is not an n-gram \('minus"):
        NGramLM.from_arpa(str(path), cache=False)


def test_upper_case_arpa_scores_as_its_lower_case_copy(tmp_path):
    """LibriSpeech's official LMs (3-gram.pruned.3e-7.arpa.gz ...) spell words in capitals; their words
    are normalised like every other text here, accents and curly apostrophes included."""
    upper = (
        ARPA.replace("CAT", "CAFÉ")
        .replace("ngram 1=5", "ngram 1=6")
        .replace("-0.7\tCAFÉ\t-0.1\n", "-0.7\tCAFÉ\t-0.1\n-0.9\tDON’T\n")
    )
    lower = (
        upper.replace("<UNK>", "<unk>")
        .replace("THE", "the")
        .replace("CAFÉ", "cafe")
        .replace("DON’T", "don't")
    )
    assert "THE" in upper and "THE" not in lower
    (tmp_path / "upper.arpa").write_text(upper)
    (tmp_path / "lower.arpa").write_text(lower)
    a, b = NGramLM.from_arpa(str(tmp_path / "upper.arpa")), NGramLM.from_arpa(str(tmp_path / "lower.arpa"))
    assert a.words == b.words and set(a.words) == {"<unk>", BOS, EOS, "the", "cafe", "don't"}
    for h in [(), (BOS,), ("the",), (BOS, "the"), ("the", "cafe"), ("don't",)]:
        for w in ["the", "cafe", "don't", EOS, "dog"]:
            assert a.log_prob(w, h) == b.log_prob(w, h), (w, h)
    assert a.log_prob("cafe", (BOS, "the")) == pytest.approx(-0.1 * LN10)  # the trigram, found


def test_two_spellings_of_one_word_read_as_one_word_and_the_first_entry_counts(tmp_path):
    """An ARPA file with both MR and MISTER (LibriSpeech's LMs, or one built before titles were spelled
    out): both are the word "mister", and its n-grams keep the file's first entry."""
    both = ARPA.replace("ngram 1=5", "ngram 1=7").replace(
        "-0.7\tCAT\t-0.1\n", "-0.7\tCAT\t-0.1\n-1.5\tMISTER\n-1.2\tMR.\n"
    )
    (tmp_path / "both.arpa").write_text(both)
    lm = NGramLM.from_arpa(str(tmp_path / "both.arpa"))
    assert "mr" not in lm.vocab and lm.words.count("mister") == 1
    assert lm.log_prob("mister") == pytest.approx(-1.5 * LN10)


def test_corpus_drops_excluded_books(tmp_path):
    books = tmp_path / "books"
    (books / "Twain, Mark").mkdir(parents=True)
    (books / "Austen, Jane").mkdir()
    (books / "Twain, Mark" / "Adventures of Huckleberry Finn.txt").write_text("YOU DON'T KNOW ABOUT ME\n")
    (books / "Austen, Jane" / "Emma.txt").write_text("EMMA WOODHOUSE, HANDSOME, CLEVER, AND RICH.\n\n")
    extra = tmp_path / "bible.txt"
    extra.write_text("In the beginning\n")
    out = tmp_path / "corpus.txt"
    exclude = os.path.join(os.path.dirname(__file__), "..", "recipes", "exclude_books.txt")
    corpus.main([str(books), str(extra), "--exclude", exclude, "--out", str(out)])
    assert out.read_text() == "emma woodhouse handsome clever and rich\nin the beginning\n"
    run = python("recipes/corpus.py", str(tmp_path / "missing"), "--out", str(out))
    assert run.returncode == 1 and run.stderr.splitlines() == [
        f"error: [Errno 2] No such file or directory: '{tmp_path / 'missing'}'"
    ]
