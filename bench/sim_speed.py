#!/usr/bin/env python3
"""Simulated cycles per second of the SpecKV SoC model, three ways, in one run on the same
generated Verilog and the same compiled model:

  (a) bare     the Verilator C++ loop: toggle sys_clk, eval, nothing else (timed in C++);
  (b) python   pyverilator stepped one clock per Python call (``sim.clock.tick()``);
  (c) driver   the SimDriver native loop: one Python call runs N cycles while sampling the
               UART, host bus and finish events (timed from Python, call overhead included).

The firmware is booted first, so every method simulates the same thing: VexRiscv in the
firmware's command loop polling the UART, LiteDRAM refreshing. Each method runs `--repeat`
times, interleaved; the median is reported. Results: a table on stdout and JSON.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=str(ROOT / "build" / "sim"),
                   help="SoC build directory (built if missing or stale).")
    p.add_argument("--cycles", type=int, default=2_000_000,
                   help="Cycles per measurement for (a) and (c).")
    p.add_argument("--python-cycles", type=int, default=50_000,
                   help="Cycles per measurement for (b), the slow per-clock Python loop.")
    p.add_argument("--repeat", type=int, default=3, help="Measurements per method.")
    p.add_argument("--model", default=None,
                   help="Use this compiled model (and the csr.json of --build-dir) instead of "
                        "building: e.g. a variant from bench/sim_profile.py.")
    p.add_argument("--json", default=str(ROOT / "build" / "bench" / "sim_speed.json"),
                   help="Where to write the results as JSON.")
    args = p.parse_args(argv)

    from soc.build import build_sim
    from soc.sim import SimDriver

    if args.model:
        from types import SimpleNamespace
        b = SimpleNamespace(model=Path(args.model).resolve(),
                            csr_json=Path(args.build_dir) / "csr.json")
    else:
        b = build_sim(args.build_dir, quiet=True)
    drv = SimDriver(b.model, csr_json=b.csr_json)
    drv.reset()
    drv.uart_read_until(b"speckv> ", 2_000_000)
    pv = drv._pv  # the same model instance, driven the pyverilator way for (b)

    def bare():
        ns = drv.lib.spk_bare_loop(drv._state, args.cycles)
        return args.cycles / (ns * 1e-9)

    def python_step():
        pv.auto_eval = True
        tick = pv.clock.tick
        t0 = time.perf_counter()
        for _ in range(args.python_cycles):
            tick()
        dt = time.perf_counter() - t0
        pv.auto_eval = False
        pv.io.sys_clk = 1
        pv.eval()
        return args.python_cycles / dt

    def driver():
        t0 = time.perf_counter()
        drv.run(args.cycles)
        return args.cycles / (time.perf_counter() - t0)

    runs = {"bare": [], "python": [], "driver": []}
    for _ in range(args.repeat):
        runs["bare"].append(bare())
        runs["python"].append(python_step())
        runs["driver"].append(driver())
    # The firmware must still be alive after all of that.
    drv.uart_write("echo alive\r")
    alive = b"alive" in drv.uart_read_until(b"speckv> ", 1_000_000)
    drv.close()

    med = {k: statistics.median(v) for k, v in runs.items()}
    res = {
        "command": "python bench/sim_speed.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "model": str(b.model),
        "cycles": {"bare": args.cycles, "python": args.python_cycles, "driver": args.cycles},
        "cycles_per_s": {k: [round(x) for x in v] for k, v in runs.items()},
        "median_cycles_per_s": {k: round(v) for k, v in med.items()},
        "ratios": {
            "driver_over_bare": med["driver"] / med["bare"],
            "bare_over_python": med["bare"] / med["python"],
            "driver_over_python": med["driver"] / med["python"],
        },
        "firmware_alive_after": alive,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")

    print(f"{'method':<44} {'M cycles/s':>11} {'vs bare':>8}")
    names = {"bare": "(a) bare Verilator C++ loop",
             "python": "(b) pyverilator, one Python call per clock",
             "driver": "(c) SimDriver native run-until-event loop"}
    for k in ("bare", "python", "driver"):
        print(f"{names[k]:<44} {med[k] / 1e6:>11.3f} {med[k] / med['bare']:>7.1%}")
    print(f"(c)/(a) = {res['ratios']['driver_over_bare']:.2f}   "
          f"(a)/(b) = {res['ratios']['bare_over_python']:.1f}x   "
          f"(c)/(b) = {res['ratios']['driver_over_python']:.1f}x   -> {args.json}")
    if not alive:
        print("warning: the firmware did not answer after the benchmark", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
