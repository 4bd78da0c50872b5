"""inference.py on a grader's folder: pairing with calc_metrics.py's rules, subfolders, interrupts,
reruns, exit codes; and the worker processes it starts."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from conftest import CUDA, REPO, TONE_TEXTS, infer, python, tone_speech, write_custom_dir

import inference
import model
from cli import EXIT_WARNINGS
from decode import decoder_pool


def graders_folder(root: Path) -> Path:
    """A folder as graders hand them in: an upper-case X.TXT, an X.wav.txt, a transcription without
    audio (a3), audio without transcription (b5), audio and text in a subfolder (sub/a4), and a
    notebook's hidden checkpoint copy that is nobody's audio."""
    data = write_custom_dir(root, TONE_TEXTS)
    audio, texts = data / "audio", data / "transcriptions"
    (texts / "a1.txt").rename(texts / "a1.TXT")
    (texts / "a2.txt").rename(texts / "a2.wav.txt")
    (audio / "a3.wav").unlink()
    sf.write(audio / "b5.wav", tone_speech("cab"), 16000)
    for folder in (audio / "sub", texts / "sub", audio / ".ipynb_checkpoints"):
        folder.mkdir()
    (audio / "a4.wav").rename(audio / "sub" / "a4.wav")
    (texts / "a4.txt").rename(texts / "sub" / "a4.txt")
    sf.write(audio / ".ipynb_checkpoints" / "a1-checkpoint.wav", tone_speech("a"), 16000)
    return data


def test_inference_and_calc_metrics_pair_a_graders_folder_alike(tiny_run, tmp_path):
    data, preds = graders_folder(tmp_path / "g"), tmp_path / "preds"
    done = python("inference.py", "--data_dir", str(data), "--out", str(preds), "--num_workers", "0",
                  "--checkpoint", str(tiny_run[0] / "last.pt"), "--decoder", "greedy")  # fmt: skip
    scored = python("calc_metrics.py", "--refs", str(data / "transcriptions"), "--hyps", str(preds))
    assert done.returncode == scored.returncode == EXIT_WARNINGS, done.stderr + scored.stderr
    assert sorted(p.relative_to(preds).as_posix() for p in preds.rglob("*.txt")) == [
        "a1.txt", "a2.txt", "b5.txt", "sub/a4.txt"
    ]  # fmt: skip
    for out in (done.stdout, scored.stdout):
        assert "warning: 1 reference(s) have no prediction and count as empty: a3" in out
        assert "warning: 1 prediction(s) have no reference and are ignored: b5" in out
    # a1 (A1.TXT), a2 (a2.wav.txt) and sub/a4 scored, a3 as empty: the same figure, the same counts
    report = re.compile(r"WER .*\(utterances 4, .*\)")
    assert report.search(done.stdout)[0] == report.search(scored.stdout)[0]


def test_interrupt_is_one_line_and_a_rerun_resumes(tiny_run, tmp_path, monkeypatch, capsys):
    data, preds, checkpoint = (
        write_custom_dir(tmp_path / "d", TONE_TEXTS),
        tmp_path / "preds",
        tiny_run[0] / "last.pt",
    )
    whole = infer(data, tmp_path / "whole", checkpoint)
    decode_batch, decoded = inference.decode_batch, []

    def run(*flags, batches=None) -> dict:
        """infer, one file per batch, Ctrl-C after `batches` batches; decoded: files decoded per batch."""
        decoded.clear()

        def counted(log_probs, *args):
            if len(decoded) == batches:
                raise KeyboardInterrupt
            decoded.append(len(log_probs))
            return decode_batch(log_probs, *args)

        monkeypatch.setattr(inference, "decode_batch", counted)
        return infer(data, preds, checkpoint, "--batch_seconds", "0.1", *flags)

    with pytest.raises(SystemExit) as e:
        run(batches=1)
    assert e.value.code == 130
    err = capsys.readouterr().err  # tqdm's bar, then one line
    assert err.endswith("\ninterrupted: 1 of 4 files written; rerun to continue\n") and "Traceback" not in err
    (first,) = [p.stem for p in preds.glob("*.txt")]
    assert not list(preds.glob("*.tmp"))

    with pytest.raises(SystemExit):
        run(batches=1)  # resumed: the first file kept, one more written
    assert "interrupted: 2 of 4 files written" in capsys.readouterr().err
    os.utime(data / "audio" / f"{first}.wav")  # the audio replaced since its prediction was written
    resumed = run()
    assert "keeping its 1 predictions" in capsys.readouterr().out and sum(decoded) == 3
    assert resumed["utterances"] == 4 and resumed["wer"] == whole["wer"]  # the figure covers every file
    assert sorted(p.name for p in preds.iterdir()) == [f"{uid}.txt" for uid in sorted(TONE_TEXTS)]
    for uid in TONE_TEXTS:
        assert (preds / f"{uid}.txt").read_text() == (tmp_path / "whole" / f"{uid}.txt").read_text()

    run()  # after a finished run: everything again
    assert sum(decoded) == 4
    for flags, redone in [((), 3), (("--overwrite",), 4)]:
        with pytest.raises(SystemExit):
            run(batches=1)
        run(*flags)
        assert sum(decoded) == redone, flags
    with pytest.raises(SystemExit):
        run(batches=1)
    capsys.readouterr()
    run("--decoder", "beam", "--beam_size", "2")  # other settings: another model's predictions are redone
    assert sum(decoded) == 4 and "keeping" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--beam_size", "0"),
        ("--alpha", "nan"),
        ("--unk_score", "inf"),
        ("--hotword_boost", "-1"),
        ("--hotwords", "names.txt"),  # a file that is not there
        ("--num_workers", "-1"),
        ("--hop", "0"),
    ],
)
def test_bad_decoding_option_is_a_usage_error_before_anything_is_loaded(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as e:  # neither the folder nor the checkpoint exists: never looked at
        inference.main(
            ["--data_dir", str(tmp_path / "nope"), "--checkpoint", str(tmp_path / "no.pt"), flag, value]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} ") and err.count("\n") == 1


def test_decoder_pool_worker_leaves_ctrl_c_to_the_parent(capfd):
    with decoder_pool("", 1) as pool:
        pid = pool.apply(os.getpid)
        os.kill(pid, signal.SIGINT)  # as Ctrl-C sends it to the whole process group
        assert pool.apply_async(os.getpid).get(timeout=30) == pid  # the same worker, still serving
    assert "KeyboardInterrupt" not in capfd.readouterr().err


def alive(pid: int) -> bool:
    """A process that runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = f"""
import os, sys, time
sys.path.insert(0, {str(REPO)!r})
import torch
from decode import decoder_pool, follow_parent
pool = decoder_pool("", 1)
loader = iter(torch.utils.data.DataLoader(range(8), num_workers=1, worker_init_fn=follow_parent))
next(loader)
print(pool.apply(os.getpid), *(w.pid for w in loader._workers), flush=True)
time.sleep(120)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    parent.kill()  # kill -9: no clean-up of its own
    parent.wait()
    deadline = time.monotonic() + 3  # workers look for their parent every 0.5 s (torch alone: 5 s)
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


@pytest.mark.parametrize("chunk_frames", [None, 50])
@pytest.mark.parametrize("device", [CUDA])
def test_the_gpu_transcribes_like_the_cpu(tiny_run, tmp_path, monkeypatch, device, chunk_frames):
    """The GPU's log-probs through greedy and beam search, from one pass or chunk by chunk (as a long
    recording runs): the CPU's words."""
    data = write_custom_dir(tmp_path / "tones", TONE_TEXTS)
    if chunk_frames:
        monkeypatch.setattr(model, "CHUNK_FRAMES", chunk_frames)
    texts = {}
    for on in ("cpu", device):
        for decoder in ("greedy", "beam"):
            out = tmp_path / f"{on}-{decoder}"
            infer(data, out, tiny_run[0] / "last.pt", "--device", on, "--decoder", decoder)
            texts[on, decoder] = {p.name: p.read_text() for p in out.glob("*.txt")}
    assert len(texts["cpu", "greedy"]) == len(TONE_TEXTS)
    assert texts["cpu", "greedy"] == texts[device, "greedy"] and texts["cpu", "beam"] == texts[device, "beam"]
