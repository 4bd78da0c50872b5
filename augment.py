"""Training-time augmentation: waveform perturbations (speed, gain, noise, reverb, telephone band)
and SpecAugment-style masks on log-mel features.

Every function takes its randomness from an explicit `rng: np.random.Generator` (or explicit
parameters), so a fixed seed gives the same augmentation. The data loader calls only
`augment_waveform` and `augment_spectrogram`, and only for training.

    python augment.py --audio clip.flac --out runs/augment --grid docs/augment/augmentations.png
"""

import argparse
import dataclasses
import functools
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as F
from matplotlib.figure import Figure

from audio import AUDIO_EXTENSIONS, HOP_LENGTH, SAMPLE_RATE, load_audio, log_mel_spectrogram
from config import add_config_args, config_from_args

NOISE_COLORS = ("white", "pink", "brown")
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectrum ~ 1 / f^exponent
NOISE_FLAT_BELOW = 50 / 16000  # cycles per sample: colored noise is flat below 50 Hz at 16 kHz
NOISE_CACHE_FILES = 64  # noise recordings kept in memory per process
SPEED_STEP = 0.01  # speed factors are rounded to this; see speed_perturb
TELEPHONE_LOW_HZ = 300
TELEPHONE_HIGH_HZ = 3400
BANDLIMIT_TAPS = 511  # 32 ms FIR at 16 kHz: ~170 Hz transition band, ~70 dB stop band
MAX_PEAK = 0.99  # augmented audio louder than full scale is scaled down to this peak
WAVEFORM_PROBS = ("speed_prob", "gain_prob", "noise_prob", "reverb_prob", "bandlimit_prob")


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


# ----------------------------------------------------------------------------- examples and pictures


def augmentation_examples(audio: np.ndarray, cfg, rng: np.random.Generator) -> dict:
    """Audio (N,) at 16 kHz under each augmentation alone at its strongest setting in cfg, then all
    together as in training: name -> (title, audio (N',), log-mel (cfg.n_mels, T')), "original" first."""

    def example(title: str, augmented: np.ndarray, masks: bool = False):
        features = log_mel_spectrogram(augmented, cfg.n_mels)
        return title, augmented, augment_spectrogram(features, cfg, rng) if masks else features

    speed = (cfg.speed_min, cfg.speed_max)[rng.integers(2)]
    gain_db = (-cfg.gain_db, cfg.gain_db)[rng.integers(2)]
    snr_db, rt60 = cfg.noise_snr_min, cfg.reverb_rt60_max
    noise_name, noise = random_noise(cfg, SAMPLE_RATE, rng)
    all_on = dataclasses.replace(cfg, **dict.fromkeys(WAVEFORM_PROBS, 1.0))
    return {
        "original": example("original", audio),
        "speed": example(f"speed x{speed:.2f}", speed_perturb(audio, SAMPLE_RATE, speed)),
        "gain": example(f"gain {gain_db:+.1f} dB", apply_gain(audio, gain_db)),
        "noise": example(f"{noise_name}, SNR {snr_db:.0f} dB", add_noise(audio, snr_db, rng, **noise)),
        "reverb": example(f"reverb RT60 {rt60:.2f} s", reverberate(audio, SAMPLE_RATE, rt60, rng)),
        "bandlimit": example(
            f"telephone band {TELEPHONE_LOW_HZ}-{TELEPHONE_HIGH_HZ} Hz", bandlimit(audio, SAMPLE_RATE)
        ),
        "masks": example("freq + time masks", audio, masks=True),
        "all": example(
            "all waveform augmentations + masks",
            augment_waveform(audio, SAMPLE_RATE, all_on, rng),
            masks=True,
        ),
    }


def save_panels(path: str | Path, panels: list[tuple[str, torch.Tensor]], n_cols: int) -> None:
    """Log-mel panels [(title, (n_mels, T))] on one shared time axis and colour scale (from the
    first panel) -> a 128-colour palette PNG (much smaller than RGB, looks the same)."""
    from PIL import Image  # installed with matplotlib

    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(3.6 * n_cols, 1.4 * n_rows), dpi=80, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharex=True, sharey=True, squeeze=False).ravel()
    vmin, vmax = np.percentile(panels[0][1].numpy(), [1, 99])
    for ax, (title, features) in zip(axes, panels):
        extent = (0, features.shape[1] * HOP_LENGTH / SAMPLE_RATE, 0, features.shape[0])
        ax.imshow(features.numpy(), origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.supxlabel("seconds", fontsize=6)
    fig.supylabel("mel bin", fontsize=6)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Each augmentation of one audio file as wav and png.")
    parser.add_argument("--audio", required=True, help="input audio file")
    parser.add_argument("--out", help="folder for <name>.wav and <name>.png, one per augmentation")
    parser.add_argument("--grid", help="PNG with every augmentation's log-mel in one picture")
    add_config_args(parser)  # e.g. --seed, --noise_dir, --reverb_rt60_max
    args = parser.parse_args(argv)
    if not args.out and not args.grid:
        parser.error("give --out DIR, --grid PATH or both")
    cfg = config_from_args(args)
    examples = augmentation_examples(load_audio(args.audio), cfg, np.random.default_rng(cfg.seed))
    original = ("original", examples["original"][2])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, (title, augmented, features) in examples.items():
            if name != "masks":  # masks act on features only: its audio is the original
                sf.write(out / f"{name}.wav", augmented, SAMPLE_RATE)
            panels = [original] + [(title, features)] * (name != "original")
            save_panels(out / f"{name}.png", panels, n_cols=len(panels))
        print(f"wrote {len(examples)} examples (wav and png) to {out}")
    if args.grid:
        save_panels(args.grid, [(title, features) for title, _, features in examples.values()], n_cols=2)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
