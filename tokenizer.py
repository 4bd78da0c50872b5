"""Text: the one normaliser (used for training targets, the language model and the metrics alike),
and the tokenizer that maps normalised text to CTC token ids and back.

The tokenizer is characters today: blank = 0, then space, apostrophe and a-z. Its state is saved in
every checkpoint (`state_dict`), so a checkpoint says which symbols its outputs are.
"""

import re
import unicodedata

BLANK = 0
WORD_BOUNDARY = " "
CHARACTERS = [WORD_BOUNDARY, "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]


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
    """Normalised text <-> token ids. `vocab[i]` is token i's text: "" for the blank, " " (the word
    boundary) between words; decoders take this list."""

    blank = BLANK
    word_boundary = WORD_BOUNDARY

    def __init__(self, vocab: list[str] | None = None):
        self.vocab = list(vocab) if vocab is not None else ["", *CHARACTERS]
        if self.vocab[BLANK] != "" or WORD_BOUNDARY not in self.vocab:
            raise ValueError("a vocabulary starts with the blank '' and contains the word boundary ' '")
        self._ids = {s: i for i, s in enumerate(self.vocab) if i != BLANK}

    def __len__(self) -> int:
        return len(self.vocab)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.vocab == other.vocab

    def encode(self, text: str) -> list[int]:
        """Normalised text -> token ids (no blank). Raises ValueError naming unknown characters."""
        unknown = sorted({c for c in text if c not in self._ids})
        if unknown:
            raise ValueError(f"characters outside the vocabulary (a-z, space, apostrophe): {unknown}")
        return [self._ids[c] for c in text]

    def decode(self, ids) -> str:
        """Token ids -> text with single spaces between words; blanks are dropped."""
        return " ".join("".join(self.vocab[i] for i in ids if i != BLANK).split())

    def state_dict(self) -> dict:
        return {"vocab": list(self.vocab)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Tokenizer":
        return cls(state["vocab"])
