"""Reference model of the firmware's speculation engine (``firmware/speculate.c``): what the
device does with each decode step's hint. It is the specification the firmware follows
integer for integer, and the `model` replay backend runs it in place of the SoC.

A step's hint arrives layer by layer, as the host finishes reading each layer
(``host/driver/hints.py``: a chunk per layer), and the device serves each chunk whole before
the next: the next step's first layers are predicted and issued first.

1. **Feedback** (per chunk). ``l2_hits`` = accessed pages outside L1 found in the L2
   directory; ``used_prev`` = those in a slot the previous step's hint issued or predicted
   again (each slot carries the 16-bit serial number of the last hint that did).
2. **UCB** (flag bit 0), with one step of delay so that predictions can run as chunks
   arrive: at a step's first chunk the arm (k) is the first never chosen, else
   ``argmax mean_i + SPEC_C_Q8 * isqrt((log2q8(n) << 24) // n_i) >> 8`` over the arms with a
   reward (first on ties; ``mean_i = sum_i // n_i``, ``n`` = rewards so far, ``log2q8`` the
   integer log2 in Q8). At the step's last chunk the arm that made this step's prefetches
   (the previous step's) gets ``r = max(0, 65536 * used_prev - SPEC_LAMBDA_Q16 * max(0,
   issued_prev - used_prev)) // max(1, needed)`` (Q16; ``needed`` = accessed pages outside
   L1; ``used_prev`` counts kept pages too, so it can exceed ``issued_prev``). Arms are
   the depths 1, 2, 4, 8, 16 up to the configured k. Without UCB, k is the configured k.
3. **Throttle** (flag bit 1), at the step's last chunk, for the next step's issues (this
   step's were issued chunk by chunk): with ``p = 256 * used_prev // issued_prev`` (when
   ``issued_prev > 0``), the per-step page budget halves when ``p < 64`` (floor
   ``SPEC_BUDGET_MIN``) and grows by ``budget // 4 + 1`` when ``p > 154`` (ceiling: the L2
   slots). Without throttling the budget is the L2 slot count.
4. **Predict**: one ``pred_step`` per stream of the chunk, with the step's k (predictors see
   every hint, so their state evolves the same whatever the budget).
5. **Filter and issue** the chunk's predictions, rank-major (every stream's first
   prediction, then every second...): skip pages in L1 (``p >= n_pages - l1``) or beyond
   ``n_pages``, pages already in L2 (their slot is stamped with this hint's serial:
   predicted again, kept) and pages not in the pool (checked in that order: the directory
   is in the firmware's SRAM, the page table in DRAM); stop at the step's budget (shared by
   its chunks). Each issued page takes a slot (below); the directory lines of the chunk's
   reused slots are cleared, each page is decompressed by the DMA into its slot, then each
   slot's directory line is written. The step record is written after the last chunk's
   issues.
6. **Slots** are taken round robin from a hand that skips every slot holding a page the
   host still needs: one stamped by this hint, or by the previous hint for a stream the
   host has not read yet in this step (a later layer than the chunk's). A page that finds
   no free slot in one turn is not issued (counted as throttled).

Directory line (64 B at ``dir_addr(slot)``): words ``TAG_MAGIC``, vpn, step, slot, the
page's position in the step's DMA order, rest 0.
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


def tag_line(vpn, step, slot, order):
    words = [TAG_MAGIC, vpn, step, slot, order] + [0] * (LINE_BYTES // 4 - 5)
    return b"".join(w.to_bytes(4, "little") for w in words)


@dataclass
class Issue:
    vpn: int
    slot: int
    order: int      # position in the step's DMA order


SERIAL_MASK = 0xFFFF   # hint serial numbers per slot are 16 bits (the firmware's table)


@dataclass
class ChunkResult:
    """What the device did for one hint chunk: its prefetches, and after the step's last
    chunk the step record."""
    record: dict | None
    issues: list = field(default_factory=list)  # Issue, in DMA order
    reused: list = field(default_factory=list)  # slots that held a page: their directory
                                                # lines are cleared before the data lands
    candidates: int = 0                         # predictions filtered (issued or skipped)


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
        self.slot_serial = [0] * cfg.l2_slots   # serial of the hint that filled the slot
        self.where = {}           # vpn -> slot
        self.serial = 0           # hints begun (16 bits)
        self.next_slot = 0
        self.issued_prev = 0
        self.expect_step = 0
        self.expect_stream = 0
        self.hits = self.used = self.needed = 0
        self.rec = None           # the step record in progress
        self.rejected = 0

    # hints ----------------------------------------------------------------------------------
    def chunk(self, words):
        """One hint chunk (mailbox words 17..). Returns (status, ChunkResult or None)."""
        try:
            step, first, streams, last = parse_chunk(words, self.cfg, self.expect_stream,
                                                     self.expect_step)
        except HintError as e:
            self.rejected += 1
            return e.code, None
        if first == 0:
            self._begin()
        cfg, l1 = self.cfg, self.cfg.l1_pages
        prev = (self.serial - 1) & SERIAL_MASK
        preds = []
        for s, n_pages, acc in streams:
            for p in acc:
                if p >= n_pages - l1:
                    continue
                self.needed += 1
                slot = self.where.get((s << VPN_PAGE_BITS) | int(p))
                if slot is not None:
                    self.hits += 1
                    self.used += self.slot_serial[slot] == prev
            out = self.pred.step(s, s // cfg.heads, n_pages, [int(p) for p in acc], self.k)
            if len(out) > self.k:
                raise AssertionError(f"predictor returned {len(out)} > k = {self.k} pages")
            preds.append((s, n_pages, [int(p) for p in out]))
        res = self._issue(preds)
        self.expect_stream, self.expect_step = first + len(streams), step
        if last:
            res.record = self._finish(step)
            self.expect_stream, self.expect_step = 0, step + 1
        return 0, res

    # one decode step --------------------------------------------------------------------------
    def _begin(self):
        """First chunk of a step: choose the arm (k) from the rewards known so far."""
        self.arm = self._choose_arm()
        self.pulls[self.arm] += 1
        self.k = self.arms[self.arm]
        self.hits = self.used = self.needed = 0
        self.serial = (self.serial + 1) & SERIAL_MASK
        self.rec = dict.fromkeys(STEP_RECORD, 0)
        self.rec["budget"] = min(self.budget, self.cfg.l2_slots)

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

    def _issue(self, preds):
        """Filter the chunk's predictions rank-major; each issued page takes a slot."""
        rec, l1, budget = self.rec, self.cfg.l1_pages, self.rec["budget"]
        end = preds[-1][0] + 1 if preds else 0     # the host has read streams < end
        placed, reused, candidates = [], [], 0
        for j in range(self.k):
            for s, n_pages, out in preds:
                if j >= len(out):
                    continue
                candidates += 1
                p = out[j]
                vpn = (s << VPN_PAGE_BITS) | p
                if p >= n_pages - l1:
                    rec["skip_l1"] += 1
                elif vpn in self.where:
                    rec["skip_resident"] += 1
                    self.slot_serial[self.where[vpn]] = self.serial   # predicted again: kept
                elif not self.mapped(vpn):
                    rec["skip_unmapped"] += 1
                elif rec["issued"] >= budget or (slot := self._victim(end)) is None:
                    rec["throttled"] += 1
                else:
                    old = self.slot_vpn[slot]
                    if old is not None:
                        del self.where[old]
                        reused.append(slot)
                    self.slot_vpn[slot] = vpn
                    self.slot_serial[slot] = self.serial
                    self.where[vpn] = slot
                    placed.append(Issue(vpn, slot, rec["issued"]))
                    rec["issued"] += 1
        return ChunkResult(None, placed, reused, candidates)

    def _victim(self, end):
        """The next slot from the hand that holds no page the host still needs: none
        stamped by this hint, none stamped by the previous one for a stream the host has not
        read yet (``end`` and later). None after a whole turn."""
        n, prev = self.cfg.l2_slots, (self.serial - 1) & SERIAL_MASK
        for _ in range(n):
            slot = self.next_slot
            self.next_slot = (slot + 1) % n
            vpn = self.slot_vpn[slot]
            if vpn is None:
                return slot
            ser = self.slot_serial[slot]
            if ser != self.serial and (ser != prev or vpn >> VPN_PAGE_BITS < end):
                return slot
        return None

    def _finish(self, step):
        """Last chunk: the previous arm's reward, the throttle (for the next step), the
        record."""
        cfg, rec = self.cfg, self.rec
        used, hits, needed = self.used, self.hits, self.needed
        if self.arm_prev is not None:  # the reward of the arm that made this step's prefetches
            waste = max(0, self.issued_prev - used)   # used counts kept pages too
            r = max(0, 65536 * used - SPEC_LAMBDA_Q16 * waste) // max(1, needed)
            self.n[self.arm_prev] += 1
            self.sum[self.arm_prev] += r
            self.plays += 1
        if cfg.throttle and self.issued_prev > 0:
            p = 256 * used // self.issued_prev
            if p < SPEC_P_LOW:
                self.budget = max(SPEC_BUDGET_MIN, self.budget // 2)
            elif p > SPEC_P_HIGH:
                self.budget = min(cfg.l2_slots, self.budget + self.budget // 4 + 1)
        rec.update(step=step, k=self.k, l2_hits=hits, used_prev=used,
                   issued_prev=self.issued_prev, arm=self.arm, epoch=step)
        self.issued_prev = rec["issued"]
        self.arm_prev = self.arm if cfg.ucb else None
        return dict(rec)
