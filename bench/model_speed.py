"""Forward + backward time of a training batch for `small` and the wider variant the README compares.

    python bench/model_speed.py [--threads 1] [--repeats 3]

The batch is 12 utterances of 16 s of random log-mel features (192 s, about a `small` batch). The
best of --repeats runs is reported, after one warm-up run.
"""

import argparse
import os
import sys
import timeit

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import get_config  # noqa: E402
from model import QuartzNet, num_params  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

VARIANTS = {  # name -> overrides of the `small` preset (as in recipes/experiments.sh)
    "small": {},
    "wider (channels x1.4)": dict(
        c1_channels=176, block_channels=(176, 224, 256, 304, 352), c2_channels=448, c3_channels=640
    ),
}
BATCH, FRAMES = 12, 1600  # 16 s at 10 ms per frame


def forward_backward_seconds(model: QuartzNet, n_mels: int, repeats: int) -> float:
    features, lengths = torch.randn(BATCH, n_mels, FRAMES), torch.full((BATCH,), FRAMES)

    def forward_backward():
        log_probs, _ = model(features, lengths)  # (B, T', V)
        log_probs.sum().backward()

    return min(timeit.repeat(forward_backward, number=1, repeat=repeats + 1)[1:])  # the first warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"forward + backward of {BATCH} x {FRAMES / 100:.0f} s, {args.threads} thread(s)")
    print("| model | parameters | seconds | vs small |\n|---|---:|---:|---:|")
    base = None
    for name, overrides in VARIANTS.items():
        cfg = get_config("small", **overrides)
        model = QuartzNet(cfg, len(Tokenizer()))
        seconds = forward_backward_seconds(model, cfg.n_mels, args.repeats)
        base = base or seconds
        print(f"| {name} | {num_params(model) / 1e6:.2f} M | {seconds:.2f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
