"""The host's side of the device tiers, one protocol for the trace replay
(``host/replayer/engine.py``) and live generation (``host/generate/``).

A host reads a page from L1 (its own copy), else from L2 (the prefetch buffer the device
writes, found in its directory), else by a synchronous demand read; after reading a layer it
posts that layer's part of the step's hint. With ``timed`` (the timing-true mode) the hint is
posted and the host goes on, pumping it while it computes; a demand read of a page a posted
hint was still bringing is *late*. Without it, each layer's hint is served before the host
goes on. Every page read from the device goes through ``check`` (``read(vpn, data)``,
``offload(vpn, n)``: ``page_check.PageCheck``) and into a digest of the bytes read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PUMP_CYCLES = 2_000   # timing on: the host polls a posted hint every 20 us (at 100 MHz)


class ReplayError(RuntimeError):
    pass


@dataclass
class StepLog:
    step: int
    l1: int = 0
    l2: int = 0
    l3: int = 0                  # demand reads (late prefetches and misses)
    late: int = 0                # of which a posted hint was still bringing the page
    miss_cycles: list = field(default_factory=list)
    late_cycles: list = field(default_factory=list)
    issued: list = field(default_factory=list)   # (vpn, slot) of this step's hint
    record: dict = field(default_factory=dict)
    prefetch_cycles: int = 0     # the firmware's prediction + issue cycles for this hint
    overran: bool = False        # timing on: the device was still busy; the hint was skipped
    served_cycles: int = 0       # timing on: hint posted .. the host saw it served
    step_cycles: int = 0         # timing on: the step's duration (compute, stalls, offloads)



class HostTiers:
    """A host's reads, hints and bookkeeping against one backend. ``heads``: streams per
    layer; a vpn is ``stream << page_bits | page`` with ``stream = layer * heads + head``.
    ``seq`` orders host events (reads, hint posts, hints seen served) on every backend alike."""

    def __init__(self, backend, cfg, heads, page_bits, layers, timed, dense, check):
        self.backend, self.cfg, self.H = backend, cfg, heads
        self.page_bits, self.layers = page_bits, layers
        self.timed, self.dense, self.check = timed, dense, check
        self.digest = hashlib.sha256()
        self.mismatches = self.seq = 0
        self.lengths, self.logs, self.accesses = {}, [], []   # accesses: (step, vpn, tier)
        self.hits = []       # (seq, slot, vpn)
        self.issues = []     # (seq its layer's hint was posted, step, vpn, slot)
        self.demand = []     # (seq, vpn, cycles, StepLog)
        self.served = []     # ({layer: seq posted}, seq seen served, {vpn})
        self.pending = None  # ({layer: seq posted}, StepLog) of the hint in flight
        self.hinting = False  # the step in progress posts its hint
        self.resets = []     # device resets noticed (recover())

    def offload(self, vpn, page) -> int:
        """Store a raw FP16 page [2, 16, 64] in the device pool; its compressed length."""
        n = self.backend.offload(vpn, page)
        self.lengths[vpn] = n
        self.mismatches += not self.check.offload(vpn, n)
        return n

    def recover(self, step, page_of):
        """The device stopped answering or came back empty: bring it back and offload again
        every page the host holds (``page_of(vpn)``: its raw page). A hint in flight is lost.
        Recorded in :attr:`resets`."""
        t0 = self.backend.clock()
        self.backend.recover()
        self.pending = None
        for vpn, n in self.lengths.items():
            self.mismatches += self.backend.offload(vpn, page_of(vpn)) != n
        self.resets.append({"step": step, "noticed_cycle": int(t0),
                            "reoffloaded": len(self.lengths),
                            "recovery_cycles": int(self.backend.clock() - t0)})

    def read(self, s, vpn, in_l1, index, log):
        """Read page ``vpn`` at step ``s``; ``index``: the L2 directory. Returns the page's
        bytes from L2 or the device, None for an L1 page (the host's own copy)."""
        self.seq += 1
        if in_l1:
            log.l1 += 1
            self.accesses.append((s, vpn, 1))
            return
        slot = index.get(vpn)
        data = None
        if slot is not None:
            data = self.backend.l2_page(slot)
            if self.timed and not self.backend.l2_valid(slot, vpn):
                data = None                  # the device is refilling the slot
        if data is not None:
            self.hits.append((self.seq, slot, vpn))
            log.l2 += 1
            self.accesses.append((s, vpn, 2))
        else:
            data, cyc = self.backend.demand_read(vpn)
            log.l3 += 1
            self.demand.append((self.seq, vpn, int(cyc), log))
            self.accesses.append((s, vpn, 3))
        self.digest.update(data)
        self.mismatches += not self.check.read(vpn, data)
        return data

    def hint(self, s, layer, streams, log):
        """The layer's part of the step's hint, posted as soon as the host has read the layer
        (synchronous: and served before the host goes on)."""
        from host.driver.hints import encode_streams
        chunks = encode_streams(self.cfg.request, s, layer * self.H, streams,
                                layer == self.layers - 1, dense=self.dense)
        self.seq += 1
        if not self.timed:
            done = self.backend.hint(chunks)
            if done is not None:
                self._served({0: self.seq}, self.seq, log, *done)
        elif layer:
            self.pending[0][layer] = self.seq
            self.backend.hint_more(chunks)
        elif self.pending is not None or not self.backend.hint_begin(chunks):
            log.overran = True             # the device still serves an earlier step's hint
            self.hinting = False
        else:
            self.pending = ({0: self.seq}, log)

    def _served(self, posted, seen, log, rec, issued):
        log.record, log.issued = rec, issued
        log.prefetch_cycles = int(rec.get("predict_cycles", 0)) + int(rec.get("issue_cycles", 0))
        self.issues += [(posted.get(self._layer(vpn), posted[0]), log.step, vpn, slot)
                        for vpn, slot in issued]
        self.served.append((posted, seen, {vpn for vpn, _ in issued}))

    def pump(self):
        done = self.backend.hint_pump()
        if done is not None:
            rec, issued, t_post, t_seen = done
            self.seq += 1
            posted, log = self.pending
            self.pending = None
            log.served_cycles = t_seen - t_post
            self._served(posted, self.seq, log, rec, issued)

    def compute(self, cycles):
        """The host computes for ``cycles``, polling the hint in flight."""
        end = self.backend.clock() + cycles
        while True:
            if self.pending is not None:
                self.pump()
            now = self.backend.clock()
            if now >= end:
                return
            self.backend.compute(min(PUMP_CYCLES, end - now))

    def drain(self, max_cycles=400_000_000):
        """After the last step: let the hint in flight finish (its issues classify reads)."""
        start = self.backend.clock()
        while self.pending is not None:
            if self.backend.clock() - start > max_cycles:
                raise ReplayError(f"the last hint was not served in {max_cycles} cycles")
            self.backend.compute(PUMP_CYCLES)
            self.pump()

    def late_per_layer(self):
        out = [0] * self.layers
        for seq, vpn, cyc, log in self.demand:
            if self._late(seq, vpn):
                out[self._layer(vpn)] += 1
        return out

    def _layer(self, vpn):
        return (vpn >> self.page_bits) // self.H

    def _late(self, seq, vpn):
        """A posted layer's hint was still bringing the page when the host read it."""
        layer = self._layer(vpn)
        return any(p.get(layer, seen) < seq < seen and vpn in v for p, seen, v in self.served)

    def classify(self):
        """Demand reads of a page that a hint posted before the read was still bringing are
        late prefetches; prefetches read from L2 before their slot was refilled are used."""
        for seq, vpn, cyc, log in self.demand:
            if self._late(seq, vpn):
                log.late += 1
                log.late_cycles.append(cyc)
            else:
                log.miss_cycles.append(cyc)
        latest = {}    # (slot, vpn) -> seq posted list, ascending
        for posted, step, vpn, slot in self.issues:
            latest.setdefault((slot, vpn), []).append((posted, step))
        used = set()
        for seq, slot, vpn in self.hits:
            cands = [x for x in latest.get((slot, vpn), ()) if x[0] < seq]
            if cands:
                used.add((cands[-1][1], vpn))
        return used


