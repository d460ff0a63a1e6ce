#!/usr/bin/env python3
"""Simulated cycles per second of the SpecKV SoC model, three ways, in one run on the same
generated Verilog and the same compiled model:

  (a) bare     the Verilator C++ loop: toggle sys_clk, eval, nothing else (timed in C++);
  (b) python   pyverilator stepped one clock per Python call (``sim.clock.tick()``);
  (c) driver   the SimDriver native loop: one Python call runs N cycles while sampling the
               UART, host bus and finish events (timed from Python, call overhead included).
  (d) pages    demand reads over the emulated link as the trace replay does them: one PageRd
               of a real compressed KV page at a time (cxl2-x16 profile), answered by the
               gateware, 64 HostWr lines into host memory each; simulated cycles per second
               including every Python step (SimLink.transact), and page reads per second.

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


def _page_reader(drv):
    """A function doing one demand read (PageRd, cxl2-x16) of a real compressed page."""
    from gateware.atu.model import pack_pte
    from gateware.bridge.protocol import Message, Op
    from gateware.codec import reference as R
    from host.driver.link import SimLink
    from host.traces.format import load_trace
    t = load_trace(ROOT / "traces" / "mini-chatbot.safetensors")
    mode = next(k[len("codec_mode_"):].lower() for k in drv.constants
                if k.startswith("codec_mode_"))
    blob = R.compress(t.page(t.vpn(3, 1, 2)), mode)
    link = SimLink(drv, "cxl2-x16")
    ram, size = drv.memories["main_ram"]["base"], drv.memories["main_ram"]["size"]
    pt, slot, host = 0x01C3_0000, 0x01C4_0000, 0x3_0000_0000
    link.mem_write(ram + slot, blob + bytes(-len(blob) % 64))
    table = bytearray(64)
    table[8:16] = pack_pte(slot, len(blob)).to_bytes(8, "little")
    link.mem_write(ram + pt, bytes(table))
    for k, v in (("atu_pt_base", pt), ("atu_pt_entries", 8), ("atu_dram_base", 0),
                 ("atu_dram_size", size), ("engine_dram_base", 0), ("engine_dram_size", size),
                 ("engine_host_base", host), ("engine_host_size", 8 * 4096)):
        link.csr_write(k, v)
    link.set_host_memory(host, 8 * 4096)
    n = [0]

    def read():
        link.transact([Message(Op.PAGE_RD, n[0] % 256, host + 4096 * (n[0] % 8), value=1)])
        n[0] += 1
    return read


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
    p.add_argument("--pages", type=int, default=40, help="Page reads per measurement for (d).")
    p.add_argument("--model", default=None,
                   help="Use this compiled model (and the csr.json of --build-dir) instead of "
                        "building: e.g. a variant from bench/sim_profile.py.")
    p.add_argument("--json", default=str(ROOT / "build" / "bench" / "sim_speed.json"),
                   help="Where to write the results as JSON.")
    args = p.parse_args(argv)

    from soc.targets.sim import build_sim
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
    pv = drv.pyverilator  # the same model instance, driven the pyverilator way for (b)

    def bare():
        ns = drv.bare_loop(args.cycles)
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

    page_read = _page_reader(drv)

    def pages():
        c0, t0 = drv.cycle, time.perf_counter()
        for _ in range(args.pages):
            page_read()
        dt = time.perf_counter() - t0
        return (drv.cycle - c0) / dt, args.pages / dt

    runs = {"bare": [], "python": [], "driver": [], "pages": []}
    page_rates = []
    for _ in range(args.repeat):
        runs["bare"].append(bare())
        runs["python"].append(python_step())
        runs["driver"].append(driver())
        cps, pps = pages()
        runs["pages"].append(cps)
        page_rates.append(pps)
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
        "page_reads": args.pages,
        "cycles_per_s": {k: [round(x) for x in v] for k, v in runs.items()},
        "page_reads_per_s": [round(x, 1) for x in page_rates],
        "median_page_reads_per_s": round(statistics.median(page_rates), 1),
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
             "driver": "(c) SimDriver native run-until-event loop",
             "pages": "(d) demand reads over the link (SimLink)"}
    for k in ("bare", "python", "driver", "pages"):
        print(f"{names[k]:<44} {med[k] / 1e6:>11.3f} {med[k] / med['bare']:>7.1%}")
    print(f"(d): {res['median_page_reads_per_s']} page reads per second of wall time")
    print(f"(c)/(a) = {res['ratios']['driver_over_bare']:.2f}   "
          f"(a)/(b) = {res['ratios']['bare_over_python']:.1f}x   "
          f"(c)/(b) = {res['ratios']['driver_over_python']:.1f}x   -> {args.json}")
    if not alive:
        print("warning: the firmware did not answer after the benchmark", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
