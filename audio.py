"""Audio: files -> 16 kHz mono waveforms -> log-mel features. Small pure functions.

One feature frame every HOP_LENGTH samples (10 ms); the model sees log-mel features normalised per
utterance, so loudness and channel differ less. Files are read with soundfile (wav, flac, mp3, ogg,
sph); what it cannot read, such as phones' and browsers' .m4a, .aac, .webm and .opus, with PyAV,
whose wheels carry FFmpeg's decoders (no system ffmpeg needed).
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from cli import DataError

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms: one feature frame
MIN_SECONDS = 0.1  # shorter audio carries no speech the model can recognise (nor enough for one STFT)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".sph", ".m4a", ".aac", ".webm", ".opus")
# a long recording's features are computed 5 minutes at a time, to bound the STFT's memory; the
# model's own pass is chunked separately (model.CHUNK_FRAMES): each is exact at any size
MEL_CHUNK_FRAMES = 30000
LOG_FLOOR = 1e-6  # added to the mel power before the log: silence is -13.8, not -inf
STD_EPS = 1e-5  # added to a band's standard deviation before dividing by it


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An audio file (soundfile's formats, else PyAV's) -> mono float32 waveform (N,) at `sample_rate`."""
    try:
        audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except Exception as e:  # soundfile raises several types for corrupt or unknown files
        if not Path(path).is_file():  # soundfile's reason would be "System error."
            raise DataError(f"{path}: no such audio file") from e
        try:
            audio, file_rate = _read_with_av(path)
        except Exception:  # corrupt for both: soundfile's reason is the one to show
            raise DataError(f"{path}: cannot read audio ({e}); convert it to 16 kHz wav or flac") from e
    if audio.shape[0] == 0:
        raise DataError(f"{path}: the file has no samples; remove it or re-record it")
    audio = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)  # mono without a copy of an hour
    if file_rate != sample_rate:
        audio = torchaudio.functional.resample(torch.from_numpy(audio), file_rate, sample_rate).numpy()
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_seconds(path: str | Path) -> float:
    """Duration of an audio file from its header; -1 when it cannot be read."""
    try:
        return sf.info(str(path)).duration
    except Exception:
        pass
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.audio:
                return -1.0
            if container.duration:  # in microseconds; estimated from the bit rate for raw .aac
                return container.duration / 1e6
        audio, rate = _read_with_av(path)  # no duration in the header: decode to count
        return len(audio) / rate
    except Exception:
        return -1.0


def _read_with_av(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV -> (float32 samples (N, channels), sample rate)."""
    import av  # only for the formats soundfile cannot read

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]  # IndexError: no audio in it
        to_float = av.AudioResampler(format="fltp")  # planar float32, the file's layout and rate
        pieces = []
        for frame in container.decode(stream):
            pieces += [f.to_ndarray() for f in to_float.resample(frame)]  # (channels, n) each
        pieces += [f.to_ndarray() for f in to_float.resample(None)]
        rate = stream.codec_context.sample_rate
    if not pieces:
        return np.zeros((0, 1), np.float32), rate
    return np.concatenate(pieces, axis=1).T, rate


@lru_cache(maxsize=4)
def _mel_transform(n_mels: int) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH, n_mels=n_mels
    )


def log_mel(audio, n_mels: int) -> torch.Tensor:
    """Waveform (N,) at 16 kHz -> log-mel spectrogram (n_mels, num_frames(N)), not normalised."""
    with torch.no_grad():
        return torch.log(_mel(torch.as_tensor(audio, dtype=torch.float32), n_mels) + LOG_FLOOR)


def log_mel_spectrogram(audio, n_mels: int) -> torch.Tensor:
    """Waveform (N,) at 16 kHz -> log-mel features (n_mels, num_frames(N)), each mel band normalised
    to zero mean and unit variance over the utterance."""
    features = log_mel(audio, n_mels)  # (n_mels, T)
    mean = features.mean(dim=1, keepdim=True)
    std = features.std(dim=1, keepdim=True) if features.shape[1] > 1 else torch.ones_like(mean)
    return (features - mean) / (std + STD_EPS)


def _mel(audio: torch.Tensor, n_mels: int) -> torch.Tensor:
    """Waveform (N,) -> mel spectrogram (n_mels, num_frames(N)), MEL_CHUNK_FRAMES frames at a time:
    the complex STFT of an hour would take 0.7 GB. Each piece reads two frames of audio beyond its
    own on either side, which covers every kept frame's window, so the result is a whole-file pass's."""
    total, margin = num_frames(len(audio)), 2  # 2 hops (320 samples) >= N_FFT / 2
    pieces = []
    for first in range(0, total, MEL_CHUNK_FRAMES):
        lo = max(first - margin, 0)
        mel = _mel_transform(n_mels)(
            audio[lo * HOP_LENGTH : (first + MEL_CHUNK_FRAMES + margin) * HOP_LENGTH]
        )
        pieces.append(mel[:, first - lo : first - lo + MEL_CHUNK_FRAMES])
    return torch.cat(pieces, dim=1)


def num_frames(num_samples: int) -> int:
    """Feature frames of a waveform of num_samples samples."""
    return num_samples // HOP_LENGTH + 1
