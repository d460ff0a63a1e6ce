#!/usr/bin/env python3
"""Where the SoC model's eval() time goes, per part of the design.

Builds a profiling variant of the Verilator model (``--prof-cfuncs``: every generated
function holds one Verilog statement and is named after its line in ``sim.v``; C++ with
``-g``), boots the firmware, runs the bare clock loop under ``perf record`` and attributes
the samples to the SoC's parts by the signal names of each statement (Migen names signals
``sim_soc_<submodule>_...``). Prints the per-part table and the hottest statements; JSON with
--json. The variant is cached in build/verilator-prof/ like the normal model.

    python bench/sim_profile.py [--cycles 300000] [--top 30]

Needs ``perf`` (Debian package linux-perf). The profile is of the model as built; times are
relative (percent of samples in the model's process).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Signal-name prefix (after sim_soc_) -> part of the design; first match wins.
PARTS = [
    ("kvcompressor", "codec: compressor (firmware DMA)"),
    ("kvdecompressor0", "codec: decompressor (page DMA)"),
    ("kvdecompressor1", "codec: decompressor (firmware DMA)"),
    ("packedcodec", "codec: packed adapters"),
    ("page_dma", "DMA: page engine's"),
    ("dma", "DMA: firmware's"),
    ("bridge", "bridge endpoint (512-bit messages)"),
    ("roundrobin", "bridge endpoint (512-bit messages)"),
    ("host_lines", "bridge endpoint (512-bit messages)"),
    ("atu", "ATU"),
    ("engine", "page engine"),
    ("pageengine", "page engine"),
    ("sdram", "LiteDRAM controller + SDRAM model"),
    ("bankmodel", "LiteDRAM controller + SDRAM model"),
    ("dfi", "LiteDRAM controller + SDRAM model"),
    ("litedramnativeportconverter", "LiteDRAM crossbar ports + width converters"),
    ("litedramnativeport", "LiteDRAM crossbar ports + width converters"),
    ("litedramwishbone2native", "LiteDRAM crossbar ports + width converters"),
    ("port", "LiteDRAM crossbar ports + width converters"),
    ("speckvsoc", "SoC: CPU bus, L2 cache, UART, timer, CSRs"),
    ("wishbone", "SoC: CPU bus, L2 cache, UART, timer, CSRs"),
    ("", "SoC: other"),
]


def classify_line(lines, n):
    """Part of the design that the statement at (1-based) line ``n`` of sim.v drives."""
    for k in range(n - 1, min(n + 6, len(lines))):
        m = re.search(r"\bsim_soc_(\w+)", lines[k])
        if m:
            name = m.group(1)
            for prefix, part in PARTS:
                if name.startswith(prefix):
                    return part, name
    return "SoC: other", None


def child(args):
    from soc.sim import SimDriver
    drv = SimDriver(args.model, csr_json=args.csr_json)
    drv.reset()
    drv.uart_read_until(b"speckv> ", 2_000_000)
    ns = drv.bare_loop(args.cycles)
    print(json.dumps({"cycles_per_s": args.cycles / (ns * 1e-9)}))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=str(ROOT / "build" / "sim"))
    p.add_argument("--cycles", type=int, default=300_000, help="Cycles profiled (after boot).")
    p.add_argument("--freq", type=int, default=2000, help="perf sampling frequency (Hz).")
    p.add_argument("--top", type=int, default=30, help="Hottest statements listed.")
    p.add_argument("--json", default=str(ROOT / "build" / "bench" / "sim_profile.json"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--csr-json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    from soc.targets.sim import build_sim
    from soc.sim.model import CFLAGS, build_model
    b = build_sim(args.build_dir, quiet=True, with_model=False)
    model = build_model(b.verilog, b.cpu_sources, ROOT / "build" / "verilator-prof",
                        log=Path(args.build_dir) / "build-prof.log",
                        extra_args=["--prof-cfuncs"], cflags=CFLAGS + " -g")
    data = Path(args.build_dir) / "perf.data"
    cmd = ["perf", "record", "-q", "-F", str(args.freq), "-o", str(data), "--",
           sys.executable, __file__, "--child", "--model", str(model), "--csr-json",
           str(b.csr_json), "--cycles", str(args.cycles)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    speed = json.loads(out.strip().splitlines()[-1])["cycles_per_s"]
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                          "--sort", "sym", "-F", "overhead,sym", "--percent-limit", "0"],
                         check=True, capture_output=True, text=True).stdout
    lines = Path(b.verilog).read_text().splitlines()
    parts = collections.Counter()
    stmts = collections.Counter()
    where = {}
    total = 0.0
    for row in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[.\]\s+(\S+)", row)
        if not m:
            continue
        pct, sym = float(m.group(1)), m.group(2)
        total += pct
        mm = re.search(r"__PROF__(\w+?)__l(\d+)$", sym)
        if mm and mm.group(1) == "sim":
            n = int(mm.group(2))
            part, name = classify_line(lines, n)
            stmts[n] += pct
            where[n] = (part, name)
        elif mm:
            part = "CPU (VexRiscv)"
        elif sym.startswith(("Vsim", "_ZN", "VL_", "Verilated")) or "Vsim" in sym:
            part = "Verilator scheduler / trace bookkeeping"
        else:
            part = "other (Python, kernel, libc: -pg's mcount)"
        parts[part] += pct
    res = {
        "command": "python bench/sim_profile.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": str(model), "cycles": args.cycles,
        "profiled_cycles_per_s": speed,
        "parts_percent": dict(parts.most_common()),
        "top_statements": [{"line": n, "percent": pct, "part": where[n][0],
                            "signal": where[n][1], "text": lines[n - 1].strip()[:160]}
                           for n, pct in stmts.most_common(args.top)],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"profiled model: {speed / 1e6:.3f} M cycles/s (with -pg/-g and one function per "
          f"statement: slower than the normal build)\n")
    model_total = sum(v for k, v in parts.items() if not k.startswith("other"))
    res["parts_percent_of_model"] = {k: 100 * v / model_total for k, v in parts.most_common()
                                     if not k.startswith("other")}
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"{'part of the SoC':<48} {'% of samples':>12} {'% of model':>10}")
    for part, pct in parts.most_common():
        share = "" if part.startswith("other") else f"{100 * pct / model_total:>9.1f}%"
        print(f"{part:<48} {pct:>11.1f}% {share:>10}")
    print("\nhottest statements (sim.v line, %):")
    for r in res["top_statements"]:
        print(f"  {r['line']:>6} {r['percent']:5.1f}%  {r['part']:<36} {r['text'][:90]}")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
