"""Cycles per prediction of every predictor on the VexRiscv firmware, in the simulated SoC,
on held-out inputs (traces/prefetch-heldout.npz), and the time that is at a board clock.

    python bench/prefetch_firmware.py --help
    python bench/prefetch_firmware.py --steps 4 --out build/prefetch-bench.json

The firmware times each pred_step call with the SoC timer (sys_clk cycles, including ~tens
of cycles of timer CSR access, reported as the "none" row). The LSTM runs twice in the same
SoC: on the custom function unit (gateware/lstm_cfu, the default) and in plain C. Every
prediction is also checked against the Python integer reference.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAPER_US = 10.0      # the paper's "< 10 us" per prediction
CLOCKS_MHZ = (50.0, 60.0)   # ECP5 (ULX3S) LiteX VexRiscv SoCs close timing around 50-60 MHz


def open_device(build_dir):
    from host.driver.device import Device
    from host.driver.link import SimLink
    from soc.targets.sim import build_sim
    from soc.sim import SimDriver
    b = build_sim(build_dir, quiet=True)
    drv = SimDriver(b.model, csr_json=b.csr_json)
    drv.reset()
    link = SimLink(drv, "ideal")
    link.wait_ready(2_000_000)
    return drv, Device(link)


def main(argv=None) -> int:
    from host.prefetch import KINDS, KIND_CODE
    from host.prefetch.fixture import load, records_for, reference
    ap = argparse.ArgumentParser(prog="prefetch_firmware.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--workload", default="chatbot", choices=["chatbot", "codegen"])
    ap.add_argument("--steps", type=int, default=4, help="decode steps (x 90 streams) per kind")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "test-sim")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "prefetch-bench.json")
    args = ap.parse_args(argv)
    st = load(args.workload)
    recs = records_for(st, args.steps)
    drv, dev = open_device(args.build_dir)
    sys_clk = dev.link.sys_clk_freq
    rows = {}
    runs = [(k, k, True) for k in args.kinds if k != "lstm"]
    if "lstm" in args.kinds:
        runs += [("lstm_c", "lstm", False), ("lstm_cfu", "lstm", True)]
    try:
        for row, kind, cfu in runs:
            preds, cyc = dev.pred_run(KIND_CODE[kind], recs, cfu=cfu)
            ref = reference(kind, recs)
            bad = sum(1 for a, b in zip(preds, ref) if a != b)
            c = np.asarray(cyc)
            rows[row] = {"predictions": len(recs), "mismatches": bad, "cycles_mean": float(c.mean()),
                          "cycles_p50": float(np.median(c)), "cycles_max": int(c.max()),
                          **{f"us_at_{int(f)}MHz": float(c.mean() / f) for f in CLOCKS_MHZ}}
    finally:
        drv.close()
    over = rows.get("none", {}).get("cycles_mean", 0.0)
    lines = [f"cycles per prediction, {args.workload} (held out), {args.steps} steps x 90 streams, "
             f"VexRiscv full+cfu, firmware -O2 (timer overhead = the none row)",
             "| predictor | mean cycles | median | max | mean - none | us @ 50 MHz | us @ 60 MHz "
             "| paper | mismatches vs reference |", "|" + " --- |" * 9]
    labels = {"lstm_c": "lstm (C)", "lstm_cfu": "lstm (CFU)"}
    for kind, r in rows.items():
        lines.append(f"| {labels.get(kind, kind)} | {r['cycles_mean']:.0f} | {r['cycles_p50']:.0f} | {r['cycles_max']} "
                     f"| {r['cycles_mean'] - over:.0f} | {r['us_at_50MHz']:.1f} | {r['us_at_60MHz']:.1f} "
                     f"| {'< ' + str(PAPER_US) + ' us' if kind.startswith('lstm') else ''} | {r['mismatches']} |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"workload": args.workload, "steps": args.steps, "sim_sys_clk": sys_clk,
                                    "rows": rows, "table": text}, indent=1) + "\n")
    return 1 if any(r["mismatches"] for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
