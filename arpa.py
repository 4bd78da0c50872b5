"""The ARPA text format of back-off n-gram models: read, write, check.

Files store log10 probabilities; everything this module returns or takes is natural log. Words are
normalised on read like every other text of the project (tokenizer.normalize_text), so LibriSpeech's
upper-case ARPA files work as they are. A model in memory is (words, ngrams): words maps id -> word, and
ngrams[n-1] = (ids (N, n), log p (N,), log back-off (N,)).
"""

import gzip
import math
import re
import zlib
from array import array

import numpy as np

from tokenizer import normalize_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
ARPA_LOG10_ZERO = -99.0  # what ARPA files write for probability 0 (e.g. unigram <s>)
ARPA_WRITE_ROWS = 1 << 20  # n-grams formatted per slice when writing an ARPA file
# log10 values are written with 3 decimals: an error of at most 0.0005 (0.1 % of a probability) that no
# perplexity shows, for files a third smaller than with 7 (the digits are what gzip cannot compress)
ARPA_DECIMALS = 3
ARPA_HEADER_LINES = 100  # a file without the \data\ header in its first lines is not ARPA: stop reading
ARPA_ADVICE = "--lm needs a whole ARPA file (.arpa or .arpa.gz): download or copy it again"

Tables = list[
    tuple[np.ndarray, np.ndarray, np.ndarray]
]  # per order: ids (N, n), log p (N,), log back-off (N,)


def open_text(path: str, mode: str = "rt"):
    """A text file, gzip-compressed when its name ends with .gz."""
    # errors="replace": corpora in other encodings lose a few characters; gzip level 9 is 3x slower than 6
    if str(path).endswith(".gz"):
        return gzip.open(path, mode, compresslevel=6, encoding="utf-8", errors="replace")
    return open(path, mode, encoding="utf-8", errors="replace")


def arpa_word(token: str) -> str:
    """A word as an ARPA file spells it -> the project's normal form ("DON'T" -> "don't"); the
    markers <s>, </s> and <unk> in any case stay markers. A token that normalises to nothing or to
    several words stays lower-cased: no decoded word can match it anyway."""
    lower = token.lower()
    if lower in (BOS, EOS, UNK):
        return lower
    word = normalize_text(token)
    return word if word and " " not in word else lower


def read_arpa(path: str) -> tuple[list[str], Tables]:
    """(words, ngrams) of an ARPA file (.arpa or .arpa.gz), natural log, words normalised (arpa_word).

    ValueError naming the file unless the whole file reads and each section holds as many n-grams as
    the \\data\\ header promises: a file cut short (a broken download or copy) is never used."""
    try:
        with open_text(path) as f:
            return _read_arpa_lines(path, f)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a damaged or truncated .gz
        raise ValueError(f"{path}: cannot read it ({e}); {ARPA_ADVICE}") from None


def _read_arpa_lines(path: str, lines) -> tuple[list[str], Tables]:
    words: list[str] = []
    word_id: dict[str, int] = {}  # normalised word -> id
    token_id: dict[str, int] = {}  # word as the file spells it -> id: each spelling is normalised once
    # per order: (flat word ids, log10 p, log10 backoff); typed arrays keep big files' memory small
    sections: list[tuple[array, array, array]] = []
    promised: dict[int, int] = {}  # order -> the header's count
    n, in_header = 0, False
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if line[0] == "\\":
            m = re.match(r"\\(\d+)-grams:", line)
            in_header = line == "\\data\\"
            if m:
                n = int(m.group(1))
                sections.extend((array("q"), array("d"), array("d")) for _ in range(n - len(sections)))
            elif line == "\\end\\":
                break
            continue
        if n == 0:
            if number > ARPA_HEADER_LINES and not in_header:
                break  # not an ARPA file (named below): the rest may be gigabytes of something else
            m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", line) if in_header else None
            if m:
                promised[int(m.group(1))] = int(m.group(2))
            continue
        fields = line.split()
        flat, logps, backoffs = sections[n - 1]
        try:
            logps.append(float(fields[0]))
            backoffs.append(float(fields[n + 1]) if len(fields) > n + 1 else 0.0)
        except ValueError:
            raise ValueError(
                f"{path}: line {number} is not an n-gram ({line[:80]!r}); {ARPA_ADVICE}"
            ) from None
        if len(fields) < n + 1:
            raise ValueError(f"{path}: line {number} is not a {n}-gram ({line[:80]!r}); {ARPA_ADVICE}")
        for token in fields[1 : n + 1]:
            i = token_id.get(token)
            if i is None:
                word = arpa_word(token)
                i = word_id.get(word)
                if i is None:
                    i = word_id[word] = len(words)
                    words.append(word)
                token_id[token] = i
            flat.append(i)
    if not promised:
        raise ValueError(
            f"{path}: not an ARPA language model (no \\data\\ header with n-gram counts); {ARPA_ADVICE}"
        )
    found = {order: len(logps) for order, (_, logps, _) in enumerate(sections, start=1)}
    wrong = [o for o in sorted(promised | found) if promised.get(o, 0) != found.get(o, 0)]
    if wrong:
        counts = "; ".join(
            f"{o}-grams: {promised.get(o, 0)} in the header, {found.get(o, 0)} found" for o in wrong
        )
        raise ValueError(f"{path}: cut short or damaged ({counts}); {ARPA_ADVICE}")
    ngrams = []
    for order, (flat, logps, backoffs) in enumerate(sections, start=1):
        ids = np.frombuffer(flat, np.int64).reshape(-1, order)
        ngrams.append((ids, np.frombuffer(logps) * LN10, np.frombuffer(backoffs) * LN10))
    return words, ngrams


def write_arpa_tables(words: list[str], ngrams: Tables, path: str) -> None:
    """Write (words, ngrams) as an ARPA file (.gz compresses); log10 with ARPA_DECIMALS decimals, and a
    back-off of 0 (log10 1) left out, as ARPA allows."""
    order, d = len(ngrams), ARPA_DECIMALS
    words_arr = np.array(words, dtype=object)
    with open_text(path, "wt") as f:
        f.write("\\data\\\n")
        for n, (ids, _, _) in enumerate(ngrams, start=1):
            f.write(f"ngram {n}={len(ids)}\n")
        for n, (ids, logp, backoff) in enumerate(ngrams, start=1):
            f.write(f"\n\\{n}-grams:\n")
            for start in range(0, len(ids), ARPA_WRITE_ROWS):  # in slices: one Python string per row
                rows = slice(start, start + ARPA_WRITE_ROWS)
                grams = [" ".join(g) for g in words_arr[ids[rows]].tolist()]
                p10 = (logp[rows] / LN10).tolist()
                if n < order:
                    b10 = (backoff[rows] / LN10).tolist()
                    lines = [
                        f"{p:.{d}f}\t{g}" + (f"\t{b:.{d}f}" if round(b, d) else "")
                        for p, g, b in zip(p10, grams, b10)
                    ]
                else:
                    lines = [f"{p:.{d}f}\t{g}" for p, g in zip(p10, grams)]
                f.write("\n".join(lines) + "\n")
        f.write("\n\\end\\\n")


def write_arpa(ngrams: list[dict[tuple[str, ...], tuple[float, float]]], path: str) -> None:
    """Write n-gram dicts (one per order: words -> (log p, log back-off)) as an ARPA file."""
    write_arpa_tables(*tables_of(ngrams), path)


def tables_of(ngrams: list[dict[tuple[str, ...], tuple[float, float]]]) -> tuple[list[str], Tables]:
    """n-gram dicts (one per order: words -> (log p, log back-off)) -> (words, ngrams) arrays."""
    words = [g[0] for g in ngrams[0]]
    word_id = {w: i for i, w in enumerate(words)}
    tables = []
    for n, table in enumerate(ngrams, start=1):
        ids = np.array([[word_id[w] for w in g] for g in table], np.int64).reshape(-1, n)
        values = np.array(list(table.values()), np.float64).reshape(-1, 2)
        tables.append((ids, values[:, 0], values[:, 1]))
    return words, tables
