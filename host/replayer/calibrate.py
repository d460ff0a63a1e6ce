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
from host.replayer.engine import DEFAULT_TRACE, ROOT, ReplayOptions, replay

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

    def hint_pump(self):
        h = self._hint
        if h is None:
            return None
        t, i = self.link.cycle, h["next"]
        chunk = h["chunks"][i]
        out = super().hint_pump()
        if self._hint is None or self._hint["next"] != i:
            # the done word was read at about t + one way
            self.log["chunks"].append((len(chunk.payload), chunk.count, chunk.last,
                                       t + self.one_way - self._sent_at))
        return out

    def hint(self, chunks, max_cycles=None, poll=None):
        live = set(self.l2_index().values())
        rec, issued = super().hint(chunks, max_cycles, self.POLL)
        reused = sum(s in live for _, s in issued)
        self.log["steps"].append((self.cfg.kind, self.cfg.streams, candidates(rec), len(issued),
                                  reused, rec["predict_cycles"], rec["issue_cycles"]))
        return rec, issued

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


def candidates(rec):
    """Predictions the firmware filtered in a step (each costs a page-table and a directory
    lookup, issued or not)."""
    return sum(rec[k] for k in ("issued", "skip_l1", "skip_unmapped", "skip_resident",
                                "throttled"))


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
    predict = {}                              # predict cycles, issue cycles
    for i, kind in enumerate(KINDS):
        sel = steps[steps[:, 0] == i]
        predict[kind] = float(sel[:, 5].sum() / sel[:, 1].sum())
    (issue_fixed, issue_candidate, issue_page, issue_reused), issue_rms = _fit(
        [np.ones(len(steps)), steps[:, 2], steps[:, 3], steps[:, 4]], steps[:, 6])
    # chunk service beyond the firmware's own prediction and issue timers: fixed + per unit
    units, resid = [], []
    for lg, kind in zip(logs, KINDS):
        finished = iter(lg["steps"])
        for n_units, n_streams, last, service in lg["chunks"]:
            if last:
                st = next(finished)
                resid.append(service - st[5] - st[6])
            else:
                resid.append(service - predict[kind] * n_streams)
            units.append(n_units)
    (chunk_fixed, chunk_unit), chunk_rms = _fit([np.ones(len(units)), units], resid)
    demand_device = float(np.mean(cat["demand"]) - 2 * one_way - page_serial)
    offload_command = float(np.mean(cat["offload"]) - 2 * one_way - page_serial)
    cycles = dict(demand_device=demand_device, cfg_device=cfg_device, post_word=post_word,
                  chunk_fixed=float(chunk_fixed), chunk_unit=float(chunk_unit), predict=predict,
                  issue_fixed=float(issue_fixed), issue_candidate=float(issue_candidate),
                  issue_page=float(issue_page),
                  issue_reused=float(issue_reused), offload_command=offload_command)
    inputs = {"cfg_reads": len(cfg_reads), "chunk_posts": len(sends),
              "chunks": len(units), "steps": len(steps), "demand_reads": len(cat["demand"]),
              "offloads": len(cat["offload"]), "chunk_rms_cycles": chunk_rms,
              "issue_rms_cycles": issue_rms,
              "demand_p99_cycles": float(np.percentile(cat["demand"], 99))}
    samples = {"steps": [dict(zip(("kind", "streams", "candidates", "issued", "reused",
                                   "predict_cycles", "issue_cycles"), map(int, x)))
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
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
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
