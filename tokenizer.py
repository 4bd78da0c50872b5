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

from lexicon import PHONEMES, Lexicon, transcript_lexicon

BLANK = 0
WORD_BOUNDARY = " "
CHARACTERS = [WORD_BOUNDARY, "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
KINDS = ("char", "bpe", "phone")
SENTENCEPIECE_SPACE = "\u2581"  # "▁", sentencepiece's mark of a word start


def normalize_text(text: str) -> str:
    """Lower-case a-z, apostrophe and single spaces; other punctuation becomes a space.

    Characters that are neither letters nor punctuation (digits, symbols) are kept, so that
    `Tokenizer.encode` can report them instead of silently changing what was said."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = re.sub(r"[^\w' ]|_", " ", text)  # punctuation -> space
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not apostrophes
    return " ".join(text.split())


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

    def check(self, text: str) -> None:
        """ValueError naming the characters of text that no token spells."""
        unknown = sorted({c for c in text if c not in self._ids})
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
    through CMUdict or the G2P model); a word with no pronunciation (a number) is a ValueError, so
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
