"""Calibrate the ``model`` backend's device costs on the ``rtl`` backend.

Replays the first steps of a trace once per predictor on the Verilator SoC (synchronous
hints, the host polling finely), times every offload, demand read, config read, hint chunk
post and hint chunk service, reads the firmware's own step records (prediction and issue
cycles), fits the costs that ``host/replayer/costs.py`` describes, and writes them with
their residuals and provenance to ``host/replayer/calibration.json``::

    python -m host.replayer.calibrate                 # ~3 minutes
    python -m host.replayer.calibrate --steps 2 --json /tmp/cal.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys

import numpy as np

from host.replayer.backends import RtlBackend
from host.replayer.costs import CALIBRATION_FILE, KINDS
from host.replayer.engine import DEFAULT_TRACE, ROOT, ReplayOptions, candidates, replay
from soc.mailbox import MBOX_HINT_DONE_SEQ, MBOX_HINT_STATUS

COMMAND = "python -m host.replayer.calibrate"


class TimedRtl(RtlBackend):
    """The rtl backend, timing each device operation it performs."""

    POLL = 16   # cycles between polls of a hint chunk's done word: service times to ~100 cycles

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.log = {"sends": [], "chunks": [], "steps": [], "demand": [], "offload": []}
        self._sent_at = 0
        ow = (self.link.lat_min + self.link.lat_max) / 2
        self.one_way = ow
        self.page_serial = 4096 / self.link.bytes_per_cycle

    def _send(self, words):
        t = self.link.cycle
        super()._send(words)
        self._sent_at = self.link.cycle
        self.log["sends"].append((len(words), self._sent_at - t))

    def post_hint(self, words, max_cycles=None, poll=None):
        self._send(words)
        while True:
            t = self.link.cycle
            if self.link.cfg_read(self._mbox(MBOX_HINT_DONE_SEQ)) == self.hint_seq:
                break
            self.link.run(self.POLL)
        # the done word was read at about t + one way
        self.log["chunks"].append((int(words[4]), int(words[3]) >> 16, bool(words[5] & 1),
                                   t + self.one_way - self._sent_at))
        return self.link.cfg_read(self._mbox(MBOX_HINT_STATUS))

    def hint(self, chunks, max_cycles=None, poll=None):
        if chunks[0].first == 0:
            self._live, self._chunks = set(self.l2_index().values()), 0
        self._chunks += len(chunks)
        done = super().hint(chunks, max_cycles, self.POLL)
        if done is not None:
            rec, issued = done
            reused = sum(s in self._live for _, s in issued)
            self.log["steps"].append((self.cfg.kind, self.cfg.streams, candidates(rec),
                                      len(issued), reused, rec["predict_cycles"],
                                      rec["issue_cycles"], self._chunks))
        return done

    def demand_read(self, vpn):
        data, cycles = super().demand_read(vpn)
        self.log["demand"].append(cycles)
        return data, cycles

    def offload(self, vpn, page):
        t = self.link.cycle
        n = super().offload(vpn, page)
        self.log["offload"].append(self.link.cycle - t)
        return n

    def cfg_read_cycles(self, n=50):
        out = []
        for _ in range(n):
            t = self.link.cycle
            self.link.cfg_read(self._mbox(0))
            out.append(self.link.cycle - t)
        return out


def _fit(columns, y):
    a = np.column_stack(columns).astype(float)
    coef, *_ = np.linalg.lstsq(a, np.asarray(y, float), rcond=None)
    resid = np.asarray(y, float) - a @ coef
    return coef, float(np.sqrt(np.mean(resid ** 2))) if len(y) else 0.0


def fit(logs, cfg_reads, one_way, page_serial):
    """Costs from the timed operations (``logs``: one TimedRtl log per predictor)."""
    cat = {k: [x for lg in logs for x in lg[k]] for k in logs[0]}
    rt = float(np.mean(cfg_reads))
    cfg_device = rt - 2 * one_way
    sends = np.array(cat["sends"], float)
    post_word = float(np.mean((sends[:, 1] - 2 * rt) / sends[:, 0]))
    steps = np.array(cat["steps"], float)   # kind, streams, candidates, issued, reused,
    predict = {}                              # predict cycles, issue cycles, chunks
    for i, kind in enumerate(KINDS):
        sel = steps[steps[:, 0] == i]
        predict[kind] = float(sel[:, 5].sum() / sel[:, 1].sum())
    # each chunk filters and issues its own predictions; the step's last also waits for its
    # DMA: a fixed cost per chunk (no intercept: every step of a replay has as many chunks)
    (issue_fixed, issue_candidate, issue_page, issue_reused), issue_rms = _fit(
        [steps[:, 7], steps[:, 2], steps[:, 3], steps[:, 4]], steps[:, 6])
    # chunk service beyond the firmware's own prediction and issue timers, per step: a fixed
    # cost per chunk and one per payload unit
    chunks, units, resid = [], [], []
    for lg, kind in zip(logs, KINDS):
        n = u = service = 0
        finished = iter(lg["steps"])
        for n_units, n_streams, last, sv in lg["chunks"]:
            n, u, service = n + 1, u + n_units, service + sv
            if last:
                st = next(finished)
                chunks.append(n)
                units.append(u)
                resid.append(service - st[5] - st[6])
                n = u = service = 0
    (chunk_fixed, chunk_unit), chunk_rms = _fit([chunks, units], resid)
    demand_device = float(np.mean(cat["demand"]) - 2 * one_way - page_serial)
    offload_command = float(np.mean(cat["offload"]) - 2 * one_way - page_serial)
    cycles = dict(demand_device=demand_device, cfg_device=cfg_device, post_word=post_word,
                  chunk_fixed=float(chunk_fixed), chunk_unit=float(chunk_unit), predict=predict,
                  issue_fixed=float(issue_fixed), issue_candidate=float(issue_candidate),
                  issue_page=float(issue_page),
                  issue_reused=float(issue_reused), offload_command=offload_command)
    inputs = {"cfg_reads": len(cfg_reads), "chunk_posts": len(sends),
              "chunks": len(cat["chunks"]), "steps": len(steps), "demand_reads": len(cat["demand"]),
              "offloads": len(cat["offload"]), "chunk_rms_cycles": chunk_rms,
              "issue_rms_cycles": issue_rms,
              "demand_p99_cycles": float(np.percentile(cat["demand"], 99))}
    samples = {"steps": [dict(zip(("kind", "streams", "candidates", "issued", "reused",
                                   "predict_cycles", "issue_cycles", "chunks"), map(int, x)))
                         for x in cat["steps"]],
               "chunks": [dict(zip(("units", "streams", "last", "service_cycles"),
                                   (int(u), int(n), bool(la), float(sv))))
                          for lg in logs for u, n, la, sv in lg["chunks"]]}
    return cycles, inputs, samples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--trace", default=str(DEFAULT_TRACE), help="trace replayed (default: the bundled one)")
    ap.add_argument("--steps", type=int, default=4, help="decode steps per predictor (default 4)")
    ap.add_argument("--layers", type=int, default=10,
                    help="layers replayed (default 10: 30 streams, 360 pages offloaded first)")
    ap.add_argument("--l2-slots", type=int, default=64,
                    help="L2 slots (default 64: small, so that slots are reused and the cost "
                         "of clearing their directory lines shows)")
    ap.add_argument("--json", default=str(CALIBRATION_FILE), help="where to write the costs")
    from soc.targets.sim import (DEFAULT_DRAM, DRAMS, build_sim, default_build_dir,
                                 dram_peak_bytes_per_cycle)
    ap.add_argument("--dram", default=DEFAULT_DRAM, choices=list(DRAMS),
                    help="DRAM model of the simulation SoC measured (soc/targets/sim.py)")
    args = ap.parse_args(argv)
    build = build_sim(default_build_dir(args.dram), quiet=True, dram=args.dram)
    logs, cfg_reads = [], []
    for kind in KINDS:
        print(f"calibrating on rtl: predictor {kind}", file=sys.stderr)
        b = TimedRtl(build)
        try:
            cfg_reads += b.cfg_read_cycles()
            replay(ReplayOptions(trace=args.trace, backend="rtl", prefetcher=kind, k=8,
                                 steps=args.steps, layers=args.layers, l2_slots=args.l2_slots,
                                 timing="off"),
                   backend=b, progress=True)
            logs.append(b.log)
            one_way, page_serial = b.one_way, b.page_serial
        finally:
            b.close()
    cycles, inputs, samples = fit(logs, cfg_reads, one_way, page_serial)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or None
    argv_text = " ".join(argv if argv is not None else sys.argv[1:])
    out = {"provenance": {"command": f"{COMMAND} {argv_text}".strip(),
                          "date": datetime.date.today().isoformat(), "commit": commit,
                          "trace": args.trace.replace(str(ROOT) + "/", ""), "link": "cxl2-x16",
                          "sys_clk_hz": b.sys_clk_freq, "dram": args.dram,
                          "dram_peak_bytes_per_cycle": dram_peak_bytes_per_cycle(args.dram),
                          "inputs": inputs},
           "cycles": cycles, "samples": samples}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(cycles, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
