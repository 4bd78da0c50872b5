"""Transcripts with times: word times and confidences from each decoder's frames (on tone audio,
whose word times are known exactly), the words of word pieces and of phonemes, subtitle cues, and
the files inference.py --format writes (parsed back)."""

import json
import re

import numpy as np
import pytest
from conftest import EXACT, TONE_TEXTS, tone_word_times, write_custom_dir

import inference
from decode import DecodingOptions, decode, greedy_path, prefix_beam_search_nbest
from kneser_ney import build_kneser_ney
from lexicon import Lexicon
from lm import NGramLM
from tokenizer import PhoneTokenizer, Tokenizer, train_tokenizer
from transcript import (
    MAX_CUE_LINES,
    MAX_LINE_CHARS,
    Word,
    cues,
    to_srt,
    to_vtt,
    word_groups,
    words_with_times,
)

CHARS = Tokenizer()
# The tiny model (150 steps on 4 tone utterances, 20 ms frames at stride 2) places its letters up to
# ~3 frames early or late and lets a word's last letter run on into the silence after it: measured,
# its word boundaries are 0.00-0.135 s off (0.07 s on average), so 0.15 s per boundary and 0.1 s on
# average. A stride or frame-length mistake, or times of the wrong word, are off by 0.2 s or more.
TOLERANCE_S = 0.15
MEAN_TOLERANCE_S = 0.1
SAME_PATH_S = 0.02  # greedy and beam on clear audio: the same frames, within one


def transcribe(tiny_run, tmp_path, decoder: str, formats=("json", "srt", "vtt"), name="out") -> tuple:
    """The tone utterances transcribed -> (folder of TONE_TEXTS, folder of outputs)."""
    data = tmp_path / "tones"
    if not data.exists():
        write_custom_dir(data, TONE_TEXTS)
    out = tmp_path / f"{name}-{decoder}"
    inference.transcribe(data, out, tiny_run[0] / "last.pt", num_workers=0, decoder=decoder, formats=formats)
    return data, out


def read_words(out, uid: str) -> list[dict]:
    return json.loads((out / f"{uid}.json").read_text())["words"]


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_word_times_on_tone_audio_match_the_known_times(tiny_run, tmp_path, decoder):
    _, out = transcribe(tiny_run, tmp_path, decoder, formats=("json",))
    errors = []
    for uid, text in TONE_TEXTS.items():
        words = read_words(out, uid)
        assert [w["word"] for w in words] == text.split()  # the tiny model reads its training audio
        for w, (_, start, end) in zip(words, tone_word_times(text)):
            errors += [w["start"] - start, w["end"] - end]
            assert 0 < w["confidence"] <= 1
    errors = np.abs(errors)
    assert errors.max() <= TOLERANCE_S and errors.mean() <= MEAN_TOLERANCE_S, errors


def test_greedy_and_beam_give_the_same_words_at_the_same_times(tiny_run, tmp_path):
    _, greedy = transcribe(tiny_run, tmp_path, "greedy", formats=("json",))
    _, beam = transcribe(tiny_run, tmp_path, "beam", formats=("json",))
    for uid in TONE_TEXTS:
        a, b = read_words(greedy, uid), read_words(beam, uid)
        assert [w["word"] for w in a] == [w["word"] for w in b]
        for x, y in zip(a, b):
            assert abs(x["start"] - y["start"]) <= SAME_PATH_S and abs(x["end"] - y["end"]) <= SAME_PATH_S


def parse_subtitles(text: str, kind: str) -> list[tuple[float, float, list[str]]]:
    """An SRT or WebVTT file -> cues (start, end, lines), asserting the format on the way: numbered
    cues (SRT), the header (WebVTT), HH:MM:SS,mmm --> HH:MM:SS,mmm ('.' in WebVTT), one or two
    lines of text within the length limit, times in order without overlaps."""
    blocks = text.rstrip("\n").split("\n\n") if text.strip() else []
    if kind == "vtt":
        assert blocks.pop(0) == "WEBVTT"
    sep = "," if kind == "srt" else "."
    stamp = rf"(\d\d):([0-5]\d):([0-5]\d){re.escape(sep)}(\d\d\d)"
    parsed = []
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        if kind == "srt":
            assert lines.pop(0) == str(i)
        m = re.fullmatch(f"{stamp} --> {stamp}", lines[0])
        assert m, lines[0]
        h, mi, s, ms, h2, mi2, s2, ms2 = map(int, m.groups())
        start, end = h * 3600 + mi * 60 + s + ms / 1000, h2 * 3600 + mi2 * 60 + s2 + ms2 / 1000
        text_lines = lines[1:]
        assert 1 <= len(text_lines) <= MAX_CUE_LINES
        assert all(line and line == line.strip() and len(line) <= MAX_LINE_CHARS for line in text_lines)
        assert start < end and (not parsed or parsed[-1][1] <= start)
        parsed.append((start, end, text_lines))
    return parsed


def test_json_srt_and_vtt_files_parse_back_and_agree_with_the_txt(tiny_run, tmp_path):
    _, out = transcribe(tiny_run, tmp_path, "beam")
    for uid in TONE_TEXTS:
        text = (out / f"{uid}.txt").read_text().strip()
        doc = json.loads((out / f"{uid}.json").read_text())
        assert doc["text"] == text == " ".join(w["word"] for w in doc["words"])
        assert all(set(w) == {"word", "start", "end", "confidence"} for w in doc["words"])
        starts = [w["start"] for w in doc["words"]]
        assert starts == sorted(starts) and all(w["start"] < w["end"] for w in doc["words"])
        for kind in ("srt", "vtt"):
            parsed = parse_subtitles((out / f"{uid}.{kind}").read_text(), kind)
            assert " ".join(" ".join(lines) for *_, lines in parsed) == text
            assert parsed[0][0] == pytest.approx(starts[0]) and parsed[-1][1] == pytest.approx(
                doc["words"][-1]["end"]
            )
    assert not list(out.glob("*.tmp"))


def test_without_format_only_the_txt_is_written_as_before(tiny_run, tmp_path):
    data, plain = transcribe(tiny_run, tmp_path, "beam", formats=("txt",), name="plain")
    _, timed = transcribe(tiny_run, tmp_path, "beam", formats=("srt",), name="timed")
    assert sorted(p.name for p in plain.iterdir()) == sorted(f"{uid}.txt" for uid in TONE_TEXTS)
    for uid in TONE_TEXTS:
        assert (plain / f"{uid}.txt").read_text() == (timed / f"{uid}.txt").read_text()
        assert not (timed / f"{uid}.json").exists() and (timed / f"{uid}.srt").exists()
    cli = tmp_path / "cli"
    inference.main(["--data_dir", str(data), "--out", str(cli), "--checkpoint", str(tiny_run[0] / "last.pt"),
                    "--num_workers", "0", "--decoder", "beam"])  # fmt: skip
    assert {p.name: p.read_text() for p in cli.iterdir()} == {p.name: p.read_text() for p in plain.iterdir()}


def test_an_unknown_format_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        inference.main(["--data_dir", str(tmp_path), "--format", "docx"])
    assert e.value.code == 2 and "--format" in capsys.readouterr().err


# ----------------------------------------------------------------------------- frames of each decoder


def spikes(frames: list[dict[int, float]], V: int) -> np.ndarray:
    """Per frame {token: probability} (the rest to the blank, 0) -> (T, V) log-probs."""
    probs = np.full((len(frames), V), 1e-4)
    for t, frame in enumerate(frames):
        probs[t, 0] = max(1.0 - sum(frame.values()), 1e-4)
        for k, p in frame.items():
            probs[t, k] = p
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def test_greedy_path_gives_each_token_the_first_frame_of_its_run():
    a, b = CHARS.vocab.index("a"), CHARS.vocab.index("b")
    log_probs = spikes([{}, {a: 0.9}, {a: 0.9}, {}, {a: 0.9}, {b: 0.9}, {b: 0.9}, {}], len(CHARS))
    assert greedy_path(log_probs) == ([a, a, b], [1, 4, 5])


def test_beam_frames_are_where_a_token_is_likeliest_not_where_its_prefix_began():
    """ "ab": a weak "a" at frame 1 starts the prefix long before the "a" that is said at frame 5."""
    a, b = CHARS.vocab.index("a"), CHARS.vocab.index("b")
    weak = {a: 0.02}
    log_probs = spikes([{}, weak, {}, {}, {}, {a: 0.95}, {}, {}, {b: 0.95}, {}], len(CHARS))
    (ids, _, frames), *_ = prefix_beam_search_nbest(
        log_probs, DecodingOptions(beam_size=8, **EXACT), vocab=CHARS.vocab, with_frames=True
    )
    assert (ids, frames) == ([a, b], [5, 8])
    assert greedy_path(log_probs) == (ids, frames)


def test_words_of_characters_have_times_ends_and_the_least_sure_letter_as_confidence():
    a, b, c, d, space = (CHARS.vocab.index(ch) for ch in "abcd ")
    frames = [{a: 0.9}, {a: 0.9}, {b: 0.6}, {space: 0.9}, {}, {}, {c: 0.8}, {}, {}, {d: 0.7}, {}]
    log_probs = spikes(frames, len(CHARS))
    ids, starts = greedy_path(log_probs)
    assert CHARS.decode(ids) == "ab cd"
    words = words_with_times(ids, starts, log_probs, CHARS, frame_seconds=0.02)
    # a word: from its first letter's first frame to the end of its last letter's last frame
    assert [(w.word, w.start, w.end) for w in words] == [("ab", 0.0, 0.06), ("cd", 0.12, 0.2)]
    assert [w.confidence for w in words] == pytest.approx([0.6, 0.7], abs=0.01)  # "b" and "d", not means


def test_every_decoder_gives_the_greedy_path_s_frames_on_clear_log_probs():
    a, b, c, d, space = (CHARS.vocab.index(ch) for ch in "abcd ")
    frames = [{}, {a: 0.9}, {a: 0.9}, {b: 0.6}, {}, {space: 0.9}, {c: 0.8}, {}, {c: 0.9}, {d: 0.7}, {}]
    log_probs = spikes(frames, len(CHARS))
    lm = NGramLM.from_ngrams(build_kneser_ney(["ab ccd", "ccd ab"], order=2))
    expected = greedy_path(log_probs)
    assert CHARS.decode(expected[0]) == "ab ccd"
    for decoder in ("greedy", "beam", "beam_lm"):
        options = DecodingOptions(decoder=decoder, beam_size=8)
        assert decode(log_probs, CHARS.vocab, options, lm, with_frames=True) == expected, decoder


def test_word_pieces_begin_words_with_their_space():
    pieces = train_tokenizer(["the cat sat on the mat"] * 20 + ["a theme"], kind="bpe", vocab_size=40)
    ids = pieces.encode("the cat sat")
    groups = word_groups(ids, pieces)
    assert [w for w, _ in groups] == ["the", "cat", "sat"]
    assert [i for _, positions in groups for i in positions] == [
        i for i, t in enumerate(ids) if pieces.vocab[t] != " "
    ]
    starts = list(range(0, 2 * len(ids), 2))
    log_probs = np.log(np.full((2 * len(ids), len(pieces)), 1 / len(pieces)))
    words = words_with_times(ids, starts, log_probs, pieces, frame_seconds=0.04)
    assert [w.word for w in words] == ["the", "cat", "sat"]
    assert words[1].start == pytest.approx(starts[groups[1][1][0]] * 0.04)


def test_phoneme_words_are_the_lexicon_s_homophones_the_search_chose():
    lexicon = Lexicon({"ba": [("B", "AA")], "a": [("AA",)], "bah": [("B", "AA")], "baa": [("B", "AA")]})
    phones = PhoneTokenizer(lexicon)
    lm = NGramLM.from_ngrams(build_kneser_ney(["baa a", "baa a", "bah b"], order=2))
    B, AA, space = (phones.vocab.index(p) for p in ("B", "AA", " "))
    log_probs = spikes([{}, {B: 0.95}, {}, {AA: 0.95}, {space: 0.95}, {}, {AA: 0.95}, {}], len(phones))
    options = DecodingOptions(decoder="beam_lm", beam_size=8, alpha=1.0, beta=0.0)
    ids, starts = decode(log_probs, phones.vocab, options, lm, lexicon, with_frames=True)
    assert max(ids) >= len(phones.vocab)  # the boundary copy that chose "baa", not "ba"
    words = words_with_times(ids, starts, log_probs, phones, frame_seconds=0.02)
    assert [(w.word, w.start, w.end) for w in words] == [("baa", 0.02, 0.08), ("a", 0.12, 0.14)]
    assert " ".join(w.word for w in words) == phones.decode(ids)


# ----------------------------------------------------------------------------- cues


def test_cues_keep_lines_short_and_break_at_pauses_only_where_needed():
    rng = np.random.default_rng(0)
    words, at = [], 0.0
    for i in range(60):
        at += 1.0 if i == 45 else 0.1  # a pause before word 45
        words.append(Word("x" * int(rng.integers(1, 12)), round(at, 3), round(at + 0.3, 3), 1.0))
        at += 0.3
    for kind, text in (("srt", to_srt(words)), ("vtt", to_vtt(words))):
        parsed = parse_subtitles(text, kind)
        assert " ".join(" ".join(lines) for *_, lines in parsed) == " ".join(w.word for w in words)
        starts = [start for start, *_ in parsed]
        assert any(abs(start - words[45].start) < 1e-6 for start in starts)  # the pause began a cue
        for (_, _, lines), (start, _, following) in zip(parsed, parsed[1:]):
            full = (
                len(lines) == MAX_CUE_LINES
                and len(lines[-1]) + 1 + len(following[0].split()[0]) > MAX_LINE_CHARS
            )
            assert abs(start - words[45].start) < 1e-6 or full  # a cue ends only at the pause, or full
    first, long, last = Word("ab", 0.0, 0.3, 1.0), Word("y" * 50, 0.4, 1.0, 1.0), Word("cd", 1.1, 1.4, 1.0)
    assert cues([first, long, last]) == [
        (0.0, 1.0, ["ab", "y" * 50]),
        (1.1, 1.4, ["cd"]),
    ]  # a line of its own
