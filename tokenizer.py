"""Text: the one normaliser (used for training targets, the language model and the metrics alike),
and the tokenizers that map normalised text to CTC token ids and back.

Three kinds share one interface: characters (blank = 0, then space, apostrophe and a-z); word
pieces (`--tokenizer bpe`): a byte-pair encoding that sentencepiece learns from the training
transcripts, so that frequent words and endings are one token each; and phonemes (`--tokenizer
phone`): 39 ARPAbet phonemes and the word boundary, through a pronunciation lexicon (lexicon.py).
The tokenizer's state is saved in every checkpoint (`state_dict`; for word pieces, sentencepiece's
model itself; for phonemes, the training transcripts' lexicon), so a checkpoint says which symbols
its outputs are and inference needs no other file.
"""

import io
import re
import unicodedata

from lexicon import PHONEMES, SPELLABLE, Lexicon, transcript_lexicon

BLANK = 0
WORD_BOUNDARY = " "
CHARACTERS = [WORD_BOUNDARY, "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
KINDS = ("char", "bpe", "phone")
SENTENCEPIECE_SPACE = "\u2581"  # "▁", sentencepiece's mark of a word start


APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018`\u00b4\u2032\u02bc\u02b9\uff07", "'"))  # ’‘`´′ʼʹ＇
SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}
# titles as LibriSpeech's transcripts spell them out; books write "Mr." 200 times as often as "mister"
TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
TEXT_RULES = 2  # normalize_text's version (2: TITLES); LM caches made under other rules are made again
CURRENCIES = {  # symbol -> (unit, units, hundredth, hundredths)
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ["", "thousand", "million", "billion", "trillion"]
IRREGULAR = {  # last word of a number -> of its ordinal / plural; other words add "th" / "s"
    "ordinal": {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                "nine": "ninth", "twelve": "twelfth"},
    "plural": {"six": "sixes"},
}  # fmt: skip
NUMBER = re.compile(
    r"(?P<currency>[$£€])?\s*"
    r"(?P<digits>[0-9]+(?:,[0-9]{3})*)(?:\.(?P<decimals>[0-9]+))?"
    r"(?:(?P<suffix>st|nd|rd|th|'?s)(?![a-z]))?(?P<percent>\s*%)?"
)


def normalize_text(text: str, titles: bool = True) -> str:
    """Any text -> lower-case words of a-z and apostrophes, single spaces: what the model spells.

    The rules, for transcripts, LM text, references and predictions alike: apostrophe look-alikes
    (’ ‘ ` ´ ′ ʼ) are apostrophes; invisible characters (zero-width spaces and joiners, soft hyphens,
    byte-order marks) are dropped; accents are dropped; numbers and the symbols & % + @ $ £ € are
    spelled out as LibriSpeech transcripts read them (spell_numbers); hyphens, dashes and other
    punctuation separate words; quotes are not apostrophes; the titles Mr, Mrs and Dr are spelled
    out (TITLES; titles=False keeps them as written, the rules before TEXT_RULES 2). Other letters
    (Greek, Chinese, ...) are kept, so that `Tokenizer.encode` can report them instead of silently
    changing what was said."""
    text = text.translate(APOSTROPHES)  # before NFKD, which splits ´ into a space and an accent
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")  # invisible format characters
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = spell_numbers(text)
    text = re.sub(r"[^\w' ]|_", " ", text)  # punctuation -> space
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not apostrophes
    return " ".join(TITLES.get(word, word) if titles else word for word in text.split())


def spell_numbers(text: str) -> str:
    """Digits and symbols in lower-case text -> words ("$5 in 1999" -> five dollars in nineteen ninety
    nine, with spaces around each number to be squeezed later): amounts ($5.50: five dollars and
    fifty cents), percentages, ordinals (21st), plurals (1990s), decimals (3.25: three point two
    five), thousands separators (1,000), years (1100-1999 and 2010-2099 in pairs of digits: eighteen
    sixty, nineteen o five) and & % + @."""
    text = NUMBER.sub(_spell_match, text)
    return "".join(SYMBOLS.get(c, c) for c in text)


def _spell_match(m: re.Match) -> str:
    digits, decimals, suffix = m["digits"].replace(",", ""), m["decimals"], (m["suffix"] or "").lstrip("'")
    if m["currency"]:
        unit, units, cent, cents = CURRENCIES[m["currency"]]
        words = f"{cardinal(int(digits))} {unit if int(digits) == 1 else units}"
        if decimals and int(decimals):
            hundredths = int(decimals.ljust(2, "0")[:2])
            words += f" and {cardinal(hundredths)} {cent if hundredths == 1 else cents}"
    elif decimals is not None:
        words = f"{cardinal(int(digits))} point {' '.join(ONES[int(d)] for d in decimals)}"
    elif "," not in m["digits"] and len(digits) == 4 and _is_year(int(digits)):
        words = year(int(digits))
    elif len(digits) > 1 and digits.startswith("0") or len(digits) > 15:  # codes: 007 -> zero zero seven
        words = " ".join(ONES[int(d)] for d in digits)
    else:
        words = cardinal(int(digits))
    if suffix in ("st", "nd", "rd", "th"):
        words = _inflect(words, "ordinal", "th")
    elif suffix == "s":
        words = _inflect(words, "plural", "s")
    return f" {words}{' percent' if m['percent'] else ''} "


def _is_year(n: int) -> bool:
    return 1100 <= n <= 1999 or 2010 <= n <= 2099


def year(n: int) -> str:
    """A year as said: 1999 -> nineteen ninety nine, 1905 -> nineteen o five, 1900 -> nineteen hundred."""
    century, rest = divmod(n, 100)
    if rest == 0:
        return f"{cardinal(century)} hundred"
    return f"{cardinal(century)} {'o ' if rest < 10 else ''}{cardinal(rest)}"


def cardinal(n: int) -> str:
    """0 <= n < 10**15 -> words, British style as LibriSpeech reads them: 1234 -> one thousand two
    hundred and thirty four; 2005 -> two thousand and five."""
    if n < 20:
        return ONES[n]
    groups = []  # (words of a three-digit group, its scale), most significant first
    for scale in SCALES:
        n, group = divmod(n, 1000)
        if group:
            groups.insert(0, (group, scale))
    words = []
    for i, (group, scale) in enumerate(groups):
        hundreds, rest = divmod(group, 100)
        if hundreds:
            words += [ONES[hundreds], "hundred"]
        if rest and (hundreds or (i == len(groups) - 1 and len(groups) > 1)):
            words.append("and")
        if rest:
            words += [ONES[rest]] if rest < 20 else [TENS[rest // 10]] + [ONES[rest % 10]] * (rest % 10 > 0)
        if scale:
            words.append(scale)
    return " ".join(words)


def _inflect(words: str, kind: str, ending: str) -> str:
    """The last word made ordinal (twenty one -> twenty first) or plural (nineteen nineties)."""
    *head, last = words.split()
    if last in IRREGULAR[kind]:
        last = IRREGULAR[kind][last]
    elif last.endswith("y"):
        last = last[:-1] + "ie" + ending
    else:
        last += ending
    return " ".join([*head, last])


def begins_word(token: str) -> bool:
    """The word-boundary rule of every tokenizer: the space, and word pieces such as " the", begin a word."""
    return token.startswith(" ")


class Tokenizer:
    """Normalised text <-> token ids, one token per character. `vocab[i]` is token i's text: "" for
    the blank, " " (the word boundary) between words; a token whose text begins with " " begins a
    word. Decoders take this list."""

    kind = "char"
    blank = BLANK
    word_boundary = WORD_BOUNDARY
    lexicon: Lexicon | None = None  # phonemes' pronunciation lexicon (PhoneTokenizer); none for spelling

    def __init__(self, vocab: list[str] | None = None):
        self.vocab = list(vocab) if vocab is not None else ["", *CHARACTERS]
        if self.vocab[BLANK] != "" or WORD_BOUNDARY not in self.vocab:
            raise ValueError("a vocabulary starts with the blank '' and contains the word boundary ' '")
        self._ids = {s: i for i, s in enumerate(self.vocab) if i != BLANK}

    def __len__(self) -> int:
        return len(self.vocab)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.state_dict() == other.state_dict()

    def unknown_characters(self, text: str) -> list[str]:
        """The characters of text that no token spells, sorted."""
        return sorted({c for c in text if c not in self._ids})

    def check(self, text: str) -> None:
        """ValueError naming the characters of text that no token spells."""
        unknown = self.unknown_characters(text)
        if unknown:
            raise ValueError(f"characters outside the vocabulary (a-z, space, apostrophe): {unknown}")

    def encode(self, text: str) -> list[int]:
        """Normalised text -> token ids (no blank). Raises ValueError naming unknown characters."""
        self.check(text)
        return [self._ids[c] for c in text]

    def decode(self, ids) -> str:
        """Token ids -> text with single spaces between words; blanks are dropped."""
        return " ".join("".join(self.vocab[i] for i in ids if i != BLANK).split())

    def state_dict(self) -> dict:
        return {"vocab": list(self.vocab)}

    @staticmethod
    def from_state_dict(state: dict) -> "Tokenizer":
        """Either kind; a state without "kind" (every character checkpoint) is characters."""
        if state.get("kind", "char") == "bpe":
            return BPETokenizer(state["model"])
        if state.get("kind") == "phone":
            return PhoneTokenizer(Lexicon.from_text(state["lexicon"]))
        return Tokenizer(state["vocab"])


class BPETokenizer(Tokenizer):
    """Word pieces: token i is sentencepiece's piece i, its word-start mark "▁" written as a leading
    " " (" the", "ing", and " " alone before a word with no piece of its own). sentencepiece's <unk>
    (id 0) is the CTC blank: no normalised text needs it, since every character is a piece."""

    kind = "bpe"

    def __init__(self, model: bytes):
        import sentencepiece  # only word pieces need it

        self.model = bytes(model)  # the serialized model proto, as saved in checkpoints
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=self.model)
        if self.processor.unk_id() != BLANK:
            raise ValueError("a word-piece model must have <unk> at id 0, the CTC blank")
        pieces = [self.processor.id_to_piece(i) for i in range(1, self.processor.get_piece_size())]
        super().__init__(["", *(p.replace(SENTENCEPIECE_SPACE, " ") for p in pieces)])

    def encode(self, text: str) -> list[int]:
        self.check(text)  # every single character is a piece, so this also rules out <unk>
        return self.processor.encode(text)

    def state_dict(self) -> dict:
        return {"kind": "bpe", "model": self.model}


class PhoneTokenizer(Tokenizer):
    """Phonemes: token i > 1 is an ARPAbet phoneme without stress, " " the word boundary. Text is
    spoken through the lexicon (each word's first pronunciation; a word it lacks, as validation's,
    through CMUdict or the G2P model); a word with no pronunciation (a letter of another script) is a ValueError, so
    training skips (and names) its utterances.

    Decoded phonemes become words through the lexicon: the most frequent word of a word's exact
    pronunciation, else of the pronunciation nearest by edit distance (a word is never dropped: an
    unknown one is at least written as something close). The beam search with an LM may end a
    word with a token past the vocabulary, len(vocab) + k - 1: the boundary that chose its k-th
    most frequent homophone (see decode.prefix_beam_search_nbest)."""

    kind = "phone"

    def __init__(self, lexicon: Lexicon):
        super().__init__(["", WORD_BOUNDARY, *PHONEMES])
        self.lexicon = lexicon

    def unknown_characters(self, text: str) -> list[str]:
        """The characters of text that no pronunciation can read (CMUdict and G2P read a-z and ')."""
        return sorted({c for c in text if c != " " and c not in SPELLABLE})

    def encode(self, text: str) -> list[int]:
        ids = []
        for pron in self.lexicon.pronounce(text):
            ids += [self._ids[WORD_BOUNDARY]] * bool(ids) + [self._ids[p] for p in pron]
        return ids

    def phoneme_words(self, ids) -> list[tuple[tuple[str, ...], int]]:
        """Token ids -> (pronunciation, homophone) per word; blanks dropped."""
        words, current = [], []
        for i in list(ids) + [self._ids[WORD_BOUNDARY]]:
            if i == BLANK:
                continue
            if i == self._ids[WORD_BOUNDARY] or i >= len(self.vocab):
                if current:
                    words.append((tuple(current), max(0, i - len(self.vocab) + 1)))
                current = []
            else:
                current.append(self.vocab[i])
        return words

    def phonemes(self, ids) -> list[str]:
        """Token ids -> the phonemes alone (no boundaries), as a phoneme error rate compares them."""
        return [p for pron, _ in self.phoneme_words(ids) for p in pron]

    def decode(self, ids) -> str:
        words = [self.lexicon.word(p, k) or self.lexicon.nearest(p) for p, k in self.phoneme_words(ids)]
        return " ".join(words)

    def with_lexicon(self, lexicon: Lexicon) -> "PhoneTokenizer":
        """The same phonemes, written as words through another lexicon (an LM's, say)."""
        return PhoneTokenizer(lexicon)

    def state_dict(self) -> dict:
        return {"kind": "phone", "lexicon": self.lexicon.to_text()}


def train_tokenizer(texts, kind: str = "char", vocab_size: int = 256) -> Tokenizer:
    """A tokenizer for normalised transcripts. Characters need no training; phonemes need the
    transcripts' lexicon (its `g2p_words` and `failed` say which words it guessed and lacks); word pieces are learned
    from texts (an iterable of normalised strings; those with characters outside a-z, space and
    apostrophe are left out, as training leaves them out), at most vocab_size tokens with the blank:
    fewer when the texts have nothing more to merge. Deterministic, in memory and quiet."""
    if kind not in KINDS:
        raise ValueError(f"--tokenizer {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "char":
        return Tokenizer()
    if kind == "phone":  # the transcripts' words, converted once
        return PhoneTokenizer(transcript_lexicon(texts))
    if vocab_size < len(CHARACTERS) + 1:
        raise ValueError(
            f"--vocab_size {vocab_size}: word pieces need at least {len(CHARACTERS) + 1} tokens "
            "(the blank, space, apostrophe and a-z)"
        )
    alphabet = set(CHARACTERS)
    texts = [t for t in texts if t and set(t) <= alphabet]
    if not texts:
        raise ValueError("no transcripts to learn word pieces from")
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus may run out of pairs to merge
        character_coverage=1.0,
        required_chars="".join(CHARACTERS[1:]),  # every character a piece, even one the texts lack
        normalization_rule_name="identity",  # the texts are normalised already
        add_dummy_prefix=True,  # the first word starts with "▁" as every other word does
        unk_id=BLANK,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        num_threads=1,  # the model records its settings: one value gives the same bytes everywhere
        minloglevel=2,  # errors only: no log lines
    )
    return BPETokenizer(model.getvalue())
