"""CTC decoding: greedy, and prefix beam search with word n-gram shallow fusion, configured by one
DecodingOptions; `decode_batch` decodes many utterances, in a pool of worker processes when given one.

All scores are natural-log. A prefix is an integer node id in a trie (parent + token arrays); each beam
keeps the prefix's log-probability of ending in blank (p_b) and in a non-blank token (p_nb), so every
alignment of the prefix is counted once. Per-frame work is vectorised over beams and candidate tokens.
`vocab` is the tokenizer's symbol list: blank at 0, " " the word boundary; with word pieces, a token
whose text begins with " " (" the") begins a word, ending the one before it.
"""

import dataclasses
import math
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from arpa import BOS, EOS, UNK
from lm import NGramLM, WordTrie

NEG_INF = float("-inf")
DECODERS = ("greedy", "beam", "beam_lm")


@dataclass
class DecodingOptions:
    decoder: str = "greedy"  # greedy | beam | beam_lm
    beam_size: int = 50
    lm: str = ""  # ARPA file (.arpa or .arpa.gz), for beam_lm
    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # word insertion bonus
    token_min_logp: float = -10.0  # per-frame pruning: see frame_candidates
    top_k: int | None = 16
    beam_margin: float = 10.0
    blank_skip_logp: float = -1e-3
    unk_score: float = -3.0  # per character of a word outside the LM vocabulary; -inf: only its words

    def __post_init__(self):
        """ValueError naming the setting (as its command-line flag) that no search can use."""
        problems = {
            "decoder": self.decoder not in DECODERS and f"choose one of {', '.join(DECODERS)}",
            "beam_size": not self.beam_size >= 1 and "must be at least 1",
            "top_k": self.top_k is not None and not self.top_k >= 1 and "must be at least 1, or None for all",
            "alpha": not math.isfinite(self.alpha) and "must be a finite number",
            "beta": not math.isfinite(self.beta) and "must be a finite number",
            "unk_score": not self.unk_score < math.inf and "must be a number, or -inf",
        }
        for name, problem in problems.items():
            if problem:
                raise ValueError(f"--{name} {getattr(self, name)}: {problem}")

    def search_kwargs(self) -> dict:
        """The keyword arguments of prefix_beam_search_nbest (all but decoder, beam_size and lm)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("decoder", "beam_size", "lm")}


def greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """(T, V) -> token ids: best token per frame, repeats collapsed, blanks dropped."""
    best = np.asarray(log_probs).argmax(axis=-1)  # (T,)
    keep = np.ones(len(best), bool)
    keep[1:] = best[1:] != best[:-1]
    best = best[keep]
    return best[best != blank].tolist()


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


def word_starts(vocab: list[str]) -> np.ndarray:
    """(V,) True for the tokens that begin a word: the space, and word pieces such as " the"."""
    return np.array([token.startswith(" ") for token in vocab])


@lru_cache(maxsize=8)
def _word_state_tables(trie: WordTrie, alpha: float, unk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per word state (see WordTrie): its look-ahead, which a word that left the trie keeps from
    where it left; whether it ends a vocabulary word (never once it left); and the LM id of that
    word (unk when none). (2S,) each; computed once per LM and alpha."""
    look = alpha * trie.best  # the look-ahead; none before a word starts
    look[0] = 0.0
    outside = len(look)  # the word states of words that left the trie
    tables = (
        trie.by_word_state(look),
        np.concatenate([trie.is_word, np.zeros(outside, bool)]),
        np.concatenate([np.where(trie.is_word, trie.word_id, unk), np.full(outside, unk)]),
    )
    for table in tables:
        table.flags.writeable = False  # shared by every utterance decoded with this LM and alpha
    return tables


class _LMScorer:
    """Shallow-fusion bookkeeping for one utterance, cached per trie node of the search.

    A prefix's fused score is alpha * log P_lm(its finished words) + beta * words, plus unk_score for
    each character of a word past the point where it stopped being the start of any LM word (the end of
    a word that is no LM word counts as one such character), plus a
    look-ahead for its unfinished word: alpha * the best unigram log-prob of a vocabulary word it can
    still become. Without these a partial word is free until it ends, so the search prefers long run-on
    non-words that pay once, and delays ending words that would pay now. When the word ends, its
    look-ahead is replaced by its real score. unk_score = -inf keeps only vocabulary words. A token
    that begins with " " (the space, or a word piece such as " the") ends the partial word before it
    and begins a new one with its own characters, so the LM scores words, never pieces.
    """

    def __init__(
        self, lm: NGramLM, vocab: list[str], space: int, alpha: float, beta: float, unk_score: float
    ):
        self.lm, self.space, self.alpha, self.beta = lm, space, alpha, beta
        self.unk_score = unk_score
        self.n_history = lm.order - 1
        self.eos = lm.word_id(EOS)
        # word ids throughout: an unknown word is <unk>, which is all the LM can tell of it
        self.history = {1: (lm.word_id(BOS),)}  # node whose token begins a word (or the root) -> history
        self.history_after: dict[int, tuple] = {}  # node -> history once its partial word has ended
        self.word_start = np.ones(1024, np.int64)  # node -> the node whose token began its word
        self.ended = np.full(1024, np.nan)  # node -> score change of ending its word now (nan: not asked)
        self.trie = lm.word_trie(vocab)
        self.look, self.is_word, self.word_of = _word_state_tables(self.trie, alpha, lm.word_id(UNK))
        # unk_score per number of characters read outside the trie (0 to the longest token)
        self.unk_cost = np.array(
            [0.0] + [unk_score * n for n in range(1, self.trie.token_chars.shape[1] + 1)]
        )
        self.begins_word = word_starts(vocab)  # (V,)

    def extend(self, states: np.ndarray, toks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) word states of the beams and (C,) tokens -> (B, C) next word states and fused score
        changes. A word state is the partial word's trie state (0: no partial word), or -1 - the last
        trie state of a partial word that left the trie: it keeps that look-ahead, so that leaving
        the vocabulary never refunds a rare prefix's look-ahead, and pays unk_score per character.
        A token that begins a word walks from state 0; ending the word before it is completions()'s."""
        start = np.where(self.begins_word[toks][None, :], 0, states[:, None])  # (B, C) state it continues
        child, outside = self.trie.walk(start, toks)
        return child, self.look[child] - self.look[start] + self.unk_cost[outside]

    def complete(self, nodes: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(N,) score changes when the nodes' partial words (in word states `states`) end here:
        alpha * log P(word | history) + beta replaces the look-ahead; an unknown word keeps the
        unk_score it paid and pays one more. The word state names the word: no need to spell it."""
        words = self.word_of[states]
        scores = self.beta - self.look[states] + np.where(self.is_word[states], 0.0, self.unk_score)
        for j, (node, word, start) in enumerate(
            zip(nodes.tolist(), words.tolist(), self.word_start[nodes].tolist())
        ):
            history = self.history[start]
            scores[j] += self.alpha * self.lm.log_prob_ids(word, history)
            history += (word,)
            self.history_after[node] = history[len(history) - self.n_history :] if self.n_history else ()
        self.ended[nodes] = scores
        return scores

    def completion_bound(self, states: np.ndarray) -> np.ndarray:
        """(B,) upper bound of completions(): log P(word | history) <= 0, unk_score <= 0; -inf for a
        word outside the vocabulary when unk_score is -inf (no LM query needed to know)."""
        bound = self.beta - self.look[states]
        return bound if self.unk_score > NEG_INF else np.where(self.is_word[states], bound, NEG_INF)

    def completions(self, ids: np.ndarray, last: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B,) score change of ending each beam's word now; 0 for beams with no partial word."""
        scores = np.where(last == self.space, 0.0, self.ended[ids])
        new = np.flatnonzero(np.isnan(scores))
        if len(new):
            scores[new] = self.complete(ids[new], states[new])
        return scores

    def add_words(self, new_ids: np.ndarray, parents: np.ndarray, parent_last: np.ndarray, toks) -> None:
        """Note where each new node's word began, and register the LM history before the word that
        each node created by a word-beginning token begins: after the parent's word, which the
        token ended, or the parent's own history when it had no partial word (the root, a space)."""
        if len(new_ids) and new_ids.max() >= len(self.word_start):
            grow = max(len(self.word_start), int(new_ids.max()) + 1 - len(self.word_start))
            self.word_start = np.concatenate([self.word_start, np.ones(grow, np.int64)])
            self.ended = np.concatenate([self.ended, np.full(grow, np.nan)])
        begins = self.begins_word[toks]
        self.word_start[new_ids] = np.where(begins, new_ids, self.word_start[parents])
        for n, p, p_last in zip(
            new_ids[begins].tolist(), parents[begins].tolist(), parent_last[begins].tolist()
        ):
            self.history[n] = self.history[p] if p_last == self.space else self.history_after[p]

    def final(self, node: int, last: int, state: int) -> float:
        """Score change at the end of the utterance: the last partial word, then </s>."""
        score, history = 0.0, self.history.get(node)
        if last != self.space and node != 1:
            score = float(self.completions(np.array([node]), np.array([last]), np.array([state]))[0])
            history = self.history_after[node]
        return score + self.alpha * self.lm.log_prob_ids(self.eos, history)


def prefix_beam_search_nbest(
    log_probs: np.ndarray,
    beam_size: int,
    blank: int = 0,
    vocab: list[str] | None = None,
    lm: NGramLM | None = None,
    alpha: float = 0.5,
    beta: float = 1.0,
    token_min_logp: float = -10.0,
    top_k: int | None = 16,
    beam_margin: float = 10.0,
    blank_skip_logp: float = -1e-3,
    unk_score: float = -3.0,
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search; (T, V) log-probs -> beams as (token ids, score), best first.

    score = log P_ctc(prefix) + alpha * log P_lm(words) + beta * len(words) (the LM terms only with lm).
    With vocab (which must then contain " "), spaces are word boundaries: leading and repeated spaces do
    not make new prefixes, a trailing space is dropped, and the LM scores each word as it completes. A
    word piece that begins with " " (" the") ends the word before it as a space does; a space right
    before one changes no text, and is dropped from the result like a trailing one (the two labellings
    merge). Other segmentations of the same text ("th" + "e", "the") are other labellings, as in training.
    Pruning per frame: candidate tokens (see frame_candidates), then at most beam_size prefixes no more
    than beam_margin below the best. unk_score is added for each character of a word from where it
    stops being the start of any LM word, and once more at its end; -inf keeps only vocabulary words. Pass token_min_logp=-inf, top_k=None, beam_margin=inf, blank_skip_logp=0 for
    an exact search (up to beam_size).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    log_probs = np.asarray(log_probs, np.float64)  # (T, V)
    T, V = log_probs.shape
    space = vocab.index(" ") if vocab is not None and " " in vocab else -1
    begins_word = word_starts(vocab) if vocab is not None else np.zeros(V, bool)
    if lm is not None and space < 0:
        raise ValueError("LM fusion needs a vocab with a space token")
    scorer = _LMScorer(lm, vocab, space, alpha, beta, unk_score) if lm is not None else None
    cands = frame_candidates(log_probs, blank, token_min_logp, top_k, blank_skip_logp)

    # trie of prefixes: node 1 is the empty prefix, node 0 a sentinel parent no beam ever holds
    capacity = 1024
    parent = np.zeros(capacity, np.int64)
    token = np.full(capacity, -1, np.int64)
    row_of = np.full(capacity, -1, np.int64)  # node -> its row in the current beam arrays, or -1
    children: dict[int, int] = {}  # parent node * V + token -> node
    n_nodes = 2
    # the empty prefix acts as if it ended in a space, so a leading space leaves it unchanged
    token[1] = space

    ids = np.array([1])  # (B,) prefix node of each beam
    last = np.array([space])  # (B,) its last token (-1: none)
    p_b = np.array([0.0])  # (B,) log P(prefix, ending in blank)
    p_nb = np.array([NEG_INF])  # (B,) log P(prefix, ending in its last token)
    fused = np.array([0.0])  # (B,) LM score of the prefix (see _LMScorer)
    states = np.array([0])  # (B,) word state of its partial word (see _LMScorer.extend; 0: none)
    row_of[1] = 0
    ends_in_space = last == space if space >= 0 else np.zeros(1, bool)

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
        if space >= 0 and col_of[space] >= 0:
            ext[ends_in_space, col_of[space]] = NEG_INF  # counted in new_nb above

        # an extension that recreates a prefix already in the beam adds to that beam instead
        par_row = row_of[parent[ids]]  # (B,)
        col = col_of[last]  # (B,), last = -1 reads the spare slot col_of[V]
        merge = np.flatnonzero((par_row >= 0) & (col >= 0))
        if len(merge):
            r, c = par_row[merge], col[merge]
            new_nb[merge] = np.logaddexp(new_nb[merge], ext[r, c])
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
                ended = np.full(B, NEG_INF)  # (B,) score change of ending the beam's word
                ended[maybe] = scorer.completions(ids[maybe], last[maybe], states[maybe])
                fused_ext[:, begins] += ended[:, None]
        score_ext = ext + fused_ext  # (B, C)

        # keep the best beam_size within beam_margin of the best
        scores = np.concatenate([score_stay, score_ext.ravel()])  # (B + B*C,)
        keep = np.flatnonzero((scores >= scores.max() - beam_margin) & (scores > NEG_INF))
        if len(keep) > beam_size:
            keep = keep[np.argpartition(-scores[keep], beam_size - 1)[:beam_size]]
        stay = keep[keep < B]
        r, c = np.divmod(keep[keep >= B] - B, C)
        if n_nodes + len(r) > capacity:
            grow = max(capacity, len(r))
            parent = np.concatenate([parent, np.zeros(grow, np.int64)])
            token = np.concatenate([token, np.full(grow, -1, np.int64)])
            row_of = np.concatenate([row_of, np.full(grow, -1, np.int64)])
            capacity += grow
        # a prefix that was pruned earlier gets its old node back, so that its children still in
        # the beam find it as their parent
        new_ids = np.empty(len(r), np.int64)
        for j, key in enumerate((ids[r] * V + toks[c]).tolist()):
            node = children.get(key)
            if node is None:
                node = children[key] = n_nodes
                n_nodes += 1
            new_ids[j] = node
        parent[new_ids] = ids[r]
        token[new_ids] = toks[c]
        if scorer is not None:
            scorer.add_words(new_ids, ids[r], last[r], toks[c])

        row_of[ids] = -1
        ids = np.concatenate([ids[stay], new_ids])
        last = np.concatenate([last[stay], toks[c]])
        p_b = np.concatenate([new_b[stay], np.full(len(r), NEG_INF)])
        p_nb = np.concatenate([new_nb[stay], ext[r, c]])
        fused = np.concatenate([fused[stay], fused_ext[r, c]])
        states = np.concatenate([states[stay], child[r, c] if scorer is not None else np.zeros(len(r), int)])
        row_of[ids] = np.arange(len(ids))
        ends_in_space = last == space if space >= 0 else np.zeros(len(ids), bool)

    # finish: score the last partial word, merge prefixes that differ only by spaces that change no text
    p_tot = np.logaddexp(p_b, p_nb)
    results: dict[tuple[int, ...], list[float]] = {}  # token ids -> [log P_ctc, LM score]
    for node, t, s, ctc, f in zip(
        ids.tolist(), last.tolist(), states.tolist(), p_tot.tolist(), fused.tolist()
    ):
        if scorer is not None:
            f += scorer.final(node, t, s)
        backwards = []
        while node > 1:
            backwards.append(int(token[node]))
            node = int(parent[node])
        entry = results.setdefault(_without_silent_spaces(backwards[::-1], space, begins_word), [NEG_INF, f])
        entry[0] = float(np.logaddexp(entry[0], ctc))
    return sorted(((list(k), ctc + f) for k, (ctc, f) in results.items()), key=lambda x: -x[1])


def _without_silent_spaces(ids: list[int], space: int, begins_word: np.ndarray) -> tuple[int, ...]:
    """A labelling without the spaces that change no text: at the end, and before a token that
    begins a word itself (" the"). Leading and repeated spaces never enter a prefix."""
    return tuple(t for t, after in zip(ids, ids[1:] + [space]) if t != space or not begins_word[after])


def prefix_beam_search(
    log_probs: np.ndarray, beam_size: int, blank: int = 0, lm: NGramLM | None = None, **search_kwargs
) -> list[int]:
    """(T, V) log-probs -> token ids of the best beam; see prefix_beam_search_nbest for the arguments.

    beam_size=1 without an LM is best-path (greedy) decoding: a single beam ranked by the summed
    probability of its prefix could stay on a prefix that the best path has already left.
    """
    if beam_size == 1 and lm is None:
        return greedy_decode(log_probs, blank)
    return prefix_beam_search_nbest(log_probs, beam_size, blank=blank, lm=lm, **search_kwargs)[0][0]


def decode(
    log_probs: np.ndarray, vocab: list[str], options: DecodingOptions, lm: NGramLM | None = None
) -> list[int]:
    """(T, V) log-probs -> token ids, by options.decoder; lm is used by beam_lm only."""
    if options.decoder == "greedy":
        return greedy_decode(log_probs)
    if options.decoder not in DECODERS:
        raise ValueError(f"unknown decoder {options.decoder!r}; choose {', '.join(DECODERS)}")
    lm = lm if options.decoder == "beam_lm" else None
    return prefix_beam_search(log_probs, options.beam_size, vocab=vocab, lm=lm, **options.search_kwargs())


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


def _init_worker(lm_path: str) -> None:
    follow_parent()
    try:
        if lm_path:
            load_lm(lm_path)
    except Exception:  # raised again by the tasks: a failing initializer makes a pool respawn forever
        pass


def _decode_task(job: tuple) -> list[list[int]]:
    """One utterance decoded with each of a list of options: its log-probs are sent only once."""
    log_probs, vocab, options_list = job
    return [
        decode(log_probs, vocab, o, load_lm(o.lm) if o.decoder == "beam_lm" else None) for o in options_list
    ]


def decoder_pool(lm_path: str = "", num_workers: int = 2):
    """A process pool for decode_batch whose workers read the LM at lm_path once, when they start.
    Use it as a context manager; it serves any number of decode_batch calls with that LM."""
    # spawn, not fork: the caller may hold torch threads or CUDA state that a forked child must not touch
    return multiprocessing.get_context("spawn").Pool(num_workers, _init_worker, (lm_path,))


def decode_batch(
    log_probs_list: list[np.ndarray],
    vocab: list[str],
    options: DecodingOptions | list[DecodingOptions],
    pool=None,
) -> list:
    """Decode utterances ((T_i, V) log-probs each) to token ids, in input order: a list of ids per
    utterance, or with a list of options, a list (one per option) per utterance. Beam search runs in
    `pool` (see decoder_pool) when given, else here; greedy decoding always runs here."""
    options_list = options if isinstance(options, list) else [options]
    for o in options_list:
        if o.decoder == "beam_lm" and not o.lm:
            raise ValueError("decoder beam_lm needs an LM (options.lm, an ARPA path)")
    jobs = [(lp, vocab, options_list) for lp in log_probs_list]
    if pool is None or len(jobs) <= 1 or all(o.decoder == "greedy" for o in options_list):
        results = [_decode_task(job) for job in jobs]
    else:
        results = pool.map(_decode_task, jobs, chunksize=1)
    return results if isinstance(options, list) else [r[0] for r in results]
