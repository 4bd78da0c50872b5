"""RunLogger writes metrics.jsonl / examples.jsonl and, offline, the wandb tables, images and audio."""

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf

from config import get_config
from logger import (
    RunLogger,
    metric_series,
    minutes_of_steps,
    plot_main,
    plot_runs,
    read_metrics,
    resolve_wandb_mode,
    spectrogram_image,
)

EXAMPLES = [
    {"id": "19-198-0001", "target": "bad cab", "prediction": "bad cap", "cer": 1 / 7, "wer": 0.5},
    {"id": "19-198-0002", "target": "face", "prediction": "face", "cer": 0.0, "wer": 0.0},
]


def log_a_run(run_dir: Path, wandb_mode: str, first_step: int = 1) -> None:
    cfg = get_config("tiny", out_dir=str(run_dir), wandb_mode=wandb_mode)
    rng = np.random.default_rng(0)
    log = RunLogger(cfg, run_dir)
    for step in range(first_step, first_step + 3):
        log.log(step, {"train/loss": 3.0 / step, "train/lr": 1e-3 * step, "train/grad_norm": np.float32(2.5)})
    log.log_validation(
        first_step + 2,
        {"val/wer": 0.25, "val/cer": 0.1},
        examples=EXAMPLES,
        spectrograms={"train": rng.standard_normal((32, 120)), "val": rng.standard_normal((32, 90))},
        audio={
            "train": 0.1 * rng.standard_normal(8000).astype(np.float32),
            "val": np.zeros(4000, np.float32),
        },
        sample_rate=16000,
    )
    log.close()


def offline_run_dirs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_offline_run_logs_scalars_table_images_and_audio(tmp_path, offline_wandb):
    log_a_run(tmp_path, "offline")

    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 3]
    assert all(isinstance(r["time"], float) for r in rows)
    for key in ("train/loss", "train/lr", "train/grad_norm"):
        assert len(metric_series(rows, key)[1]) == 3
    assert rows[1]["train/loss"] == pytest.approx(1.5) and rows[-1]["val/wer"] == 0.25
    local_examples = [json.loads(line) for line in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert [(e["step"], e["id"], e["prediction"]) for e in local_examples] == [
        (3, "19-198-0001", "bad cap"),
        (3, "19-198-0002", "face"),
    ]

    (run,) = offline_run_dirs(tmp_path)
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    assert (run / f"run-{run_id}.wandb").stat().st_size > 0
    media = run / "files" / "media"
    (table_file,) = media.glob("table/**/*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["id", "target", "prediction", "CER", "WER"]
    assert ["19-198-0001", "bad cab", "bad cap", pytest.approx(1 / 7), 0.5] in table["data"]
    images = sorted(media.glob("images/**/*.png"))
    assert [p.parent.name for p in images] == ["spectrogram", "spectrogram"]
    assert matplotlib.image.imread(images[0]).shape[:2] == (256, 120)  # 32 mel bins drawn 8 px tall
    clips = sorted(media.glob("audio/**/*.wav"))
    assert len(clips) == 2
    assert sorted(sf.info(c).frames for c in clips) == [4000, 8000]
    assert sf.info(clips[0]).samplerate == 16000


def test_resume_appends_and_continues_the_same_wandb_run(tmp_path, offline_wandb):
    log_a_run(tmp_path, "offline")
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    log_a_run(tmp_path, "offline", first_step=4)

    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 3, 4, 5, 6, 6]
    assert (tmp_path / "wandb_id.txt").read_text().strip() == run_id
    runs = offline_run_dirs(tmp_path)
    assert len(runs) == 2 and all((r / f"run-{run_id}.wandb").exists() for r in runs)


def test_disabled_mode_writes_only_the_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # the config's explicit mode wins
    log_a_run(tmp_path, "disabled")

    assert len(read_metrics(tmp_path)) == 4
    assert len((tmp_path / "examples.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "wandb").exists()
    assert not (tmp_path / "wandb_id.txt").exists()


def test_auto_mode_is_online_only_with_an_api_key(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc_path = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc_path))
    assert resolve_wandb_mode("auto") == "offline"
    netrc_path.write_text("machine api.wandb.ai\n  login user\n  password 0123456789\n")
    assert resolve_wandb_mode("auto") == "online"
    netrc_path.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789")
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"
    assert resolve_wandb_mode("offline") == "offline"
    with pytest.raises(ValueError, match="wandb_mode"):
        resolve_wandb_mode("sometimes")


def test_spectrogram_image_is_uint8_rgb_with_low_frequencies_at_the_bottom():
    spec = np.zeros((64, 50))
    spec[0] = 10.0  # loudest in the lowest mel bin
    image = spectrogram_image(spec)
    assert image.dtype == np.uint8 and image.shape == (256, 50, 3)
    assert image[-1].mean() > image[0].mean()


def test_metrics_reader_skips_a_torn_line_and_keeps_the_latest_value_of_a_step(tmp_path):
    lines = [
        {"step": 10, "train/loss": 2.0},
        {"step": 20, "train/loss": 1.0},
        {"step": 20, "val/wer": 0.5},
        {"step": 20, "train/loss": 0.9},  # re-logged after --resume from step 10
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 30, "train/lo'
    (tmp_path / "metrics.jsonl").write_text(text)
    steps, values = metric_series(read_metrics(tmp_path), "train/loss")
    assert steps.tolist() == [10, 20] and values.tolist() == [2.0, 0.9]


def test_plot_runs_draws_a_png_from_two_runs(tmp_path, capsys):
    for name, scale in (("a", 1.0), ("b", 2.0)):
        rows = [{"step": s, "train/loss": scale * 5 / s, "train/lr": 1e-3} for s in range(1, 80)]
        rows += [
            {"step": s, "val/wer": scale / s, "val/cer": 0.5 / s, "val/beam_wer": 0.9 / s} for s in (20, 40)
        ]
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "plots" / "curves.png"
    plot_runs([tmp_path / "a", tmp_path / "b"], out)
    assert out.stat().st_size > 0
    assert matplotlib.image.imread(out).shape == (800, 1200, 4)

    plot_main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "one.png")])
    assert (tmp_path / "one.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="metrics.jsonl"):
        plot_main([str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")])


def test_minutes_of_steps_counts_from_the_first_log_line(tmp_path):
    rows = [{"step": 0, "time": 1000.0, "val/cer": 1.0}, {"step": 10, "time": 1090.0, "train/loss": 3.0}]
    rows += [{"step": 20, "time": 1300.0, "val/cer": 0.5}]
    steps, _ = metric_series(rows, "val/cer")
    assert minutes_of_steps(rows, steps).tolist() == [0.0, 5.0]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_main([str(tmp_path), "--x", "minutes", "--out", str(tmp_path / "t.png")])
    assert matplotlib.image.imread(tmp_path / "t.png").shape == (800, 1200, 4)
