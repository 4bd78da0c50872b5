"""Transcripts with times: each word's start, end and confidence from the CTC frames of a decoded
path, subtitle cues, and the text of each output format (txt, json, srt, vtt).

A decoder gives its token ids and, per token, the output frame of its first emission
(decode.decode(..., with_frames=True)); the log-probs give the rest. A token's emission runs from
that frame while the model finds the token likelier than the blank, and stops where the next token
begins: for greedy decoding exactly its best path's run. A word spans its tokens (a space, or the
" " of a word piece " the", begins the next one), from the first emission of its first token to
the end of its last token's emission. Output frame f is the audio from f * frame_seconds to
(f + 1) * frame_seconds, frame_seconds = the model's stride * 10 ms.
"""

import json
from dataclasses import asdict, dataclass

import numpy as np

from audio import HOP_LENGTH, SAMPLE_RATE
from tokenizer import begins_word

FORMATS = ("txt", "json", "srt", "vtt")
FEATURE_SECONDS = HOP_LENGTH / SAMPLE_RATE  # one feature frame: 10 ms
MAX_LINE_CHARS = 42  # a subtitle line: the common broadcast limit, readable at a glance
MAX_CUE_LINES = 2
CUE_PAUSE_SECONDS = 0.5  # a silence longer than this ends a cue: subtitles follow the speech's phrasing
DECIMALS = 3  # times and confidences in JSON: milliseconds


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the beginning of the audio
    end: float
    confidence: float  # 0..1: the model's posterior of the word's least sure token


def token_ends(ids: list[int], starts: list[int], log_probs: np.ndarray, blank: int = 0) -> np.ndarray:
    """(N,) tokens, (N,) their first frames, (T, V) log-probs -> (N,) the last frame of each token's
    emission: the run from its first frame while the token beats the blank, cut where the next
    token begins. ids past the vocabulary (a phoneme search's homophone boundaries) read as blank."""
    T, V = log_probs.shape
    starts = np.asarray(starts, np.int64)
    limits = np.append(starts[1:], T)  # (N,) the frame each token's emission must end before
    ends = starts.copy()
    for i, (tok, start, limit) in enumerate(zip(ids, starts.tolist(), limits.tolist())):
        if tok >= V or start + 1 >= limit:
            continue
        span = log_probs[start + 1 : limit]  # (L, V) the frames after the first one
        beaten = np.flatnonzero(span[:, tok] < span[:, blank])
        ends[i] = start + (beaten[0] if len(beaten) else len(span))
    return ends


def token_confidences(
    ids: list[int], starts: list[int], ends: np.ndarray, log_probs: np.ndarray
) -> np.ndarray:
    """(N,) the posterior of each token at its likeliest frame of its emission. The best frame, not
    the first: a beam search's first frame may be before the token's peak."""
    T, V = log_probs.shape
    conf = np.ones(len(ids))
    for i, (tok, start, end) in enumerate(zip(ids, starts, ends.tolist())):
        if tok < V:
            conf[i] = np.exp(log_probs[start : end + 1, tok].max())
    return conf


def word_groups(ids: list[int], tokenizer) -> list[tuple[str, list[int]]]:
    """Token ids -> (word, positions of its tokens) per written word, in order. A space (or a
    phoneme search's homophone boundary, id >= len(vocab)) ends a word; a word piece beginning with
    " " ends the one before it and begins its own. The words are tokenizer.decode's: for phonemes,
    the lexicon's word for each pronunciation (the boundary after it chooses the homophone)."""
    vocab, words, current = tokenizer.vocab, [], []

    def close(boundary: list[int]) -> None:
        text = tokenizer.decode([ids[i] for i in current] + boundary)
        if text:
            words.append((text, list(current)))
        current.clear()

    for i, tok in enumerate(ids):
        boundary = tok >= len(vocab) or vocab[tok] == " "
        if boundary or begins_word(vocab[tok]):
            close([tok] if boundary else [])
        if not boundary:
            current.append(i)
    close([])
    return words


def words_with_times(
    ids: list[int], starts: list[int], log_probs: np.ndarray, tokenizer, frame_seconds: float
) -> list[Word]:
    """A decoded path -> its words with times and confidences. ids (N,) and starts (N,): token ids
    and the frame of each one's first emission; log_probs (T, V); frame_seconds: stride * 10 ms.

    Confidence is the minimum over the word's tokens, not the mean: one wrong letter makes the word
    wrong, and a mean would hide one doubtful token behind several sure ones."""
    if len(ids) != len(starts):
        raise ValueError(f"{len(ids)} tokens but {len(starts)} frames")
    log_probs = np.asarray(log_probs)
    ends = token_ends(ids, starts, log_probs, tokenizer.blank)
    conf = token_confidences(ids, starts, ends, log_probs)
    words = []
    for text, positions in word_groups(ids, tokenizer):
        first, last = positions[0], positions[-1]
        words.append(
            Word(
                text,
                round(starts[first] * frame_seconds, DECIMALS),
                round((int(ends[last]) + 1) * frame_seconds, DECIMALS),
                round(float(conf[positions].min()), DECIMALS),
            )
        )
    return words


# ----------------------------------------------------------------------------- subtitles


def cues(
    words: list[Word],
    max_chars: int = MAX_LINE_CHARS,
    max_lines: int = MAX_CUE_LINES,
    pause: float = CUE_PAUSE_SECONDS,
) -> list[tuple[float, float, list[str]]]:
    """Words -> subtitle cues (start, end, lines): lines of at most max_chars (a longer word has a
    line to itself), at most max_lines a cue; a new cue after a pause longer than `pause` seconds
    or where the next word would need one line too many."""
    out, lines, start, end = [], [], 0.0, 0.0
    for w in words:
        if lines and w.start - end > pause:
            out.append((start, end, lines))
            lines = []
        if lines and len(lines[-1]) + 1 + len(w.word) <= max_chars:
            lines[-1] += " " + w.word
        else:
            if len(lines) == max_lines:
                out.append((start, end, lines))
                lines = []
            if not lines:
                start = w.start
            lines.append(w.word)
        end = w.end
    if lines:
        out.append((start, end, lines))
    return out


def timestamp(seconds: float, separator: str) -> str:
    """Seconds -> HH:MM:SS,mmm (SRT, separator ",") or HH:MM:SS.mmm (WebVTT, ".")."""
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def to_srt(words: list[Word]) -> str:
    blocks = [
        f"{i}\n{timestamp(start, ',')} --> {timestamp(end, ',')}\n" + "\n".join(lines) + "\n"
        for i, (start, end, lines) in enumerate(cues(words), 1)
    ]
    return "\n".join(blocks)


def to_vtt(words: list[Word]) -> str:
    blocks = [
        f"{timestamp(start, '.')} --> {timestamp(end, '.')}\n" + "\n".join(lines) + "\n"
        for start, end, lines in cues(words)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_json(text: str, words: list[Word]) -> str:
    return json.dumps(dict(text=text, words=[asdict(w) for w in words]), indent=1) + "\n"


def render(fmt: str, text: str, words: list[Word]) -> str:
    """The whole file of one format for one recording: txt is the text alone, as ever."""
    if fmt == "txt":
        return text + "\n"
    if fmt == "json":
        return to_json(text, words)
    if fmt == "srt":
        return to_srt(words)
    if fmt == "vtt":
        return to_vtt(words)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
