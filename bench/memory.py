"""Peak memory of what grows with the recording: scoring a 1-hour transcript, transcribing a 1-hour file.

    python bench/memory.py

Each row runs in a fresh process and reports its seconds and its peak resident memory above what its
setup held (ru_maxrss, Linux). The transcript: 10,000 random words (about 55,000 characters), 10 %
substituted, 3 % deleted. The recording: an hour of noise (16 kHz wav), decoded greedily on the CPU
by an untrained `tiny` model.
"""

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_hour_transcript(seed: int = 0) -> tuple[str, str]:
    """-> (reference, hypothesis): 10,000 random words, then 10 % substituted and 3 % deleted."""
    rng = np.random.default_rng(seed)
    vocab = [
        "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(2, 8))) for _ in range(3000)
    ]
    ref = list(rng.choice(vocab, size=10_000))
    hyp = [w if rng.random() > 0.1 else rng.choice(vocab) for w in ref if rng.random() > 0.03]
    return " ".join(ref), " ".join(hyp)


def score_one_hour():
    from calc_metrics import corpus_error_rates

    ref, hyp = one_hour_transcript()
    return lambda: corpus_error_rates([ref], [hyp])


def transcribe_one_hour():
    import soundfile as sf
    import torch

    from config import get_config
    from inference import transcribe
    from model import QuartzNet, save_checkpoint
    from tokenizer import Tokenizer

    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    (folder / "audio").mkdir()
    rng = np.random.default_rng(0)
    with sf.SoundFile(folder / "audio" / "hour.wav", "w", 16000, 1, "PCM_16") as f:
        for _ in range(60):  # a minute at a time: the setup's own peak stays small
            f.write(0.1 * rng.standard_normal(60 * 16000).astype(np.float32))
    cfg, tokenizer = get_config("tiny"), Tokenizer()
    state = dict(
        model=QuartzNet(cfg, len(tokenizer)).state_dict(),
        config=cfg.to_dict(),
        tokenizer=tokenizer.state_dict(),
    )
    save_checkpoint(folder / "tiny.pt", state)
    torch.set_num_threads(2)

    def job():
        transcribe(folder, folder / "preds", folder / "tiny.pt", decoder="greedy", num_workers=0)
        tmp.cleanup()

    return job


ROWS = {  # name -> setup, which returns the job to measure
    "score a 1-hour transcript (WER + CER)": score_one_hour,
    "transcribe a 1-hour recording (tiny, greedy)": transcribe_one_hour,
}

if __name__ == "__main__":
    if len(sys.argv) > 1:  # one row, in this fresh process
        job = ROWS[sys.argv[1]]()
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        job()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
        print(f"\n{time.perf_counter() - start:.1f} {peak / 1024:.0f}")
    else:
        print(f"{'what':<45} {'seconds':>8} {'peak MiB':>9}")
        for name in ROWS:
            out = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, check=True)
            seconds, mib = out.stdout.split()[-2:]
            print(f"{name:<45} {seconds:>8} {mib:>9}")
