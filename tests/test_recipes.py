"""The release recipe: its stage table read back as command lines (--dry-run), on a data folder laid out
as recipes/get_data.sh makes it, against the commands that made the shipped model."""

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import REPO

VAL_SPEAKERS = ["19", "3664", "1970", "6848"]


def options(line: str) -> dict[str, list[str]]:
    """'python train.py --a 1 --b x y' -> {'--a': ['1'], '--b': ['x', 'y']}: flags in any order are one command."""
    words, parsed, flag = shlex.split(line), {}, None
    assert words[:2] == ["python", "train.py"], line
    for word in words[2:]:
        if word.startswith("--"):
            flag = word
            parsed[flag] = []
        else:
            parsed[flag].append(word)
    return parsed


def dry_run(data: Path, *flags: str) -> list[str]:
    done = subprocess.run(
        ["bash", "recipes/release.sh", str(data), "--dry-run", *flags],
        cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "RUN": "runs/r"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    for folder in ("LibriSpeech/train-clean-5", "cv/train", "cv/val"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def test_release_dry_run_starts_with_the_commands_that_made_the_shipped_model(data_dir):
    lines = dry_run(data_dir)
    ls5, cv = f"{data_dir}/LibriSpeech/train-clean-5", f"{data_dir}/cv"
    trains = [options(line) for line in lines if line.startswith("python train.py --")]
    # release 1, from scratch (its recipe as it was run, with the data where get_data.sh puts it)
    release1 = (
        f'python train.py --preset small --train_data {ls5} --val_data "" --val_speakers 19 3664 1970 6848 '
        "--max_steps 3000 --eval_every 250 --save_every 100 --num_workers 1 --beam_size 1 --out_dir runs/r/release1"
    )
    assert trains[0] == options(release1)
    # its best.pt exported as it was shipped, then release 2's first stage from it
    assert lines[1] == "python train.py export runs/r/release1/best.pt runs/r/release1.pt"
    stage1 = (
        "python train.py --preset small --init_from runs/r/release1.pt --lr 0.01 --max_minutes 125 --max_steps 100000 "
        f"--train_data {ls5},{cv}/train --val_data {cv}/val --val_speakers 19 3664 1970 6848 "
        "--eval_every 500 --save_every 100 --num_workers 1 --beam_size 1 --out_dir runs/r/stage1"
    )
    assert trains[1] == options(stage1)
    assert len(trains) == 14 and [t["--out_dir"] for t in trains[2:]] == [
        [f"runs/r/stage{i}"] for i in range(2, 14)
    ]
    for before, after in zip(trains[1:], trains[2:]):  # each stage goes on from the one before
        assert after["--init_from"] == [before["--out_dir"][0] + "/last.pt"]
    assert all(t["--val_speakers"] == VAL_SPEAKERS for t in trains)
    # stage 6 widens the model to the shipped checkpoint's architecture, whose targets stage 7 sets
    # (stages 8 to 13 keep them)
    shipped = torch.load(REPO / "checkpoints" / "model.pt", map_location="cpu", weights_only=False)["config"]
    assert trains[7]["--tokenizer"] == [shipped["tokenizer"]]
    assert all("--tokenizer" not in t for t in trains[8:])
    for field in ("c1_channels", "block_channels", "c2_channels", "c3_channels"):
        assert [int(x) for x in trains[6][f"--{field}"]] == list(
            torch.tensor(shipped[field]).reshape(-1).tolist()
        )
    assert lines[-1].startswith("python inference.py --checkpoint runs/r/model.pt") and "beam_lm" in lines[-1]


def test_release_by_steps_repeats_each_stages_steps_without_a_clock(data_dir):
    trains = [
        options(line) for line in dry_run(data_dir, "--by-steps") if line.startswith("python train.py --")
    ]
    assert [t["--max_steps"] for t in trains] == [
        ["3000"],
        ["4265"],
        ["4430"],
        ["4001"],
        ["3893"],
        ["3623"],
        ["2999"],
        ["1457"],
        ["1215"],
        ["3815"],
        ["6147"],
        ["6382"],
        ["5773"],
        ["5731"],
    ]
    assert not any("--max_minutes" in t for t in trains)


def test_release_names_the_missing_data_and_how_to_get_it(tmp_path):
    done = subprocess.run(
        ["bash", "recipes/release.sh", str(tmp_path), "--dry-run"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"error: {tmp_path}/LibriSpeech/train-clean-5 not found; get it with: bash recipes/get_data.sh {tmp_path} mini\n"
    )


def test_a_recipe_run_resumes_its_folder_or_starts_it_anew(tmp_path):
    """common.sh's train_run: a folder with last.pt is resumed (so a recipe stopped midway reruns);
    one stopped before its first checkpoint starts again instead of being refused by train.py."""
    shim = tmp_path / "bin" / "python"  # records the command line instead of training
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\necho "$@" >> "$LOG"\n')
    shim.chmod(0o755)
    log, run = tmp_path / "log", tmp_path / "run"

    def train_run() -> str:
        script = f"data={tmp_path}; source recipes/common.sh; train_run {run} --preset small --lr 0.01"
        env = {"PATH": f"{shim.parent}:/usr/bin:/bin", "LOG": str(log)}
        subprocess.run(["bash", "-c", script], cwd=REPO, env=env, check=True)
        return log.read_text().splitlines()[-1]

    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')  # killed before its first save
    assert train_run() == f"train.py --preset small --lr 0.01 --out_dir {run}"
    assert not (run / "metrics.jsonl").exists()
    (run / "last.pt").write_bytes(b"")
    (run / "metrics.jsonl").write_text('{"step": 100}\n')
    assert train_run() == f"train.py --resume --out_dir {run}"
    assert (run / "metrics.jsonl").exists()


def test_every_phoneme_stage_has_its_logs_in_the_repository(data_dir):
    """docs/logs/stageN for each stage of release 3, from the one that sets the phoneme targets on
    (release 1's and 2's logs were lost: docs/releases.md): metrics from step 0 to the steps the stage
    table records, examples, and an offline W&B run that `wandb sync` publishes (.gitignore's wandb/
    keeps such runs out unless added on purpose)."""
    trains = [
        options(line) for line in dry_run(data_dir, "--by-steps") if line.startswith("python train.py --")
    ]
    first = next(i for i, t in enumerate(trains) if "--tokenizer" in t)
    stages = {Path(t["--out_dir"][0]).name: int(t["--max_steps"][0]) for t in trains[first:]}
    assert "stage7" in stages and len(stages) >= 7
    for stage, made in stages.items():
        logs = REPO / "docs" / "logs" / stage
        steps = [json.loads(line)["step"] for line in (logs / "metrics.jsonl").read_text().splitlines()]
        assert (steps[0], max(steps)) == (0, made), stage
        assert (logs / "examples.jsonl").read_text().strip(), stage
        assert len(list(logs.glob("wandb/offline-run-*/run-*.wandb"))) == 1, stage
