"""Training and inference speed on this machine, one table: each row is a configuration of the code at
a git revision (default: the working tree), measured in a fresh process, in turn.

    python bench/train_speed.py --train_data LS/train-clean-5 [--baseline 5a6df72] [--steps 40]

Columns:
  model a-s/s    forward + backward of a 12 x 16 s batch of random features: audio-seconds per second
  GFLOP/s, peak  that step's arithmetic (3x the forward's multiply-adds), and its share of the fp32
                 matmul peak measured at the start of the same run
  loop a-s/s     `train.py` itself for --steps steps on --train_data (data loading, augmentation,
                 optimiser, one DataLoader worker), from its metrics.jsonl, first log interval dropped
  infer x RT     audio of --infer_files files / wall seconds for loading, features, model (eval) and
                 greedy decoding, 8 files per batch
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import timeit
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
ROWS = [  # (label, revision or None for the working tree, Config overrides)
    ("previous release: small, stride 2", "BASELINE", {}),
    ("small, stride 2", None, {}),
    ("small, stride 4", None, {"stride": 4}),
    ("small x1.4 channels, stride 4", None, {
        "stride": 4, "c1_channels": 176, "block_channels": [176, 224, 256, 304, 352],
        "c2_channels": 448, "c3_channels": 640,
    }),
]  # fmt: skip

# Runs inside the measured code's folder, so that every row imports its own revision's modules.
MEASURE = textwrap.dedent("""
    import json, sys, time, timeit, tempfile
    from pathlib import Path
    import torch
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    from config import get_config
    from model import QuartzNet
    cfg = get_config("small", **args["overrides"])
    model = QuartzNet(cfg, 29).train()
    features, lengths = torch.randn(12, cfg.n_mels, 1600), torch.full((12,), 1600)
    def step():
        model.zero_grad()
        log_probs, _ = model(features, lengths)
        log_probs.sum().backward()
    step_seconds = min(timeit.repeat(step, number=1, repeat=4)[1:])
    params = sum(p.numel() for p in model.parameters())

    from audio import load_audio, log_mel_spectrogram
    from decode import greedy_decode
    files = args["infer_files"]
    model.eval()
    start = time.perf_counter()
    audio_seconds = 0.0
    with torch.no_grad():
        for i in range(0, len(files), 8):
            feats = [log_mel_spectrogram(load_audio(f), cfg.n_mels) for f in files[i : i + 8]]
            audio_seconds += sum(f.shape[1] for f in feats) / 100
            lens = torch.tensor([f.shape[1] for f in feats])
            batch = torch.zeros(len(feats), cfg.n_mels, int(lens.max()))
            for j, f in enumerate(feats):
                batch[j, :, : f.shape[1]] = f
            log_probs, out_lengths = model(batch, lens)
            for lp, n in zip(log_probs.numpy(), out_lengths.tolist()):
                greedy_decode(lp[:n])
    infer_rt = audio_seconds / (time.perf_counter() - start)

    import subprocess
    out = tempfile.mkdtemp()
    argv = [sys.executable, "train.py", "--preset", "small", "--train_data", args["train_data"], "--val_data", "",
            "--max_steps", str(args["steps"]), "--log_every", "5", "--save_every", "100000",
            "--num_workers", "1", "--threads", str(args["threads"]), "--wandb_mode", "disabled",
            "--out_dir", out]
    for k, v in args["overrides"].items():
        argv += [f"--{k}", *map(str, v if isinstance(v, list) else [v])]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # the training loop as a user runs it
    rows = [json.loads(line) for line in open(Path(out) / "metrics.jsonl")]
    rows = [r for r in rows if "train/audio_sec_per_sec" in r][1:]  # the first includes start-up
    loop = sum(r["train/audio_sec_per_sec"] for r in rows) / len(rows)
    losses = [(r["step"], r["train/loss"]) for r in rows]
    print("RESULT " + json.dumps(dict(step_seconds=step_seconds, params=params, loop=loop, infer_rt=infer_rt,
                                      losses=losses)))
""")


def matmul_gflops(threads: int, n: int = 2048) -> float:
    """fp32 matmul peak: the best of a few n x n x n products."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / min(timeit.repeat(lambda: a @ b, number=3, repeat=5)) * 3 / 1e9


def forward_flops_per_frame(overrides: dict, vocab: int = 29) -> float:
    """Multiply-adds x 2 of one output frame of the model's forward pass (convs only)."""
    sys.path.insert(0, str(ROOT))
    from config import get_config

    cfg = get_config("small", **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    flops = 2 * cfg.n_mels * (cfg.c1_kernel + cfg.c1_channels)
    c_in = cfg.c1_channels
    for c_out, k in zip(cfg.block_channels, cfg.block_kernels):
        for _ in range(cfg.block_repeat):
            flops += 2 * c_in * c_out  # residual
            for r in range(cfg.repeats):
                c = c_in if r == 0 else c_out
                flops += 2 * c * (k + c_out)
            c_in = c_out
    flops += 2 * c_in * (cfg.c2_kernel + cfg.c2_channels) + 2 * cfg.c2_channels * cfg.c3_channels
    return flops + 2 * cfg.c3_channels * vocab


def code_at(revision: str, into: Path) -> Path:
    """The repository's files at `revision`, extracted into a folder."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train_data", required=True, help="a training folder (LibriSpeech or custom layout)"
    )
    parser.add_argument("--baseline", default="5a6df72", help="git revision of the first row")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--infer_files", type=int, default=48)
    parser.add_argument("--plot", default="", help="PNG of the loops' training loss against step")
    args = parser.parse_args()
    files = sorted(str(p) for p in Path(args.train_data).rglob("*.flac"))[: args.infer_files]
    files = files or sorted(str(p) for p in Path(args.train_data).rglob("*.wav"))[: args.infer_files]
    peak = matmul_gflops(args.threads)
    print(f"{os.cpu_count()} CPU cores, {args.threads} threads, torch {torch.__version__}; "
          f"fp32 matmul peak {peak:.0f} GFLOP/s")  # fmt: skip
    print("| configuration | parameters | model a-s/s | GFLOP/s | of peak | loop a-s/s | infer x RT |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, revision, overrides in ROWS:
            code = ROOT if revision is None else code_at(args.baseline, Path(tmp) / "baseline")
            job = dict(overrides=overrides, threads=args.threads, infer_files=files)
            job.update(train_data=str(Path(args.train_data).resolve()), steps=args.steps)
            run = subprocess.run(
                [sys.executable, "-c", MEASURE, json.dumps(job)], cwd=code, capture_output=True, text=True
            )
            result = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if not result:
                sys.exit(f"{label}: the measurement failed:\n{run.stderr[-3000:]}")
            r = json.loads(result[-1][len("RESULT ") :])
            curves[label] = r["losses"]
            stride = overrides.get("stride", 2)
            gflops = 3 * forward_flops_per_frame(overrides) * 12 * 1600 / stride / r["step_seconds"] / 1e9
            print(
                f"| {label} | {r['params'] / 1e6:.2f} M | {12 * 16 / r['step_seconds']:.0f} | {gflops:.1f} "
                f"| {gflops / peak:.0%} | {r['loop']:.0f} | {r['infer_rt']:.0f} |",
                flush=True,
            )
    if args.plot:
        plot_losses(curves, args.plot)


def plot_losses(curves: dict, path: str) -> None:
    """Training loss against step for each row: a speed-up must not change what is learned."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for label, points in curves.items():
        ax.plot(*zip(*points), label=label)
    ax.set(xlabel="step", ylabel="training CTC loss", title="same data, same seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
