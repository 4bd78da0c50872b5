"""Size, load time, load memory, perplexity and OOV rate of word n-gram LMs, one Markdown row each.

    python bench/lm_table.py --val_text val.txt LM.arpa.gz [LM.arpa.gz ...]

val.txt: one sentence per line (e.g. held-out transcripts). Each load runs in a fresh process, so its
peak RSS is that load's alone: parsing the ARPA file (no cache), then the binary cache (written first
if missing). Perplexity is over the in-vocabulary words and </s> (what SRILM's ppl reports): words
outside the LM's vocabulary count as OOV and are not scored, but stay in the history (as <unk>).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from arpa import BOS, EOS  # noqa: E402
from lm import BINARY_SUFFIX, NGramLM  # noqa: E402
from tokenizer import normalize_text  # noqa: E402


def perplexity(lm: NGramLM, sentences: list[list[str]]) -> tuple[float, float]:
    """(perplexity over in-vocabulary words and </s>, share of words that are out of vocabulary); each
    sentence's words asked in one call (NGramLM.log_probs), as the decoder asks."""
    total, scored, oov, words, n = 0.0, 0, 0, 0, lm.order - 1
    for sentence in sentences:
        ids = [lm.word_id(w) for w in [BOS] + sentence + [EOS]]
        padded = [-1] * n + ids
        histories = np.array([padded[i + 1 : i + 1 + n] for i in range(len(ids) - 1)], np.int64).reshape(
            -1, n
        )
        logp = lm.log_probs(np.array(ids[1:]), histories)  # (words + 1,)
        known = np.array([w == EOS or w in lm.vocab for w in sentence + [EOS]])
        total += float(logp[known].sum())
        scored += int(known.sum())
        oov += len(sentence) - int(known[:-1].sum())
        words += len(sentence)
    return float(np.exp(-total / scored)), oov / words


def _measure(path: str, binary: bool, val_text: str) -> dict:
    """Load once (in this process: run it in a fresh one) and report time, peak RSS and scores."""
    import resource

    start = time.time()
    lm = NGramLM.from_binary(path + BINARY_SUFFIX) if binary else NGramLM.from_arpa(path, cache=False)
    load_s = time.time() - start
    load_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"load_s": load_s, "load_rss_mb": load_rss, "counts": lm.counts, "vocab": len(lm.vocab)}
    if binary:
        with open(val_text) as f:
            sentences = [s.split() for s in (normalize_text(x) for x in f) if s]
        start = time.time()
        row["ppl"], row["oov"] = perplexity(lm, sentences)
        row["query_us"] = (time.time() - start) / (len(sentences) + sum(map(len, sentences))) * 1e6
        row["scored_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _in_fresh_process(path: str, binary: bool, val_text: str) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import lm_table; "
        f"print(json.dumps(lm_table._measure({path!r}, {binary}, {val_text!r})))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("lms", nargs="+", help="ARPA files (.arpa or .arpa.gz)")
    parser.add_argument("--val_text", required=True)
    parser.add_argument("--skip_arpa", action="store_true", help="do not time parsing the ARPA files")
    args = parser.parse_args()
    print(
        "| LM | vocabulary | n-grams per order | ARPA.gz MB | binary MB | load ARPA s / peak MB "
        "| load binary s / peak MB | peak MB after scoring | µs per query | perplexity | OOV % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.lms:
        if not os.path.exists(path + BINARY_SUFFIX):
            NGramLM.from_arpa(path)  # writes the cache
        parsed = {} if args.skip_arpa else _in_fresh_process(path, False, args.val_text)
        mapped = _in_fresh_process(path, True, args.val_text)
        arpa = f"{parsed['load_s']:.1f} / {parsed['load_rss_mb']:.0f}" if parsed else "-"
        print(
            f"| {os.path.basename(path)} | {mapped['vocab']:,} | {' / '.join(f'{c:,}' for c in mapped['counts'])} "
            f"| {os.path.getsize(path) / 1e6:.1f} | {os.path.getsize(path + BINARY_SUFFIX) / 1e6:.0f} | {arpa} "
            f"| {mapped['load_s']:.2f} / {mapped['load_rss_mb']:.0f} | {mapped['scored_rss_mb']:.0f} "
            f"| {mapped['query_us']:.0f} "
            f"| {mapped['ppl']:.0f} | {100 * mapped['oov']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
