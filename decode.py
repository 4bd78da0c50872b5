"""CTC decoding: greedy, and prefix beam search with word n-gram shallow fusion, configured by one
DecodingOptions; `decode_batch` decodes many utterances, in a pool of worker processes when given one.

All scores are natural-log. A prefix is an integer node id in a trie (parent + token arrays); each beam
keeps the prefix's log-probability of ending in blank (p_b) and in a non-blank token (p_nb), so every
alignment of the prefix is counted once. Per-frame work is vectorised over beams and candidate tokens.
`vocab` is the tokenizer's symbol list: blank at 0, " " the word boundary; with word pieces, a token
whose text begins with " " (" the") begins a word, ending the one before it.
"""

import dataclasses
import itertools
import math
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from arpa import UNK
from fusion import LMScorer, WordTrie, frequency_lm, pronunciation_trie, silent_lm, word_starts
from lexicon import PHONEME_CHARS, Lexicon
from lm import NGramLM
from tokenizer import normalize_text

NEG_INF = float("-inf")
DECODERS = ("greedy", "beam", "beam_lm")


@dataclass(frozen=True)
class DecodingOptions:
    """How log-probs become words: one object, validated when made, passed whole. inference.py's and
    `train.py export`'s flags are its fields (add_decoding_args); a checkpoint keeps it as a dict."""

    decoder: str = field(default="beam", metadata=dict(help="greedy | beam | beam_lm (with the LM's words)"))
    beam_size: int = field(default=50, metadata=dict(help="hypotheses kept per frame"))
    lm: str = field(default="", metadata=dict(help="ARPA language model (.arpa, .arpa.gz) for beam_lm"))
    lexicon: str = field(
        default="", metadata=dict(help="a phoneme model's pronunciation lexicon (built by lm.py lexicon)")
    )
    alpha: float = field(default=0.5, metadata=dict(help="LM weight"))
    beta: float = field(default=1.0, metadata=dict(help="word insertion bonus"))
    unk_score: float = field(
        default=-3.0, metadata=dict(help="per character of a word outside the LM vocabulary; 'lexicon': none")
    )
    # per-frame pruning (frame_candidates) and beam pruning: exact search with -inf, all, inf, 0, false
    token_min_logp: float = field(default=-10.0, metadata=dict(help="tokens below this log-prob are skipped"))
    top_k: int | None = field(default=16, metadata=dict(help="at most this many tokens per frame ('all')"))
    beam_margin: float = field(default=10.0, metadata=dict(help="beams this far below the best are dropped"))
    blank_skip_logp: float = field(default=-1e-3, metadata=dict(help="a blank this sure is a frame skipped"))
    recombine: bool = field(
        default=True,
        metadata=dict(help="drop a beam that trails one with the same future in both its log-probs"),
    )
    hotwords: str = field(
        default="", metadata=dict(help="words to favour (beam searches): 'word1,word2', or a file of them")
    )
    hotword_boost: float = field(
        default=1.0, metadata=dict(help="a hotword's bonus per character (log-prob)")
    )

    def __post_init__(self):
        """ValueError naming the setting (as its command-line flag) that no search can use."""
        problems = {
            "decoder": self.decoder not in DECODERS and f"choose one of {', '.join(DECODERS)}",
            "beam_size": not self.beam_size >= 1 and "must be at least 1",
            "top_k": self.top_k is not None and not self.top_k >= 1 and "must be at least 1, or all",
            "alpha": not math.isfinite(self.alpha) and "must be a finite number",
            "beta": not math.isfinite(self.beta) and "must be a finite number",
            "hotword_boost": not 0 <= self.hotword_boost < math.inf and "must be a number >= 0",
            "unk_score": not self.unk_score < math.inf and "must be a number, or lexicon (-inf)",
            "hotwords": _missing_file(self.hotwords) and "no such file (a list is words separated by commas)",
        }
        for name, problem in problems.items():
            if problem:
                raise ValueError(f"--{name} {getattr(self, name)}: {problem}")


def _missing_file(text: str) -> bool:
    """--hotwords names a file that is not there: one word with a path separator or .txt."""
    word = text.strip()
    looks_like_a_path = "," not in word and ("/" in word or word.lower().endswith(".txt"))
    return looks_like_a_path and not os.path.isfile(word)


def yes_no(text: str) -> bool:
    """--recombine true | false."""
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def unk_score(text: str) -> float:
    """A number, or "lexicon" for -inf: only words of the LM vocabulary (argparse reads "-inf" as a flag)."""
    return float("-inf") if text == "lexicon" else float(text)


def top_k(text: str) -> int | None:
    return None if text == "all" else int(text)


@lru_cache(maxsize=8)
def read_hotwords(text: str) -> tuple[str, ...]:
    """--hotwords: "word1,word2", or a file of words (commas or one a line) -> normalised words,
    each once, in order; a phrase counts as its words."""
    if text and os.path.isfile(text):
        with open(text, encoding="utf-8") as f:
            text = f.read()
    words = [w for part in text.replace("\n", ",").split(",") for w in normalize_text(part).split()]
    return tuple(dict.fromkeys(words))


def add_decoding_args(parser, defaults: bool = True) -> None:
    """One flag per DecodingOptions field, with its default (or None with defaults=False: the caller
    fills in its own, such as a checkpoint's)."""
    for f in dataclasses.fields(DecodingOptions):
        parser.add_argument(
            f"--{f.name}",
            type=dict(unk_score=unk_score, top_k=top_k, recombine=yes_no).get(f.name, f.type),
            choices=DECODERS if f.name == "decoder" else None,
            default=f.default if defaults else None,
            help=f.metadata["help"] + (f" (default {f.default})" if defaults else ""),
        )


def greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """(T, V) -> token ids: best token per frame, repeats collapsed, blanks dropped."""
    return greedy_path(log_probs, blank)[0]


def greedy_path(log_probs: np.ndarray, blank: int = 0) -> tuple[list[int], list[int]]:
    """(T, V) -> greedy_decode's token ids and the frame where each one's run of the best path begins."""
    best = np.asarray(log_probs).argmax(axis=-1)  # (T,)
    first = np.ones(len(best), bool)  # (T,) a frame whose best token differs from the frame before's
    first[1:] = best[1:] != best[:-1]
    frames = np.flatnonzero(first & (best != blank))
    return best[frames].tolist(), frames.tolist()


def frame_candidates(
    log_probs: np.ndarray, blank: int, token_min_logp: float, top_k: int | None, blank_skip_logp: float
) -> list[np.ndarray]:
    """(T, V) -> per frame, the non-blank tokens a prefix may be extended with (sorted ids).

    A token is kept when log P >= token_min_logp and it is among the frame's top_k non-blank tokens;
    the frame's best token always is. Frames where blank is almost sure (log P(blank) >
    blank_skip_logp) keep none: they only carry the existing prefixes on (by blank or by repeating
    their last token), which is exact for them; only new prefixes less likely than
    1 - exp(blank_skip_logp) are not started there.
    """
    T, V = log_probs.shape
    keep = log_probs >= token_min_logp  # (T, V)
    if top_k is not None and top_k < V - 1:
        non_blank = log_probs.copy()
        non_blank[:, blank] = NEG_INF
        kth = -np.partition(-non_blank, top_k - 1, axis=1)[:, top_k - 1]  # (T,) k-th largest non-blank
        keep &= log_probs >= kth[:, None]
    keep[np.arange(T), log_probs.argmax(axis=1)] = True
    keep[:, blank] = False
    keep[log_probs[:, blank] > blank_skip_logp] = False
    rows, cols = np.nonzero(keep)
    return np.split(cols, np.searchsorted(rows, np.arange(1, T)))


def prefix_beam_search_nbest(
    log_probs: np.ndarray,
    options: DecodingOptions = DecodingOptions(),
    vocab: list[str] | None = None,
    lm: NGramLM | None = None,
    *,
    blank: int = 0,
    trie: WordTrie | None = None,
    homophones: int = 1,
    with_frames: bool = False,
    hotword_spellings: tuple[tuple[str, str], ...] | None = None,
) -> list[tuple]:
    """CTC prefix beam search with options' settings (all but decoder, lm and lexicon, which decode()
    reads); (T, V) log-probs -> beams as (token ids, score), best first; with_frames, (token ids,
    score, frames): per token, the frame of its first emission (see the end).

    score = log P_ctc(prefix) + alpha * log P_lm(words) + beta * len(words) (the LM terms only with lm).
    With vocab (which must then contain " "), spaces are word boundaries: leading and repeated spaces do
    not make new prefixes, a trailing space is dropped, and the LM scores each word as it completes. A
    word piece that begins with " " (" the") ends the word before it as a space does; a space right
    before one changes no text, and is dropped from the result like a trailing one (the two labellings
    merge). Other segmentations of the same text ("th" + "e", "the") are other labellings, as in training.
    Pruning per frame: candidate tokens (see frame_candidates), then at most beam_size prefixes no more
    than beam_margin below the best; with an LM (or a lexicon), when more than beam_size are left,
    recombine first drops those that can no longer overtake another (see _recombine). unk_score is
    added for each character of a word from where it stops being the start of any LM word, and once
    more at its end; -inf keeps only vocabulary words. Options with token_min_logp=-inf, top_k=None,
    beam_margin=inf, blank_skip_logp=0, recombine=False make an exact search (up to beam_size).

    trie replaces the LM's character trie of its words (a lexicon's pronunciations: see
    pronunciation_search_nbest). With homophones = K > 1, the space gets K - 1 copies, tokens V to
    V + K - 2 (same log-probs): the k-th ends the word before it as the k-th word that its trie
    state ends, so that homophones are hypotheses of their own; a result's last word ends with the
    copy that chose it (the space itself, for the first, is dropped as ever).

    A token's frame is where the most probability entered its prefix: the frame t that maximises
    P(the parent's prefix by t - 1) * P(token at t) over the extensions the search made, which is
    the first emission of the likeliest alignments, approximately (their frames after t are not
    weighed). The first frame a prefix was made at would be exact for greedy paths but not for
    beams, where a prefix often enters the beam early, at a frame where its token is unlikely.
    Frames are made to increase along the labelling (transcript.py finds where each emission ends).

    The hotwords (read_hotwords) earn hotword_boost per character (see LMScorer); with lm, those it
    lacks become reachable even with unk_score -inf (as its <unk>); without one, the search tracks
    words with an LM that scores nothing else. hotword_spellings: (word, spelling) pairs, the
    hotwords as the trie spells them (with a trie: a lexicon's pronunciations).
    """
    beam_size, beam_margin, recombine = options.beam_size, options.beam_margin, options.recombine
    alpha, beta, unk_score = options.alpha, options.beta, options.unk_score
    hotwords = (
        tuple((w, w) for w in read_hotwords(options.hotwords))
        if hotword_spellings is None
        else hotword_spellings
    )
    log_probs = np.asarray(log_probs, np.float64)  # (T, V)
    T, V = log_probs.shape
    if hotwords and lm is None:  # words are tracked by the LM scorer: one that scores nothing else
        lm, alpha, beta, unk_score = silent_lm(), 0.0, 0.0, 0.0
    space = vocab.index(" ") if vocab is not None and " " in vocab else -1
    if lm is not None and space < 0:
        raise ValueError("LM fusion needs a vocab with a space token")
    cands = frame_candidates(log_probs, blank, options.token_min_logp, options.top_k, options.blank_skip_logp)
    if homophones > 1:  # the space's copies: candidates where it is one, and pruned as it is
        copies = np.arange(V, V + homophones - 1)
        cands = [np.concatenate([c, copies]) if np.any(c == space) else c for c in cands]
        log_probs = np.concatenate(
            [log_probs, np.repeat(log_probs[:, [space]], homophones - 1, axis=1)], axis=1
        )
        vocab = list(vocab) + [" "] * (homophones - 1)
        T, V = log_probs.shape
    begins_word = word_starts(vocab) if vocab is not None else np.zeros(V, bool)
    is_space = np.zeros(V + 1, bool)  # (V + 1,) the word boundaries; [-1] for last = -1 (no vocab)
    is_space[:V] = [token == " " for token in vocab] if vocab is not None else False
    scorer = (
        LMScorer(lm, vocab, alpha, beta, unk_score, trie, hotwords, options.hotword_boost)
        if lm is not None
        else None
    )

    # trie of prefixes: node 1 is the empty prefix, node 0 a sentinel parent no beam ever holds
    capacity = 1024
    parent = np.zeros(capacity, np.int64)
    token = np.full(capacity, -1, np.int64)
    row_of = np.full(capacity, -1, np.int64)  # node -> its row in the current beam arrays, or -1
    children: dict[int, int] = {}  # parent node * V + token -> node
    # with_frames: node -> the frame of its likeliest entry so far, and that entry's log-prob (only
    # then: the bookkeeping costs some 10 % of the search's time)
    first = np.zeros(capacity, np.int64)
    entry_logp = np.full(capacity, NEG_INF)
    n_nodes = 2
    # the empty prefix acts as if it ended in a space, so a leading space leaves it unchanged
    token[1] = space

    ids = np.array([1])  # (B,) prefix node of each beam
    last = np.array([space])  # (B,) its last token (-1: none)
    p_b = np.array([0.0])  # (B,) log P(prefix, ending in blank)
    p_nb = np.array([NEG_INF])  # (B,) log P(prefix, ending in its last token)
    fused = np.array([0.0])  # (B,) LM score of the prefix (see LMScorer)
    states = np.array([0])  # (B,) word state of its partial word (see LMScorer.extend; 0: none)
    row_of[1] = 0
    ends_in_space = is_space[last]

    for t in range(T):
        lp = log_probs[t]  # (V,)
        p_tot = np.logaddexp(p_b, p_nb)  # (B,)
        # the same prefix: by blank, or by repeating its last token; after a space any new space
        # (with or without a blank between) leaves the text unchanged
        new_b = p_tot + lp[blank]
        new_nb = np.where(ends_in_space, p_tot, p_nb) + np.where(last >= 0, lp[last], NEG_INF)
        toks = cands[t]  # (C,)
        if len(toks) == 0:
            p_b, p_nb = new_b, new_nb
            continue

        # new prefixes: a repeated token only follows a blank
        B, C = len(ids), len(toks)
        repeat = last[:, None] == toks[None, :]  # (B, C)
        ext = np.where(repeat, p_b[:, None], p_tot[:, None]) + lp[toks][None, :]  # (B, C)
        col_of = np.full(V + 1, -1)  # token -> its column in ext, -1 for none (and for last = -1)
        col_of[toks] = np.arange(C)
        if is_space[toks].any():
            ext[ends_in_space[:, None] & is_space[toks]] = NEG_INF  # counted in new_nb above

        # an extension that recreates a prefix already in the beam adds to that beam instead
        par_row = row_of[parent[ids]]  # (B,)
        col = col_of[last]  # (B,), last = -1 reads the spare slot col_of[V]
        merge = np.flatnonzero((par_row >= 0) & (col >= 0))
        if len(merge):
            r, c = par_row[merge], col[merge]
            new_nb[merge] = np.logaddexp(new_nb[merge], ext[r, c])
            if with_frames:
                _note_entries(first, entry_logp, ids[merge], ext[r, c], t)
            ext[r, c] = NEG_INF

        score_stay = np.logaddexp(new_b, new_nb) + fused  # (B,)
        if scorer is None:
            fused_ext = np.broadcast_to(fused[:, None], (B, C))  # (B, C)
        else:
            child, change = scorer.extend(states, toks)  # (B, C) each
            fused_ext = fused[:, None] + change
            begins = begins_word[toks]  # (C,) the space, and word pieces such as " the"
            if begins.any():
                # ending a word asks the LM: only for beams that can still make the cut below, known
                # from every other candidate's score and an upper bound of the word's score change
                score_ext = ext + fused_ext  # (B, C) before the words' endings
                known = np.concatenate([score_stay, score_ext[:, ~begins].ravel()])
                floor = known.max() - beam_margin if len(known) else NEG_INF
                if len(known) >= beam_size:
                    floor = max(floor, np.partition(known, len(known) - beam_size)[len(known) - beam_size])
                best_begin = score_ext[:, begins].max(axis=1)  # (B,)
                maybe = np.flatnonzero(best_begin + scorer.completion_bound(states) >= floor)
                # (B, K) score change of ending the beam's word (as each homophone)
                ended = np.full((B, scorer.ended.shape[1]), NEG_INF)
                ended[maybe] = scorer.completions(ids[maybe], last[maybe], states[maybe])
                fused_ext[:, begins] += ended[:, scorer.variant[toks[begins]]]
        score_ext = ext + fused_ext  # (B, C)

        # keep the best beam_size within beam_margin of the best, recombined when they do not fit
        scores = np.concatenate([score_stay, score_ext.ravel()])  # (B + B*C,)
        keep = np.flatnonzero((scores >= scores.max() - beam_margin) & (scores > NEG_INF))
        if recombine and scorer is not None and len(keep) > beam_size:
            keys = np.concatenate(
                [scorer.future_keys(ids, last, states), scorer.extension_keys(ids, last, child, toks).ravel()]
            )
            ending_blank = np.concatenate([new_b + fused, np.full(B * C, NEG_INF)])  # new prefixes: none
            rows = _recombine(
                keys[keep], ending_blank[keep], np.concatenate([new_nb + fused, score_ext.ravel()])[keep]
            )
            if rows is not None:
                keep = keep[rows]
        if len(keep) > beam_size:
            keep = keep[np.argpartition(-scores[keep], beam_size - 1)[:beam_size]]
        stay = keep[keep < B]
        r, c = np.divmod(keep[keep >= B] - B, C)  # the new prefixes: beam r extended by token c
        parents, new_toks, entered = ids[r], toks[c], ext[r, c]  # entered: their p_nb
        if n_nodes + len(r) > capacity:
            grow = max(capacity, len(r))
            parent = np.concatenate([parent, np.zeros(grow, np.int64)])
            token = np.concatenate([token, np.full(grow, -1, np.int64)])
            row_of = np.concatenate([row_of, np.full(grow, -1, np.int64)])
            first = np.concatenate([first, np.zeros(grow, np.int64)])
            entry_logp = np.concatenate([entry_logp, np.full(grow, NEG_INF)])
            capacity += grow
        # a prefix that was pruned earlier gets its old node back, so that its children still in
        # the beam find it as their parent
        keys = (parents * V + new_toks).tolist()  # (parent, token) of each new prefix
        new_ids = np.array([children.get(key, -1) for key in keys], np.int64)
        fresh = np.flatnonzero(new_ids < 0)
        new_ids[fresh] = np.arange(n_nodes, n_nodes + len(fresh))
        children.update(zip([keys[j] for j in fresh.tolist()], new_ids[fresh].tolist()))
        n_nodes += len(fresh)
        if with_frames:
            _note_entries(first, entry_logp, new_ids, entered, t)
        parent[new_ids] = parents
        token[new_ids] = new_toks
        if scorer is not None:
            scorer.add_words(new_ids, parents, last[r], new_toks)

        row_of[ids] = -1
        ids = np.concatenate([ids[stay], new_ids])
        last = np.concatenate([last[stay], new_toks])
        p_b = np.concatenate([new_b[stay], np.full(len(r), NEG_INF)])
        p_nb = np.concatenate([new_nb[stay], entered])
        fused = np.concatenate([fused[stay], fused_ext[r, c]])
        states = np.concatenate([states[stay], child[r, c] if scorer is not None else np.zeros(len(r), int)])
        row_of[ids] = np.arange(len(ids))
        ends_in_space = is_space[last]

    # finish: score the last partial word, merge prefixes that differ only by spaces that change no text
    p_tot = np.logaddexp(p_b, p_nb)
    # token ids -> [log P_ctc, LM score, frames of its most probable prefix, that prefix's log P_ctc]
    results: dict[tuple[int, ...], list] = {}
    space_of = np.flatnonzero(is_space[:V])  # homophone k -> the space (copy) that ends a word as it
    finals = scorer.final(ids, last, states) if scorer is not None else np.zeros((len(ids), 1))  # (B, K)
    parent_of, token_of, starts = parent[:n_nodes].tolist(), token[:n_nodes].tolist(), begins_word.tolist()
    for node, ctc, f, changes in zip(ids.tolist(), p_tot.tolist(), fused.tolist(), finals.tolist()):
        labelling, nodes = [], []
        while node > 1:
            labelling.append(token_of[node])
            nodes.append(node)
            node = parent_of[node]
        labelling.reverse()
        # the spaces that change no text: at the end, and before a token that begins a word itself
        # (" the"); leading and repeated spaces never enter a prefix
        audible = [t != space or not starts[after] for t, after in zip(labelling, labelling[1:] + [space])]
        spoken = tuple(itertools.compress(labelling, audible))
        for k, change in enumerate(changes):  # the last word as each homophone: the space's copy says which
            if k and change == NEG_INF:
                continue
            key = spoken + ((int(space_of[k]),) if k else ())
            row = results.setdefault(key, [NEG_INF, f + change, None, NEG_INF])
            row[0] = float(np.logaddexp(row[0], ctc))
            if with_frames and ctc > row[3]:
                at = _increasing(first[nodes[::-1]].tolist() + [T - 1] * bool(k), T)  # the copy: the end
                row[2:] = list(itertools.compress(at, audible + [True] * bool(k))), ctc
    beams = sorted(results.items(), key=lambda x: -(x[1][0] + x[1][1]))
    if with_frames:
        return [(list(k), ctc + f, frames) for k, (ctc, f, frames, _) in beams]
    return [(list(k), ctc + f) for k, (ctc, f, _, _) in beams]


def pronunciation_search_nbest(
    log_probs: np.ndarray,
    options: DecodingOptions,
    vocab: list[str],
    lexicon: Lexicon,
    lm: NGramLM | None = None,
    *,
    with_frames: bool = False,
) -> list[tuple]:
    """Words from phonemes: prefix beam search over phoneme tokens (vocab: blank at 0, " " the word
    boundary) constrained to the lexicon's pronunciations, which spell no other word. -> beams as
    prefix_beam_search_nbest's; PhoneTokenizer.decode writes their words.

    With lm, the LM scores each word as it ends, with the unigram look-ahead on partial words, as
    for characters; a pronunciation of several words (homophones) ends each as a hypothesis of its
    own, the k-th most frequent by a copy of the boundary token (len(vocab) + k - 1). Without one,
    the score is the CTC probability of the phonemes alone, and each pronunciation is written as
    its most frequent word.

    Hotwords must be the lexicon's words (Lexicon.favouring adds them, first among their homophones:
    those written without an LM); one the LM lacks is scored as its <unk>.
    """
    hotwords = read_hotwords(options.hotwords)
    missing = [w for w in hotwords if w not in lexicon.entries]
    if missing:
        raise ValueError(f"--hotwords {', '.join(missing)}: not in the lexicon (Lexicon.favouring adds them)")
    if lm is not None and lm.word_id(UNK) < 0 and any(w not in lm.vocab for w in hotwords):
        outside = ", ".join(w for w in hotwords if w not in lm.vocab)
        raise ValueError(f"--hotwords {outside}: not in the LM, which has no <unk> to score them")
    spellings = tuple(
        (w, "".join(PHONEME_CHARS[p] for p in pron)) for w in hotwords for pron in lexicon.entries[w]
    )
    options = dataclasses.replace(options, unk_score=NEG_INF)  # a pronunciation outside it has no spelling
    homophones = lexicon.max_homophones if lm is not None else 1
    if lm is None:
        lm, options = frequency_lm(lexicon), dataclasses.replace(options, alpha=0.0, beta=0.0)
    trie = pronunciation_trie(lexicon, lm, list(vocab) + [" "] * (homophones - 1), hotwords)
    return prefix_beam_search_nbest(
        log_probs,
        options,
        vocab,
        lm,
        trie=trie,
        homophones=homophones,
        with_frames=with_frames,
        hotword_spellings=spellings,
    )


def _recombine(keys: np.ndarray, p_b: np.ndarray, p_nb: np.ndarray) -> np.ndarray | None:
    """(N,) candidate beams' future keys (LMScorer.future_keys, extension_keys) and log-probs of
    ending in blank and not (fused score added) -> the rows worth keeping, or None for all. Among
    beams of one key, every continuation adds the same to each (in probability: their two parts
    weighted alike), so one that trails the best of them in both parts can overtake it only by
    alignments that enter its prefix later, from its parent: hypothesis recombination, a pruning.
    Its place in the beam goes to another text; on the shipped phoneme model this gains what a much
    wider beam does.
    """
    order = np.lexsort((-np.logaddexp(p_b, p_nb), keys))  # (N,) by key, the best of each first
    sorted_keys = keys[order]
    first = np.ones(len(keys), bool)  # (N,) the best of its key
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    if first.all():
        return None
    best = order[np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))]  # (N,) its key's best
    trails = ~first & (p_b[order] <= p_b[best]) & (p_nb[order] <= p_nb[best])
    return np.sort(order[~trails])


def _note_entries(first: np.ndarray, entry: np.ndarray, nodes: np.ndarray, logp: np.ndarray, t: int) -> None:
    """Nodes (N,) entered at frame t with log-probs (N,): note t as a node's frame where this entry
    is its likeliest so far (first, entry: per node, updated in place)."""
    better = logp > entry[nodes]
    if better.any():
        nodes = nodes[better]
        first[nodes] = t
        entry[nodes] = logp[better]


def _increasing(frames: list[int], T: int) -> list[int]:
    """Frames made increasing (strictly, but for any pushed past the last frame, T - 1), each moved
    later as little as that needs: a token's likeliest entry may come before its parent's, where
    their distributions overlap."""
    if not frames:
        return []
    n = np.arange(len(frames))
    return np.minimum(np.maximum.accumulate(np.asarray(frames, np.int64) - n) + n, T - 1).tolist()


def prefix_beam_search(
    log_probs: np.ndarray,
    options: DecodingOptions = DecodingOptions(),
    vocab: list[str] | None = None,
    lm: NGramLM | None = None,
    *,
    blank: int = 0,
    with_frames: bool = False,
) -> list[int] | tuple[list[int], list[int]]:
    """(T, V) log-probs -> token ids of the best beam (with_frames: and the frame of each one's
    first emission); see prefix_beam_search_nbest for the arguments.

    beam_size=1 without an LM or hotwords is best-path (greedy) decoding: a single beam ranked by the
    summed probability of its prefix could stay on a prefix that the best path has already left.
    """
    if options.beam_size == 1 and lm is None and not read_hotwords(options.hotwords):
        ids, frames = greedy_path(log_probs, blank)
        return (ids, frames) if with_frames else ids
    best = prefix_beam_search_nbest(log_probs, options, vocab, lm, blank=blank, with_frames=with_frames)[0]
    return (best[0], best[2]) if with_frames else best[0]


def decode(
    log_probs: np.ndarray,
    vocab: list[str],
    options: DecodingOptions,
    lm: NGramLM | None = None,
    lexicon: Lexicon | None = None,
    with_frames: bool = False,
) -> list[int] | tuple[list[int], list[int]]:
    """(T, V) log-probs -> token ids, by options.decoder; lm is used by beam_lm only. With a
    lexicon, the tokens are phonemes and the beam searches keep to its words. with_frames: (token
    ids, the frame of each one's first emission), for word times (transcript.py)."""
    lm = lm if options.decoder == "beam_lm" else None
    if options.decoder == "greedy":
        ids, frames = greedy_path(log_probs)
        return (ids, frames) if with_frames else ids
    if lexicon is None:
        return prefix_beam_search(log_probs, options, vocab, lm, with_frames=with_frames)
    best = pronunciation_search_nbest(log_probs, options, vocab, lexicon, lm, with_frames=with_frames)[0]
    return (best[0], best[2]) if with_frames else best[0]


# ---------------------------------------------------------------------------------------------------
# Many utterances: a pool of worker processes, each loading the LM once


@lru_cache(maxsize=1)
def load_lm(path: str) -> NGramLM:
    """The ARPA model at path, read once per process."""
    return NGramLM.from_arpa(path)


def follow_parent(*_) -> None:
    """Set-up of a worker process (a pool's initializer, a DataLoader's worker_init_fn): Ctrl-C is
    for the parent to report, so the worker ignores it; and the worker exits within half a second
    of its parent's death, so a killed run leaves no process computing for no one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


_pool_lexicon: Lexicon | None = None  # a worker's copy of its pool's lexicon


def _init_worker(lm_path: str, lexicon: Lexicon | None) -> None:
    global _pool_lexicon
    follow_parent()
    _pool_lexicon = lexicon
    try:
        if lm_path:
            load_lm(lm_path)
    except Exception:  # raised again by the tasks: a failing initializer makes a pool respawn forever
        pass


def _decode_task(job: tuple) -> list:
    """One utterance decoded with each of a list of options: its log-probs are sent only once."""
    log_probs, vocab, options_list, lexicon, with_frames = job
    lexicon = lexicon if lexicon is not None else _pool_lexicon
    return [
        decode(log_probs, vocab, o, load_lm(o.lm) if o.decoder == "beam_lm" else None, lexicon, with_frames)
        for o in options_list
    ]


def decoder_pool(lm_path: str = "", num_workers: int = 2, lexicon: Lexicon | None = None):
    """A process pool for decode_batch whose workers read the LM at lm_path once, when they start,
    and get the lexicon of a phoneme model once. Use it as a context manager; it serves any number
    of decode_batch calls with that LM and lexicon."""
    # spawn, not fork: the caller may hold torch threads or CUDA state that a forked child must not touch
    return multiprocessing.get_context("spawn").Pool(num_workers, _init_worker, (lm_path, lexicon))


def decode_batch(
    log_probs_list: list[np.ndarray],
    vocab: list[str],
    options: DecodingOptions | list[DecodingOptions],
    pool=None,
    lexicon: Lexicon | None = None,
    with_frames: bool = False,
) -> list:
    """Decode utterances ((T_i, V) log-probs each) to token ids, in input order: a list of ids per
    utterance, or with a list of options, a list (one per option) per utterance. Beam search runs in
    `pool` (see decoder_pool, which must then hold the same lexicon) when given, else here; greedy
    decoding always runs here. lexicon: a phoneme model's (PhoneTokenizer.lexicon). with_frames:
    (ids, frames) in place of ids, as decode gives them."""
    options_list = options if isinstance(options, list) else [options]
    for o in options_list:
        if o.decoder == "beam_lm" and not o.lm:
            raise ValueError("decoder beam_lm needs an LM (options.lm, an ARPA path)")
    here = pool is None or len(log_probs_list) <= 1 or all(o.decoder == "greedy" for o in options_list)
    if here:
        results = [_decode_task((lp, vocab, options_list, lexicon, with_frames)) for lp in log_probs_list]
    else:  # the workers have the lexicon already
        results = pool.map(
            _decode_task, [(lp, vocab, options_list, None, with_frames) for lp in log_probs_list], chunksize=1
        )
    return results if isinstance(options, list) else [r[0] for r in results]
