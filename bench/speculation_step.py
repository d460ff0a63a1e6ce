"""Cycles of a whole decode step's speculation on the simulated SoC, per simulated DRAM.

Replays the first steps of the bundled trace (90 streams: 30 layers x 3 KV heads) on the
rtl backend, synchronously (every step's hint served whole), and reads the firmware's step
records: cycles in the predictors (hint parsing, L2-hit accounting and one prediction a
stream), cycles filtering and issuing (a page-table and a directory lookup per prediction,
a DMA job and a directory line per issued page), and of those the cycles spent waiting for
DMA completions. Each DRAM (``soc/targets/sim.py``) is built in its own directory; the same
firmware runs on both, so the rows compare the DRAMs side by side.

    python bench/speculation_step.py                        # ddr3 and sdr, 8 steps
    python bench/speculation_step.py --drams ddr3 --steps 4 --json build/bench/spec.json

Step 0 issues into an empty L2 (about 360 pages); later steps issue what the LSTM predicts
beyond what L2 holds. At the end: what the device's step costs against the measured
SmolLM2-135M GPU step at 100 MHz, and so how many streams it serves in that time.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from soc.targets.sim import DEFAULT_DRAM, DEFAULT_SYS_CLK, DRAMS, build_sim, default_build_dir

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("issued", "predict_cycles", "issue_cycles", "dma_wait_cycles")


def run(dram, steps, prefetcher, k):
    from host.replayer.engine import DEFAULT_TRACE, ReplayOptions, replay
    from host.traces.format import load_trace
    b = build_sim(default_build_dir(dram), quiet=True, dram=dram)
    heads = load_trace(DEFAULT_TRACE).n_kv_heads
    r = replay(ReplayOptions(backend="rtl", prefetcher=prefetcher, k=k, steps=steps,
                             timing="off"), build=b, progress=True)
    recs = [{f: int(rec[f]) for f in ("step",) + FIELDS} for rec in r["sequence"]["records"]]
    if r["check"]["mismatches"]:
        raise SystemExit(f"{dram}: {r['check']['mismatches']} pages differ from the reference")
    return {"dram": dram, "streams": r["config"]["layers"] * heads, "steps": recs,
            "l2_hit_rate": r["accesses"]["l2_hit_rate"], "issued": r["prefetch"]["issued"]}


def summary(res, step_ns, clk_hz):
    later = res["steps"][1:] or res["steps"]
    n = len(later)
    mean = {f: sum(s[f] for s in later) / n for f in FIELDS}
    total = mean["predict_cycles"] + mean["issue_cycles"]
    budget = step_ns * 1e-9 * clk_hz
    return {"mean_after_step_0": mean, "step_cycles": total,
            "cycles_per_stream": total / res["streams"],
            "streams_in_step": budget / (total / res["streams"]),
            "step0": res["steps"][0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--drams", default=f"{DEFAULT_DRAM},sdr",
                    help=f"comma-separated, of: {', '.join(DRAMS)} (default %(default)s)")
    ap.add_argument("--steps", type=int, default=8, help="decode steps replayed (default 8)")
    ap.add_argument("--prefetcher", default="lstm")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--json", default=str(ROOT / "build" / "bench" / "speculation_step.json"))
    args = ap.parse_args(argv)
    drams = [d for d in args.drams.split(",") if d]
    bad = [d for d in drams if d not in DRAMS]
    if bad:
        ap.error(f"unknown DRAM {', '.join(bad)}; valid: {', '.join(DRAMS)}")
    if args.steps < 2:
        ap.error("--steps must be at least 2 (step 0 fills an empty L2; the mean is of the rest)")
    from host.serving.step_time import step_time
    st = step_time("smollm2-135m", 1, 512)
    clk = DEFAULT_SYS_CLK      # the simulation SoC's sys_clk, which build_sim uses
    out = {"command": "python bench/speculation_step.py " + " ".join(argv or sys.argv[1:]),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "sys_clk_hz": clk, "gpu_step_ns": st.step_ns, "gpu_step_source": st.source,
           "runs": []}
    for d in drams:
        res = run(d, args.steps, args.prefetcher, args.k)
        res["summary"] = summary(res, st.step_ns, clk)
        out["runs"].append(res)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")

    print(f"\n{'DRAM':<6} {'step':>4} {'issued':>7} {'predict cyc':>12} {'issue cyc':>10} "
          f"{'DMA wait':>9} {'cyc/page':>9}")
    for res in out["runs"]:
        for s in res["steps"]:
            per = s["issue_cycles"] / s["issued"] if s["issued"] else float("nan")
            print(f"{res['dram']:<6} {s['step']:>4} {s['issued']:>7} {s['predict_cycles']:>12,} "
                  f"{s['issue_cycles']:>10,} {s['dma_wait_cycles']:>9,} {per:>9,.0f}")
    print(f"\nmeans of steps 1.. against the SmolLM2-135M step ({st.step_ns / 1e3:.0f} us = "
          f"{st.step_ns * 1e-9 * clk:,.0f} cycles at {clk / 1e6:.0f} MHz):")
    for res in out["runs"]:
        s = res["summary"]
        print(f"  {res['dram']}: {s['step_cycles']:,.0f} cycles a step "
              f"({s['cycles_per_stream']:,.0f} a stream): {s['streams_in_step']:.0f} of "
              f"{res['streams']} streams in the GPU's step")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
