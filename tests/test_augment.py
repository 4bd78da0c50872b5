"""Each augmentation's contract, measured on a synthetic speech-like signal."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import peak_hz, python

import augment
from config import Config
from tools import augment_figure

SAMPLE_RATE = 16000
OFF = dict(
    speed_prob=0.0,
    gain_prob=0.0,
    noise_prob=0.0,
    reverb_prob=0.0,
    bandlimit_prob=0.0,
    freq_masks=0,
    time_masks=0,
)
ALL_ON = dict(speed_prob=1.0, gain_prob=1.0, noise_prob=1.0, reverb_prob=1.0, bandlimit_prob=1.0)


def speech_like(seconds: float = 3.0, f0: float = 140.0) -> np.ndarray:
    """Harmonics of f0 under a 4 Hz syllable-rate envelope, with a short pause: (seconds * 16000,)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 25))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * (np.abs(t - seconds / 2) > 0.2)
    return (0.3 * voice * envelope).astype(np.float32)


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def features(n_mels: int = 64, n_frames: int = 300, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(
        np.random.default_rng(seed).standard_normal((n_mels, n_frames)).astype(np.float32)
    )


@pytest.fixture
def speech(tmp_path) -> np.ndarray:
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(), SAMPLE_RATE)
    audio, rate = sf.read(path, dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_by_inverse_factor_and_pitch_by_factor(speech, factor):
    out = augment.speed_perturb(speech, SAMPLE_RATE, factor)
    assert out.dtype == np.float32
    assert len(out) == pytest.approx(len(speech) / factor, rel=0.01)
    assert peak_hz(augment.speed_perturb(tone(1000), SAMPLE_RATE, factor)) == pytest.approx(
        1000 * factor, rel=0.01
    )


@pytest.mark.parametrize("color", augment.NOISE_COLORS)
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 30.0])
def test_synthetic_noise_has_the_requested_snr(speech, color, snr_db):
    out = augment.add_noise(speech, snr_db, np.random.default_rng(0), color=color)
    assert out.shape == speech.shape and out.dtype == np.float32
    measured = 20 * np.log10(rms(speech) / rms(out - speech))
    assert measured == pytest.approx(snr_db, abs=0.5)


def test_noise_colors_slope_down_from_white_to_brown():
    def low_to_high_power(color):  # power below 500 Hz over power above 4 kHz
        spectrum = (
            np.abs(np.fft.rfft(augment.colored_noise(SAMPLE_RATE, color, np.random.default_rng(0)))) ** 2
        )
        return spectrum[:500].sum() / spectrum[4000:].sum()

    white, pink, brown = (low_to_high_power(c) for c in augment.NOISE_COLORS)
    assert white < pink < brown


@pytest.mark.parametrize("noise_seconds", [0.5, 10.0])  # looped, cropped
def test_recorded_noise_is_looped_or_cropped_to_length_at_the_requested_snr(speech, noise_seconds):
    noise = tone(3000, noise_seconds)
    out = augment.add_noise(speech, 5.0, np.random.default_rng(0), noise=noise)
    assert out.shape == speech.shape
    assert 20 * np.log10(rms(speech) / rms(out - speech)) == pytest.approx(5.0, abs=0.5)
    assert peak_hz(out - speech) == pytest.approx(3000, abs=2)


def test_silent_audio_gets_no_noise():
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert np.array_equal(augment.add_noise(silence, 10.0, np.random.default_rng(0)), silence)


def test_noise_dir_recordings_are_used(speech, tmp_path):
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    sf.write(noise_dir / "hum.flac", tone(2500, 0.7), SAMPLE_RATE)
    cfg = dataclasses.replace(Config(), **{**OFF, "noise_prob": 1.0}, noise_dir=str(noise_dir))
    out = augment.augment_waveform(speech, SAMPLE_RATE, cfg, np.random.default_rng(0))
    snr_db = 20 * np.log10(rms(speech) / rms(out - speech))
    assert cfg.noise_snr_min - 0.5 <= snr_db <= cfg.noise_snr_max + 0.5
    assert peak_hz(out - speech) == pytest.approx(2500, abs=2)


@pytest.mark.parametrize("gain_db", [-6.0, 0.0, 3.0])
def test_gain_scales_rms(speech, gain_db):
    out = augment.apply_gain(speech, gain_db)
    assert rms(out) / rms(speech) == pytest.approx(10 ** (gain_db / 20), rel=1e-4)


@pytest.mark.parametrize("rt60", [0.1, 0.6])
def test_reverb_keeps_length_and_level_but_changes_the_signal(speech, rt60):
    out = augment.reverberate(speech, SAMPLE_RATE, rt60, np.random.default_rng(0))
    assert out.shape == speech.shape and out.dtype == np.float32
    assert rms(out) == pytest.approx(rms(speech), rel=0.01)
    assert rms(out - speech) > 0.1 * rms(speech)


def test_room_impulse_response_decays_60_db_over_rt60():
    rir = augment.room_impulse_response(SAMPLE_RATE, 0.5, np.random.default_rng(0))
    assert len(rir) == 8000 and rir[0] == 1.0
    tail = rir[1:].astype(np.float64) ** 2
    first, last = tail[:400].mean(), tail[-400:].mean()  # 25 ms at each end
    assert 10 * np.log10(first / last) == pytest.approx(60 * 0.95, abs=3)


def test_bandlimit_passes_speech_band_and_stops_the_rest():
    def attenuation_db(hz):
        x = tone(hz)
        out = augment.bandlimit(x, SAMPLE_RATE)
        middle = slice(len(x) // 4, 3 * len(x) // 4)  # away from the filter's edge effects
        return 20 * np.log10(rms(x[middle]) / rms(out[middle]))

    assert abs(attenuation_db(1000)) < 0.5
    assert attenuation_db(100) > 40
    assert attenuation_db(6000) > 40


@pytest.mark.parametrize("width", [0, 1, 7, 64])
def test_freq_mask_zeroes_exactly_width_rows(width):
    x = features()
    out = augment.mask(x, 0, width, start=0 if width == 64 else 20)
    assert int((out == 0).all(dim=1).sum()) == width
    assert torch.equal(x, features())  # the input is untouched


@pytest.mark.parametrize("width", [0, 1, 25])
def test_time_mask_zeroes_exactly_width_columns(width):
    out = augment.mask(features(), 1, width, start=100)
    masked = (out == 0).all(dim=0)
    assert int(masked.sum()) == width
    assert masked[100 : 100 + width].all()


def test_spectrogram_masks_stay_within_configured_widths():
    cfg = dataclasses.replace(Config(), freq_masks=2, freq_mask_width=15, time_masks=2, time_mask_width=40)
    x = features(n_frames=200)  # ratio 0.05 caps time masks at 10 frames
    for seed in range(20):
        out = augment.augment_spectrogram(x, cfg, np.random.default_rng(seed))
        assert out.shape == x.shape
        assert int((out == 0).all(dim=1).sum()) <= 2 * 15
        assert int((out == 0).all(dim=0).sum()) <= 2 * 10


def test_augmentations_are_reproducible_for_a_seed_and_differ_across_seeds(speech):
    cfg = dataclasses.replace(Config(), **ALL_ON)
    a, b, c = (
        augment.augment_waveform(speech, SAMPLE_RATE, cfg, np.random.default_rng(s)) for s in (1, 1, 2)
    )
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    x = features()
    a, b, c = (augment.augment_spectrogram(x, cfg, np.random.default_rng(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_all_probabilities_zero_returns_the_input_unchanged(speech):
    cfg = dataclasses.replace(Config(), **OFF)
    assert np.array_equal(
        augment.augment_waveform(speech, SAMPLE_RATE, cfg, np.random.default_rng(0)), speech
    )
    x = features()
    assert torch.equal(augment.augment_spectrogram(x, cfg, np.random.default_rng(0)), x)


def test_augmented_waveform_never_clips(speech):
    loud = speech / np.abs(speech).max() * 0.99
    cfg = dataclasses.replace(Config(), **ALL_ON, noise_snr_min=0.0, noise_snr_max=0.0)
    for seed in range(5):
        out = augment.augment_waveform(loud, SAMPLE_RATE, cfg, np.random.default_rng(seed))
        assert np.abs(out).max() <= 1.0


def test_cli_writes_a_wav_and_png_per_augmentation_and_a_grid(tmp_path):
    sf.write(tmp_path / "speech.flac", speech_like(2.0), SAMPLE_RATE)
    out, grid = tmp_path / "out", tmp_path / "grid.png"
    augment_figure.main(
        ["--audio", str(tmp_path / "speech.flac"), "--out", str(out), "--grid", str(grid), "--n_mels", "40"]
    )
    names = ["original", "speed", "gain", "noise", "reverb", "bandlimit", "all"]
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(f"{n}.wav" for n in names)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{n}.png" for n in [*names, "masks"])
    assert sf.info(out / "speed.wav").frames != sf.info(out / "original.wav").frames
    assert grid.stat().st_size > 1000
    run = python("tools/augment_figure.py", "--audio", str(tmp_path / "missing.wav"), "--out", str(out))
    assert run.returncode == 1 and run.stderr.splitlines() == [
        f"error: {tmp_path / 'missing.wav'}: no such audio file"
    ]
