"""The GPU path in one run: correctness on CUDA, mixed precision, speed and torchrun, one table.

    # here, once: a compact slice of train-clean-5 (Opus in Ogg, ~6 MB) that travels with the tree
    python bench/gpu.py slice --source LS/train-clean-5 --out data/gpu_slice
    # on the GPU machine (minutes); --device cpu --quick runs every section small, to test the script
    python bench/gpu.py --data data/gpu_slice --out gpu_table.md

Sections (each a table in the report):
  correctness  the tests that take a device, their CUDA cases: model forward/backward and CTC loss
               against the CPU, chunked inference, decoders fed GPU log-probs, train.py's CUDA path
  precision    the tiny preset trained on the slice in fp32, bf16 and fp16 (loss scaler), side by
               side: loss falls, nothing non-finite, validation WER/CER alike at the same step
  model speed  forward + CTC + backward + optimiser step on random features, one preset's default
               batch of 15 s utterances: training audio-seconds per second, and inference x real time
               (eval mode, no gradients); peak GPU memory
  loop speed   train.py itself on the slice (augmentation on, default precision) with N loader
               workers: audio-seconds per second and the share of time spent waiting for data
  inference    inference.py with the shipped model on the slice's held-out speakers: x real time, WER
  torchrun     train.py under torchrun, one process (NCCL on a GPU): the DDP path runs
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

VAL_SPEAKERS = ("19", "3664", "1970", "6848")  # the project's held-out train-clean-5 speakers
UTTERANCE_SECONDS = 15.0  # the speed rows' utterances (LibriSpeech's training utterances: 2-17 s)
PRESETS = ("small", "base", "large")


# ----------------------------------------------------------------------------- the slice


def make_slice(source: Path, out: Path, train_minutes: float, val_minutes: float) -> None:
    """LibriSpeech-layout `source` -> out/{train,val}/audio/<id>.ogg (Opus) + transcriptions/<id>.txt:
    train from every speaker but the held-out ones, in turn; val from the held-out speakers."""
    import soundfile as sf

    by_speaker: dict[str, list[tuple[Path, str, str]]] = {}
    for trans in sorted(source.rglob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            uid, text = line.split(" ", 1)
            by_speaker.setdefault(uid.split("-")[0], []).append((trans.parent / f"{uid}.flac", uid, text))
    if not by_speaker:
        sys.exit(f"error: {source}: no LibriSpeech *.trans.txt files under it")
    for split, speakers, minutes in [
        ("train", [s for s in sorted(by_speaker) if s not in VAL_SPEAKERS], train_minutes),
        ("val", [s for s in VAL_SPEAKERS if s in by_speaker], val_minutes),
    ]:
        (out / split / "audio").mkdir(parents=True, exist_ok=True)
        (out / split / "transcriptions").mkdir(parents=True, exist_ok=True)
        queues, seconds = [list(by_speaker[s]) for s in speakers], 0.0
        while seconds < minutes * 60 and any(queues):
            for queue in queues:  # one utterance of each speaker in turn
                if queue and seconds < minutes * 60:
                    path, uid, text = queue.pop(0)
                    audio, rate = sf.read(path, dtype="float32")
                    sf.write(out / split / "audio" / f"{uid}.ogg", audio, rate, format="OGG", subtype="OPUS")
                    (out / split / "transcriptions" / f"{uid}.txt").write_text(text + "\n")
                    seconds += len(audio) / rate
        size = sum(p.stat().st_size for p in (out / split).rglob("*")) / 1e6
        print(f"{out / split}: {seconds / 60:.1f} min of {len(speakers)} speakers, {size:.1f} MB")


# ----------------------------------------------------------------------------- helpers


DEADLINE = [float("inf")]  # time.time() by which the whole run must end (--minutes)


def seconds_left(cap: float) -> float:
    """At most `cap` seconds, and no more than the run has left."""
    return max(min(cap, DEADLINE[0] - time.time()), 1.0)


def python(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """A command of this repository; one that runs past its time is stopped (returncode "timeout")."""
    argv = [sys.executable, *args]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        out, err = process.communicate(timeout=seconds_left(timeout))
        return subprocess.CompletedProcess(argv, process.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # with its data-loading workers (and torchrun's children)
        out, err = process.communicate()
        return subprocess.CompletedProcess(argv, "timeout", out, err)


def metrics_of(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows) if rows else float("nan")


def table(title: str, rows: list[dict]) -> str:
    """A markdown table of dict rows (their keys the columns, in the first row's order)."""
    if not rows:
        return f"### {title}\n\n(no rows)\n"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def train_args(data: Path, out: Path, preset: str, device: str, *extra) -> list[str]:
    return ["train.py", "--preset", preset, "--train_data", str(data / "train"), "--out_dir", str(out),
            "--device", device, "--wandb_mode", "disabled", "--log_every", "5", "--save_every", "100000",
            *map(str, extra)]  # fmt: skip


# ----------------------------------------------------------------------------- sections


def correctness(device: str) -> list[dict]:
    """The device-parametrised tests, their CUDA cases (on a machine without CUDA: all skipped)."""
    start = time.time()
    tests = ["tests/test_model.py", "tests/test_train.py", "tests/test_inference.py"]
    done = python("-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *tests, "-k", "cuda", timeout=240)
    counts = dict(
        re.findall(
            r"(\d+) (passed|failed|skipped|error)", done.stdout.splitlines()[-1] if done.stdout else ""
        )
    )
    counts = {v: int(k) for k, v in counts.items()}
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if done.returncode not in (0, 5) or failed:
        print(done.stdout[-6000:], done.stderr[-3000:])
    return [dict(tests="CUDA cases of " + ", ".join(Path(t).stem for t in tests), passed=counts.get("passed", 0),
                 failed=counts.get("failed", 0) + counts.get("error", 0), skipped=counts.get("skipped", 0),
                 seconds=round(time.time() - start), note="; ".join(failed)[:300])]  # fmt: skip


def precision(data: Path, device: str, steps: int, scratch: Path) -> list[dict]:
    """tiny in each precision, side by side (the rows are about numbers, not speed)."""
    kinds = ("fp32", "bf16", "fp16") if device.startswith("cuda") else ("fp32",)
    runs = {}
    for kind in kinds:
        out = scratch / f"precision-{kind}"
        argv = train_args(data, out, "tiny", device, "--val_data", data / "val", "--max_steps", steps,
                          "--eval_every", steps, "--beam_size", "1", "--num_workers", 4, "--precision", kind)  # fmt: skip
        runs[kind] = (out, subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True, start_new_session=True))  # fmt: skip
    rows = []
    for kind, (out, process) in runs.items():
        try:
            _, err = process.communicate(timeout=seconds_left(240))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, err = process.communicate()
            process.returncode = "timeout"
        lines = metrics_of(out)
        losses = [r["train/loss"] for r in lines if "train/loss" in r]
        val = [r for r in lines if "val/wer" in r]
        rows.append(dict(
            precision=kind, exit=process.returncode, steps=max((r["step"] for r in lines), default=0),
            first_loss=losses[0] if losses else "", last_loss=losses[-1] if losses else "",
            non_finite=sum(not math.isfinite(x) for x in losses),
            val_wer_start=val[0]["val/wer"] if val else "", val_wer=val[-1]["val/wer"] if val else "",
            val_cer=val[-1]["val/cer"] if val else "",
        ))  # fmt: skip
        if process.returncode:
            print(f"precision {kind}: exit {process.returncode}\n{err[-3000:]}")
    return rows


def model_speed(device: str, presets, steps: int = 10) -> list[dict]:
    """Training and inference audio-seconds per second on random features, per preset and precision."""
    from config import get_config

    kinds = ("fp32", "bf16") if device.startswith("cuda") else ("fp32",)
    return [
        time_model(get_config(preset), preset, kind, device, steps) for preset in presets for kind in kinds
    ]


def time_model(cfg, preset: str, kind: str, device: str, steps: int) -> dict:
    """One row of model_speed: the preset's default batch of UTTERANCE_SECONDS utterances."""
    from model import QuartzNet, num_params
    from train import ctc_loss, make_optimizer

    cuda = device.startswith("cuda")
    batch = max(int(cfg.batch_seconds // UTTERANCE_SECONDS), 1)
    frames = int(UTTERANCE_SECONDS * 100)
    features = torch.randn(batch, cfg.n_mels, frames, device=device)
    lengths = torch.full((batch,), frames, device=device)
    tokens = torch.randint(1, 29, (batch, 200), device=device)  # ~ 15 s of characters
    token_lengths = torch.full((batch,), 200, device=device)
    dtype = torch.bfloat16 if kind == "bf16" else None
    torch.manual_seed(0)
    model = QuartzNet(cfg, 29).to(device)
    optimizer = make_optimizer(model, cfg)

    def train_step():
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            log_probs, out_lengths = model(features, lengths)
        loss = ctc_loss(log_probs, out_lengths, tokens, token_lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            model(features, lengths)

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    seconds, peak = {}, ""
    for name, step in [("train", train_step), ("infer", infer_step)]:
        model.train(name == "train")
        for _ in range(3):  # warm-up: cuDNN's algorithm search, the allocator
            step()
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
        seconds[name] = (time.perf_counter() - start) / steps
        if name == "train" and cuda:
            peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    # as in training: every batch as long as its longest utterance, nearly always a new length
    model.train()
    full, new_lengths = features, torch.randint(frames // 2, frames + 1, (steps,)).tolist()
    start = time.perf_counter()
    for n in new_lengths:
        features, lengths = full[:, :, :n], torch.full((batch,), n, device=device)
        train_step()
    if cuda:
        torch.cuda.synchronize()
    new_shape_rate = batch * sum(new_lengths) / 100 / (time.perf_counter() - start)
    audio = batch * UTTERANCE_SECONDS
    return dict(
        preset=preset, params_M=round(num_params(model) / 1e6, 2), precision=kind,
        batch=f"{batch} x {UTTERANCE_SECONDS:.0f} s", step_ms=round(seconds["train"] * 1000, 1),
        train_audio_s_per_s=round(audio / seconds["train"]), new_lengths_audio_s_per_s=round(new_shape_rate),
        infer_x_realtime=round(audio / seconds["infer"]),
        peak_GiB=peak,
    )  # fmt: skip


def loop_speed(data: Path, device: str, workers, minutes: float, scratch: Path) -> list[dict]:
    """train.py (small, augmentation on, --precision auto) on the slice with N data-loading workers."""
    rows = []
    for n in workers:
        out = scratch / f"loop-{n}"
        start = time.time()
        done = python(*train_args(data, out, "small", device, "--val_data", "", "--max_steps", 100000,
                                  "--max_minutes", minutes, "--num_workers", n), timeout=60 * minutes + 60)  # fmt: skip
        lines = [r for r in metrics_of(out) if "train/audio_sec_per_sec" in r]
        lines = lines[2:] or lines  # the first intervals include the workers' start-up
        rows.append(dict(
            workers=n, exit=done.returncode, steps=max((r["step"] for r in metrics_of(out)), default=0),
            audio_s_per_s=f"{mean(lines, 'train/audio_sec_per_sec'):.0f}",
            data_wait=f"{mean(lines, 'train/data_wait'):.0%}",
            wall_s=round(time.time() - start),
        ))  # fmt: skip
        if done.returncode:
            print(f"loop with {n} workers: exit {done.returncode}\n{done.stderr[-3000:]}")
    return rows


def inference_speed(data: Path, device: str, checkpoint: str, scratch: Path) -> list[dict]:
    """inference.py on the held-out speakers: wall time for everything (loading, features, model,
    decoding) and the WER it prints."""
    from audio import audio_seconds

    audio = sum(audio_seconds(p) for p in (data / "val" / "audio").iterdir())
    rows = []
    for decoder in ("greedy", "beam"):
        out = scratch / f"infer-{decoder}"
        start = time.time()
        done = python("inference.py", "--data_dir", str(data / "val"), "--out", str(out), "--checkpoint", checkpoint,
                      "--device", device, "--decoder", decoder, "--num_workers", "4", timeout=120)  # fmt: skip
        seconds = time.time() - start
        wer = re.search(r"WER ([\d.]+)%", done.stdout)
        rows.append(dict(decoder=decoder, exit=done.returncode, audio_min=round(audio / 60, 1),
                         wall_s=round(seconds, 1), x_realtime=round(audio / seconds),
                         wer=f"{wer[1]}%" if wer else ""))  # fmt: skip
        if done.returncode:
            print(f"inference {decoder}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return rows


def torchrun(data: Path, device: str, scratch: Path) -> list[dict]:
    """One process under torchrun: the process group (NCCL on a GPU), SyncBatchNorm, DDP."""
    out = scratch / "torchrun"
    argv = train_args(data, out, "tiny", device, "--val_data", data / "val", "--max_steps", 40,
                      "--eval_every", 40, "--beam_size", "1", "--num_workers", 2)  # fmt: skip
    done = python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", *argv, timeout=120)
    lines = metrics_of(out)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if done.returncode:
        print(f"torchrun: exit {done.returncode}\n{done.stderr[-3000:]}")
    return [dict(processes=1, backend=backend, exit=done.returncode,
                 steps=max((r["step"] for r in lines), default=0),
                 val_wer=next((r["val/wer"] for r in reversed(lines) if "val/wer" in r), ""))]  # fmt: skip


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(device)
        return (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, "
                f"{os.cpu_count()} CPU cores; torch {torch.__version__}, CUDA {torch.version.cuda}")  # fmt: skip
    return f"CPU only, {os.cpu_count()} cores; torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    make = sub.add_parser("slice", help="write the compact data slice the other sections read")
    make.add_argument("--source", required=True, help="LibriSpeech train-clean-5 (LibriSpeech layout)")
    make.add_argument("--out", default="data/gpu_slice")
    make.add_argument("--train_minutes", type=float, default=20.0)
    make.add_argument("--val_minutes", type=float, default=6.0)
    parser.add_argument("--data", default="data/gpu_slice", help="the slice (train/ and val/)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu_table.md", help="the report, also printed")
    parser.add_argument("--checkpoint", default="checkpoints/model.pt", help="the inference rows' model")
    parser.add_argument("--quick", action="store_true", help="every section small: tests the script")
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole run ends by then")
    parser.add_argument("--sections", nargs="+", default=["correctness", "precision", "model", "loop",
                                                             "inference", "torchrun"])  # fmt: skip
    args = parser.parse_args()
    if args.command == "slice":
        return make_slice(Path(args.source), Path(args.out), args.train_minutes, args.val_minutes)
    data = Path(args.data).resolve()
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        sys.exit(
            f"error: --data {args.data}: no train/ and val/ in it; make them with: python bench/gpu.py slice"
        )
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"error: --device {args.device}: torch sees no CUDA device")
    quick = args.quick
    DEADLINE[0] = time.time() + 60 * args.minutes
    scratch = Path(tempfile.mkdtemp(prefix="gpu_bench_"))
    report = [f"# The GPU path: {hardware(args.device)}", ""]

    def section(name: str, title: str, run) -> None:
        if name not in args.sections or DEADLINE[0] - time.time() < 20:
            return
        start = time.time()
        print(f"--- {title}", flush=True)
        try:
            rows = run()
        except Exception as e:  # one section's failure is a row; the others still run
            rows = [dict(error=f"{type(e).__name__}: {e}"[:500])]
        text = table(f"{title} ({time.time() - start:.0f} s)", rows)
        print(text, flush=True)
        report.append(text)
        Path(args.out).write_text("\n".join(report))

    section("correctness", "Correctness: the tests' CUDA cases", lambda: correctness(args.device))
    section(
        "precision",
        "Mixed precision: tiny on the slice",
        lambda: precision(data, args.device, 60 if quick else 400, scratch),
    )
    section(
        "model",
        "Model speed: random features, one default batch",
        lambda: model_speed(args.device, ["tiny"] if quick else PRESETS, 2 if quick else 10),
    )
    section(
        "loop",
        "Training loop: train.py --preset small on the slice",
        lambda: loop_speed(data, args.device, [1] if quick else [2, 12], 0.25 if quick else 0.5, scratch),
    )
    section(
        "inference",
        "Inference: inference.py on the held-out speakers",
        lambda: inference_speed(data, args.device, args.checkpoint, scratch),
    )
    section("torchrun", "torchrun, one process", lambda: torchrun(data, args.device, scratch))  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
