"""Reference model of the firmware's speculation engine (``firmware/speculate.c``): what the
device does with each decode step's hint. It is the specification the firmware follows
integer for integer, and the `model` replay backend runs it in place of the SoC.

Per step, after the hint's last chunk (``host/driver/hints.py``):

1. **Feedback.** ``l2_hits`` = accessed pages outside L1 found in the L2 directory;
   ``used_prev`` = those among the pages issued at the previous step.
2. **UCB** (flag bit 0), with one step of delay so that predictions can run as chunks
   arrive: at a step's first chunk the arm (k) is the first never chosen, else
   ``argmax mean_i + SPEC_C_Q8 * isqrt((log2q8(n) << 24) // n_i) >> 8`` over the arms with a
   reward (first on ties; ``mean_i = sum_i // n_i``, ``n`` = rewards so far, ``log2q8`` the
   integer log2 in Q8). At the step's last chunk the arm that made this step's prefetches
   (the previous step's) gets ``r = max(0, 65536 * used_prev - SPEC_LAMBDA_Q16 * (issued_prev -
   used_prev)) // max(1, needed)`` (Q16; ``needed`` = accessed pages outside L1). Arms are
   the depths 1, 2, 4, 8, 16 up to the configured k. Without UCB, k is the configured k.
3. **Throttle** (flag bit 1): with ``p = 256 * used_prev // issued_prev`` (when
   ``issued_prev > 0``), the per-step page budget halves when ``p < 64`` (floor
   ``SPEC_BUDGET_MIN``) and grows by ``budget // 4 + 1`` when ``p > 154`` (ceiling: the L2 slots).
   Without throttling the budget is the L2 slot count.
4. **Predict**: one ``pred_step`` per stream, as its chunk arrives, with the step's k
   (predictors see every hint, so their state evolves the same whatever the budget).
5. **Filter and issue**, rank-major (every stream's first prediction, then every second...):
   skip pages in L1 (``p >= n_pages - l1``) or beyond ``n_pages``, pages not in the pool,
   pages already in L2 or already issued this step; stop at the budget. Each issued page
   takes the next L2 slot in FIFO order (evicting its previous page) and is decompressed by
   the DMA into the slot; after all data jobs, each slot's directory line is written.

Directory line (64 B at ``dir_addr(slot)``): words ``TAG_MAGIC``, vpn, step, slot, rest 0.
The parameters (``SPEC_*``), codes and records are the contract in ``soc/mailbox.py``, which
the firmware reads through its generated ``firmware/mailbox.h``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateware.common import LINE_BYTES
from host.driver.hints import HintError, SpecConfig, parse_chunk
from soc.mailbox import (SPEC_BUDGET_MIN, SPEC_C_Q8, SPEC_LAMBDA_Q16, SPEC_P_HIGH, SPEC_P_LOW,
                         SPEC_UCB_ARMS, STEP_RECORD, TAG_MAGIC, VPN_PAGE_BITS)


def log2q8(n):
    """Integer log2 of n >= 1 in Q8: 256 * msb + the next 8 bits below the msb."""
    m = n.bit_length() - 1
    frac = ((n - (1 << m)) << 8) >> m
    return (m << 8) + frac


def isqrt(x):
    """floor(sqrt(x)) for 0 <= x < 2^64, by the same bitwise method as the firmware."""
    r, bit = 0, 1 << 62
    while bit > x:
        bit >>= 2
    while bit:
        if x >= r + bit:
            x -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    return r


def tag_line(vpn, step, slot):
    words = [TAG_MAGIC, vpn, step, slot] + [0] * (LINE_BYTES // 4 - 4)
    return b"".join(w.to_bytes(4, "little") for w in words)


@dataclass
class Issue:
    vpn: int
    slot: int


@dataclass
class StepResult:
    record: dict
    issues: list = field(default_factory=list)  # Issue, in DMA order
    reused: list = field(default_factory=list)  # slots that held a page: their directory
                                                # lines are cleared before the data lands


class SpeculationEngine:
    """Device-side behaviour for one configured request. ``mapped(vpn)`` tells whether a page
    is in the pool (the firmware reads its PTE)."""

    def __init__(self, cfg: SpecConfig, mapped, predictor):
        self.cfg = cfg
        self.mapped = mapped
        self.pred = predictor
        self.pred.reset()
        self.arms = [a for a in SPEC_UCB_ARMS if a <= cfg.k] if cfg.ucb else [cfg.k]
        self.pulls = [0] * len(self.arms)  # times chosen
        self.n = [0] * len(self.arms)      # rewards received
        self.sum = [0] * len(self.arms)    # Q16
        self.plays = 0
        self.arm = self.arm_prev = None
        self.k = cfg.k
        self.budget = cfg.l2_slots
        self.slot_vpn = [None] * cfg.l2_slots
        self.where = {}           # vpn -> slot
        self.prev = set()         # slots issued at the previous step
        self.next_slot = 0
        self.issued_prev = 0
        self.expect_step = 0
        self.expect_stream = 0
        self.preds = []           # (stream, n_pages, predictions) of the step in progress
        self.hits = self.used = self.needed = 0
        self.rejected = 0

    # hints ----------------------------------------------------------------------------------
    def chunk(self, words):
        """One hint chunk (mailbox words 17..). Returns (status, StepResult or None)."""
        try:
            step, first, streams, last = parse_chunk(words, self.cfg, self.expect_stream,
                                                     self.expect_step)
        except HintError as e:
            self.rejected += 1
            return e.code, None
        if first == 0:
            self._begin()
        cfg, l1 = self.cfg, self.cfg.l1_pages
        for s, n_pages, acc in streams:
            for p in acc:
                if p >= n_pages - l1:
                    continue
                self.needed += 1
                slot = self.where.get((s << VPN_PAGE_BITS) | int(p))
                if slot is not None:
                    self.hits += 1
                    self.used += slot in self.prev
            out = self.pred.step(s, s // cfg.heads, n_pages, [int(p) for p in acc], self.k)
            if len(out) > self.k:
                raise AssertionError(f"predictor returned {len(out)} > k = {self.k} pages")
            self.preds.append((s, n_pages, [int(p) for p in out]))
        self.expect_stream, self.expect_step = first + len(streams), step
        if not last:
            return 0, None
        res = self._finish(step)
        self.expect_stream, self.expect_step = 0, step + 1
        return 0, res

    # one decode step --------------------------------------------------------------------------
    def _begin(self):
        """First chunk of a step: choose the arm (k) from the rewards known so far."""
        self.arm = self._choose_arm()
        self.pulls[self.arm] += 1
        self.k = self.arms[self.arm]
        self.hits = self.used = self.needed = 0
        self.preds = []

    def _choose_arm(self):
        if len(self.arms) == 1:
            return 0
        for i, n in enumerate(self.pulls):
            if n == 0:
                return i
        lg = log2q8(self.plays)
        best, best_score = 0, -1
        for i in range(len(self.arms)):
            if self.n[i] == 0:
                continue  # its first reward is still pending
            score = self.sum[i] // self.n[i] + ((SPEC_C_Q8 * isqrt((lg << 24) // self.n[i])) >> 8)
            if score > best_score:
                best, best_score = i, score
        return best

    def _finish(self, step):
        cfg = self.cfg
        used, hits, needed = self.used, self.hits, self.needed
        if self.arm_prev is not None:  # the reward of the arm that made this step's prefetches
            r = max(0, 65536 * used - SPEC_LAMBDA_Q16 * (self.issued_prev - used)) // max(1, needed)
            self.n[self.arm_prev] += 1
            self.sum[self.arm_prev] += r
            self.plays += 1
        if cfg.throttle and self.issued_prev > 0:
            p = 256 * used // self.issued_prev
            if p < SPEC_P_LOW:
                self.budget = max(SPEC_BUDGET_MIN, self.budget // 2)
            elif p > SPEC_P_HIGH:
                self.budget = min(cfg.l2_slots, self.budget + self.budget // 4 + 1)
        budget = min(self.budget, cfg.l2_slots)

        rec = dict.fromkeys(STEP_RECORD, 0)
        l1 = cfg.l1_pages
        issues, this = [], set()
        for j in range(self.k):
            for s, n_pages, out in self.preds:
                if j >= len(out):
                    continue
                p = out[j]
                vpn = (s << VPN_PAGE_BITS) | p
                if p >= n_pages - l1:
                    rec["skip_l1"] += 1
                elif not self.mapped(vpn):
                    rec["skip_unmapped"] += 1
                elif vpn in self.where or vpn in this:
                    rec["skip_resident"] += 1
                elif len(issues) >= budget:
                    rec["throttled"] += 1
                else:
                    this.add(vpn)
                    issues.append(vpn)
        placed, reused = [], []
        for vpn in issues:
            slot = self.next_slot
            self.next_slot = (slot + 1) % cfg.l2_slots
            old = self.slot_vpn[slot]
            if old is not None:
                del self.where[old]
                reused.append(slot)
            self.slot_vpn[slot] = vpn
            self.where[vpn] = slot
            placed.append(Issue(vpn, slot))
        rec.update(step=step, k=self.k, budget=budget, issued=len(placed), l2_hits=hits,
                   used_prev=used, issued_prev=self.issued_prev, arm=self.arm, epoch=step)
        self.prev = {i.slot for i in placed}
        self.issued_prev = len(placed)
        self.arm_prev = self.arm if cfg.ucb else None
        return StepResult(rec, placed, reused)
