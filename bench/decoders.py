"""Speed and accuracy of our CTC prefix beam search against pyctcdecode, without and with a word LM.

    python bench/decoders.py [--utterances 3] [--repeats 3]
    python bench/decoders.py --data_dir VAL [--checkpoint CKPT]   # a real model's log-probs, with its LM

The log-probs imitate a trained CTC model: (T=500, V=29), mostly blank frames, 1-2 frame character
spikes, some frames where two characters compete and some weak characters inside blank runs. Both
decoders get the same token floor and beam margin (ours keeps its default top-k and blank-frame
skipping); best paths are compared as text. With a word LM, the first two rows are each decoder at
its own defaults. pyctcdecode is not a project dependency: install it (and kenlm) to get its rows and
columns, else they show "-".
"""

import argparse
import dataclasses
import importlib.util
import logging
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from arpa import write_arpa  # noqa: E402
from calc_metrics import corpus_error_rates  # noqa: E402
from decode import DecodingOptions, decode, prefix_beam_search  # noqa: E402
from kneser_ney import build_kneser_ney  # noqa: E402
from lm import NGramLM  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

TOKENIZER = Tokenizer()
VOCAB = TOKENIZER.vocab
TOKEN_MIN_LOGP = -10.0  # both decoders skip tokens below this (the frame's best always stays)
BEAM_MARGIN = 10.0  # both drop beams this far below the best (pyctcdecode's beam_prune_logp=-10)
WORDS = """the of and to a in that he was it his i with as had for you her she but not on be at him by so is
which said all have they this from were my me one there when what would we no out little up""".split()


def spell(
    rng: np.random.Generator, text: str, rival_below: tuple = (0.0, 2.5), V: int = len(VOCAB)
) -> np.ndarray:
    """(T, V) peaky CTC-like log-probs spelling text, blank = 0; a fifth of the characters have a
    rival this far below them (a negative distance: the rival wins)."""
    target = []  # token of each frame
    for ch in text:
        target += [0] * int(rng.integers(1, 6)) + [VOCAB.index(ch)] * int(rng.integers(1, 3))
    target = np.array(target + [0])  # (T,)
    T = len(target)
    logits = rng.normal(0.0, 1.0, size=(T, V))  # (T, V)
    logits[np.arange(T), target] += rng.uniform(7.0, 12.0, size=T)
    # acoustic confusions: a competing character close to the spike
    confused = np.flatnonzero((target > 0) & (rng.random(T) < 0.2))
    rival = rng.integers(1, V, size=len(confused))
    logits[confused, rival] = logits[confused, target[confused]] - rng.uniform(
        *rival_below, size=len(confused)
    )
    # weak characters inside blank runs, so not every blank frame is certain
    weak = np.flatnonzero((target == 0) & (rng.random(T) < 0.15))
    logits[weak, rng.integers(1, V, size=len(weak))] = logits[weak, 0] - rng.uniform(1.0, 6.0, size=len(weak))
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def synthetic_log_probs(rng: np.random.Generator, T: int = 500) -> np.ndarray:
    """(T, V) spelling random words."""
    return spell(rng, " ".join(rng.choice(WORDS, size=T // 4)))[:T]


def word_language(rng: np.random.Generator, successors: int = 4):
    """A known word language: each word is followed by one of a few others. -> sentence sampler."""
    follow = {w: rng.choice(WORDS, size=successors, replace=False) for w in WORDS + ["<s>"]}

    def sentence(n_words: int) -> str:
        words = ["<s>"]
        for _ in range(n_words):
            words.append(str(rng.choice(follow[words[-1]])))
        return " ".join(words[1:])

    return sentence


def best_time(repeats: int, fn, *args, **kwargs) -> tuple[float, object]:
    """Fastest of `repeats` calls, in seconds, and the call's result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times), out


def load_pyctcdecode(**lm):
    """pyctcdecode's decoder for VOCAB (lm: its kenlm_model_path, alpha, beta...), or None when it is not
    installed."""
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        return None
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    return build_ctcdecoder(VOCAB, **lm)


def compare_with_lm(rng, n_utterances: int, beam: int, weights: list[tuple[float, float]]) -> None:
    """WER, CER and ms per utterance of both decoders, with and without the same word 3-gram ARPA,
    on utterances of a known word language (the LM is built from 3,000 other sentences of it)."""
    sentence = word_language(rng)
    arpa = os.path.join(tempfile.mkdtemp(), "words.arpa")
    write_arpa(build_kneser_ney([sentence(20) for _ in range(3000)], order=3), arpa)
    lm = NGramLM.from_arpa(arpa)
    refs = [sentence(20) for _ in range(n_utterances)]
    utterances = [spell(rng, text, rival_below=(-1.5, 2.0)) for text in refs]  # greedy gets many words wrong
    print(f"\n{n_utterances} utterances of a known word 3-gram language, beam {beam}, one process")
    print("decoder | alpha / beta | WER | CER | ms / utterance")

    def row(name: str, weight: str, transcribe) -> None:
        transcribe(utterances[0])  # warm-up: LM loading and caches
        start = time.perf_counter()
        hyps = [" ".join(transcribe(lp).split()) for lp in utterances]
        ms = 1000 * (time.perf_counter() - start) / len(utterances)
        rates = corpus_error_rates(refs, hyps)
        print(f"{name} | {weight} | {100 * rates['wer']:.2f} % | {100 * rates['cer']:.2f} % | {ms:.0f}")

    def ours(lm=None, **fusion):
        options = DecodingOptions(
            beam_size=beam, token_min_logp=TOKEN_MIN_LOGP, beam_margin=BEAM_MARGIN, **fusion
        )
        return lambda lp: TOKENIZER.decode(prefix_beam_search(lp, options, VOCAB, lm))

    def theirs(**fusion):
        decoder = load_pyctcdecode(**fusion)
        return lambda lp: decoder.decode(
            lp, beam_width=beam, beam_prune_logp=-BEAM_MARGIN, token_min_logp=TOKEN_MIN_LOGP
        )

    have_theirs, have_kenlm = load_pyctcdecode() is not None, importlib.util.find_spec("kenlm") is not None
    # each at its own defaults, but for the LM weights: ours DecodingOptions(), theirs build_ctcdecoder's
    # and decode's (beam_width 50, token_min_logp -5, beam_prune_logp -10, unk_score_offset -10)
    alpha, beta = weights[0]
    options = DecodingOptions("beam_lm", beam, lm=arpa, alpha=alpha, beta=beta)
    row(
        "ours + LM, defaults",
        f"{alpha} / {beta}",
        lambda lp: TOKENIZER.decode(decode(lp, VOCAB, options, lm)),
    )
    if have_theirs and have_kenlm:
        defaults = load_pyctcdecode(kenlm_model_path=arpa, alpha=alpha, beta=beta)
        row(
            "pyctcdecode + KenLM, defaults",
            f"{alpha} / {beta}",
            lambda lp: defaults.decode(lp, beam_width=beam),
        )
    # the same pruning for both (ours keeps its top-k and blank-frame skipping)
    row("ours, no LM", "-", ours())
    if have_theirs:
        row("pyctcdecode, no LM", "-", theirs())
    for alpha, beta in weights:
        row("ours + LM", f"{alpha} / {beta}", ours(lm=lm, alpha=alpha, beta=beta))
        if have_theirs and have_kenlm:
            fusion = dict(kenlm_model_path=arpa, unigrams=WORDS, alpha=alpha, beta=beta)
            row("pyctcdecode + KenLM", f"{alpha} / {beta}", theirs(**fusion))


def compare_on_model(data_dir: str, checkpoint: str) -> None:
    """Beam search without and with the checkpoint's LM and settings, on its log-probs of data_dir:
    WER and ms per utterance, one process (the LM is loaded before timing)."""
    from decode import load_lm
    from inference import _load, _log_probs

    model, tokenizer, options, data, device = _load(data_dir, checkpoint)
    ids, log_probs = [], []
    for batch_ids, _, batch_log_probs in _log_probs(model, data, 200.0, device, 0):
        ids += batch_ids
        log_probs += batch_log_probs
    refs = {u.id: u.text for u in data.utterances}
    if not options.lm:
        raise SystemExit(f"{checkpoint}: its decoding settings name no LM (export it with --lm)")
    lm, lexicon = load_lm(options.lm), tokenizer.lexicon  # a phoneme model's words: its lexicon's
    print(f"\n{len(ids)} utterances of {data_dir}, {checkpoint}, one process")
    print("decoder | WER | ms / utterance | x beam")
    beam_ms = None
    for decoder in ("beam", "beam_lm"):
        o = dataclasses.replace(options, decoder=decoder)
        decode(log_probs[0], tokenizer.vocab, o, lm, lexicon)  # warm-up: the word trie, built once
        start = time.process_time()
        hyps = [tokenizer.decode(decode(lp, tokenizer.vocab, o, lm, lexicon)) for lp in log_probs]
        ms = 1000 * (time.process_time() - start) / len(ids)
        beam_ms = beam_ms or ms
        wer = corpus_error_rates([refs[i] for i in ids], hyps)["wer"]
        print(f"{decoder} {o.beam_size} | {100 * wer:.2f} % | {ms:.0f} | {ms / beam_ms:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="the fastest of this many runs counts")
    parser.add_argument("--beams", type=int, nargs="*", default=[10, 50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm_utterances", type=int, default=40, help="0 skips the LM comparison")
    parser.add_argument("--data_dir", help="instead: a real model's log-probs of this folder (see above)")
    parser.add_argument("--checkpoint", default="checkpoints/model.pt", help="with --data_dir")
    args = parser.parse_args()
    if args.data_dir:
        return compare_on_model(args.data_dir, args.checkpoint)

    rng = np.random.default_rng(args.seed)
    utterances = [synthetic_log_probs(rng) for _ in range(args.utterances)]
    theirs = load_pyctcdecode()
    print("beam | ours_ms | pyctcdecode_ms | speedup | same_best_path")
    for beam in args.beams:
        ours_s, theirs_s, same = 0.0, 0.0, True
        for lp in utterances:
            options = DecodingOptions(beam_size=beam, token_min_logp=TOKEN_MIN_LOGP, beam_margin=BEAM_MARGIN)
            seconds, ids = best_time(args.repeats, prefix_beam_search, lp, options, VOCAB)
            ours_s += seconds
            if theirs is not None:
                seconds, text = best_time(
                    args.repeats,
                    theirs.decode,
                    lp,
                    beam_width=beam,
                    token_min_logp=TOKEN_MIN_LOGP,
                    beam_prune_logp=-BEAM_MARGIN,
                )
                theirs_s += seconds
                same &= TOKENIZER.decode(ids) == " ".join(text.split())
        ours_ms = 1000 * ours_s / len(utterances)
        if theirs is None:
            print(f"{beam:4d} | {ours_ms:7.1f} | {'-':>14} | {'-':>7} | {'-':>14}")
            continue
        theirs_ms = 1000 * theirs_s / len(utterances)
        speedup = f"{theirs_ms / ours_ms:.1f}x"
        print(
            f"{beam:4d} | {ours_ms:7.1f} | {theirs_ms:14.1f} | {speedup:>7} | {'yes' if same else 'no':>14}"
        )
    if args.lm_utterances:
        compare_with_lm(rng, args.lm_utterances, 50, [(0.5, 1.5), (1.0, 1.0)])


if __name__ == "__main__":
    main()
