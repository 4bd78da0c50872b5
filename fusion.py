"""Word LM fusion for the prefix beam search (decode.py): the character trie of the LM's words, its
per-state look-ahead tables, hotword bonuses, and the scorer the search asks as words grow and end.

A word state is a trie state (WordTrie); a beam's LM state is the history before its partial word,
a row of word ids (NGramLM.log_probs). All scores are natural-log.
"""

from functools import lru_cache

import numpy as np

from arpa import BOS, EOS, UNK
from lexicon import PHONEME_CHARS, Lexicon
from lm import NGramLM, hash_rows
from tokenizer import begins_word

NEG_INF = float("-inf")


def word_starts(vocab: list[str]) -> np.ndarray:
    """(V,) True for the tokens that begin a word (tokenizer.begins_word)."""
    return np.array([begins_word(token) for token in vocab])


class WordTrie:
    """Character trie of an LM's words, for scoring partial words while decoding.

    A word state is a trie state s >= 0 (0: the empty word), or -1 - s for a partial word that left
    the trie after state s: it starts no vocabulary word, and walks no further. walk() follows
    tokens (one or more characters each); a token's leading " " (a word piece that begins a word)
    is not read: the decoder starts that word from state 0. word_id[s] is the LM id of the word
    that ends at s (-1: none). Words spelled alike (homophones, when the spellings are
    pronunciations) end at one state: word_ids[s, k] is the k-th of them in the order given, -1
    past the last and for a placeholder (id -1) that keeps a word's place without being one;
    is_word[s] says that some word ends at s. best[s] is the highest unigram log-prob of a word that
    the partial word can still become: an optimistic estimate of its LM score before it ends (LM
    look-ahead), so that prefixes with and without an unfinished word compare fairly.
    """

    def __init__(self, spellings: list[str], word_ids: list[int], unigram_logp, alphabet: list[str]):
        """spellings[i] (in the alphabet's characters) spells the LM's word word_ids[i], whose
        unigram log-prob is unigram_logp[i]; a spelling with a character outside the alphabet is
        left out."""
        chars = sorted({ch for token in alphabet for ch in token if ch != " "})
        self.n_chars = len(chars)
        self.char_id = char_id = {ch: i for i, ch in enumerate(chars)}
        width = max([len(token) for token in alphabet] + [1])
        # (V, L) char ids, padded with n_chars: "no character", whose edge leads back to the state
        self.token_chars = np.full((len(alphabet), width), self.n_chars, np.int64)
        for t, token in enumerate(alphabet):
            spelled = token.removeprefix(" ")
            if " " not in spelled:
                self.token_chars[t, : len(spelled)] = [char_id[ch] for ch in spelled]
        self.token_length = (self.token_chars < self.n_chars).sum(axis=1)  # (V,) characters read
        children: dict[int, int] = {}  # state * (n_chars + 1) + char -> state
        parents, best, ends = [-1], [-np.inf], {}  # ends: state -> the ids of the words ending there
        for spelling, w, logp in zip(spellings, word_ids, np.asarray(unigram_logp, np.float64).tolist()):
            if any(ch not in char_id for ch in spelling):
                continue
            state = 0
            for ch in spelling:
                key = state * (self.n_chars + 1) + char_id[ch]
                nxt = children.get(key)
                if nxt is None:
                    nxt = children[key] = len(parents)
                    parents.append(state)
                    best.append(-np.inf)
                state = nxt
            ends.setdefault(state, []).append(w)
            if w >= 0:
                best[state] = max(best[state], logp)
        homophones = max(map(len, ends.values()), default=1)
        self.word_ids = np.full((len(parents), homophones), -1)  # (S, K)
        for state, ids in ends.items():
            self.word_ids[state, : len(ids)] = ids
        self.word_id = self.word_ids[:, 0]  # (S,) the LM's id of the (first) word ending at each state
        self.is_word = (self.word_ids >= 0).any(axis=1)  # (S,)
        best = np.array(best)
        depth = np.zeros(len(parents), np.int64)
        for state in range(1, len(parents)):  # children come after their parents
            depth[state] = depth[parents[state]] + 1
        for state in range(len(parents) - 1, 0, -1):
            best[parents[state]] = max(best[parents[state]], best[state])
        self.best = best  # (S,)
        self.depth = self.by_word_state(depth)  # (2S,) characters in each word state's prefix
        # the edges as one flat table, child[state * (n_chars + 1) + char]: the next state, -1 - state
        # where the word leaves the trie, and the state itself for "no character"
        S, stride = len(parents), self.n_chars + 1
        child = np.repeat(-1 - np.arange(S, dtype=np.int32)[:, None], stride, axis=1)  # (S, n_chars + 1)
        child[:, self.n_chars] = np.arange(S)
        self.child = child.ravel()
        self.child[np.fromiter(children.keys(), np.int64, len(children))] = list(children.values())

    def states_of(self, spelling: str) -> list[int]:
        """The trie states a spelling walks through, its end last ([] when it leaves the trie)."""
        states, state, stride = [], 0, self.n_chars + 1
        for ch in spelling:
            state = int(self.child[state * stride + self.char_id[ch]]) if ch in self.char_id else -1
            if state < 0:
                return []
            states.append(state)
        return states

    @staticmethod
    def by_word_state(per_state: np.ndarray) -> np.ndarray:
        """(S,) values per trie state -> (2S,) indexed by word state: s >= 0 reads per_state[s], and
        for a word that left the trie (s = -1 - its last trie state) numpy's negative index reads the
        reversed copy at [-1 - s], the value of the state where the word left."""
        return np.concatenate([per_state, per_state[::-1]])

    def walk(self, states: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Word states and tokens (broadcastable shapes) -> (next word states; the number of
        characters read outside the trie). A token of several characters can leave the trie part
        way, and only the rest is unknown."""
        start = states = np.asarray(states, np.int64)
        token_chars = self.token_chars[tokens]  # (..., L)
        for i in range(token_chars.shape[-1]):  # one character position at a time
            inside = states >= 0
            edge = np.where(inside, states * (self.n_chars + 1) + token_chars[..., i], 0)
            states = np.where(inside, self.child[edge], states)
        return states, self.token_length[tokens] - (self.depth[states] - self.depth[start])

    def step(self, states: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Trie states followed by tokens (broadcastable shapes) -> next states, -1 outside the trie."""
        states = self.walk(states, tokens)[0]
        return np.where(states >= 0, states, -1)


def spelling_trie(lm: NGramLM, alphabet: tuple[str, ...], extra: tuple[str, ...] = ()) -> WordTrie:
    """The LM vocabulary's character trie for decoding with this token alphabet, with the extra words
    outside the vocabulary (hotwords) as <unk>: in the trie, so that their characters pay no
    unk_score, and scored by the LM as <unk> (a placeholder, no word, when the LM has no <unk>)."""
    return _spelling_trie(lm, tuple(alphabet), tuple(extra))


@lru_cache(maxsize=2)
def _spelling_trie(lm: NGramLM, alphabet: tuple[str, ...], extra: tuple[str, ...]) -> WordTrie:
    unigram = np.nan_to_num(lm.unigram_logp, nan=lm.unk_logp)
    unk = lm.word_id(UNK)
    ids = [i for i, w in enumerate(lm.words) if w not in (BOS, EOS, UNK)]
    extra = [w for w in extra if w not in lm.vocab]
    unk_logp = unigram[unk] if unk >= 0 else lm.unk_logp
    return WordTrie(
        [lm.words[i] for i in ids] + extra,
        ids + [unk] * len(extra),
        np.concatenate([unigram[ids], np.full(len(extra), unk_logp)]),
        list(alphabet),
    )


def pronunciation_trie(
    lexicon: Lexicon, lm: NGramLM, vocab: list[str], extra: tuple[str, ...] = ()
) -> WordTrie:
    """The trie of a lexicon's pronunciations for decoding phoneme tokens (vocab, " " the boundary)
    into the LM's words. A pronunciation's words are its homophones in the lexicon's order; one the
    LM lacks keeps its place, so that the k-th word of a trie state is always the lexicon's
    word(pron, k), but is no word (the LM cannot score it), unless it is one of the extra words
    (hotwords), which the LM scores as <unk>. Cached on the lexicon, per LM, vocab and extra."""
    key = (id(lm), tuple(vocab), tuple(extra))
    if key not in lexicon.cache or lexicon.cache[key][0] is not lm:
        unigram = np.nan_to_num(lm.unigram_logp, nan=lm.unk_logp)
        unk, extra_words = lm.word_id(UNK), set(extra)
        spellings, ids = [], []
        for pron, words in lexicon.homophones.items():
            known = [lm.vocab.get(w, unk if w in extra_words else -1) for w in words]
            if max(known) >= 0:  # else no word of the LM is pronounced so
                spellings += ["".join(PHONEME_CHARS[p] for p in pron)] * len(known)
                ids += known
        logp = np.where(np.array(ids) >= 0, unigram[ids], -np.inf)
        alphabet = [PHONEME_CHARS.get(token, token) for token in vocab]
        lexicon.cache[key] = lm, WordTrie(spellings, ids, logp, alphabet)
    return lexicon.cache[key][1]


def frequency_lm(lexicon: Lexicon) -> NGramLM:
    """A unigram LM of the lexicon's words, the more frequent the likelier: the LM of a search that
    has none, whose words it keeps to the lexicon's (its scores weigh nothing there). Cached on the
    lexicon."""
    if "frequency_lm" not in lexicon.cache:
        logp = -np.log(np.arange(2, len(lexicon) + 2, dtype=np.float64))
        ids = np.arange(len(lexicon))[:, None]
        lexicon.cache["frequency_lm"] = NGramLM(list(lexicon.entries), [(ids, logp, np.zeros(len(lexicon)))])
    return lexicon.cache["frequency_lm"]


# ---------------------------------------------------------------------------------------------------
# Download and the command line


@lru_cache(maxsize=1)
def silent_lm() -> NGramLM:
    """An LM that scores nothing, for hotwords without an LM (alpha = beta = 0, unk_score = 0)."""
    return NGramLM.from_ngrams([{(BOS,): (0.0, 0.0), (EOS,): (0.0, 0.0), (UNK,): (0.0, 0.0)}])


@lru_cache(maxsize=8)
def _word_state_tables(trie: WordTrie, alpha: float, unk: int) -> tuple[np.ndarray, ...]:
    """Per word state (see WordTrie): its look-ahead, which a word that left the trie keeps from
    where it left (2S,); whether it ends a vocabulary word, never once it left (2S,); and for each
    of the K words that may end there (homophones), whether it does and its LM id, unk when none
    (2S, K) each. Computed once per LM and alpha."""
    look = alpha * trie.best  # the look-ahead; none before a word starts
    look[0] = 0.0
    outside = len(look)  # the word states of words that left the trie
    ends = trie.word_ids >= 0  # (S, K)
    tables = (
        trie.by_word_state(look),
        np.concatenate([trie.is_word, np.zeros(outside, bool)]),
        np.concatenate([ends, np.zeros_like(ends)]),
        np.concatenate([np.where(ends, trie.word_ids, unk), np.full_like(trie.word_ids, unk)]),
    )
    for table in tables:
        table.flags.writeable = False  # shared by every utterance decoded with this LM and alpha
    return tables


@lru_cache(maxsize=8)
def _hotword_tables(
    trie: WordTrie, hotwords: tuple[tuple[str, int], ...], boost: float
) -> tuple[np.ndarray, ...]:
    """Hotwords as (spelling in the trie's alphabet, LM word id) -> per word state: the bonus a
    partial word holds, boost per character of the hotword prefix it is (kept by a word that left the
    trie from there, refunded when its word ends), (2S,); and the bonus a word keeps when it ends as
    a hotword, (2S, K): only for the homophone that is the hotword. A bonus per character, not per
    word, so that a hotword is favoured as it is spelled and survives the pruning until it ends."""
    S = len(trie.best)
    along, ends = np.zeros(S), np.zeros(trie.word_ids.shape)
    for spelling, word in hotwords:
        states = trie.states_of(spelling)
        along[states] = np.maximum(along[states], boost * np.arange(1, len(states) + 1))
        if states:
            ends[states[-1], trie.word_ids[states[-1]] == word] = boost * len(states)
    tables = trie.by_word_state(along), np.concatenate([ends, np.zeros_like(ends)])
    for table in tables:
        table.flags.writeable = False
    return tables


class LMScorer:
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

    Where a trie state ends K > 1 words (homophones, in a trie of pronunciations), the vocab's k-th
    " " token ends the partial word as the k-th of them: each is its own hypothesis.

    Hotwords, (word, its spelling in the trie's alphabet) pairs, join the trie (as <unk> when the LM
    lacks them, so their characters pay no unk_score) and earn hotword_boost per character while
    spelled, which they keep when they end as the hotword (not as a homophone of it).
    """

    def __init__(
        self,
        lm: NGramLM,
        vocab: list[str],
        alpha: float,
        beta: float,
        unk_score: float,
        trie: WordTrie | None = None,
        hotwords: tuple[tuple[str, str], ...] = (),
        hotword_boost: float = 0.0,
    ):
        self.lm, self.alpha, self.beta = lm, alpha, beta
        self.is_space = np.array([token == " " for token in vocab])  # (V,)
        self.variant = np.zeros(len(vocab), np.int64)  # (V,) which homophone a token ends a word as
        self.variant[self.is_space] = np.arange(self.is_space.sum())
        self.unk_score = unk_score
        self.n_history = lm.order - 1
        self.eos = lm.word_id(EOS)
        # an LM history (the words before a partial word, as word ids: an unknown word is <unk>, all
        # the LM can tell of it) is a row of n_history ids, oldest first, padded on the left with -1
        # (LM.log_probs); the first word's is <s>. Node whose token begins a word -> its history:
        self.context = np.zeros((1024, self.n_history), np.int32)  # word ids (int32: half the memory)
        self.context[1, -1:] = lm.word_id(BOS)  # the root
        self.context[1, :-1] = -1
        self.trie = trie if trie is not None else spelling_trie(lm, vocab, tuple(w for w, _ in hotwords))
        self.look, self.is_word, ends, word_of = _word_state_tables(self.trie, alpha, lm.word_id(UNK))
        hot_end = None  # (2S, K) the bonus of ending as a hotword, with hotwords
        if hotwords:
            spelled = tuple((spelling, lm.word_id(w)) for w, spelling in hotwords)
            along, hot_end = _hotword_tables(self.trie, spelled, hotword_boost)
            self.look = self.look + along
        homophones = max(int(self.is_space.sum()), 1)  # the homophones that a space (copy) ends a word as
        if ends.shape[1] < homophones:  # the LM lacks every word of the largest sets: those copies end none
            pad = ((0, 0), (0, homophones - ends.shape[1]))
            ends, word_of = np.pad(ends, pad), np.pad(word_of, pad, constant_values=lm.word_id(UNK))
            hot_end = np.pad(hot_end, pad) if hot_end is not None else None
        self.ends, self.word_of = ends[:, :homophones], word_of[:, :homophones]  # (2S, K)
        self.hot_end = hot_end[:, :homophones] if hot_end is not None else None
        self.word_start = np.ones(1024, np.int64)  # node -> the node whose token began its word
        # node -> score change of ending its word now as each homophone (nan: not asked)
        self.ended = np.full((1024, self.ends.shape[1]), np.nan)
        # node -> the history after its word once it ended as each homophone (asked by complete())
        self.context_after = np.zeros((1024, self.ends.shape[1], self.n_history), np.int32)
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
        """(N, K) score changes when the nodes' partial words (in word states `states`) end here,
        as each homophone: alpha * log P(word | history) + beta replaces the look-ahead; a state
        that ends no word ends an unknown word as homophone 0, which keeps the unk_score it paid
        and pays one more; the other homophones that do not exist are -inf. The word state names
        the word: no need to spell it."""
        ends = self.ends[states]  # (N, K)
        extra = np.where(ends, 0.0, NEG_INF)
        extra[:, 0] = np.where(ends[:, 0], 0.0, self.unk_score)
        scores = (self.beta - self.look[states])[:, None] + extra
        if self.hot_end is not None:
            scores += self.hot_end[states]
        j, k = np.nonzero(scores > NEG_INF)  # (M,) each: a beam, a homophone it may end as
        words = self.word_of[states[j], k]  # (M,)
        before = self.context[self.word_start[nodes[j]]]  # (M, n_history) the history before the word
        scores[j, k] += self.alpha * self.lm.log_probs(words, before)
        self.context_after[nodes[j], k] = np.concatenate([before, words[:, None]], axis=1)[:, 1:]
        self.ended[nodes] = scores
        return scores

    def completion_bound(self, states: np.ndarray) -> np.ndarray:
        """(B,) upper bound of completions(): log P(word | history) <= 0, unk_score <= 0; -inf for a
        word outside the vocabulary when unk_score is -inf (no LM query needed to know)."""
        bound = self.beta - self.look[states]
        if self.hot_end is not None:
            bound = bound + self.hot_end[states].max(axis=1)
        return bound if self.unk_score > NEG_INF else np.where(self.is_word[states], bound, NEG_INF)

    def completions(self, ids: np.ndarray, last: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B, K) score change of ending each beam's word now as each homophone (see complete());
        0 for beams with no partial word."""
        scores = np.where(self.is_space[last][:, None], 0.0, self.ended[ids])
        new = np.flatnonzero(np.isnan(scores[:, 0]))
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
            self.context = np.concatenate([self.context, np.zeros((grow, self.n_history), np.int32)])
            self.ended = np.concatenate([self.ended, np.full((grow, self.ended.shape[1]), np.nan)])
            self.context_after = np.concatenate(
                [self.context_after, np.zeros((grow, *self.context_after.shape[1:]), np.int32)]
            )
        begins = self.begins_word[toks]
        self.word_start[new_ids] = np.where(begins, new_ids, self.word_start[parents])
        n, p = new_ids[begins], parents[begins]  # (M,) each
        after = self.context_after[p, self.variant[toks[begins]]]  # the parent's word, ended by the token
        self.context[n] = np.where(self.is_space[parent_last[begins]][:, None], self.context[p], after)

    def future_keys(self, ids: np.ndarray, last: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B,) beams -> (B,) keys, equal for beams that every continuation scores alike: the same
        LM history before the partial word, the same word state and the same last token (which
        CTC's repeat rule reads)."""
        return self._key(hash_rows(self.context[self.word_start[ids]]), states, last)

    def extension_keys(
        self, ids: np.ndarray, last: np.ndarray, child: np.ndarray, toks: np.ndarray
    ) -> np.ndarray:
        """future_keys of the (B, C) extensions of beams (B,) by tokens (C,), in word states child
        (extend()); a token that begins a word follows the history after the word it ends
        (completions() must have been asked for the beams where that extension counts)."""
        history = hash_rows(self.context[self.word_start[ids]])[:, None]  # (B, 1)
        begins = self.begins_word[toks]  # (C,)
        if begins.any():
            after = self.context_after[ids[:, None], self.variant[toks[begins]]]  # (B, C', n_history)
            beams, columns, width = after.shape
            after = hash_rows(after.reshape(beams * columns, width)).reshape(beams, columns)
            history = np.repeat(history, len(toks), axis=1)  # (B, C)
            history[:, begins] = np.where(self.is_space[last][:, None], history[:, begins], after)
        return self._key(history, child, toks[None, :])

    @staticmethod
    def _key(history: np.ndarray, states: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Hashes of histories, word states and last tokens (broadcastable shapes) -> 63-bit hashes of
        the three: equal keys are equal futures, but for a chance of the order of 1e-11 a frame at
        beam 1000 (the LM's own lookups take the same chance)."""
        history, states, last = np.broadcast_arrays(history, states, last)
        return hash_rows(np.stack([history, states, last], axis=-1).reshape(-1, 3)).reshape(states.shape)

    def final(self, ids: np.ndarray, last: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B, K) score changes at the end of the utterance: the beams' last partial words as each
        homophone (see completions()), then </s>; -inf where a beam may not end so. A beam with no
        partial word ends only as homophone 0."""
        ended = self.completions(ids, last, states)  # (B, K)
        no_word = self.is_space[last] | (ids == 1)  # (B,) the root, or a space last
        ended[no_word, 1:] = NEG_INF
        context = np.where(no_word[:, None, None], self.context[ids][:, None], self.context_after[ids])
        eos = self.lm.log_probs(np.full(ended.size, self.eos), context.reshape(ended.size, self.n_history))
        return np.where(ended > NEG_INF, ended + self.alpha * eos.reshape(ended.shape), NEG_INF)
