import io

import pytest
import torch

from tokenizer import BPETokenizer, Tokenizer, normalize_text, train_tokenizer

SENTENCES = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "where are my glasses",
    "she lost her glasses",
    "they're sitting there thinking",
] * 3


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(SENTENCES, "bpe", vocab_size=60)


def test_word_pieces_round_trip_normalised_text(bpe):
    assert isinstance(bpe, BPETokenizer) and len(bpe) == 60
    assert bpe.vocab[0] == "" and " " in bpe.vocab  # the blank, and a word start with no piece of its own
    assert " the" in bpe.vocab and " glasses" in bpe.vocab  # frequent words became one piece each
    # anything normalised encodes, even words and characters the transcripts never had
    for text in ["the cat sat", "where are my glasses", "quiz jazz x'y", "they're", "q"]:
        ids = bpe.encode(text)
        assert 0 not in ids and bpe.decode(ids) == text
        assert "".join(bpe.vocab[i] for i in ids) == " " + text  # each word begins with a " " token
    assert len(bpe.encode("the glasses")) == 2 < len(Tokenizer().encode("the glasses"))
    assert bpe.decode([0, bpe.encode("the")[0], 0, 0]) == "the"
    with pytest.raises(ValueError, match=r"\['1', '2'\]"):
        bpe.encode(normalize_text("Route 12"))


def test_training_is_deterministic_and_ignores_unusable_texts(bpe):
    assert train_tokenizer(SENTENCES, "bpe", vocab_size=60) == bpe
    assert train_tokenizer(SENTENCES + ["route 66"] * 50, "bpe", vocab_size=60) == bpe
    assert len(train_tokenizer(SENTENCES, "bpe", vocab_size=10_000)) < 10_000  # nothing more to merge
    assert train_tokenizer(SENTENCES, "char") == Tokenizer()
    with pytest.raises(ValueError, match="at least 29"):
        train_tokenizer(SENTENCES, "bpe", vocab_size=20)
    with pytest.raises(ValueError, match="choose one of char, bpe"):
        train_tokenizer(SENTENCES, "wordpiece")


def test_state_dict_survives_a_safe_torch_load(bpe):
    buffer = io.BytesIO()
    torch.save({"tokenizer": bpe.state_dict(), "chars": Tokenizer().state_dict()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    again = Tokenizer.from_state_dict(loaded["tokenizer"])
    assert isinstance(again, BPETokenizer) and again == bpe and again.vocab == bpe.vocab
    assert again.encode("they're there") == bpe.encode("they're there")
    assert Tokenizer.from_state_dict(loaded["chars"]) == Tokenizer() != again
    assert Tokenizer.from_state_dict({"vocab": Tokenizer().vocab}) == Tokenizer()  # older checkpoints
