"""Word n-gram language model for decoding: back-off queries, a binary cache; its build commands.

    python lm.py build --text corpus.txt --order 3 --out lm.arpa.gz --max_vocab 200000 --prune 1 2 3
    python lm.py lexicon --lm lm.arpa.gz --out lm.lexicon.gz   # its words' pronunciations (lexicon.py)

Probabilities are natural-log everywhere in this module. NGramLM.from_arpa reads an ARPA file (arpa.py)
and caches the model in a binary file beside it (lm.arpa.gz -> lm.arpa.gz.bin), mapped from disk on
later loads while the ARPA file's content is the one it was made from. The builder behind `build` is
kneser_ney.py. LibriSpeech's official models: `python data.py download DATA 3-gram.pruned.1e-7`.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from functools import cached_property

import numpy as np

import kneser_ney
from arpa import BOS, EOS, UNK, open_text, read_arpa, tables_of, write_arpa_tables
from cli import atomic_path, run
from lexicon import build_lexicon, describe
from tokenizer import TEXT_RULES

# binary cache beside an ARPA file: magic, header length (8 bytes little-endian), JSON header, then the
# arrays, each at a multiple of BINARY_ALIGN bytes from the end of the header, so they map from disk as-is
BINARY_SUFFIX = ".bin"
BINARY_MAGIC = b"NGRAMLM1"
BINARY_ALIGN = 64
# the cache knows its ARPA file by size and a hash of its first and last FINGERPRINT_BYTES: a copy
# with an older mtime (cp -p, tar, unzip) or a file cut short is told apart without reading gigabytes
# (a .gz's last bytes hold the CRC of all its text)
FINGERPRINT_BYTES = 1 << 20

# n-grams are looked up by a 63-bit polynomial hash of their word ids, kept in one sorted int64 array
# per order: ~16 bytes per n-gram instead of hundreds for Python dicts of tuples
_HASH_MUL = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
_MASK63 = (1 << 63) - 1
# log_probs answers calls of at most this many queries from a cache when it can: the decoder asks a few
# at a time, often the same ones, and numpy's fixed cost per call would dominate
CACHED_QUERIES = 16


def hash_rows(ids: np.ndarray, mask: bool = True) -> np.ndarray:
    """(N, n) word ids (or any integers) -> (N,) int64 hashes (uint64 wraps like & _MASK64); mask=False:
    the uint64 hash before its top bit is cleared, which the hash of a longer n-gram continues."""
    h = np.zeros(len(ids), np.uint64)
    for j in range(ids.shape[1]):
        h = h * np.uint64(_HASH_MUL) + (ids[:, j] + 1).astype(np.uint64)
    return (h & np.uint64(_MASK63)).astype(np.int64) if mask else h


def _at(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """table[rows] where rows >= 0, anything (0) elsewhere: the caller masks those, and may hold none."""
    return table[np.maximum(rows, 0)] if len(table) else np.zeros(len(rows))


def file_fingerprint(path: str) -> str:
    """size:sha256 of a file's first and last FINGERPRINT_BYTES (all of it when it is smaller)."""
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        f.seek(max(size - FINGERPRINT_BYTES, FINGERPRINT_BYTES))
        digest.update(f.read())
    return f"{size}:{digest.hexdigest()}"


def _binary_data_start(header_size: int) -> int:
    """Where the arrays of a binary LM begin: after magic, header length and header, aligned."""
    end = len(BINARY_MAGIC) + 8 + header_size
    return -(-end // BINARY_ALIGN) * BINARY_ALIGN


class NGramLM:
    """Back-off word n-gram model: log P(word | history) in natural log, ARPA (Katz-style) back-off."""

    def __init__(
        self, words: list[str], ngrams: list[tuple[np.ndarray, np.ndarray, np.ndarray]], unk_logp=-10.0
    ):
        """words: id -> word. ngrams[n-1] = (ids (N, n) int, logp (N,), backoff (N,)), natural log.

        unk_logp is the log-prob of an out-of-vocabulary word when the model has no <unk>.
        """
        keys, logps, backoffs = [], [], []
        for n, (ids, logp, backoff) in enumerate(ngrams, start=1):
            key = hash_rows(np.asarray(ids, np.int64).reshape(len(ids), n))  # an order may have no n-grams
            order = np.argsort(key, kind="stable")
            key, ids = key[order], np.asarray(ids)[order]
            dup = np.flatnonzero(key[1:] == key[:-1])
            if len(dup) and not np.array_equal(ids[dup], ids[dup + 1]):
                raise ValueError("n-gram hash collision; this model cannot be loaded")
            first = np.ones(len(key), bool)  # a repeated n-gram keeps its first entry
            first[1:] = key[1:] != key[:-1]
            keys.append(key[first])
            logps.append(np.asarray(logp, np.float64)[order][first])
            backoffs.append(np.asarray(backoff, np.float64)[order][first])
        self._set_tables(words, keys, logps, backoffs, unk_logp)

    def _set_tables(self, words: list[str], keys: list, logps: list, backoffs: list, unk_logp: float):
        """keys[n-1]: sorted hashes of the n-grams, with their natural-log p and back-off in the same order."""
        self.words = words
        self.vocab = {w: i for i, w in enumerate(words)}  # word -> id
        self.order = len(keys)
        self.unk_logp = unk_logp
        self.counts = [len(k) for k in keys]
        self._keys, self._logp, self._backoff = keys, logps, backoffs
        self._unk = self.vocab.get(UNK, -1)
        self._cache: dict[tuple, float] = {}  # (word, history) -> log-prob, for small calls of log_probs

    def _find(self, n: int, key: np.ndarray) -> np.ndarray:
        """(N,) hashes of n-grams (hash_rows, masked or not) -> (N,) their rows in the order-n
        tables, -1 where absent."""
        keys = self._keys[n - 1]
        key = (key & np.uint64(_MASK63)).astype(np.int64) if key.dtype == np.uint64 else key
        if not len(keys):
            return np.full(len(key), -1)
        at = np.minimum(keys.searchsorted(key), len(keys) - 1)
        return np.where(keys[at] == key, at, -1)

    def log_prob(self, word: str, history: tuple[str, ...] = ()) -> float:
        """Natural-log P(word | history); history is oldest-first, e.g. ("<s>", "the") for the 3rd word.

        The longest n-gram (history suffix + word) in the model gives the probability; every history
        suffix that was too long to match adds its back-off weight. Unknown words are <unk>.
        """
        return self.log_prob_ids(self.word_id(word), tuple(self.word_id(x) for x in history))

    def word_id(self, word: str) -> int:
        """The word's id, or <unk>'s for an unknown word (-1 when the model has no <unk>)."""
        return self.vocab.get(word.lower(), self._unk)

    def log_prob_ids(self, w: int, history: tuple[int, ...]) -> float:
        """log_prob() for word ids (see word_id)."""
        width = max(self.order - 1, len(history))
        return float(self.log_probs(np.array([w]), np.array([(-1,) * (width - len(history)) + history]))[0])

    def log_probs(self, words: np.ndarray, histories: np.ndarray) -> np.ndarray:
        """Many queries at once, as the decoder asks them: (N,) word ids and (N, H) histories, oldest
        first, shorter ones padded on the left with -1 -> (N,) natural-log P(word | history).

        Back-off from the longest history suffix of at most order - 1 words: each suffix that has no
        n-gram with the word adds its back-off weight (0 when the suffix is no n-gram itself). A
        suffix that starts with -1 is padding (or a word the model has no id for: no n-gram holds
        it either) and is skipped."""
        words = np.asarray(words, np.int64)
        histories = np.asarray(histories, np.int64)
        histories = histories[:, histories.shape[1] - min(self.order - 1, histories.shape[1]) :]
        if len(words) <= CACHED_QUERIES:
            asked = list(zip(words.tolist(), map(tuple, histories.tolist())))
            known = [self._cache.get(query) for query in asked]
            if None not in known:
                return np.array(known)
        logp, backoff = np.full(len(words), np.nan), np.zeros(len(words))
        for start in range(histories.shape[1]):  # the longest suffix first
            context = histories[:, start:]  # (N, n - 1)
            n = context.shape[1] + 1
            h = hash_rows(context, mask=False)  # the n-gram's hash continues its context's
            ngram = h * np.uint64(_HASH_MUL) + (words + 1).astype(np.uint64)
            valid = context[:, 0] >= 0  # (N,) not padding
            at = np.where(valid, self._find(n, ngram), -1)  # (N,)
            logp = np.where(np.isnan(logp) & (at >= 0), backoff + _at(self._logp[n - 1], at), logp)
            at = np.where(valid, self._find(n - 1, h), -1)
            backoff = backoff + np.where(at >= 0, _at(self._backoff[n - 2], at), 0.0)
        unigram = self.unigram_logp[np.maximum(words, 0)]  # nan for a word with no unigram (a malformed file)
        logp = np.where(np.isnan(logp), backoff + unigram, logp)
        logp = np.where((words >= 0) & ~np.isnan(logp), logp, self.unk_logp)
        if len(words) <= CACHED_QUERIES:
            if len(self._cache) > 1_000_000:
                self._cache.clear()
            self._cache.update(zip(asked, logp.tolist()))
        return logp

    @cached_property
    def unigram_logp(self) -> np.ndarray:
        """(words,) log P(word) by id; nan where the model has no unigram."""
        at = self._find(1, hash_rows(np.arange(len(self.words))[:, None]))
        return np.where(at >= 0, _at(self._logp[0], at), np.nan)

    def sentence_log_prob(self, words: list[str], bos: bool = True, eos: bool = True) -> float:
        """Natural-log probability of a word sequence, with <s> as the first history and </s> at the end."""
        history = (BOS,) if bos else ()
        total = 0.0
        for word in list(words) + ([EOS] if eos else []):
            total += self.log_prob(word, history)
            history = history + (word,)
        return total

    def save_binary(self, path: str, source: str = "") -> None:
        """Write the model in the binary format (BINARY_MAGIC): read back by from_binary with the same scores.
        source: the fingerprint of the ARPA file it was read from (file_fingerprint), kept in the header.

        Arrays: words (UTF-8, newline-separated), and per order n: keys{n} (sorted int64 n-gram hashes),
        logp{n} (float64, natural log) and, below the highest order, backoff{n} (float64, natural log).
        """
        arrays = {"words": np.frombuffer("\n".join(self.words).encode(), np.uint8)}
        for n in range(1, self.order + 1):
            arrays[f"keys{n}"] = self._keys[n - 1]
            arrays[f"logp{n}"] = self._logp[n - 1]
            if n < self.order:  # the highest order has no back-off
                arrays[f"backoff{n}"] = self._backoff[n - 1]
        header, offset = {"order": self.order, "source": source, "arrays": {}}, 0
        for name, a in arrays.items():
            header["arrays"][name] = [a.dtype.str, list(a.shape), offset]
            offset += -(-a.nbytes // BINARY_ALIGN) * BINARY_ALIGN
        blob = json.dumps(header).encode()
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # readers never see a half-written file
            f.write(BINARY_MAGIC + len(blob).to_bytes(8, "little") + blob)
            for name, a in arrays.items():
                f.seek(_binary_data_start(len(blob)) + header["arrays"][name][2])
                f.write(np.ascontiguousarray(a).data)  # no copy of big arrays

    @staticmethod
    def binary_header(path: str) -> tuple[dict, int]:
        """(JSON header, its size in bytes) of save_binary's file; ValueError if it is not one."""
        with open(path, "rb") as f:
            if f.read(len(BINARY_MAGIC)) != BINARY_MAGIC:
                raise ValueError(f"{path}: not an n-gram LM binary")
            size = int.from_bytes(f.read(8), "little")
            try:
                return json.loads(f.read(size)), size
            except (ValueError, MemoryError, OverflowError):
                raise ValueError(f"{path}: damaged n-gram LM binary (its header does not read)") from None

    @classmethod
    def from_binary(cls, path: str, unk_logp: float = -10.0) -> "NGramLM":
        """Read save_binary's file. The arrays are mapped from disk, not read: loading takes well under a
        second and memory grows only with the pages that queries touch (shared by every process)."""
        header, size = cls.binary_header(path)
        data = np.memmap(path, np.uint8, "r")
        start = _binary_data_start(size)

        def array(name: str) -> np.ndarray:
            dtype, shape, offset = header["arrays"][name]
            nbytes = int(np.dtype(dtype).itemsize * np.prod(shape))
            # a plain ndarray on the mapped pages: np.memmap's subclass hooks make each query ~25% slower
            return data[start + offset : start + offset + nbytes].view(dtype).reshape(shape).view(np.ndarray)

        order = header["order"]
        words = bytes(array("words")).decode().split("\n")
        keys = [array(f"keys{n}") for n in range(1, order + 1)]
        logps = [array(f"logp{n}") for n in range(1, order + 1)]
        backoffs = [array(f"backoff{n}") for n in range(1, order)] + [np.zeros(0)]
        lm = cls.__new__(cls)
        lm._set_tables(words, keys, logps, backoffs, unk_logp)
        return lm

    @classmethod
    def from_arpa(cls, path: str, unk_logp: float = -10.0, cache: bool = True) -> "NGramLM":
        """Read an ARPA file (.arpa or .arpa.gz); words are normalised (arpa.arpa_word), log10 becomes
        natural log.

        With cache, the model is also written in the binary format beside the file (path + BINARY_SUFFIX)
        and read from there next time, as long as the ARPA file is the one it was made from (its
        fingerprint, not its mtime) and the text rules it was read under: seconds, not minutes. A file
        that read_arpa refuses is never cached.
        """
        binary = path + BINARY_SUFFIX
        # the words were normalised on read: a cache made under other text rules is stale
        source = f"{file_fingerprint(path)} text rules {TEXT_RULES}" if cache else ""
        if cache and os.path.exists(binary):
            try:
                if cls.binary_header(binary)[0].get("source") == source:
                    return cls.from_binary(binary, unk_logp)
            except (OSError, ValueError):
                pass  # unreadable or damaged: made again below
        lm = cls(*read_arpa(path), unk_logp=unk_logp)
        if not cache:
            return lm
        try:
            lm.save_binary(binary, source)
        except OSError as e:  # e.g. a read-only folder: the model works, only slower to load
            print(f"warning: not caching {binary}: {e}", file=sys.stderr)
            return lm
        del lm  # the cache mapped from disk instead: its pages are shared with every process that reads it
        return cls.from_binary(binary, unk_logp)

    @classmethod
    def from_ngrams(
        cls, ngrams: list[dict[tuple[str, ...], tuple[float, float]]], unk_logp=-10.0
    ) -> "NGramLM":
        """From build_kneser_ney's output (natural-log (logp, backoff) per n-gram, one dict per order)."""
        return cls(*tables_of(ngrams), unk_logp=unk_logp)


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
    build.add_argument(
        "--prune",
        type=int,
        nargs="+",
        default=[1],
        help="drop n-grams seen fewer times: one cut-off, or one "
        "per order from unigrams (whose entry is ignored), e.g. 1 1 2 3",
    )
    build.add_argument("--unk_counts", action="store_true", help="<unk> gets the replaced words' probability")
    build.add_argument(
        "--max_words", type=int, default=0, help="use the corpus up to this many words (0 = all)"
    )
    lexicon_cmd = sub.add_parser(
        "lexicon", help="the lexicon of an ARPA LM's vocabulary, most frequent first"
    )
    lexicon_cmd.add_argument("--lm", required=True, help="ARPA file (.arpa or .arpa.gz)")
    lexicon_cmd.add_argument("--out", required=True, help="lexicon file to write (.gz)")
    args = parser.parse_args(argv)
    if args.command == "build" and not (args.order >= 1 and len(args.prune) in (1, args.order)):
        parser.error(
            f"--order {args.order} --prune {' '.join(map(str, args.prune))}: an order of at least 1, "
            "and one cut-off or one per order"
        )

    start = time.time()
    if args.command == "lexicon":
        lm = NGramLM.from_arpa(args.lm)
        unigram = np.nan_to_num(lm.unigram_logp, nan=-np.inf)
        ranked = [lm.words[i] for i in np.argsort(-unigram, kind="stable") if not lm.words[i].startswith("<")]
        lexicon = build_lexicon(ranked)
        lexicon.save(args.out)
        size = os.path.getsize(args.out) / 2**20
        print(
            f"{args.out}: {describe(lexicon)}; {size:.1f} MiB, {time.time() - start:.0f} s", file=sys.stderr
        )
        return
    prune = args.prune[0] if len(args.prune) == 1 else args.prune
    with open_text(args.text) as f:
        try:
            words, ngrams = kneser_ney.build_tables(
                f, args.order, args.min_count, args.max_vocab, prune, args.max_words, args.unk_counts
            )
        except ValueError as e:  # an empty text
            raise ValueError(f"--text {args.text}: {e}") from None
    counts = " ".join(f"{n}-grams={len(ids)}" for n, (ids, _, _) in enumerate(ngrams, start=1))
    print(
        f"{args.out}: {len(words)} words in the vocabulary, {counts}, {time.time() - start:.0f}s",
        file=sys.stderr,
    )
    write_arpa_tables(words, ngrams, args.out)
    del ngrams
    print(f"{args.out}: written, {time.time() - start:.0f}s", file=sys.stderr)
    NGramLM.from_arpa(args.out)  # writes the binary cache once, now
    print(f"{args.out}{BINARY_SUFFIX}: written, {time.time() - start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    run(main, ValueError, OSError)  # a missing or malformed text or ARPA file, an unwritable --out
