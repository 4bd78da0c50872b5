"""Each training augmentation applied to one audio file, as wav files and log-mel pictures (the figure in
docs/training.md). A side tool: training never imports it, so augment.py needs no matplotlib.

    python tools/augment_figure.py --audio clip.flac --out runs/augment --grid docs/augment/augmentations.png
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio import HOP_LENGTH, SAMPLE_RATE, load_audio, log_mel_spectrogram  # noqa: E402
from augment import (  # noqa: E402
    TELEPHONE_HIGH_HZ,
    TELEPHONE_LOW_HZ,
    add_noise,
    apply_gain,
    augment_spectrogram,
    augment_waveform,
    bandlimit,
    random_noise,
    reverberate,
    speed_perturb,
)
from cli import DataError, run  # noqa: E402
from config import add_config_args, config_from_args  # noqa: E402

WAVEFORM_PROBS = ("speed_prob", "gain_prob", "noise_prob", "reverb_prob", "bandlimit_prob")  # all on: "all"


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
    run(main, DataError, OSError)  # audio that is not there or cannot be read, an unwritable --out
