import io

import pytest
import torch

from tokenizer import BPETokenizer, Tokenizer, cardinal, normalize_text, train_tokenizer

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
    with pytest.raises(ValueError, match=r"\['ω'\]"):  # digits are spelled out; other letters are kept
        bpe.encode(normalize_text("Route 12 Ω"))


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


@pytest.mark.parametrize(
    "n, words",
    [(0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (21, "twenty one"), (90, "ninety"),
     (100, "one hundred"), (101, "one hundred and one"), (110, "one hundred and ten"),
     (999, "nine hundred and ninety nine"), (1000, "one thousand"), (1001, "one thousand and one"),
     (1234, "one thousand two hundred and thirty four"), (20000, "twenty thousand"),
     (1000001, "one million and one"), (2000300, "two million three hundred"),
     (1234567, "one million two hundred and thirty four thousand five hundred and sixty seven")],
)  # fmt: skip
def test_cardinal_numbers_by_hand(n, words):
    assert cardinal(n) == words


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("$5 in 1999", "five dollars in nineteen ninety nine"),
        ("$1, £2.50 and €0.01", "one dollar two pounds and fifty pence and zero euros and one cent"),
        ("1215 1860 1905 1900 2005 2024", "twelve fifteen eighteen sixty nineteen o five nineteen hundred "
         "two thousand and five twenty twenty four"),
        ("1st 2nd 3rd 4th 12th 21st 40th 101st", "first second third fourth twelfth twenty first fortieth "
         "one hundred and first"),
        ("the 1990s, the 80's", "the nineteen nineties the eighties"),
        ("5% of 1,000 is 50; 3.25 & 007", "five percent of one thousand is fifty three point two five and zero zero seven"),
        ("mp3 4x4 1+1 me@home", "mp three four x four one plus one me at home"),
        ("Mr. and Mrs. Brown met Dr Watson", "mister and missus brown met doctor watson"),  # as LibriSpeech spells them
    ],
)  # fmt: skip
def test_numbers_and_symbols_are_spelled_as_librispeech_reads_them(text, normalised):
    assert normalize_text(text) == normalised
    assert normalize_text(normalised) == normalised  # references and hypotheses: one rule, applied twice


def test_apostrophe_look_alikes_invisible_characters_and_dashes():
    for mark in "'\u2019\u2018`\u00b4\u2032\u02bc":  # ' ’ ‘ ` ´ ′ ʼ
        assert normalize_text(f"Don{mark}t") == "don't", mark
    # zero-width space and joiner, soft hyphen, byte-order mark: invisible, so they neither split nor glue
    assert normalize_text("\ufeffin\u00adcred\u00adible ze\u200bro jo\u200dined") == "incredible zero joined"
    # hyphens and dashes of every kind separate words, as in LibriSpeech ("twenty-one" is two words)
    assert normalize_text("well-known \u2013 twenty\u2010one\u2014end") == "well known twenty one end"
