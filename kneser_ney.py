"""Building n-gram LMs: interpolated modified Kneser-Ney (Chen & Goodman) by sorted counting in numpy.

build_tables(sentences) turns text into a back-off model; arpa.write_arpa_tables writes it.

The corpus is one int32 array of word ids, "<s> w w w </s> <s> w ...". Every n-gram becomes one int64 key,

    key = (row of its first n-1 words in the sorted table of (n-1)-grams) << bits | its last word

so sorting the keys sorts the n-grams lexicographically, and each order's table is a few plain arrays, one
entry per distinct n-gram (16 bytes each). Counting an order costs one argsort of the corpus positions
(about 35 bytes per corpus word). Measured peaks of `lm.py build` on 80 M words of books, 200k words:
3.2 GB for a 3-gram, 4.5 GB for a 4-gram; the memory grows about linearly with the corpus.

Probabilities come out as an ARPA back-off model: p(w | h) for each kept n-gram and back-off weights chosen so
that every context's distribution still sums to 1 after pruning.
"""

from collections.abc import Iterable

import numpy as np

from arpa import ARPA_LOG10_ZERO, BOS, EOS, LN10, UNK, Tables
from tokenizer import normalize_text

NO_NGRAM = -1  # row value of corpus positions where no n-gram of this order starts (it would cross </s>)
MIN_LEFT = 1e-12  # floor for the probability mass left to unseen words, against rounding below zero


def count_ngrams(corpus: np.ndarray, order: int, n_words: int, eos: int) -> list[dict[str, np.ndarray]]:
    """Tables of every distinct n-gram of orders 1..order, each sorted lexicographically.

    corpus: int32 word ids, each sentence as <s> ... </s>. Table n-1 (0-based) holds, per n-gram:
    count (raw count), context (its row in table n-2 of the first n-1 words), word (last word id) and
    suffix (its row in table n-2 of the last n-1 words). Table 0 has one row per word id, seen or not.
    """
    bits = max(1, (n_words - 1).bit_length())
    tables = [
        {
            "count": np.bincount(corpus, minlength=n_words),
            "context": np.zeros(n_words, np.int32),  # every unigram has the empty context
            "word": np.arange(n_words, dtype=np.int32),
        }
    ]
    row = corpus  # row of the n-gram starting at each corpus position, in the latest table
    for n in range(2, order + 1):
        starts = len(corpus) - n + 1  # positions where an n-gram fits before the end
        # an n-gram may end with </s> but not continue past it
        valid = (row[:starts] != NO_NGRAM) & (corpus[n - 2 : n - 2 + starts] != eos)
        keys = (row[:starts].astype(np.int64) << bits) | corpus[n - 1 :]
        keys[~valid] = np.iinfo(np.int64).max  # sorts last, then cut off
        n_valid = int(valid.sum())
        del valid
        by_key = np.argsort(keys)[:n_valid]
        keys = keys[by_key]
        new = np.empty(n_valid, bool)
        new[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
        first = np.flatnonzero(new)  # where each distinct n-gram starts in the sorted keys
        unique_keys = keys[first]
        del keys
        next_row = np.full(len(corpus), NO_NGRAM, np.int32)
        next_row[by_key] = np.cumsum(new, dtype=np.int32) - 1
        del new
        tables.append(
            {
                "count": np.diff(np.append(first, n_valid)).astype(np.int32),
                "context": (unique_keys >> bits).astype(np.int32),
                "word": (unique_keys & ((1 << bits) - 1)).astype(np.int32),
                # the last n-1 words of an n-gram at position i are the (n-1)-gram at i + 1
                "suffix": row[by_key[first] + 1].astype(np.int32),
            }
        )
        del by_key, first, unique_keys
        row = next_row
    return tables


def discounts(adjusted: np.ndarray) -> tuple[float, float, float]:
    """Modified KN discounts (D1, D2, D3+) from counts-of-counts; plain KN (or 0.5) when data is too small."""
    n1, n2, n3, n4 = (int(x) for x in np.bincount(np.minimum(adjusted, 4), minlength=5)[1:5])
    y = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    if n1 and n2 and n3 and n4:
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if all(0 < dk < k for k, dk in enumerate(d, start=1)):
            return d
    y = y if 0 < y < 1 else 0.5
    return (y, y, y)


def kneser_ney(tables: list[dict[str, np.ndarray]], bos: int, prune: list[int], unseen: int = -1) -> Tables:
    """Back-off model from count_ngrams' tables: per order, (word ids (N, n), log p, log back-off).

    prune[n - 1]: n-grams of order n (>= 2) seen fewer times are dropped. The cut-offs must not fall with
    the order, so that every kept n-gram's context and suffix are kept too. Natural log; the unigram <s>
    gets probability 0 (log -inf), as it is never predicted. unseen (a word id, e.g. <unk>) is predicted
    as if never seen: its unigram gets only the uniform share, and n-grams ending with it (kept as
    contexts of longer ones) get what backing off would give it.
    """
    order = len(tables)
    prune = [1] + [max(1, p) for p in prune[1:order]] + [prune[-1]] * (order - len(prune))
    assert all(a <= b for a, b in zip(prune, prune[1:])), "cut-offs must not fall with the order"
    n_predicted = len(tables[0]["count"]) - 1  # the uniform base distribution is over every word but <s>

    # adjusted counts: the number of distinct words seen before an n-gram (how many contexts it completes),
    # but the raw count for the highest order and for n-grams starting with <s>, which nothing precedes
    for lower, higher in zip(tables, tables[1:]):
        continuation = np.bincount(higher["suffix"], minlength=len(lower["count"]))
        lower["adjusted"] = np.where(continuation > 0, continuation, lower["count"]).astype(np.int32)
    tables[-1]["adjusted"] = tables[-1]["count"].copy()
    tables[0]["adjusted"][bos] = 0  # <s> is never predicted
    if unseen >= 0:
        tables[0]["adjusted"][unseen] = 0

    # interpolation from unigrams up: p(w|h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w|h[1:])
    probs: list[np.ndarray] = []
    for n, table in enumerate(tables):
        a, context = table.pop("adjusted"), table["context"]
        d = np.array([0.0, *discounts(a)])[np.minimum(a, 3)]
        n_contexts = 1 if n == 0 else len(tables[n - 1]["count"])
        total = np.bincount(context, weights=a, minlength=n_contexts)
        gamma = np.bincount(context, weights=d, minlength=n_contexts) / np.maximum(total, 1)
        p = a.astype(np.float64)  # in place from here: the biggest order has tens of millions of rows
        del a
        p -= d
        p /= total[context]
        del d
        interpolated = gamma[context]
        interpolated *= probs[-1][table["suffix"]] if n else 1.0 / n_predicted
        p += interpolated
        probs.append(p)
        del interpolated

    # pruning by raw count; a context's back-off weight gives its unseen words what the lower order gives
    # them, renormalised: (1 - sum of its kept p(w|h)) / (1 - sum of the same words' p(w|h[1:]))
    kept = [np.ones(len(tables[0]["count"]), bool)]
    kept += [t["count"] >= p for t, p in zip(tables[1:], prune[1:])]
    backoffs = []
    for n in range(order - 1):
        higher = tables[n + 1]
        keep = kept[n + 1] & (higher["word"] != unseen)  # those that predict their word explicitly
        context = higher["context"][keep]
        size = len(tables[n]["count"])
        left = 1 - np.bincount(context, weights=probs[n + 1][keep], minlength=size)
        left_lower = 1 - np.bincount(context, weights=probs[n][higher["suffix"][keep]], minlength=size)
        backoffs.append(np.log(np.maximum(left, MIN_LEFT) / np.maximum(left_lower, MIN_LEFT)))
    backoffs.append(np.zeros(len(tables[-1]["count"])))
    for n in range(1, order):  # rows ending with the unseen word: the back-off's value, from below
        rows = np.flatnonzero(kept[n] & (tables[n]["word"] == unseen))
        context, suffix = tables[n]["context"][rows], tables[n]["suffix"][rows]
        probs[n][rows] = np.exp(backoffs[n - 1][context]) * probs[n - 1][suffix]

    out = []
    ids = np.arange(len(tables[0]["count"]), dtype=np.int32)[:, None]
    for n, table in enumerate(tables):
        keep = kept[n]
        if n:
            new_row = np.cumsum(kept[n - 1]) - 1  # rows of the kept (n-1)-grams among themselves
            ids = np.hstack([ids[new_row[table["context"][keep]]], table["word"][keep, None]])
        with np.errstate(divide="ignore"):
            logp = np.log(probs[n][keep])
        out.append((ids, logp, backoffs[n][keep]))
    return out


# ---------------------------------------------------------------------------------------------------
# From text: the words, the corpus as ids, the model as arrays (arpa.write_arpa_tables writes them)


def corpus_ids(
    sentences: Iterable[str | list[str]], min_count: int = 1, max_vocab: int = 0, max_words: int = 0
) -> tuple[list[str], np.ndarray]:
    """Words (id -> word: <s>, </s>, <unk>, then by falling count) and the corpus as one int32 id array.

    sentences: text lines (normalised with normalize_text) or lists of words; each becomes <s> ... </s>.
    Words seen fewer than min_count times, or beyond the max_vocab most frequent, become <unk>.
    max_words > 0 stops after the sentence that reaches that many words (a prefix of a big corpus).
    """
    first_seen = {BOS: 0, EOS: 1, UNK: 2}  # provisional ids in order of appearance, ranked below
    chunks, chunk, n_words = [], [], 0
    for s in sentences:
        words = normalize_text(s).split() if isinstance(s, str) else list(s)
        if not words:
            continue
        chunk.append(0)
        chunk.extend([first_seen.setdefault(w, len(first_seen)) for w in words])
        chunk.append(1)
        n_words += len(words)
        if len(chunk) > 1 << 22:  # Python ints cost 8x an int32: keep lists short
            chunks.append(np.array(chunk, np.int32))
            chunk = []
        if max_words and n_words >= max_words:
            break
    if n_words == 0:
        raise ValueError("no words to build an LM from")
    chunks.append(np.array(chunk, np.int32))
    corpus = np.concatenate(chunks)
    counts = np.bincount(corpus, minlength=len(first_seen))
    words = list(first_seen)
    ranked = sorted(range(3, len(words)), key=lambda i: (-counts[i], words[i]))
    kept = [i for i in ranked if counts[i] >= min_count][: max_vocab if max_vocab > 0 else None]
    new_id = np.full(len(words), 2, np.int32)  # everything not kept is <unk>
    new_id[:3] = np.arange(3)
    new_id[kept] = np.arange(3, 3 + len(kept), dtype=np.int32)
    return [BOS, EOS, UNK] + [words[i] for i in kept], new_id[corpus]


def build_tables(
    sentences: Iterable[str | list[str]],
    order: int = 3,
    min_count: int = 1,
    max_vocab: int = 0,
    prune: int | list[int] = 1,
    max_words: int = 0,
    unk_counts: bool = False,
) -> tuple[list[str], Tables]:
    """Kneser-Ney back-off model as arrays: (words, per order (word ids (N, n), log p, log back-off)).

    prune: n-grams of order >= 2 seen fewer times are dropped; one cut-off for all orders or one per
    order (the unigram entry is ignored), never falling with the order. Back-off weights are
    renormalised, so every distribution still sums to 1. Natural log; unigram <s> gets ARPA's -99.
    unk_counts: <unk> gets the probability of the words it replaced (a closed-vocabulary LM). Off by
    default: a decoder that spells words freely scores every misspelling as <unk>, and with 155 M words
    cut to 200k, <unk> would be as likely as "the"; off, it gets an unseen word's probability.
    """
    words, corpus = corpus_ids(sentences, min_count, max_vocab, max_words)
    cutoffs = [prune] * order if isinstance(prune, int) else list(prune)
    tables = count_ngrams(corpus, order, len(words), eos=1)
    del corpus
    ngrams = kneser_ney(tables, bos=0, prune=cutoffs, unseen=-1 if unk_counts else 2)
    ngrams[0][1][0] = ARPA_LOG10_ZERO * LN10  # <s> is never predicted
    return words, ngrams


def build_kneser_ney(
    sentences: Iterable[str | list[str]],
    order: int = 3,
    min_count: int = 1,
    max_vocab: int = 0,
    prune: int | list[int] = 1,
    unk_counts: bool = False,
) -> list[dict[tuple[str, ...], tuple[float, float]]]:
    """build_tables as one dict per order: n-gram (tuple of words) -> (log P(w | h), log backoff), for
    small corpora (tests, examples); big ones go through build_tables and arpa.write_arpa_tables."""
    words, ngrams = build_tables(sentences, order, min_count, max_vocab, prune, unk_counts=unk_counts)
    return [
        {tuple(words[i] for i in g): (float(p), float(b)) for g, p, b in zip(ids.tolist(), logp, backoff)}
        for ids, logp, backoff in ngrams
    ]
