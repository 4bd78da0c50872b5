"""Training logs: metrics.jsonl and examples.jsonl in the run folder, mirrored to Weights & Biases.

The local files are the record of a run and need no account; wandb adds the tables, spectrogram
images and audio. wandb is optional: when it is missing or disabled only the files are written.

python logger.py plot runs/a runs/b --out curves.png
"""

import argparse
import json
import netrc
import os
import secrets
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

WANDB_MODES = ("auto", "online", "offline", "disabled")


# ----------------------------------------------------------------------------- wandb mode


def has_wandb_api_key() -> bool:
    """True when wandb can log in without asking: WANDB_API_KEY or a netrc entry for its server."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """auto -> WANDB_MODE if the user set it, else online with an API key, else offline."""
    if mode not in WANDB_MODES:
        raise ValueError(f"unknown wandb_mode {mode!r}; choose one of {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE", "").lower().replace("dryrun", "offline")
    if env_mode in WANDB_MODES[1:]:
        return env_mode
    if os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return "disabled"
    return "online" if has_wandb_api_key() else "offline"


def _run_id(run_dir: Path) -> str:
    """The wandb run id of this run folder, created on first use so that --resume continues it."""
    path = run_dir / "wandb_id.txt"
    if not path.exists() or not path.read_text().strip():
        path.write_text(secrets.token_hex(4) + "\n")  # wandb ids: lower-case letters and digits
    return path.read_text().strip()


def init_wandb(cfg, run_dir: Path, mode: str):
    """A wandb run, or None (with a warning) when wandb is missing or cannot start."""
    try:
        import wandb

        run = wandb.init(
            project=cfg.wandb_project,
            name=run_dir.resolve().name,
            dir=str(run_dir),
            mode=mode,
            id=_run_id(run_dir),
            resume="allow",
            config=cfg.to_dict(),
            settings=wandb.Settings(silent=True),
        )
    except Exception as e:  # no wandb, a failed login or an unreachable server must not stop training
        warnings.warn(f"wandb is unavailable ({e!r}); logging to metrics.jsonl only", stacklevel=3)
        return None
    if run.resumed:  # wandb restores the old config on resume; record the one this run uses
        run.config.update(cfg.to_dict(), allow_val_change=True)
    return run


# ----------------------------------------------------------------------------- media


def spectrogram_image(spec: np.ndarray, min_height: int = 256) -> np.ndarray:
    """(n_mels, T) log-mel -> (H, T, 3) uint8 colour image, low frequencies at the bottom."""
    from matplotlib import colormaps

    spec = np.asarray(spec, dtype=np.float32)
    # percentiles, not min/max: time masks and padding would otherwise squash the contrast
    lo, hi = np.percentile(spec, [1, 99]) if spec.size else (0.0, 1.0)
    norm = np.clip((spec - lo) / max(hi - lo, 1e-6), 0.0, 1.0)[::-1]  # (n_mels, T)
    rgb = colormaps["magma"](norm)[..., :3]  # (n_mels, T, 3) floats in [0, 1]
    rgb = np.repeat(rgb, max(1, min_height // max(1, spec.shape[0])), axis=0)  # taller, to be seen
    return (rgb * 255).astype(np.uint8)


def _playable(audio: np.ndarray) -> np.ndarray:
    """(N,) float32, scaled down if louder than full scale: WAV export would clip it."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    return audio / max(1.0, np.abs(audio).max(initial=0.0))


def _scalar(value):
    """Plain JSON-able value from a Python, numpy or 0-dim torch value."""
    return value.item() if hasattr(value, "item") else value


# ----------------------------------------------------------------------------- logger


class RunLogger:
    """Writes <run_dir>/metrics.jsonl and examples.jsonl and mirrors everything to wandb.

    Appends, so constructing it again on --resume continues the same files and wandb run."""

    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._examples = open(self.run_dir / "examples.jsonl", "a", encoding="utf-8")
        mode = resolve_wandb_mode(cfg.wandb_mode)
        self.run = None if mode == "disabled" else init_wandb(cfg, self.run_dir, mode)

    def log(self, step: int, scalars: dict) -> None:
        """One line of metrics.jsonl and one wandb step."""
        row = {"step": int(step), "time": round(time.time(), 3)} | {k: _scalar(v) for k, v in scalars.items()}
        self._write(self._metrics, [row])
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if k not in ("step", "time")}, step=int(step))

    def log_validation(
        self,
        step: int,
        scalars: dict,
        examples: list[dict] | None = None,
        spectrograms: dict[str, np.ndarray] | None = None,
        audio: dict[str, np.ndarray] | None = None,
        sample_rate: int = 16000,
    ) -> None:
        """Validation scalars, plus a predictions table, spectrograms and audio clips.

        examples: dicts with id, target, prediction, cer, wer; the first cfg.num_examples are kept.
        spectrograms: name -> (n_mels, T) log-mel; audio: name -> (N,) waveform at sample_rate."""
        examples = list(examples or [])[: self.cfg.num_examples]
        self.log(step, scalars)
        keys = ("id", "target", "prediction", "cer", "wer")
        rows = [{"step": int(step)} | {k: _scalar(e[k]) for k in keys if k in e} for e in examples]
        self._write(self._examples, rows)
        if self.run is None:
            return
        try:
            import wandb

            media = {
                f"spectrogram/{k}": wandb.Image(spectrogram_image(v), caption=f"{k} log-mel")
                for k, v in (spectrograms or {}).items()
            }
            for name, wave in (audio or {}).items():
                media[f"audio/{name}"] = wandb.Audio(_playable(wave), sample_rate=sample_rate, caption=name)
            if examples:
                table = [[e.get(k) for k in keys] for e in examples]
                media["val/examples"] = wandb.Table(columns=[*keys[:3], "CER", "WER"], data=table)
            self.run.log(media, step=int(step))
        except Exception as e:  # e.g. soundfile missing for wandb.Audio: keep training
            warnings.warn(f"could not log wandb media ({e})", stacklevel=2)

    @staticmethod
    def _write(file, rows: list[dict]) -> None:
        # flushed per call so that a crash or kill loses at most the line being written
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
        file.flush()

    def close(self, exit_code: int = 0) -> None:
        self._metrics.close()  # closing twice is harmless
        self._examples.close()
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


# ----------------------------------------------------------------------------- plots


def read_metrics(run_dir) -> list[dict]:
    """The rows of <run_dir>/metrics.jsonl; a half-written last line (after a crash) is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run folder written by train.py?")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def metric_series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric, sorted by step.

    A resumed run re-logs the steps after its checkpoint; the later value of a step wins."""
    by_step = {row["step"]: row[key] for row in rows if key in row and row[key] is not None}
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def smooth(values: np.ndarray) -> np.ndarray:
    """Bias-corrected exponential moving average spanning about 1/30 of the curve."""
    beta = 1.0 - 1.0 / max(1.0, len(values) / 30)
    out, avg = np.empty_like(values), 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def minutes_of_steps(rows: list[dict], steps: np.ndarray) -> np.ndarray:
    """Wall-clock minutes from a run's first log line to each step (a resumed run includes its pause)."""
    times = {row["step"]: row["time"] for row in rows if "time" in row}
    start = min(times.values())
    return np.array([(times[s] - start) / 60 for s in steps], dtype=np.float64)


PANELS = {  # metric -> title
    "train/loss": "train loss (CTC)",
    "val/wer": "validation WER",
    "val/cer": "validation CER",
    "train/lr": "learning rate",
}


def plot_runs(run_dirs: list, out_png, x: str = "step") -> None:
    """2x2 figure of PANELS against step or wall-clock minutes (x="minutes", to compare runs of
    different speed), one colour per run."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, no window

    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2).ravel()

    def curve(rows, key):  # (x values, metric values)
        steps, values = metric_series(rows, key)
        return (minutes_of_steps(rows, steps) if x == "minutes" else steps), values

    for i, run_dir in enumerate(run_dirs):
        rows, label, color = read_metrics(run_dir), Path(run_dir).resolve().name, f"C{i % 10}"
        for ax, key in zip(axes, PANELS):
            steps, values = curve(rows, key)
            if key == "train/loss" and len(values):  # noisy: faint as logged, bold smoothed
                ax.plot(steps, values, color=color, alpha=0.2, linewidth=0.8)
                values = smooth(values)
            if len(values):
                ax.plot(steps, values, color=color, label=label, marker="o" if "val/" in key else None)
            if "val/" in key:  # beam-search WER/CER too, when train.py logs them
                steps, values = curve(rows, key.replace("val/", "val/beam_"))
                if len(values):
                    ax.plot(steps, values, color=color, linestyle="--", label=f"{label} (beam)")
    for ax, (key, title) in zip(axes, PANELS.items()):
        ax.set(title=title, xlabel="wall-clock minutes" if x == "minutes" else "step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
            ax.set_yscale("log" if key == "train/loss" else "linear")
        else:
            ax.text(0.5, 0.5, f"no {key} logged", ha="center", va="center", transform=ax.transAxes)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)


def plot_main(argv: list[str] | None = None) -> None:
    """`plot RUN_DIR... --out PATH` (the leading word `plot` is optional)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plot"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="plot", description="Plot training curves of run folders.")
    parser.add_argument("run_dirs", nargs="+", help="run folders, each with a metrics.jsonl")
    parser.add_argument("--out", default="curves.png", help="PNG file to write")
    parser.add_argument("--x", default="step", choices=["step", "minutes"], help="horizontal axis")
    args = parser.parse_args(argv)
    try:
        plot_runs(args.run_dirs, args.out, x=args.x)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    plot_main()
