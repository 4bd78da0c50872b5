"""Peak memory of the inputs that grow with the recording: scoring a 1-hour transcript.

    python bench/memory.py

Each row runs in a fresh process and reports the seconds it took and its peak resident memory above
what the process held after setting the row up (ru_maxrss, Linux). The transcript is synthetic:
10,000 random words (about 60,000 characters, an hour of speech), 10 % substituted, 3 % deleted.
"""

import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one_hour_transcript(seed: int = 0) -> tuple[str, str]:
    """-> (reference, hypothesis): 10,000 random words, then 10 % substituted and 3 % deleted."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 9))) for _ in range(3000)]
    ref = list(rng.choice(vocab, size=10_000))
    hyp = [w if rng.random() > 0.1 else rng.choice(vocab) for w in ref if rng.random() > 0.03]
    return " ".join(ref), " ".join(hyp)


def score_one_hour():
    from calc_metrics import corpus_error_rates

    ref, hyp = one_hour_transcript()
    return lambda: corpus_error_rates([ref], [hyp])


ROWS = {"score a 1-hour transcript (WER + CER)": score_one_hour}  # name -> setup returning the job


def run_row(name: str) -> None:
    """In the child: set the row up, then run it; print its seconds and peak MiB above the setup's."""
    job = ROWS[name]()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    job()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
    print(f"{time.perf_counter() - start:.1f} {peak / 1024:.0f}")


def main() -> None:
    print(f"{'what':<45} {'seconds':>8} {'peak MiB':>9}")
    for name in ROWS:
        out = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, check=True)
        seconds, mib = out.stdout.split()
        print(f"{name:<45} {seconds:>8} {mib:>9}")


if __name__ == "__main__":
    run_row(sys.argv[1]) if len(sys.argv) > 1 else main()
