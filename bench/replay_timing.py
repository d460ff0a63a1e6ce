#!/usr/bin/env python3
"""How long must a decode step be for the device to keep up? Timing-true replays of one
trace (model backend, calibrated costs) over a range of step times, for every predictor,
beside the synchronous replay (the upper bound): L2 hits, late prefetches, misses and
overran steps against the step time. Results as JSON, a table on stdout and a plot.

    python bench/replay_timing.py                       # the bundled mini trace
    python bench/replay_timing.py --json docs/results/replay/timing/step_sweep.json \\
        --plot docs/results/replay/timing/step_sweep.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from host.replayer.engine import DEFAULT_TRACE, PREFETCHERS, ReplayOptions, replay

STEP_US = (20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)


def _row(r, step_us):
    a, tm = r["accesses"], r["timing"]
    non_l1 = a["l2"] + a["l3"]
    return {"prefetcher": r["config"]["prefetcher"], "timing": tm["mode"], "step_us": step_us,
            "hit": a["l2"] / non_l1, "late": a["late"] / non_l1, "miss": a["miss"] / non_l1,
            "overran": tm.get("steps_overran"), "steps": r["config"]["steps"],
            "stall_ns_per_step": r["latency_ns"]["stall_per_step_mean"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--trace", default=str(DEFAULT_TRACE))
    ap.add_argument("--prefetchers", default=",".join(p for p in PREFETCHERS if p != "none"),
                    help="comma-separated (default: every predictor)")
    ap.add_argument("--steps-us", default=",".join(map(str, STEP_US)),
                    help="step times tried, in us (default %(default)s)")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    a = ap.parse_args(argv)
    preds = [p for p in a.prefetchers.split(",") if p]
    for p in preds:
        if p not in PREFETCHERS:
            ap.error(f"unknown prefetcher {p!r}; known: {', '.join(PREFETCHERS)}")
    try:
        steps_us = [float(x) for x in a.steps_us.split(",") if x]
    except ValueError:
        ap.error(f"--steps-us {a.steps_us!r}: expected comma-separated numbers")
    from tqdm import tqdm
    rows, source = [], None
    with tqdm(total=len(preds) * (len(steps_us) + 1), desc="replays", file=sys.stderr) as bar:
        for p in preds:
            base = ReplayOptions(trace=a.trace, prefetcher=p, k=a.k)
            r = replay(ReplayOptions(**{**base.__dict__, "timing": "off"}), progress=False)
            rows.append(_row(r, None))
            source = r["latency_ns"]["source"]
            bar.update(1)
            for us in steps_us:
                r = replay(ReplayOptions(**{**base.__dict__, "step_ns": us * 1e3}), progress=False)
                rows.append(_row(r, us))
                bar.update(1)
    print(f"{'prefetcher':12s} {'step us':>8s} {'hit':>6s} {'late':>6s} {'miss':>6s} overran")
    for r in rows:
        step = "sync" if r["step_us"] is None else f"{r['step_us']:g}"
        over = "-" if r["overran"] is None else f"{r['overran']}/{r['steps']}"
        print(f"{r['prefetcher']:12s} {step:>8s} {r['hit']:6.3f} {r['late']:6.3f} "
              f"{r['miss']:6.3f} {over}")
    out = {"command": "python bench/replay_timing.py " + " ".join(argv or sys.argv[1:]),
           "trace": Path(a.trace).name, "k": a.k, "costs": source,
           "note": "shares of the reads outside L1; step_us None is the synchronous replay",
           "rows": rows}
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"results: {a.json}")
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for p in preds:
            pts = [r for r in rows if r["prefetcher"] == p and r["step_us"] is not None]
            line, = ax.plot([r["step_us"] for r in pts], [r["hit"] for r in pts], marker="o",
                            label=p)
            sync = next(r for r in rows if r["prefetcher"] == p and r["step_us"] is None)
            ax.axhline(sync["hit"], color=line.get_color(), ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("decode step time (us)")
        ax.set_ylabel("L2 hit rate (reads outside L1)")
        ax.set_title(f"timing-true replay, {Path(a.trace).name} (dotted: synchronous)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        a.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(a.plot, dpi=110)
        print(f"plot: {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
