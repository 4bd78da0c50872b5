"""A few training steps through train.main leave readable logs: metrics, examples, wandb media."""

import json

import matplotlib.image
import soundfile as sf
from conftest import tiny_args

import train
from logger import metric_series, read_metrics


def test_training_logs_metrics_examples_and_wandb_media(tmp_path, tone_dataset, offline_wandb):
    run = tmp_path / "run"
    train.main(
        tiny_args(tone_dataset, run, "--val_data", str(tone_dataset), "--max_steps", "4", "--eval_every", "2",
                  "--log_every", "1", "--wandb_mode", "offline", "--device", "cpu", "--beam_size", "1")
    )  # fmt: skip

    rows = read_metrics(run)
    for key in ("train/loss", "train/lr", "train/grad_norm"):
        steps, values = metric_series(rows, key)
        assert steps.tolist() == [1, 2, 3, 4], key
        assert all(v == v for v in values), key  # no NaN
    val_steps = metric_series(rows, "val/wer")[0].tolist()
    assert val_steps in ([2, 4], [0, 2, 4]), val_steps  # 0: an optional untrained baseline
    assert metric_series(rows, "val/cer")[0].tolist() == val_steps
    ids = {p.stem for p in (tone_dataset / "audio").iterdir()}
    examples = [json.loads(line) for line in (run / "examples.jsonl").read_text().splitlines()]
    assert {e["step"] for e in examples} == set(val_steps) and {e["id"] for e in examples} <= ids
    assert all({"target", "prediction", "cer", "wer"} <= e.keys() for e in examples)

    (wandb_run,) = sorted((run / "wandb").glob("offline-run-*"))
    run_id = (run / "wandb_id.txt").read_text().strip()
    assert (wandb_run / f"run-{run_id}.wandb").stat().st_size > 0
    media = wandb_run / "files" / "media"
    tables = sorted(media.glob("table/**/*.table.json"))
    assert len(tables) == len(val_steps)
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["id", "target", "prediction", "CER", "WER"]
    assert {row[0] for row in table["data"]} <= ids and len(table["data"]) > 0
    # every validation shows a val batch; a train batch exists only once a step has run
    n_shown = 2 * len(val_steps) - (0 in val_steps)
    images = sorted(media.glob("images/spectrogram/*.png"))
    assert {p.name.split("_")[0] for p in images} == {"train", "val"} and len(images) == n_shown
    assert matplotlib.image.imread(images[0]).ndim == 3
    clips = sorted(media.glob("audio/audio/*.wav"))
    assert {p.name.split("_")[0] for p in clips} == {"train", "val"} and len(clips) == n_shown
    assert all(sf.info(c).samplerate == 16000 and sf.info(c).frames > 0 for c in clips)

    train.main(["plot", str(run), "--out", str(tmp_path / "curves.png")])
    assert matplotlib.image.imread(tmp_path / "curves.png").size > 0
