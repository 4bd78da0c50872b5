"""Live transcription: audio arrives in pieces, words are given out once they can no longer change.

    arecord -f S16_LE -r 16000 -c 1 | python inference.py --live -         # raw 16-bit mono PCM at 16 kHz
    ffmpeg -i talk.mp3 -f s16le -ac 1 -ar 16000 - | python inference.py --live -

The core, `LiveTranscriber`, is pure: feed(samples) -> the words that settled, finish() -> the rest.
Every hop of new audio it decodes a window: the unsettled audio, with the model's half receptive
field of audio before it as context (so its frames are a whole-file pass's) and up to the newest
sample. A word settles when its frames and the token after it (a space, or the next word) are older
than the look-ahead, or when it ends a pause longer than the look-ahead: the frames near the newest
audio still lack their right context and change as audio comes. Greedy decoding: a frame's best
token needs no future, so the best path restarts exactly after each settled word; memory stays
bounded by the window, for a stream of any length.

Features are normalised per mel band (audio.log_mel_spectrogram): offline over the whole recording,
here over the audio so far (running sums). At the end of a stream the statistics are the offline
ones, so the words still open then come out as offline; the words given out earlier were read with
the statistics of their time, which is the live transcript's one difference from the offline one.
"""

import numpy as np
import torch

from audio import HOP_LENGTH, MIN_SECONDS, N_FFT, SAMPLE_RATE, STD_EPS, log_mel, num_frames
from decode import greedy_path
from model import output_frames
from transcript import DECIMALS, FEATURE_SECONDS, Word, words_with_times

HOP_SECONDS = 1.0  # decode this often: each pass re-reads the window, so shorter hops cost more
LOOKAHEAD_SECONDS = 1.0  # frames newer than this may still change; the model sees 2.56 s either side
MAX_PENDING_SECONDS = 20.0  # a word still open this long is given out anyway: bounds the window
EDGE_FRAMES = N_FFT // 2 // HOP_LENGTH + 1  # a feature frame this close to an edge reads padding: 2


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Raw 16-bit little-endian mono PCM (an even number of bytes) -> float32 samples (N,) in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class RunningStats:
    """Per-band mean and (unbiased) standard deviation over the feature frames added so far, as
    audio.log_mel_spectrogram takes them over a whole recording; float64 sums, so an hour adds up."""

    def __init__(self, n_mels: int):
        self.n = 0
        self.sum = np.zeros(n_mels)
        self.sum_sq = np.zeros(n_mels)

    def add(self, mel: np.ndarray) -> None:
        """mel (n_mels, T) frames not added before."""
        x = mel.astype(np.float64)
        self.n += x.shape[1]
        self.sum += x.sum(axis=1)
        self.sum_sq += (x * x).sum(axis=1)

    def normalise(self, mel: np.ndarray) -> np.ndarray:
        """(n_mels, T) -> (n_mels, T) float32, zero mean and unit variance by the frames so far."""
        if self.n == 0:
            return mel
        mean = self.sum / self.n
        var = (self.sum_sq - self.n * mean**2) / max(self.n - 1, 1)
        std = np.sqrt(np.maximum(var, 0.0)) if self.n > 1 else np.ones_like(mean)
        return ((mel - mean[:, None]) / (std[:, None] + STD_EPS)).astype(np.float32)


def recording_stats(audio: np.ndarray, n_mels: int) -> RunningStats:
    """A whole recording's (N,) normalisation statistics: those of the offline pass."""
    stats = RunningStats(n_mels)
    stats.add(log_mel(audio, n_mels).numpy())
    return stats


class LiveTranscriber:
    """Audio in pieces -> words (transcript.Word, times from the stream's start) once they settle.

    live = LiveTranscriber(model, tokenizer)
    for piece in pieces:           # float32 samples at 16 kHz, any sizes
        print(live.feed(piece))    # the words that settled, in order, each once
    print(live.finish())           # the end of the stream: every word left
    """

    def __init__(self, model, tokenizer, hop_seconds=HOP_SECONDS, lookahead_seconds=LOOKAHEAD_SECONDS,
                 max_pending_seconds=MAX_PENDING_SECONDS, device="cpu", stats=None):  # fmt: skip
        """stats: fixed normalisation statistics (a RunningStats, e.g. of an earlier recording with the
        same microphone) instead of those of the audio so far."""
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.stride = model.stride
        self.n_mels = model.c1.depthwise.in_channels  # the features the model reads
        self.frame_seconds = self.stride * FEATURE_SECONDS  # one output frame
        # feature frames of left context: as model.chunked_log_probs, whole output frames
        self.context = output_frames(model.receptive_field // 2, self.stride) * self.stride
        self.hop = int(hop_seconds * SAMPLE_RATE)
        self.lookahead = int(np.ceil(lookahead_seconds / self.frame_seconds))  # output frames
        self.max_pending = int(max_pending_seconds / self.frame_seconds)
        self.audio = np.zeros(0, np.float32)  # the samples kept: from sample self.offset on
        self.offset = 0
        self.total = 0  # samples fed
        self.since_pass = 0  # samples fed since the last decoding pass
        self.settled = 0  # output frame where the unsettled audio begins (a word boundary)
        self.fixed_stats = stats is not None
        self.stats = stats if self.fixed_stats else RunningStats(self.n_mels)
        self.stats_frames = 0  # feature frames counted in stats

    # ------------------------------------------------------------------ the stream

    def feed(self, samples: np.ndarray) -> list[Word]:
        """samples (N,) float32 at 16 kHz -> the words that settled (maybe none), in order."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.audio = np.concatenate([self.audio, samples])
        self.total += len(samples)
        self.since_pass += len(samples)
        words = []
        while self.since_pass >= self.hop:  # one pass per hop fed; a big piece catches up at once
            self.since_pass -= self.hop
            words += self._pass(final=False)
        return words

    def finish(self) -> list[Word]:
        """The end of the stream: the words not yet given out, with the whole recording's statistics."""
        return self._pass(final=True) if self.total else []

    # ------------------------------------------------------------------ one decoding pass

    def _pass(self, final: bool) -> list[Word]:
        if self.total < MIN_SECONDS * SAMPLE_RATE:  # as inference.py skips such a file: no words
            return []
        s = self.stride
        lo, first = self._window()
        window = self.audio[first * HOP_LENGTH - self.offset :]
        mel = log_mel(window, self.n_mels).numpy()  # (n_mels, F)
        self._count(mel, first, final)
        features = self.stats.normalise(mel[:, lo - first :])  # (n_mels, F') from frame lo
        features = torch.from_numpy(features).to(self.device)
        with torch.no_grad():
            log_probs, _ = self.model(features[None], torch.tensor([features.shape[1]], device=self.device))
        log_probs = log_probs[0].float().cpu().numpy()  # (T', V) from output frame lo / s
        base = lo // s
        pending = log_probs[self.settled - base :]  # (T'', V) from the first unsettled frame
        T = len(pending)
        ids, starts = greedy_path(pending, self.tokenizer.blank)
        words = words_with_times(ids, starts, pending, self.tokenizer, self.frame_seconds)
        limit = T if final else T - self.lookahead  # frames before limit are settled
        out, resume = (words, None) if final else self._settle(words, starts, limit)
        if resume is None and not final and limit > 0 and (not starts or starts[0] >= limit):
            resume = limit  # nothing but blanks (silence) before the look-ahead: move on
        if resume is None and not final and limit > self.max_pending:  # a word that never ends
            out = [w for w in words if round(w.end / self.frame_seconds) <= limit]
            resume = round(out[-1].end / self.frame_seconds) if out else None
        offset_s = self.settled * self.frame_seconds
        out = [_shifted(w, offset_s) for w in out]
        if resume is not None:
            self.settled += resume
            self._forget()
        return out

    def _settle(self, words: list[Word], starts: list[int], limit: int) -> tuple[list[Word], int | None]:
        """The words (times from the window's first unsettled frame; starts: the frame of each token of
        the window's best path) that can no longer change, and the output frame after the last one
        (where the next pass begins), or None when none can."""
        fs = self.frame_seconds
        out, resume = [], None
        for w in words:
            end = round(w.end / fs) - 1  # its last frame
            following = [f for f in starts if f > end]  # the tokens after it: a space or the next word
            closed = bool(following) and following[0] < limit
            paused = not following and end + self.lookahead < limit
            if end >= limit or not (closed or paused):
                break
            out.append(w)
            # after its last token's run comes a blank or another token: the best path restarts exactly
            resume = end + 1
        return out, resume

    # ------------------------------------------------------------------ features and memory

    def _count(self, mel: np.ndarray, first: int, final: bool) -> None:
        """Add to the running statistics the frames of mel (its first one is frame `first` of the
        stream) not counted yet whose STFT window holds no padding; at the end, all the rest (the
        offline pass pads the last frames the same way)."""
        if self.fixed_stats:
            return
        done = num_frames(self.total) if final else max((self.total - N_FFT // 2) // HOP_LENGTH, 0)
        if done > self.stats_frames:
            self.stats.add(mel[:, self.stats_frames - first : done - first])
            self.stats_frames = done

    def _window(self) -> tuple[int, int]:
        """-> (lo, first): the window's first feature frame (the model's left context before the first
        unsettled frame, stride-aligned), and the first frame whose audio it reads: EDGE_FRAMES more,
        so that lo's STFT reads real audio, and none counted in the statistics yet."""
        lo = max(self.settled * self.stride - self.context, 0)
        counted = num_frames(self.total) if self.fixed_stats else self.stats_frames
        return lo, max(min(lo - EDGE_FRAMES, counted), 0)

    def _forget(self) -> None:
        """Drop the audio no later pass reads: before the next window's first frame."""
        keep_from = self._window()[1] * HOP_LENGTH
        if keep_from > self.offset:
            self.audio = self.audio[keep_from - self.offset :]
            self.offset = keep_from


def _shifted(w: Word, seconds: float) -> Word:
    """A word's times moved from the window's frame 0 to the stream's."""
    return Word(w.word, round(w.start + seconds, DECIMALS), round(w.end + seconds, DECIMALS), w.confidence)


def transcribe_stream(pieces, model, tokenizer, **kwargs):
    """Pieces of float32 audio (an iterable) -> the words, each as it settles (a generator)."""
    live = LiveTranscriber(model, tokenizer, **kwargs)
    for piece in pieces:
        yield from live.feed(piece)
    yield from live.finish()
