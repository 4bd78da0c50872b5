"""Training-time augmentation: waveform perturbations (speed, gain, noise, reverb, telephone band)
and SpecAugment-style masks on log-mel features.

Every function takes its randomness from an explicit `rng: np.random.Generator` (or explicit
parameters), so a fixed seed gives the same augmentation. The data loader calls only
`augment_waveform` and `augment_spectrogram`, and only for training. Pictures of each augmentation:
tools/augment_figure.py.
"""

import functools
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as F

from audio import AUDIO_EXTENSIONS, load_audio

NOISE_COLORS = ("white", "pink", "brown")
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectrum ~ 1 / f^exponent
NOISE_FLAT_BELOW = 50 / 16000  # cycles per sample: colored noise is flat below 50 Hz at 16 kHz
NOISE_CACHE_FILES = 64  # noise recordings kept in memory per process
SPEED_STEP = 0.01  # speed factors are rounded to this; see speed_perturb
TELEPHONE_LOW_HZ = 300
TELEPHONE_HIGH_HZ = 3400
BANDLIMIT_TAPS = 511  # 32 ms FIR at 16 kHz: ~170 Hz transition band, ~70 dB stop band
MAX_PEAK = 0.99  # augmented audio louder than full scale is scaled down to this peak


# ----------------------------------------------------------------------------- waveform


def speed_perturb(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Audio (N,) played `factor` times faster -> (ceil(N / factor),): tempo and pitch both change.

    The factor is rounded to SPEED_STEP because the resampling kernel has one phase per unit of
    the reduced rate ratio: 0.93 -> 93:100 is small, 0.9372 -> 2999:3200 is a 3200-row kernel.
    A factor that rounds to 1 returns `audio` itself."""
    orig_freq = round(sample_rate * round(factor / SPEED_STEP) * SPEED_STEP)
    if orig_freq == sample_rate:
        return audio
    resampled = F.resample(torch.from_numpy(np.ascontiguousarray(audio)), orig_freq, sample_rate)
    return resampled.numpy().astype(np.float32)


def rms(audio: np.ndarray) -> float:
    """Root mean square of audio (N,), accumulated in float64."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


def apply_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Audio (N,) scaled by gain_db decibels -> (N,)."""
    return (audio * 10 ** (gain_db / 20)).astype(np.float32)


def fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n. An FFT of a length with a large prime factor (an utterance's
    sample count, often) is up to ~100x slower than one of such a length."""
    best, p5 = 1 << max(n - 1, 0).bit_length(), 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35 << max(0, (n - 1) // p35).bit_length()  # p35 * the smallest power of 2 reaching n
            best, p35 = min(best, m), p35 * 3
        p5 *= 5
    return best


def fftconvolve(audio: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full linear convolution (N + K - 1,) of audio (N,) and kernel (K,), via FFTs of a fast length."""
    n = len(audio) + len(kernel) - 1
    m = fft_length(n)
    spectrum = torch.fft.rfft(torch.from_numpy(audio), m) * torch.fft.rfft(torch.from_numpy(kernel), m)
    return torch.fft.irfft(spectrum, m)[:n].numpy()


def colored_noise(n_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise (n_samples,) with power spectrum ~ 1/f^0 (white), 1/f (pink) or 1/f^2 (brown).

    The spectrum is flat below NOISE_FLAT_BELOW: otherwise brown noise puts nearly all its power
    below 1 Hz, and at a given SNR the audible part of it would be negligible. Shaped over a fast
    FFT length and cropped: a stretch of a longer noise of the same spectrum."""
    if NOISE_EXPONENTS[color] == 0:
        return rng.standard_normal(n_samples).astype(np.float32)
    m = fft_length(n_samples)
    spectrum = np.fft.rfft(rng.standard_normal(m))
    spectrum *= np.maximum(np.fft.rfftfreq(m), NOISE_FLAT_BELOW) ** (-NOISE_EXPONENTS[color] / 2)
    return np.fft.irfft(spectrum, m)[:n_samples].astype(np.float32)


def crop_or_loop(noise: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch (n_samples,) of a recording (M,): cropped if M >= n_samples, else looped."""
    start = rng.integers(len(noise) - n_samples + 1 if len(noise) >= n_samples else len(noise))
    return noise[(start + np.arange(n_samples)) % len(noise)]


def add_noise(
    audio: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    color: str = "white",
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Audio (N,) plus noise scaled to exactly snr_db -> (N,).

    The noise is synthetic of the given color, or a random crop/loop of the `noise` recording (M,).
    Silent audio or silent noise leaves the audio unchanged (the SNR is undefined)."""
    noise = colored_noise(len(audio), color, rng) if noise is None else crop_or_loop(noise, len(audio), rng)
    signal_rms, noise_rms = rms(audio), rms(noise)
    if signal_rms == 0 or noise_rms == 0:
        return audio
    return (audio + noise * (signal_rms / noise_rms / 10 ** (snr_db / 20))).astype(np.float32)


@functools.cache
def noise_files(noise_dir: str) -> tuple[str, ...]:
    """Sorted audio files under noise_dir (searched once per process)."""
    files = sorted(str(p) for p in Path(noise_dir).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"noise_dir {noise_dir!r} has no {'/'.join(AUDIO_EXTENSIONS)} files")
    return tuple(files)


@functools.lru_cache(maxsize=NOISE_CACHE_FILES)
def load_noise(path: str, sample_rate: int) -> np.ndarray:
    """A noise recording (M,), loaded on first use and then cached (read-only: it is shared)."""
    noise = load_audio(path, sample_rate)
    noise.setflags(write=False)
    return noise


def random_noise(cfg, sample_rate: int, rng: np.random.Generator) -> tuple[str, dict]:
    """A random noise for add_noise: (name, keyword arguments), from cfg.noise_dir if set, else a color."""
    if cfg.noise_dir:
        files = noise_files(cfg.noise_dir)
        path = files[rng.integers(len(files))]
        return f"noise {Path(path).stem}", dict(noise=load_noise(path, sample_rate))
    color = NOISE_COLORS[rng.integers(len(NOISE_COLORS))]
    return f"{color} noise", dict(color=color)


def room_impulse_response(sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic room impulse response (round(rt60 * sample_rate),): a unit direct path at t = 0
    followed by Gaussian noise whose amplitude falls by 60 dB at t = rt60."""
    n_samples = max(round(rt60 * sample_rate), 2)
    t = np.arange(n_samples) / sample_rate
    tail = rng.standard_normal(n_samples) * 10 ** (-3 * t / rt60)  # 10^-3 = -60 dB at t = rt60
    tail[0] = 0.0
    tail /= np.sqrt(np.sum(tail**2))  # as much energy in the reverberant tail as in the direct path
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(audio: np.ndarray, sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Audio (N,) convolved with a synthetic room of reverberation time rt60 seconds -> (N,),
    rescaled to the input's RMS. The direct path is at t = 0, so words stay where they were."""
    rir = room_impulse_response(sample_rate, rt60, rng)
    wet = fftconvolve(np.ascontiguousarray(audio), rir)[: len(audio)]
    return (wet * (rms(audio) / rms(wet) if rms(wet) > 0 else 1.0)).astype(np.float32)


@functools.cache
def telephone_filter(sample_rate: int) -> np.ndarray:
    """Linear-phase FIR band-pass (BANDLIMIT_TAPS,): Blackman-windowed difference of two sincs."""
    t = np.arange(BANDLIMIT_TAPS) - (BANDLIMIT_TAPS - 1) / 2
    high, low = 2 * TELEPHONE_HIGH_HZ / sample_rate, 2 * TELEPHONE_LOW_HZ / sample_rate  # x Nyquist
    taps = high * np.sinc(high * t) - low * np.sinc(low * t)  # ideal low-pass at high minus at low
    return (taps * np.blackman(BANDLIMIT_TAPS)).astype(np.float32)


def bandlimit(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Audio (N,) with only TELEPHONE_LOW_HZ..TELEPHONE_HIGH_HZ kept, like a telephone line -> (N,).
    Zero-phase (centred FIR), so nothing is delayed."""
    start = (BANDLIMIT_TAPS - 1) // 2
    filtered = fftconvolve(np.ascontiguousarray(audio), telephone_filter(sample_rate))
    return filtered[start : start + len(audio)].astype(np.float32)


def augment_waveform(audio: np.ndarray, sample_rate: int, cfg, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation of audio (N,) -> (N',): N' != N only after speed perturbation.

    In the order sound reaches a recording: speaker (speed), room (reverb, background noise),
    channel (telephone band), recording level (gain). Each is applied with its own cfg.*_prob at a
    strength drawn uniformly from cfg's range. Returns `audio` itself when nothing was applied."""
    out = audio
    if rng.random() < cfg.speed_prob:
        out = speed_perturb(out, sample_rate, rng.uniform(cfg.speed_min, cfg.speed_max))
    if rng.random() < cfg.reverb_prob:
        out = reverberate(out, sample_rate, rng.uniform(cfg.reverb_rt60_min, cfg.reverb_rt60_max), rng)
    if rng.random() < cfg.noise_prob:
        snr_db = rng.uniform(cfg.noise_snr_min, cfg.noise_snr_max)
        out = add_noise(out, snr_db, rng, **random_noise(cfg, sample_rate, rng)[1])
    if rng.random() < cfg.bandlimit_prob:
        out = bandlimit(out, sample_rate)
    if rng.random() < cfg.gain_prob:
        out = apply_gain(out, rng.uniform(-cfg.gain_db, cfg.gain_db))
    if out is audio:
        return audio
    # scale down instead of clipping: the model should learn the augmentation, not clipping distortion
    peak = np.max(np.abs(out), initial=0.0)
    return (out * (MAX_PEAK / peak)).astype(np.float32) if peak > 1.0 else out


# ----------------------------------------------------------------------------- spectrogram


def mask(features: torch.Tensor, axis: int, width: int, start: int) -> torch.Tensor:
    """Features (n_mels, T) with `width` mel bins (axis 0) or frames (axis 1) from `start` set to 0,
    the utterance mean as features are normalised per utterance -> a new (n_mels, T)."""
    masked = features.clone()
    masked.narrow(axis, start, width).zero_()
    return masked


def augment_spectrogram(features: torch.Tensor, cfg, rng: np.random.Generator) -> torch.Tensor:
    """SpecAugment masks on features (n_mels, T) -> (n_mels, T): cfg.freq_masks bands of
    uniform [0, freq_mask_width] bins and cfg.time_masks bands of uniform
    [0, min(time_mask_width, time_mask_ratio * T)] frames. Returns `features` itself when no mask."""
    # the ratio cap keeps short utterances from losing most of their frames
    max_frames = min(cfg.time_mask_width, int(cfg.time_mask_ratio * features.shape[1]))
    out = features
    for axis, count, max_width in ((0, cfg.freq_masks, cfg.freq_mask_width), (1, cfg.time_masks, max_frames)):
        size = features.shape[axis]
        for _ in range(count):
            width = int(rng.integers(min(max_width, size) + 1))
            out = mask(out, axis, width, int(rng.integers(size - width + 1)))
    return out
