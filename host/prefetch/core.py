"""Pure-integer reference of every prefetch predictor: the specification that the firmware
(``firmware/predict.c``) reproduces bit for bit.

One predictor instance serves the up to ``MAX_STREAMS`` (layer, KV head) streams of one
request. Each decode step calls ``step(s, layer, n_pages, acc, k)`` once per stream, streams
in order; ``acc`` is every full page the stream read at this step (ascending, each
``< n_pages``) and the result is up to ``k`` pages the stream will read at its next step,
best first. Pages ``>= n_pages - l1`` are the host's L1 window (never fetched; ``l1`` is a
predictor parameter, the system's ``SpecConfig.l1_pages``, default ``L1_PAGES``); no
predictor returns them.

Everything here is integer arithmetic on Python ints (numpy int64 for the LSTM's
matrix-vector products, which is exact at these sizes), so Python and C agree exactly.
"""
from __future__ import annotations

import numpy as np

MAX_STREAMS = 96        # (layer, KV head) streams of one request: s = layer * 3 + head
MAX_PAGES = 4096        # full pages per stream (vpn_page_bits = 12)
L1_PAGES = 4            # default L1 window: the host keeps the last 4 full pages (64 tokens)
TRACK = 32              # pages tracked per stream (the tracker table)
MAX_K = TRACK           # a prediction never has more than TRACK pages

KINDS = ("none", "last", "stride", "markov", "layer_ahead", "lstm")
KIND_CODE = {k: i for i, k in enumerate(KINDS)}  # = enum pred_kind in firmware/predict.h


# --------------------------------------------------------------------------------------------
# Tracker: per stream, up to TRACK recently read pages with an 8-step read history byte.
# --------------------------------------------------------------------------------------------
class Tracker:
    """Per-stream table of (page, hist) entries in table order. ``hist`` bit i = the page was
    read i steps ago (bit 0: this step). Update rule (``observe``):

    1. every hist shifts left by one (8 bits); entries whose hist becomes 0 (not read in the
       last 8 steps) or whose page is now an L1 page are removed, the others keep their order;
    2. each page of ``acc`` below ``lim = n_pages - l1``, in ascending order: if tracked,
       set bit 0; else append ``(p, 1)`` if the table has room; else replace, in place, the
       entry not read this step with the smallest hist (first in table order on ties); if
       every entry was read this step, the page is not tracked.
    """

    __slots__ = ("pages", "hist", "n_read", "n_new", "n_drop")

    def __init__(self):
        self.pages: list[int] = []
        self.hist: list[int] = []
        self.n_read = self.n_new = self.n_drop = 0

    def observe(self, acc, n_pages: int, l1: int = L1_PAGES) -> None:
        lim = n_pages - l1
        pages, hist = [], []
        for p, h in zip(self.pages, self.hist):
            h = (h << 1) & 0xFF
            if h and p < lim:
                pages.append(p)
                hist.append(h)
        n_read = n_new = 0
        for p in acc:
            p = int(p)
            if p >= lim:
                break  # acc is ascending
            n_read += 1
            try:
                i = pages.index(p)
            except ValueError:
                i = -1
            if i >= 0:
                hist[i] |= 1
                continue
            n_new += 1
            if len(pages) < TRACK:
                pages.append(p)
                hist.append(1)
                continue
            v, best = -1, 256
            for j, h in enumerate(hist):
                if not h & 1 and h < best:
                    v, best = j, h
            if v >= 0:
                pages[v] = p
                hist[v] = 1
        self.pages, self.hist = pages, hist
        self.n_read, self.n_new = n_read, n_new
        self.n_drop = sum(1 for h in hist if (h & 3) == 2)


def popcount8(h: int) -> int:
    return bin(h & 0xFF).count("1")


def bucket(v: int, edges) -> int:
    """Index of the first edge that v is below, len(edges) if none: edges ascending."""
    for i, e in enumerate(edges):
        if v < e:
            return i
    return len(edges)


# --------------------------------------------------------------------------------------------
# LSTM features (documented in host/prefetch/README.md).
# --------------------------------------------------------------------------------------------
N_LAYERS, N_HEADS = 30, 3
COUNT_EDGES = (1, 2, 4, 8, 16)          # 0, 1, 2-3, 4-7, 8-15, 16+       (6 buckets)
LEN_EDGES = (8, 16, 32, 64, 128)        # n_pages 0-7, ..., 128+           (6 buckets)
DIST_EDGES = (1, 2, 4, 8, 16, 32)       # lim-1-p: 0, 1, 2-3, ..., 32+     (7 buckets)
X_LAYER, X_HEAD = 0, N_LAYERS
X_READ = X_HEAD + N_HEADS
X_NEW = X_READ + 6
X_DROP = X_NEW + 6
X_LEN = X_DROP + 6
N_X = X_LEN + 6                          # 57 step inputs, exactly 6 active
F_PAT, F_POP, F_SINK, F_DIST = 0, 16, 24, 25
N_F = F_DIST + 7                         # 32 page features, 3 or 4 active


def step_inputs(s: int, layer: int, n_pages: int, tr: Tracker) -> list[int]:
    """The active indices of the multi-hot step input x_t (ascending)."""
    lay = min(max(layer, 0), N_LAYERS - 1)
    head = min(max(s - 3 * layer, 0), N_HEADS - 1)
    return [X_LAYER + lay, X_HEAD + head, X_READ + bucket(tr.n_read, COUNT_EDGES),
            X_NEW + bucket(tr.n_new, COUNT_EDGES), X_DROP + bucket(tr.n_drop, COUNT_EDGES),
            X_LEN + bucket(n_pages, LEN_EDGES)]


def page_features(p: int, h: int, lim: int) -> list[int]:
    """Active page-feature indices of a tracked page with history byte h (ascending)."""
    f = [F_PAT + (h & 15), F_POP + popcount8(h) - 1]
    if p == 0:
        f.append(F_SINK)
    f.append(F_DIST + bucket(lim - 1 - p, DIST_EDGES))
    return f


def top_k(scored, k: int) -> list[int]:
    """Pages of (score, page) pairs, highest score first, lower page first on ties."""
    return [p for _, p in sorted(scored, key=lambda t: (-t[0], t[1]))[:k]]


# --------------------------------------------------------------------------------------------
# Predictors
# --------------------------------------------------------------------------------------------
class Predictor:
    """``l1``: the host's L1 window in pages (0..255): pages >= n_pages - l1 are never
    tracked or predicted."""
    kind = "?"

    def __init__(self, l1: int = L1_PAGES):
        if not 0 <= l1 <= 255:
            raise ValueError(f"L1 window of {l1} pages: must be 0..255")
        self.l1 = l1
        self.reset()

    def reset(self) -> None:
        self.tr = [Tracker() for _ in range(MAX_STREAMS)]

    def _check(self, s, n_pages, acc, k):
        if not 0 <= s < MAX_STREAMS:
            raise ValueError(f"stream {s} outside 0..{MAX_STREAMS - 1}")
        if not 0 <= n_pages <= MAX_PAGES:
            raise ValueError(f"n_pages {n_pages} outside 0..{MAX_PAGES}")
        return max(0, min(int(k), MAX_K))

    def step(self, s: int, layer: int, n_pages: int, acc, k: int) -> list[int]:
        k = self._check(s, n_pages, acc, k)
        acc = [int(p) for p in acc]
        tr = self.tr[s]
        tr.observe(acc, n_pages, self.l1)
        out = self._predict(s, layer, n_pages, acc, k, tr)
        assert len(out) <= k
        return out

    def _predict(self, s, layer, n_pages, acc, k, tr):  # pragma: no cover - abstract
        raise NotImplementedError


class NonePredictor(Predictor):
    """No prefetch: every non-L1 page of the next step is a demand read."""
    kind = "none"

    def _predict(self, s, layer, n_pages, acc, k, tr):
        return []


class LastPredictor(Predictor):
    """Repeat the last step's pages: this step's non-L1 pages in read (ascending) order."""
    kind = "last"

    def _predict(self, s, layer, n_pages, acc, k, tr):
        lim = n_pages - self.l1
        return [p for p in acc if p < lim][:k]


class StridePredictor(Predictor):
    """Stride prefetcher on each stream's highest non-L1 page: when two successive steps
    moved it by the same nonzero delta d (a confirmed stride), predict p + d for this step's
    pages, highest first; otherwise d = +1 (sequential next-page prefetch)."""
    kind = "stride"

    def reset(self):
        super().reset()
        self.prev_hi = [-1] * MAX_STREAMS
        self.prev_d = [0] * MAX_STREAMS

    def _predict(self, s, layer, n_pages, acc, k, tr):
        lim = n_pages - self.l1
        cur = [p for p in acc if p < lim]
        d = 1
        if cur:
            hi = cur[-1]
            nd = hi - self.prev_hi[s] if self.prev_hi[s] >= 0 else 0
            if nd != 0 and nd == self.prev_d[s]:
                d = nd
            if nd != 0:
                self.prev_d[s] = nd
            self.prev_hi[s] = hi
        out = []
        for p in reversed(cur):
            if len(out) >= k:
                break
            q = p + d
            if 0 <= q < lim and q not in out:
                out.append(q)
        return out


MARKOV_ENTRIES = 512     # x 16 B = 8 KiB: the LSTM's budget (README: memory budget)
MARKOV_SUCC = 4


def markov_slot(s: int, p: int) -> tuple[int, int]:
    key = s * MAX_PAGES + p + 1           # 0 = empty
    return ((key * 2654435761) & 0xFFFFFFFF) >> 23, key   # 9 bits: 512 entries


class MarkovPredictor(Predictor):
    """First-order Markov table of page transitions between successive steps of a stream,
    direct mapped on (stream, page), ``MARKOV_ENTRIES`` entries of ``MARKOV_SUCC``
    (successor page, 8-bit count) pairs. Update: for every tracked page a read at the
    previous step and b read at this step (table order), count a -> b (saturating at 255;
    a new successor replaces the lowest count, first slot on ties; a tag mismatch resets the
    entry). Predict: sum the counts of the successors of this step's tracked pages, best
    first, lower page on ties."""
    kind = "markov"

    def reset(self):
        super().reset()
        self.key = [0] * MARKOV_ENTRIES
        self.succ = [[0] * MARKOV_SUCC for _ in range(MARKOV_ENTRIES)]
        self.cnt = [[0] * MARKOV_SUCC for _ in range(MARKOV_ENTRIES)]

    def _predict(self, s, layer, n_pages, acc, k, tr):
        lim = n_pages - self.l1
        prev = [p for p, h in zip(tr.pages, tr.hist) if h & 2]
        cur = [p for p, h in zip(tr.pages, tr.hist) if h & 1]
        for a in prev:
            i, key = markov_slot(s, a)
            if self.key[i] != key:
                self.key[i] = key
                self.succ[i] = [0] * MARKOV_SUCC
                self.cnt[i] = [0] * MARKOV_SUCC
            su, cn = self.succ[i], self.cnt[i]
            for b in cur:
                j = -1
                for t in range(MARKOV_SUCC):
                    if cn[t] and su[t] == b:
                        j = t
                        break
                if j >= 0:
                    if cn[j] < 255:
                        cn[j] += 1
                    continue
                j, best = 0, 256
                for t in range(MARKOV_SUCC):
                    if cn[t] < best:
                        j, best = t, cn[t]
                su[j], cn[j] = b, 1
        score: dict[int, int] = {}
        for a in cur:
            i, key = markov_slot(s, a)
            if self.key[i] != key:
                continue
            for b, c in zip(self.succ[i], self.cnt[i]):
                if c and b < lim:
                    score[b] = score.get(b, 0) + c
        return top_k([(v, p) for p, v in score.items()], k)


class LayerAheadPredictor(Predictor):
    """The dense-mode schedule (paper 3.4.4): a dense step reads every page, so the next
    step's pages are known; predict them in the order the attention kernel reads them
    (page 0 up), skipping the L1 window. No history."""
    kind = "layer_ahead"

    def _predict(self, s, layer, n_pages, acc, k, tr):
        return list(range(min(k, max(0, n_pages - self.l1))))


# LSTM integer arithmetic ---------------------------------------------------------------------
Q = 12                       # fixed point of pre-activations, gates, c and w: value * 4096
LUT_N, LUT_SHIFT = 512, 7    # activation tables: z (Q12) >> 7 = steps of 1/32, range [-8, 8)
C_MAX = 32767                # c saturates at +-8 (Q12 in int16)


def rshift_round(v: int, n: int) -> int:
    """Round-half-up arithmetic right shift (n >= 1); left shift for n <= 0."""
    if n <= 0:
        return v << -n
    return (v + (1 << (n - 1))) >> n


def act_tables():
    """sigmoid and tanh at the centre of each 1/32 bin of [-8, 8), Q12 (int16)."""
    import math
    x = [(i - LUT_N // 2 + 0.5) / (1 << (Q - LUT_SHIFT)) for i in range(LUT_N)]
    sig = [int(math.floor(4096.0 / (1.0 + math.exp(-v)) + 0.5)) for v in x]
    tnh = [int(math.floor(4096.0 * math.tanh(v) + 0.5)) if v >= 0
           else -int(math.floor(4096.0 * math.tanh(-v) + 0.5)) for v in x]
    return sig, tnh


SIG_LUT, TANH_LUT = act_tables()


def lut_index(z: int) -> int:
    return min(max((z >> LUT_SHIFT) + LUT_N // 2, 0), LUT_N - 1)


class QuantLSTMWeights:
    """INT8 weights with power-of-two scales (w ~ w_q / 2^e) and int32 Q12 biases."""

    def __init__(self, wx, ex, wh, eh, b, wo, eo, bo):
        self.wx = np.asarray(wx, dtype=np.int64)   # [4H, N_X]
        self.wh = np.asarray(wh, dtype=np.int64)   # [4H, H]
        self.wo = np.asarray(wo, dtype=np.int64)   # [N_F, H]
        self.b = np.asarray(b, dtype=np.int64)     # [4H]
        self.bo = np.asarray(bo, dtype=np.int64)   # [N_F]
        self.ex, self.eh, self.eo = int(ex), int(eh), int(eo)
        self.hidden = self.wh.shape[1]
        assert self.wx.shape == (4 * self.hidden, N_X) and self.wo.shape == (N_F, self.hidden)

    @classmethod
    def load(cls, path):
        z = np.load(path)
        return cls(z["q_wx"], z["q_ex"], z["q_wh"], z["q_eh"], z["q_b"], z["q_wo"], z["q_eo"],
                   z["q_bo"])


def lstm_cell_int(w: QuantLSTMWeights, xin, h, c):
    """One integer LSTM step. xin: active input indices; h: int8 Q7 [H]; c: int Q12 [H].
    Returns (h', c') as lists of Python ints. Gate order i, f, g, o (torch)."""
    H = w.hidden
    hx = np.asarray(h, dtype=np.int64)
    ax = w.wx[:, xin].sum(axis=1)                       # column sums: adds only
    ah = w.wh @ hx                                      # int8 x int8 MACs
    z = [rshift_round(int(ax[j]), w.ex - Q) + rshift_round(int(ah[j]), w.eh + 7 - Q) + int(w.b[j])
         for j in range(4 * H)]
    hn, cn = [], []
    for j in range(H):
        ig = SIG_LUT[lut_index(z[j])]
        fg = SIG_LUT[lut_index(z[H + j])]
        gg = TANH_LUT[lut_index(z[2 * H + j])]
        og = SIG_LUT[lut_index(z[3 * H + j])]
        cj = rshift_round(fg * c[j], Q) + rshift_round(ig * gg, Q)
        cj = min(max(cj, -C_MAX), C_MAX)
        hj = rshift_round(og * TANH_LUT[lut_index(cj)], Q + Q - 7)
        hn.append(min(max(hj, -127), 127))
        cn.append(cj)
    return hn, cn


def lstm_out_int(w: QuantLSTMWeights, h):
    """Page-feature weights w_t = W_o h + b_o in Q12 (list of N_F ints)."""
    a = w.wo @ np.asarray(h, dtype=np.int64)
    return [rshift_round(int(a[j]), w.eo + 7 - Q) + int(w.bo[j]) for j in range(N_F)]


class LSTMPredictor(Predictor):
    """The learned prefetcher (integer reference). Per stream an LSTM reads the step's
    summary x_t and its hidden state sets the weights w_t of a linear page score; each
    tracked page is scored by the sum of w_t over its active page features, and the k best
    are predicted (lower page first on ties)."""
    kind = "lstm"

    def __init__(self, weights: QuantLSTMWeights, l1: int = L1_PAGES):
        self.w = weights
        super().__init__(l1)

    def reset(self):
        super().reset()
        H = self.w.hidden
        self.h = [[0] * H for _ in range(MAX_STREAMS)]
        self.c = [[0] * H for _ in range(MAX_STREAMS)]

    def _predict(self, s, layer, n_pages, acc, k, tr):
        xin = step_inputs(s, layer, n_pages, tr)
        self.h[s], self.c[s] = lstm_cell_int(self.w, xin, self.h[s], self.c[s])
        wv = lstm_out_int(self.w, self.h[s])
        lim = n_pages - self.l1
        scored = [(sum(wv[f] for f in page_features(p, h, lim)), p)
                  for p, h in zip(tr.pages, tr.hist)]
        return top_k(scored, k)
