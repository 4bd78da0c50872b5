"""Word n-gram language model: ARPA reader with back-off, Kneser-Ney builder, ARPA writer, download.

    python lm.py build --text corpus.txt --order 3 --out lm.arpa --max_vocab 100000 --prune 2
    python lm.py download --name 3-gram.pruned.1e-7 --dest data/lm

Probabilities are natural-log everywhere in this module; ARPA files store log10 and are converted on
read and write. Words are lower-cased on load, so LibriSpeech's upper-case ARPA files work as they are.
"""

import argparse
import gzip
import math
import re
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np

from tokenizer import normalize_text

LM_URLS = {
    "3-gram.pruned.1e-7": "https://www.openslr.org/resources/11/3-gram.pruned.1e-7.arpa.gz",
    "4-gram": "https://www.openslr.org/resources/11/4-gram.arpa.gz",
}

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
ARPA_LOG10_ZERO = -99.0  # what ARPA files write for probability 0 (e.g. unigram <s>)

# n-grams are looked up by a 63-bit polynomial hash of their word ids, kept in one sorted int64 array
# per order: ~16 bytes per n-gram instead of hundreds for Python dicts of tuples
_HASH_MUL = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
_MASK63 = (1 << 63) - 1


def _hash_ids(ids: Iterable[int]) -> int:
    h = 0
    for i in ids:
        h = (h * _HASH_MUL + i + 1) & _MASK64
    return h & _MASK63


def _hash_id_rows(ids: np.ndarray) -> np.ndarray:
    """(N, n) word ids -> (N,) int64 hashes, equal to _hash_ids of each row (uint64 wraps like & _MASK64)."""
    h = np.zeros(len(ids), np.uint64)
    for j in range(ids.shape[1]):
        h = h * np.uint64(_HASH_MUL) + (ids[:, j] + 1).astype(np.uint64)
    return (h & np.uint64(_MASK63)).astype(np.int64)


def _open_text(path: str, mode: str = "rt"):
    # errors="replace": corpora in other encodings lose a few characters; gzip level 9 is 3x slower than 6
    if str(path).endswith(".gz"):
        return gzip.open(path, mode, compresslevel=6, encoding="utf-8", errors="replace")
    return open(path, mode, encoding="utf-8", errors="replace")


class NGramLM:
    """Back-off word n-gram model: log P(word | history) in natural log, ARPA (Katz-style) back-off."""

    def __init__(
        self, words: list[str], ngrams: list[tuple[np.ndarray, np.ndarray, np.ndarray]], unk_logp=-10.0
    ):
        """words: id -> word. ngrams[n-1] = (ids (N, n) int, logp (N,), backoff (N,)), natural log.

        unk_logp is the log-prob of an out-of-vocabulary word when the model has no <unk>.
        """
        self.words = words
        self.vocab = {w: i for i, w in enumerate(words)}  # word -> id
        self.order = len(ngrams)
        self.unk_logp = unk_logp
        self.counts = [len(ids) for ids, _, _ in ngrams]
        self._keys, self._logp, self._backoff = [], [], []
        for ids, logp, backoff in ngrams:
            keys = _hash_id_rows(np.asarray(ids, np.int64).reshape(len(ids), -1))
            order = np.argsort(keys, kind="stable")
            keys, ids = keys[order], np.asarray(ids)[order]
            dup = np.flatnonzero(keys[1:] == keys[:-1])
            if len(dup) and not np.array_equal(ids[dup], ids[dup + 1]):
                raise ValueError("n-gram hash collision; this model cannot be loaded")
            first = np.concatenate([[True], keys[1:] != keys[:-1]])  # a repeated n-gram keeps its first entry
            self._keys.append(keys[first])
            self._logp.append(np.asarray(logp, np.float64)[order][first])
            self._backoff.append(np.asarray(backoff, np.float64)[order][first])
        self._unk = self.vocab.get(UNK, -1)
        self._cache: dict[tuple, float] = {}
        self._tries: dict[tuple, tuple] = {}

    def _find(self, ids: tuple[int, ...]) -> int:
        keys = self._keys[len(ids) - 1]
        key = _hash_ids(ids)
        i = int(keys.searchsorted(key))
        return i if i < len(keys) and keys[i] == key else -1

    def log_prob(self, word: str, history: tuple[str, ...] = ()) -> float:
        """Natural-log P(word | history); history is oldest-first, e.g. ("<s>", "the") for the 3rd word.

        The longest n-gram (history suffix + word) in the model gives the probability; every history
        suffix that was too long to match adds its back-off weight. Unknown words are <unk>.
        """
        history = tuple(history[len(history) - self.order + 1 :]) if self.order > 1 else ()
        cached = self._cache.get((word, history))
        if cached is not None:
            return cached
        w = self.vocab.get(word.lower(), self._unk)
        if w < 0:
            return self.unk_logp
        h = tuple(self.vocab.get(x.lower(), self._unk) for x in history)
        logp = self._backoff_prob(w, h)
        if len(self._cache) > 1_000_000:
            self._cache.clear()
        self._cache[(word, history)] = logp
        return logp

    def _backoff_prob(self, w: int, h: tuple[int, ...]) -> float:
        backoff = 0.0
        for start in range(len(h) + 1):
            ctx = h[start:]
            i = self._find(ctx + (w,))
            if i >= 0:
                return backoff + float(self._logp[len(ctx)][i])
            j = self._find(ctx) if ctx else -1
            if j >= 0:
                backoff += float(self._backoff[len(ctx) - 1][j])
        return self.unk_logp  # a word with no unigram (only in higher-order n-grams of a malformed file)

    def sentence_log_prob(self, words: list[str], bos: bool = True, eos: bool = True) -> float:
        """Natural-log probability of a word sequence, with <s> as the first history and </s> at the end."""
        history = (BOS,) if bos else ()
        total = 0.0
        for word in list(words) + ([EOS] if eos else []):
            total += self.log_prob(word, history)
            history = history + (word,)
        return total

    def word_trie(self, alphabet: list[str]) -> "WordTrie":
        """The vocabulary's character trie for decoding with this token alphabet (cached per alphabet)."""
        key = tuple(alphabet)
        if key not in self._tries:
            unigram = np.full(len(self.words), self.unk_logp)
            keys = _hash_id_rows(np.arange(len(self.words))[:, None])
            at = np.minimum(self._keys[0].searchsorted(keys), len(self._keys[0]) - 1)
            found = self._keys[0][at] == keys
            unigram[found] = self._logp[0][at[found]]
            self._tries[key] = WordTrie(self.words, unigram, alphabet)
        return self._tries[key]

    @classmethod
    def from_arpa(cls, path: str, unk_logp: float = -10.0) -> "NGramLM":
        """Read an ARPA file (.arpa or .arpa.gz); words are lower-cased, log10 becomes natural log."""
        words: list[str] = []
        word_id: dict[str, int] = {}
        # per order: (flat word ids, log10 p, log10 backoff); typed arrays keep big files' memory small
        sections: list[tuple[array, array, array]] = []
        n = 0
        with _open_text(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if line[0] == "\\":
                    m = re.match(r"\\(\d+)-grams:", line)
                    if m:
                        n = int(m.group(1))
                        sections.extend(
                            (array("q"), array("d"), array("d")) for _ in range(n - len(sections))
                        )
                    elif line == "\\end\\":
                        break
                    continue
                if n == 0:
                    continue  # \data\ header: counts are taken from the sections themselves
                fields = line.lower().split()
                flat, logps, backoffs = sections[n - 1]
                logps.append(float(fields[0]))
                backoffs.append(float(fields[n + 1]) if len(fields) > n + 1 else 0.0)
                for word in fields[1 : n + 1]:
                    i = word_id.get(word)
                    if i is None:
                        i = word_id[word] = len(words)
                        words.append(word)
                    flat.append(i)
        if not sections:
            raise ValueError(f"{path}: no n-gram sections found; is it an ARPA file?")
        ngrams = []
        for order, (flat, logps, backoffs) in enumerate(sections, start=1):
            ids = np.frombuffer(flat, np.int64).reshape(-1, order)
            ngrams.append((ids, np.frombuffer(logps) * LN10, np.frombuffer(backoffs) * LN10))
        return cls(words, ngrams, unk_logp=unk_logp)

    @classmethod
    def from_ngrams(
        cls, ngrams: list[dict[tuple[str, ...], tuple[float, float]]], unk_logp=-10.0
    ) -> "NGramLM":
        """From build_kneser_ney's output (natural-log (logp, backoff) per n-gram, one dict per order)."""
        words = [g[0] for g in ngrams[0]]
        word_id = {w: i for i, w in enumerate(words)}
        tables = []
        for order, table in enumerate(ngrams, start=1):
            ids = np.array([[word_id[w] for w in g] for g in table], np.int64).reshape(-1, order)
            values = np.array(list(table.values()), np.float64).reshape(-1, 2)
            tables.append((ids, values[:, 0], values[:, 1]))
        return cls(words, tables, unk_logp=unk_logp)


class WordTrie:
    """Character trie of an LM's words, for scoring partial words while decoding.

    State 0 is the empty word; step() follows tokens (one or more characters each) and gives -1 once
    the partial word starts no vocabulary word; is_word[state] marks whole words. best[state] is the highest unigram log-prob of a word
    that the partial word can still become: an optimistic estimate of its LM score before it ends
    (LM look-ahead), so that prefixes with and without an unfinished word compare fairly.
    """

    def __init__(self, words: list[str], unigram_logp: np.ndarray, alphabet: list[str]):
        chars = sorted({ch for token in alphabet for ch in token if ch != " "})
        self.n_chars = len(chars)
        char_id = {ch: i for i, ch in enumerate(chars)}
        width = max([len(token) for token in alphabet] + [1])
        self.token_chars = np.full((len(alphabet), width), -1, np.int64)  # (V, L) char ids, -1 padded
        for t, token in enumerate(alphabet):
            if " " not in token:
                self.token_chars[t, : len(token)] = [char_id[ch] for ch in token]
        children: dict[int, int] = {}  # state * n_chars + char -> state
        parents, best = [-1], [-np.inf]
        for word, logp in zip(words, unigram_logp.tolist()):
            if word in (BOS, EOS, UNK) or any(ch not in char_id for ch in word):
                continue
            state = 0
            for ch in word:
                key = state * self.n_chars + char_id[ch]
                nxt = children.get(key)
                if nxt is None:
                    nxt = children[key] = len(parents)
                    parents.append(state)
                    best.append(-np.inf)
                state = nxt
            best[state] = max(best[state], logp)
        self.is_word = np.isfinite(best)  # (S,) before the maxima below spread to the parents
        best = np.array(best)
        for state in range(len(parents) - 1, 0, -1):  # children come after their parents
            best[parents[state]] = max(best[parents[state]], best[state])
        self.best = best  # (S,)
        self.keys = np.array(sorted(children), np.int64)  # (E,) sorted edge keys
        self.next = np.array([children[k] for k in self.keys.tolist()], np.int64)  # (E,)

    def step(self, states: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """States (any shape) followed by tokens (same shape) -> next states, -1 outside the trie."""
        states = np.array(states, np.int64)
        for chars in np.moveaxis(self.token_chars[tokens], -1, 0):  # one character position at a time
            live = (states >= 0) & (chars >= 0)
            keys = np.where(live, states * self.n_chars + chars, -1)
            at = np.minimum(self.keys.searchsorted(keys), max(len(self.keys) - 1, 0))
            hit = live & (len(self.keys) > 0) & (self.keys[at] == keys)
            states = np.where(live, np.where(hit, self.next[at] if len(self.keys) else -1, -1), states)
        return states


# ---------------------------------------------------------------------------------------------------
# Building: interpolated modified Kneser-Ney (Chen & Goodman), written as an ARPA back-off model


def _discounts(adjusted: Iterable[int]) -> tuple[float, float, float]:
    """Modified KN discounts (D1, D2, D3+) from counts-of-counts; plain KN (or 0.5) when data is too small."""
    n = Counter(min(c, 4) for c in adjusted)
    n1, n2, n3, n4 = (n.get(k, 0) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    if n1 and n2 and n3 and n4:
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if all(0 < dk < k for k, dk in enumerate(d, start=1)):
            return d
    y = y if 0 < y < 1 else 0.5
    return (y, y, y)


def build_kneser_ney(
    sentences: Iterable[str | list[str]],
    order: int = 3,
    min_count: int = 1,
    max_vocab: int = 0,
    prune: int = 1,
) -> list[dict[tuple[str, ...], tuple[float, float]]]:
    """Interpolated modified Kneser-Ney n-gram model as back-off n-grams.

    sentences: text lines (normalised with normalize_text) or lists of words.
    min_count / max_vocab: words seen fewer than min_count times, or beyond the max_vocab most frequent,
    become <unk>. prune: n-grams of order >= 2 seen fewer than prune times are dropped and their
    contexts' back-off weights renormalised, so every distribution still sums to 1.
    Returns one dict per order: n-gram (tuple of words) -> (log P(w | h), log backoff(n-gram)), natural log.
    """
    corpus = [normalize_text(s).split() if isinstance(s, str) else list(s) for s in sentences]
    corpus = [s for s in corpus if s]
    word_counts = Counter(w for s in corpus for w in s)
    kept = sorted((w for w, c in word_counts.items() if c >= min_count), key=lambda w: (-word_counts[w], w))
    kept = kept[:max_vocab] if max_vocab > 0 else kept
    words = [BOS, EOS, UNK] + [w for w in kept if w not in (BOS, EOS, UNK)]
    word_id = {w: i for i, w in enumerate(words)}
    bos, eos, unk = 0, 1, 2

    # raw counts of every n-gram in <s> sentence </s>; nothing ends with <s>
    raw: list[Counter] = [Counter() for _ in range(order)]
    for s in corpus:
        ids = [bos] + [word_id.get(w, unk) for w in s] + [eos]
        for n in range(1, order + 1):
            raw[n - 1].update(zip(*(ids[k : len(ids) - n + 1 + k] for k in range(n))))

    # adjusted counts: raw for the highest order and n-grams starting with <s>, else the number of
    # distinct words seen before the n-gram (continuation counts: how many contexts it completes)
    adjusted = [dict(c) for c in raw[:-1]] + [raw[-1]]
    for n in range(1, order):
        continuation: Counter = Counter(g[1:] for g in raw[n])
        for g in adjusted[n - 1]:
            if g[0] != bos:
                adjusted[n - 1][g] = continuation[g]
    del adjusted[0][(bos,)]  # <s> is never predicted

    # interpolation from unigrams up: p(w|h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w|h[1:])
    probs: list[dict] = []
    gammas: list[dict] = []
    n_predicted = len(words) - 1  # the uniform base distribution is over every word but <s>
    for n in range(1, order + 1):
        d1, d2, d3 = _discounts(adjusted[n - 1].values())
        discount = [0.0, d1, d2] + [d3] * (1 + max(adjusted[n - 1].values(), default=0))  # by count
        total: dict = defaultdict(int)
        discounted: dict = defaultdict(float)
        for g, c in adjusted[n - 1].items():
            total[g[:-1]] += c
            discounted[g[:-1]] += discount[c]
        gamma = {h: discounted[h] / total[h] for h in total}
        lower = probs[-1] if probs else None
        p = {}
        for g, c in adjusted[n - 1].items():
            base = lower[g[1:]] if lower is not None else 1.0 / n_predicted
            p[g] = (c - discount[c]) / total[g[:-1]] + gamma[g[:-1]] * base
        if n == 1:
            for w in range(len(words)):
                if w != bos:
                    p.setdefault((w,), gamma[()] / n_predicted)  # e.g. <unk> when nothing was mapped to it
        probs.append(p)
        gammas.append(gamma)

    # pruning by raw count keeps every kept n-gram's context and suffix too
    def kept(n: int, g: tuple) -> bool:
        return n == 0 or prune <= 1 or raw[n][g] >= prune

    backoffs: list[dict] = [{} for _ in range(order)]
    for n in range(1, order):
        if prune <= 1:
            backoffs[n - 1] = gammas[n]
            continue
        # renormalise: the probability left for unseen words, over what the lower order gives them
        left: dict = defaultdict(lambda: 1.0)
        left_lower: dict = defaultdict(lambda: 1.0)
        for g, pg in probs[n].items():
            if kept(n, g):
                left[g[:-1]] -= pg
                left_lower[g[:-1]] -= probs[n - 1][g[1:]]
        for h in gammas[n]:
            if kept(n - 1, h):
                backoffs[n - 1][h] = max(left[h], 1e-12) / max(left_lower[h], 1e-12)

    out = []
    for n in range(order):
        bo = backoffs[n]
        table = (
            {(BOS,): (ARPA_LOG10_ZERO * LN10, math.log(bo[(bos,)]) if order > 1 else 0.0)} if n == 0 else {}
        )
        for g, pg in probs[n].items():
            if kept(n, g):
                table[tuple(words[i] for i in g)] = (math.log(pg), math.log(bo[g]) if g in bo else 0.0)
        out.append(table)
    return out


def write_arpa(ngrams: list[dict[tuple[str, ...], tuple[float, float]]], path: str) -> None:
    """Write natural-log n-grams (build_kneser_ney's output) as an ARPA file (.gz compresses)."""
    order = len(ngrams)
    with _open_text(path, "wt") as f:
        f.write("\\data\\\n")
        for n, table in enumerate(ngrams, start=1):
            f.write(f"ngram {n}={len(table)}\n")
        for n, table in enumerate(ngrams, start=1):
            f.write(f"\n\\{n}-grams:\n")
            lines = []
            for g, (logp, backoff) in table.items():
                line = f"{logp / LN10:.7f}\t{' '.join(g)}"
                if n < order:
                    line += f"\t{backoff / LN10:.7f}"
                lines.append(line)
            f.write("\n".join(lines) + "\n")
        f.write("\n\\end\\\n")


# ---------------------------------------------------------------------------------------------------
# Download


def download_lm(name: str, dest_dir: str) -> str:
    """Download one of LibriSpeech's official ARPA models (a key of LM_URLS) into dest_dir; returns its path."""
    from download import download

    return str(download(LM_URLS[name], dest_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a Kneser-Ney ARPA model from text, one sentence per line")
    build.add_argument("--text", required=True)
    build.add_argument("--order", type=int, default=3)
    build.add_argument("--out", required=True)
    build.add_argument("--min_count", type=int, default=1, help="rarer words become <unk>")
    build.add_argument(
        "--max_vocab", type=int, default=0, help="keep this many most frequent words (0 = all)"
    )
    build.add_argument("--prune", type=int, default=1, help="drop n-grams (order >= 2) seen fewer times")
    download = sub.add_parser("download", help="download a LibriSpeech ARPA model")
    download.add_argument("--name", choices=list(LM_URLS), default="3-gram.pruned.1e-7")
    download.add_argument("--dest", default="data/lm")
    args = parser.parse_args(argv)

    if args.command == "download":
        print(download_lm(args.name, args.dest))
        return
    start = time.time()
    with _open_text(args.text) as f:
        sentences = [line for line in (normalize_text(x) for x in f) if line]
    ngrams = build_kneser_ney(sentences, args.order, args.min_count, args.max_vocab, args.prune)
    write_arpa(ngrams, args.out)
    counts = " ".join(f"{n}-grams={len(t)}" for n, t in enumerate(ngrams, start=1))
    print(f"{args.out}: {len(sentences)} sentences, {counts}, {time.time() - start:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
