import dataclasses
import json
import math
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import CUDA, REPO, TONE_TEXTS, python, random_texts, tiny_args, tone_speech, write_custom_dir

import inference
import train
from decode import DecodingOptions


def test_overfit_one_batch(tiny_run):
    """The tiny model, default augmentations on, learns a fixed batch of 4 utterances."""
    run, result = tiny_run
    assert result["step"] == 150
    assert result["val/cer"] < 0.05
    assert (run / "best.pt").exists() and (run / "last.pt").exists()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("device", [CUDA])
def test_overfit_one_batch_on_a_gpu_in_each_precision(tone_dataset, tmp_path, device, precision):
    """train.py's CUDA path (pinned batches, autocast, fp16's loss scaler) learns the tone batch too."""
    result = train.main(
        tiny_args(tone_dataset, tmp_path / "run", "--val_data", str(tone_dataset), "--max_steps", "150",
                  "--eval_every", "150", "--batch_seconds", "100", "--beam_size", "1", "--device", device,
                  "--precision", precision)
    )  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in lines if "train/loss" in r]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0] / 10
    assert result["val/cer"] < 0.05


def _params(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize("failure", ["ctrl_c", "crash"])
def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path, monkeypatch, failure):
    data_dir = write_custom_dir(tmp_path / "d", random_texts(6, seed=1))
    # ~3 s per batch: several batches per epoch, so the interruption falls mid-epoch
    common = ["--val_data", "", "--max_steps", "10", "--save_every", "3", "--batch_seconds", "4"]
    train.main(tiny_args(data_dir, tmp_path / "straight", *common))

    real_get_lr = train.get_lr

    def failing_get_lr(step, cfg, minutes=0.0):
        if step == 7:
            raise KeyboardInterrupt if failure == "ctrl_c" else RuntimeError("power cut")
        return real_get_lr(step, cfg, minutes)

    monkeypatch.setattr(train, "get_lr", failing_get_lr)
    with pytest.raises(SystemExit if failure == "ctrl_c" else RuntimeError):
        train.main(tiny_args(data_dir, tmp_path / "broken", *common))
    saved = torch.load(tmp_path / "broken" / "last.pt", weights_only=True)["step"]
    assert saved == (7 if failure == "ctrl_c" else 6)  # Ctrl-C saves; a crash keeps the last save
    monkeypatch.setattr(train, "get_lr", real_get_lr)

    result = train.main(["--resume", "--out_dir", str(tmp_path / "broken")])
    assert result["step"] == 10
    straight, resumed = _params(tmp_path / "straight" / "last.pt"), _params(tmp_path / "broken" / "last.pt")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_save_a_resumable_checkpoint(tmp_path, signum):
    """`kill PID`, a notebook's stop, or Ctrl-C even for a job a script put in the background (which
    starts with SIGINT ignored) end training with last.pt saved at the current step."""
    data_dir = write_custom_dir(tmp_path / "d", random_texts(6, seed=4))
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", *tiny_args(data_dir, run, "--val_data", "", "--max_steps", "100000")]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `cmd &` in a script
    )  # fmt: skip
    deadline = time.time() + 240
    while not (run / "metrics.jsonl").exists() or "train/loss" not in (run / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-2000:]
        time.sleep(0.2)
    proc.send_signal(signum)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output[-2000:]
    logged = max(json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines())
    saved = torch.load(run / "last.pt", weights_only=True)["step"]
    assert 5 <= logged <= saved < 100000
    assert "continue with --resume" in output


def test_data_loader_workers_train_exactly_like_the_main_process(tmp_path):
    """A worker, kept for the whole run, gets the epoch that seeds the augmentations from the sampler:
    1 worker gives the same weights as none over several epochs."""
    data_dir = write_custom_dir(tmp_path / "d", random_texts(6, seed=3))
    common = ["--val_data", "", "--max_steps", "6", "--batch_seconds", "4", "--threads", "1"]  # as in workers
    train.main(tiny_args(data_dir, tmp_path / "main", *common))
    train.main(tiny_args(data_dir, tmp_path / "worker", *common, "--num_workers", "1"))
    in_main, in_worker = _params(tmp_path / "main" / "last.pt"), _params(tmp_path / "worker" / "last.pt")
    assert torch.load(tmp_path / "worker" / "last.pt", weights_only=True)["epoch"] >= 2
    for name in in_main:
        assert torch.equal(in_main[name], in_worker[name]), name


def test_command_line_train_infer_score(tmp_path):
    """The README's commands, as a user types them."""
    data_dir = write_custom_dir(tmp_path / "d", random_texts(6, seed=2))
    trained = python(
        "train.py", *tiny_args(data_dir, tmp_path / "run", "--max_steps", "50", "--val_data", "")
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = tmp_path / "run" / "last.pt"
    inferred = python("inference.py", "--data_dir", str(data_dir), "--out", str(tmp_path / "preds"),
                      "--checkpoint", str(checkpoint))  # fmt: skip
    assert inferred.returncode == 0, inferred.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == [f"utt{i:03d}.txt" for i in range(6)]
    scored = python(
        "calc_metrics.py", "--refs", str(data_dir / "transcriptions"), "--hyps", str(tmp_path / "preds")
    )
    assert scored.returncode == 0 and "WER" in scored.stdout and "CER" in scored.stdout


def test_inference_survives_bad_files(tone_dataset, tiny_run, tmp_path, capsys):
    (tone_dataset / "audio" / "broken.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(tone_dataset / "audio" / "blip.wav", tone_speech("")[:800], 16000)  # 0.05 s
    (tone_dataset / "transcriptions" / "blip.txt").write_text("a\n")
    result = inference.main(
        ["--data_dir", str(tone_dataset), "--out", str(tmp_path / "preds"), "--checkpoint",
         str(tiny_run[0] / "last.pt"), "--num_workers", "0"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "broken.wav" in out and "too short" in out
    written = sorted(p.stem for p in (tmp_path / "preds").iterdir())
    assert written == ["a1", "a2", "a3", "a4", "blip", "broken"]
    assert (tmp_path / "preds" / "broken.txt").read_text().strip() == ""
    assert result["failed"] == 2 and result["utterances"] == 5  # blip's reference counts as deleted


def test_checkpoint_from_another_vocabulary_is_refused(tone_dataset, tiny_run, tmp_path):
    checkpoint = torch.load(tiny_run[0] / "last.pt", weights_only=True)
    checkpoint["tokenizer"]["vocab"] = checkpoint["tokenizer"]["vocab"] + ["<extra>"]
    torch.save(checkpoint, tmp_path / "other.pt")
    with pytest.raises(SystemExit, match="another vocabulary"):
        inference.main(["--data_dir", str(tone_dataset), "--checkpoint", str(tmp_path / "other.pt")])


def test_checkpoints_carry_their_tokenizer_and_the_old_format_loads(tiny_run, tmp_path):
    from model import load_checkpoint, load_model
    from tokenizer import Tokenizer

    saved = torch.load(tiny_run[0] / "last.pt", weights_only=True)
    assert saved["tokenizer"] == Tokenizer().state_dict() and "vocab" not in saved
    old = {k: v for k, v in saved.items() if k != "tokenizer"} | {"vocab": Tokenizer().vocab}
    torch.save(old, tmp_path / "old.pt")  # as written before the tokenizer was saved
    model, cfg, tokenizer = load_model(load_checkpoint(tmp_path / "old.pt"))
    assert tokenizer == Tokenizer() and cfg.n_mels == 32
    shipped = REPO / "checkpoints" / "model.pt"
    if shipped.exists():
        model, _, tokenizer = load_model(load_checkpoint(shipped))  # release 3: phonemes and a lexicon
        assert model.c4.out_channels == len(tokenizer) == 41 and tokenizer.lexicon is not None


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="folder not found"):
        inference.main(["--data_dir", str(tmp_path / "nope"), "--checkpoint", str(tmp_path / "none.pt")])


def test_checkpoint_decoding_settings_lm_fallback_and_tuning(tone_dataset, tiny_run, tmp_path, capsys):
    from arpa import write_arpa
    from kneser_ney import build_kneser_ney

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run[0] / "last.pt", run / "last.pt")
    write_arpa(build_kneser_ney(["bad cab", "face", "dad fade", "bead deaf"] * 3, 3), tmp_path / "lm.arpa")
    train.main(["export", str(run / "last.pt"), str(run / "released.pt"), "--decoder", "beam_lm",
                "--lm", str(tmp_path / "lm.arpa"), "--alpha", "0.5", "--beta", "1.0", "--beam_size", "8"])  # fmt: skip
    released = torch.load(run / "released.pt", weights_only=True)
    assert "optimizer" not in released and released["model"]["c4.weight"].dtype == torch.float16
    assert (run / "lm.arpa").exists()  # copied beside the checkpoint
    args = ["--data_dir", str(tone_dataset), "--out", str(tmp_path / "preds"), "--num_workers", "0"]

    result = inference.main([*args, "--checkpoint", str(run / "released.pt")])  # LM found beside it
    out = capsys.readouterr().out
    assert "beam_lm decoding" in out and "lm.arpa, alpha 0.5, beta 1.0, beam 8" in out
    assert result["cer"] < 0.05

    (run / "lm.arpa").unlink()  # weights without their LM still work
    inference.main([*args, "--checkpoint", str(run / "released.pt")])
    out = capsys.readouterr().out
    assert "LM 'lm.arpa' is missing" in out and "with beam decoding" in out
    with pytest.raises(FileNotFoundError, match="--lm .*lm.arpa: no such file"):  # nor exported without it
        train.main(["export", str(run / "last.pt"), str(run / "again.pt"), "--lm", str(run / "lm.arpa")])
    assert not (run / "again.pt").exists()

    best = inference.main(
        [*args, "--checkpoint", str(run / "released.pt"), "--tune", "--lm", str(tmp_path / "lm.arpa"),
         "--alphas", "0", "0.5", "--betas", "0", "1", "--unk_scores", "lexicon", "-2", "--out", str(tmp_path / "tune")]
    )  # fmt: skip
    table = "\n".join(line for line in capsys.readouterr().out.splitlines() if " | " in line)  # not progress
    written = json.loads((tmp_path / "tune" / "tune.json").read_text())  # what recipes read
    rows = written["rows"]
    assert table.count("%") == 2 * len(rows) and 3 <= len(rows) <= 8  # a line search, not the full grid
    assert best == written["best"] and set(best) == {"alpha", "beta", "unk_score"}
    assert best["alpha"] in (0, 0.5) and best["beta"] in (0, 1) and best["unk_score"] in (-np.inf, -2)
    (best_row,) = [r for r in rows if {k: r[k] for k in best} == best]
    assert min((r["wer"], r["cer"]) for r in rows) == (best_row["wer"], best_row["cer"])
    train.main(["export", str(run / "last.pt"), str(run / "tuned.pt"), "--decoder", "beam_lm",
                "--lm", str(tmp_path / "lm.arpa"), "--tuned", str(tmp_path / "tune" / "tune.json")])  # fmt: skip
    assert torch.load(run / "tuned.pt", weights_only=True)["decoding"] == dataclasses.asdict(
        DecodingOptions(**best, decoder="beam_lm", beam_size=50, lm="lm.arpa")
    )


def test_word_piece_model_trains_exports_and_transcribes(tmp_path, capsys):
    """--tokenizer bpe end to end: pieces learned from the training transcripts and saved in the
    checkpoint; greedy, beam and LM-fused decoding all read them back to words."""
    from arpa import write_arpa
    from kneser_ney import build_kneser_ney
    from model import load_checkpoint, load_model
    from tokenizer import BPETokenizer, normalize_text, train_tokenizer

    data_dir, run = write_custom_dir(tmp_path / "tones", TONE_TEXTS), tmp_path / "run"
    pieces = ["--tokenizer", "bpe", "--vocab_size", "40", "--max_steps", "150", "--eval_every", "150"]
    common = ["--val_data", str(data_dir), "--batch_seconds", "100", "--beam_size", "1", "--threads", "1"]
    result = train.main(tiny_args(data_dir, run, *pieces, *common))
    assert result["val/cer"] < 0.05
    assert "tokenizer: 40 word pieces (bpe); " in capsys.readouterr().out
    model, _, tokenizer = load_model(load_checkpoint(run / "last.pt"))
    assert isinstance(tokenizer, BPETokenizer)
    assert tokenizer == train_tokenizer(TONE_TEXTS.values(), "bpe", 40)  # from the training transcripts
    assert model.c4.out_channels == len(tokenizer) == 40 and "ace" in tokenizer.vocab

    result = train.main(["--resume", "--out_dir", str(run), "--max_steps", "152"])  # the saved pieces
    assert result["step"] == 152 and result["val/cer"] < 0.05
    with pytest.raises(ValueError, match="the run being resumed uses bpe"):
        train.main(["--resume", "--out_dir", str(run), "--tokenizer", "char"])

    write_arpa(build_kneser_ney(list(TONE_TEXTS.values()) * 3, 2), tmp_path / "lm.arpa")
    train.main(["export", str(run / "last.pt"), str(run / "released.pt"), "--decoder", "beam_lm",
                "--lm", str(tmp_path / "lm.arpa"), "--beam_size", "8"])  # fmt: skip
    args = ["--data_dir", str(data_dir), "--checkpoint", str(run / "released.pt"), "--num_workers", "0"]
    for decoder in ("greedy", "beam", "beam_lm"):
        out = tmp_path / decoder
        result = inference.main([*args, "--out", str(out), "--decoder", decoder])
        assert result["cer"] < 0.05 and result["predictions"] == 4, decoder
        texts = [p.read_text() for p in out.iterdir()]
        assert all(text == normalize_text(text) + "\n" for text in texts)  # words with single spaces
    result = inference.transcribe(data_dir, tmp_path / "in_python", run / "released.pt", num_workers=0)
    assert result["cer"] < 0.05


def test_phoneme_model_trains_resumes_exports_and_transcribes(tmp_path, capsys):
    """--tokenizer phone end to end: the training transcripts' lexicon (a G2P word, an utterance
    that cannot be converted) saved in the checkpoint; an LM's lexicon shipped beside it; greedy,
    beam and LM-fused decoding all write words, and hotwords outside that lexicon."""
    import lm
    from arpa import write_arpa
    from kneser_ney import build_kneser_ney
    from lexicon import load_lexicon
    from model import load_checkpoint, load_model
    from tokenizer import PhoneTokenizer, train_tokenizer

    texts = dict(TONE_TEXTS, a5="dacab bad", a6="cab ω")  # "dacab": by G2P; "ω": no pronunciation
    data_dir, run = write_custom_dir(tmp_path / "tones", texts), tmp_path / "run"
    phone = ["--tokenizer", "phone", "--max_steps", "150", "--eval_every", "150", "--beam_size", "4"]
    # validation words need not be in the training lexicon ("bed")
    val_dir = write_custom_dir(tmp_path / "val", {"v1": "bed cab"})
    common = ["--val_data", f"{data_dir},{val_dir}", "--batch_seconds", "100", "--threads", "1"]
    with pytest.warns(UserWarning) as caught:
        result = train.main(tiny_args(data_dir, run, *phone, *common))
    skipped = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(skipped) == 2 and all(
        "skipped 1 utterance(s): characters outside the vocabulary (ω)" in w for w in skipped
    )
    assert all("a6.wav" in w for w in skipped)  # in training and validation; never v1
    out = capsys.readouterr().out
    assert "validation: 7 utterances" in out
    assert (
        "lexicon of the training transcripts: 8 words, 1 pronounced by G2P (dacab); 1 cannot be converted (ω)"
        in out
    )
    assert "tokenizer: 41 phonemes; " in out
    assert result["val/wer"] < 0.2 and result["val/beam_wer"] < 0.2 and result["val/per"] < 0.2
    model, _, tokenizer = load_model(load_checkpoint(run / "last.pt"))
    assert isinstance(tokenizer, PhoneTokenizer) and model.c4.out_channels == len(tokenizer) == 41
    assert tokenizer == train_tokenizer(texts.values(), "phone")  # the lexicon of the training transcripts

    result = train.main(["--resume", "--out_dir", str(run), "--max_steps", "152"])  # the saved lexicon
    assert result["step"] == 152 and result["val/wer"] < 0.2
    assert "lexicon of the training" not in capsys.readouterr().out  # converted once, in the first run

    # an LM and its lexicon (which lacks "bead"), shipped beside the exported model
    write_arpa(
        build_kneser_ney(["bad cab", "face", "dad fade", "bed deaf", "dacab bad"] * 3, 2),
        tmp_path / "lm.arpa",
    )
    lm.main(["lexicon", "--lm", str(tmp_path / "lm.arpa"), "--out", str(tmp_path / "lm.lexicon.gz")])
    train.main(["export", str(run / "last.pt"), str(tmp_path / "release" / "model.pt"), "--decoder", "beam_lm",
                "--lm", str(tmp_path / "lm.arpa"), "--beam_size", "8"])  # fmt: skip
    assert (tmp_path / "release" / "lm.lexicon.gz").exists()
    args = [
        "--data_dir",
        str(data_dir),
        "--checkpoint",
        str(tmp_path / "release" / "model.pt"),
        "--num_workers",
        "0",
    ]
    for decoder in ("greedy", "beam", "beam_lm"):
        result = inference.main([*args, "--out", str(tmp_path / decoder), "--decoder", decoder])
        assert result["predictions"] == 6 and result["wer"] < 0.3 and result["per"] < 0.2, decoder
        words = {w for p in (tmp_path / decoder).iterdir() for w in p.read_text().split()}
        assert words <= set(load_lexicon(str(tmp_path / "lm.lexicon.gz")).entries), decoder
    result = inference.transcribe(
        data_dir, tmp_path / "in_python", tmp_path / "release" / "model.pt", num_workers=2
    )
    assert result["wer"] < 0.3 and "bead" not in (tmp_path / "in_python" / "a4.txt").read_text()
    # a hotword outside the LM's lexicon and the LM: pronounced by CMUdict, scored as <unk>
    inference.transcribe(
        data_dir, tmp_path / "hot", tmp_path / "release" / "model.pt", num_workers=2, hotwords="bead"
    )
    assert (tmp_path / "hot" / "a4.txt").read_text().split()[0] == "bead"


def test_transcripts_too_long_for_the_stride_are_skipped_in_training(tmp_path, capsys):
    data_dir = write_custom_dir(tmp_path / "d", {"u1": "bad cab dad", "u2": "fade bead", "face": "face"})
    (data_dir / "transcriptions" / "face.txt").write_text("face bead deaf\n")  # 14 tokens, 5 frames
    with pytest.warns(UserWarning, match=r"skipped 1 utterance\(s\): transcript too long for stride 8"):
        result = train.main(tiny_args(data_dir, tmp_path / "run", "--val_data", "", "--max_steps", "2",
                                      "--stride", "8", "--speed_prob", "0"))  # fmt: skip
    assert result["step"] == 2
    assert "train: 2 utterances (0.00 h, 1 skipped (named above))" in capsys.readouterr().out


def test_a_folder_listed_twice_weights_training_but_not_validation(tmp_path, capsys):
    """Listing a folder twice in --train_data doubles its utterances in training; the held-out
    speakers' utterances are validated once each."""
    texts = {"a-1": "bad cab", "a-2": "face", "b-1": "dad fade", "b-2": "bead deaf", "c-1": "cab"}
    data_dir = write_custom_dir(tmp_path / "d", texts)
    args = tiny_args(f"{data_dir},{data_dir}", tmp_path / "run", "--val_data", "", "--val_speakers", "c")
    result = train.main(args + ["--max_steps", "1", "--speed_prob", "0"])
    assert result["step"] == 1
    out = capsys.readouterr().out
    assert "train: 8 utterances" in out and "validation: 1 utterances" in out


def test_max_minutes_ends_the_run_and_its_schedule_on_the_clock(tmp_path, monkeypatch):
    """With --max_minutes the run stops when the clock says so (validated and saved), its learning
    rate having decayed on the clock; a resume with more minutes continues the count."""
    data_dir = write_custom_dir(tmp_path / "d", random_texts(4, seed=2))
    clock = [1000.0]  # seconds; each training step takes 6 s on this clock

    def fake_time():
        return clock[0]

    real_get_lr, lrs = train.get_lr, []

    def recording_get_lr(step, cfg, minutes=0.0):
        clock[0] += 6.0
        lrs.append(real_get_lr(step, cfg, minutes))
        return lrs[-1]

    monkeypatch.setattr(train.time, "time", fake_time)
    monkeypatch.setattr(train, "get_lr", recording_get_lr)
    common = [
        "--val_data",
        str(data_dir),
        "--max_steps",
        "1000",
        "--warmup_steps",
        "2",
        "--eval_every",
        "1000",
    ]
    result = train.main(tiny_args(data_dir, tmp_path / "run", *common, "--max_minutes", "1"))
    assert result["step"] == 11  # 10 steps make the minute; the step that sees it is the last
    assert "val/cer" in result  # validated at the end although eval_every was not reached
    assert lrs[-1] < 0.05 * lrs[2]  # the cosine went (almost) all the way down in one minute
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["step"] == 11 and 1.0 <= saved["minutes"] < 1.2
    result = train.main(tiny_args(data_dir, tmp_path / "run", "--resume", "--max_minutes", "1.5"))
    assert 11 < result["step"] <= 17


def test_init_from_fine_tunes_a_checkpoint_with_a_new_schedule(tone_dataset, tiny_run, tmp_path):
    """--init_from starts at step 0 from the checkpoint's weights and tokenizer (its architecture wins
    over the preset's), with a fresh optimiser: at lr 0 the weights stay those of the checkpoint and
    the model still knows the tones; an architecture flag that contradicts it is a one-line error,
    but more channels widen the checkpoint's model, which still knows them."""
    run, _ = tiny_run
    source = torch.load(run / "last.pt", weights_only=True)
    args = tiny_args(tone_dataset, tmp_path / "ft", "--preset", "small", "--init_from", str(run / "last.pt"))
    result = train.main(args + ["--val_data", str(tone_dataset), "--max_steps", "2", "--lr", "0"])
    assert result["step"] == 2 and result["val/cer"] < 0.05
    tuned = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)
    assert tuned["config"]["c1_channels"] == source["config"]["c1_channels"]  # not small's
    assert tuned["tokenizer"] == source["tokenizer"]
    for name, weight in source["model"].items():
        if "running" not in name and "num_batches" not in name:  # batch norm statistics keep moving
            assert torch.equal(tuned["model"][name], weight), name
    with pytest.raises(ValueError, match="--c1_channels"):
        train.main(
            tiny_args(tone_dataset, tmp_path / "x", "--init_from", str(run / "last.pt"), "--c1_channels", "8")
        )
    wider = ["--init_from", str(run / "last.pt"), "--c1_channels", str(source["config"]["c1_channels"] + 16)]
    result = train.main(tiny_args(tone_dataset, tmp_path / "wide", *wider, "--val_data", str(tone_dataset)) + [
        "--max_steps", "2", "--lr", "0"])  # fmt: skip
    assert result["val/cer"] < 0.05  # the widened copy still knows the tones
    widened = torch.load(tmp_path / "wide" / "last.pt", weights_only=True)
    assert widened["config"]["c1_channels"] == source["config"]["c1_channels"] + 16


def test_a_new_run_into_a_folder_that_holds_one_is_refused(tmp_path, capsys):
    """Without --resume, a folder with last.pt or metrics.jsonl is left as it is: one line naming it
    and the ways out, exit 2, no second run appended to its curves."""
    data_dir = write_custom_dir(tmp_path / "d", random_texts(4, seed=5))
    run = tmp_path / "run"
    args = tiny_args(data_dir, run, "--val_data", "", "--max_steps", "2", "--log_every", "1")
    assert train.cli(args) == 0
    before = {name: (run / name).read_bytes() for name in ("last.pt", "metrics.jsonl")}
    capsys.readouterr()
    assert train.cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --out_dir {run} already holds a run")
    assert f"--resume --out_dir {run}" in err and "another --out_dir" in err
    assert {name: (run / name).read_bytes() for name in before} == before
    (run / "last.pt").unlink()  # the curves alone are a run too
    assert train.cli(args) == 2 and (run / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]


@pytest.mark.parametrize(
    "flags, named",
    [(["--device", "mps"], "--device mps"), (["--lr", "-1"], "--lr -1"), (["--batch_seconds", "0"], "--batch_seconds 0"),
     (["--speed_prob", "2"], "--speed_prob 2"), (["--dropout", "1.5"], "--dropout 1.5"), (["--optimizer", "sgd"], "--optimizer sgd"),
     (["--device", "cpu", "--precision", "fp16"], "--precision fp16")],
)  # fmt: skip
def test_a_bad_flag_is_one_line_naming_it_before_any_work(tmp_path, capsys, monkeypatch, flags, named):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    # the data folder does not exist and the run folder is not made: the flag is checked first
    args = tiny_args(tmp_path / "no_data", tmp_path / "run", *flags)
    assert train.cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_resume_with_more_steps_goes_on_from_the_learning_rate_it_had(tmp_path, monkeypatch):
    """--resume --max_steps N (more): the cosine does not start again from the top; the learning rate
    goes on from its value at the resume, down to min_lr at the new end, also after another resume."""
    data_dir = write_custom_dir(tmp_path / "d", random_texts(4, seed=6))
    run, calls, stop_at_call = tmp_path / "run", [0], [4]
    real_ctc_loss = train.ctc_loss

    def stopping_ctc_loss(*args):  # once per step
        calls[0] += 1
        if calls[0] == stop_at_call[0]:
            raise KeyboardInterrupt  # Ctrl-C in a step: it is not taken
        return real_ctc_loss(*args)

    monkeypatch.setattr(train, "ctc_loss", stopping_ctc_loss)
    common = ["--val_data", "", "--batch_seconds", "4", "--warmup_steps", "1", "--lr", "0.01", "--min_lr", "0.001"]  # fmt: skip
    with pytest.raises(SystemExit):  # steps 0-2 of 6, stopped in step 3
        train.main(tiny_args(data_dir, run, *common, "--log_every", "1", "--max_steps", "6"))
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3
    stop_at_call[0] = 4 + 5  # steps 3-6 of 12, stopped in step 7
    with pytest.raises(SystemExit):
        train.main(["--resume", "--out_dir", str(run), "--max_steps", "12"])
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 7
    stop_at_call[0] = 0
    train.main(["--resume", "--out_dir", str(run)])  # steps 7-11: the 12 steps are kept, and the schedule
    lrs = {row["step"] - 1: row["train/lr"] for row in map(json.loads, (run / "metrics.jsonl").open())}
    assert sorted(lrs) == list(range(12))

    def cosine(top, step, start, end):  # get_lr's decay, by hand
        return 0.001 + 0.5 * (top - 0.001) * (1 + math.cos(math.pi * (step - start) / (end - start)))

    assert lrs[2] == pytest.approx(cosine(0.01, 2, 1, 6))  # the 6-step schedule
    at_3 = cosine(0.01, 3, 1, 6)
    for step in range(3, 12):  # from where it stood at step 3, down to min_lr at step 12
        assert lrs[step] == pytest.approx(cosine(at_3, step, 3, 12)), step


def test_skipped_utterances_exit_3_with_one_line_warnings(tmp_path):
    """A training file that cannot be used (here an empty transcription) is named in a "warning:"
    line, Python's "UserWarning" and source line left out, and the run exits 3; an utterance over
    --max_duration is left out by choice, named but not counted."""
    data_dir = write_custom_dir(
        tmp_path / "d", {"u1": "bad cab", "u2": "face", "u3": "dad fade", "u4": "deaf"}
    )
    (data_dir / "transcriptions" / "u4.txt").write_text("\n")
    sf.write(data_dir / "audio" / "long.wav", tone_speech("bead " * 6), 16000)  # 2.6 s
    (data_dir / "transcriptions" / "long.txt").write_text("bead " * 6)
    args = tiny_args(data_dir, tmp_path / "run", "--val_data", "", "--max_steps", "1", "--max_duration", "2")
    done = python("train.py", *args)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output[-2000:]
    assert "warning: skipped 1 utterance(s): empty transcription: " in output and "u4.wav" in output
    assert "warning: skipped 1 utterance(s): longer than max_duration=2.0s" in output
    assert "UserWarning" not in output and "warnings.warn" not in output
    assert "(1 utterance(s) unusable, named above)" in done.stdout


def test_own_folder_without_val_data_validates_on_held_out_speakers_offline(tmp_path, monkeypatch, capsys):
    """No --val_data and a local training folder: no download (dev-clean is only the default beside
    LibriSpeech splits); whole speakers are held out of the training data instead, the same ones on
    every run. Beside a split name, a failed dev-clean download names --val_data."""
    import data

    chapter = tmp_path / "LibriSpeech" / "test-clean" / "19" / "198"  # "downloaded" already
    chapter.mkdir(parents=True)
    sf.write(chapter / "19-198-0000.flac", tone_speech("bad cab"), 16000)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 BAD CAB\n")

    def download_librispeech(split, root):  # offline: only what is on disk
        if split != "test-clean":
            raise data.DataError(f"could not download {split}.tar.gz; run again")
        return chapter.parents[1]

    monkeypatch.setattr(data, "download_openslr", download_librispeech)
    texts = {
        f"{s}-{i}": t
        for i, (s, t) in enumerate(zip("aabbccddeeffgghhiijj", random_texts(20, seed=7).values()))
    }
    data_dir = write_custom_dir(tmp_path / "d", texts)
    result = train.main(tiny_args(data_dir, tmp_path / "run", "--max_steps", "1", "--beam_size", "1"))
    assert "val/wer" in result
    out = capsys.readouterr().out
    assert "validation: 2 utterances of 1 speaker(s) held out of --train_data" in out
    assert "train: 18 utterances" in out

    utterances = [data.Utterance(uid, "", 1.0, "a") for uid in texts]
    kept, held = train.hold_out(utterances, 0.25)
    assert len(held) == 6 and {u.id[0] for u in held}.isdisjoint({u.id[0] for u in kept})  # 3 whole speakers
    assert train.hold_out(utterances[::-1], 0.25)[1] == held[::-1]  # the same speakers, whatever the order
    assert train.hold_out(utterances[:2], 0.5) == (utterances[:2], [])  # one speaker: none held out
    # ids that name no speaker (Common Voice's sample-NNNNNN) make one huge "speaker": never held out
    corpus = [data.Utterance(f"sample-{i:06d}", "", 1.0, "a") for i in range(18)]
    corpus += [data.Utterance(f"{s}-1", "", 1.0, "a") for s in "xy"]
    held = train.hold_out(corpus, 0.1)[1]
    assert held and not any(u.id.startswith("sample") for u in held)

    with pytest.raises(data.DataError, match="^--val_data auto: could not download dev-clean"):
        train.main(tiny_args("test-clean", tmp_path / "ls", "--max_steps", "1"))


def test_init_from_with_another_tokenizer_keeps_the_encoder_and_starts_a_new_output_layer(
    tone_dataset, tiny_run, tmp_path, capsys
):
    """Phonemes from a character model's encoder: --init_from with --tokenizer phone learns the
    lexicon from the transcripts; every weight but the output layer's is the checkpoint's."""
    run, _ = tiny_run
    source = torch.load(run / "last.pt", weights_only=True)
    args = tiny_args(
        tone_dataset, tmp_path / "phone", "--init_from", str(run / "last.pt"), "--tokenizer", "phone"
    )
    result = train.main(args + ["--val_data", str(tone_dataset), "--max_steps", "2", "--lr", "0"])
    assert result["step"] == 2 and "a new output layer for phone" in capsys.readouterr().out
    tuned = torch.load(tmp_path / "phone" / "last.pt", weights_only=True)
    assert tuned["tokenizer"]["kind"] == "phone" and tuned["config"]["tokenizer"] == "phone"
    assert tuned["model"]["c4.weight"].shape[0] == 41 != source["model"]["c4.weight"].shape[0]
    for name, weight in source["model"].items():
        if not name.startswith("c4.") and "running" not in name and "num_batches" not in name:
            assert torch.equal(tuned["model"][name], weight), name


def test_auxiliary_phoneme_loss_trains_a_phoneme_layer_beside_the_characters(tmp_path, capsys):
    """--aux_phone_weight: an output layer on the middle block learns the transcripts' phonemes
    while the model learns (and decodes) characters; the run resumes with its lexicon; inference
    and export leave the layer out."""
    from calc_metrics import phoneme_error_rate
    from config import config_from_dict
    from data import SpeechDataset, collate, read_data
    from decode import greedy_decode
    from lexicon import spoken
    from model import QuartzNet, load_checkpoint, load_model
    from tokenizer import Tokenizer, train_tokenizer

    data_dir, run = write_custom_dir(tmp_path / "tones", TONE_TEXTS), tmp_path / "run"
    aux = ["--aux_phone_weight", "0.5", "--max_steps", "150", "--eval_every", "150", "--beam_size", "1"]
    common = ["--val_data", str(data_dir), "--batch_seconds", "100", "--threads", "1"]
    result = train.main(tiny_args(data_dir, run, *aux, *common))
    assert result["val/cer"] < 0.05  # the characters, as ever
    assert "pronunciation lexicon of the training transcripts: 7 words" in capsys.readouterr().out
    state = load_checkpoint(run / "last.pt")
    phones = Tokenizer.from_state_dict(state["aux_tokenizer"])
    assert phones == train_tokenizer(TONE_TEXTS.values(), "phone")

    # the phoneme layer reads the tones as phonemes: its best paths against the pronunciations
    cfg = config_from_dict(state["config"])
    model = QuartzNet(cfg, len(Tokenizer()), len(phones))
    model.load_state_dict(state["model"])
    batch = collate(list(SpeechDataset(read_data(str(data_dir)), cfg)))
    _, lengths, aux_log_probs = model.eval()(batch["features"], batch["feature_lengths"], aux=True)
    paths = [phones.phonemes(greedy_decode(lp[:n].detach().numpy())) for lp, n in zip(aux_log_probs, lengths)]
    assert phoneme_error_rate(spoken(batch["texts"], phones.lexicon), paths) < 0.2

    result = train.main(["--resume", "--out_dir", str(run), "--max_steps", "152"])
    assert result["step"] == 152 and result["val/cer"] < 0.05
    with pytest.raises(ValueError, match="has an auxiliary phoneme layer"):
        train.main(["--resume", "--out_dir", str(run), "--aux_phone_weight", "0"])
    assert not hasattr(load_model(state)[0], "aux")
    train.main(["export", str(run / "last.pt"), str(tmp_path / "model.pt")])
    assert not any(
        k.startswith("aux.") for k in torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    )


def test_an_auxiliary_phoneme_target_too_long_for_the_stride_is_skipped():
    """With --aux_phone_weight both targets need a CTC alignment: "x" is one character but three
    phonemes (EH K S), so "x x x x" fits 10 output frames as characters and not as phonemes."""
    import warnings

    from config import get_config
    from data import SpeechDataset, Utterance
    from tokenizer import Tokenizer, train_tokenizer

    cfg = get_config("tiny", stride=8, speed_prob=0.0)
    seconds = 10 * 8 * 160 / 16000  # 10 output frames at stride 8
    utterances = [
        Utterance("u1", "/nowhere.wav", seconds, "x x x x"),
        Utterance("u2", "/no.wav", seconds, "x"),
    ]
    phones = train_tokenizer(["x x x x"], "phone")
    assert len(Tokenizer().encode("x x x x")) <= 10 < len(phones.encode("x x x x"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = SpeechDataset(utterances, cfg, Tokenizer(), aux_tokenizer=phones).utterances
    assert [u.id for u in kept] == ["u2"] and "transcript too long for stride 8" in str(caught[0].message)
