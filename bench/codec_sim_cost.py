"""Each codec core alone in Verilator: its simulation cost (nanoseconds per eval(), evals/s)
and its throughput in cycles (FP16 bytes a cycle in or out), with bytes per second at each
board's sys_clk.

Each core (KVCompressor, KVDecompressor; the SoC's mode and the 4x mode by default) is
converted to Verilog, compiled by Verilator (-O3, as the SoC model) with a small C++ loop
that streams real pages through it at full rate (input valid and output ready every cycle:
the compressor gets the FP16 beats of bundled trace pages, the decompressor their compressed
pages from the reference codec) and one with the core idle (no input). The loop toggles
sys_clk and calls eval() twice per cycle, like the SoC's native driver; it is timed in C++
by the process's CPU time (so other jobs on a shared machine do not inflate it).
It also counts the output beats and checks them against the reference's page sizes, so a
core that stopped working cannot look fast.

Throughput: the compressor's FP16 input beats taken (KV bytes compressed) and the
decompressor's FP16 output beats (KV bytes restored), per cycle of the busy run, with no
back-pressure; at `--dw 32` (the boards' width) the table adds bytes per second at each
board's sys_clk (soc/targets).

    python bench/codec_sim_cost.py                      # table on stdout
    python bench/codec_sim_cost.py --cycles 2000000 --json build/codec_sim_cost.json
    python bench/codec_sim_cost.py --dw 32 --modes kivi_k4v3   # the boards' codec throughput
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from gateware.codec import reference as R
from gateware.codec.core import GATEWARE_MODES
from soc.board import BOARD_DMA_DW
from soc.targets import BOARDS

ROOT = Path(__file__).resolve().parent.parent

CORES = ("compressor", "decompressor")
VFLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
          "-Wno-fatal", "-Wno-lint", "-Wno-style"]

MAIN_CPP = r"""
#include "Vcodec_top.h"
#include "verilated.h"
#include <ctime>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include "beats.h"   // NBEATS, BEATS[], LASTS[], EXPECT_OUT (output beats per pass)

double sc_time_stamp() { return 0; }

int main(int argc, char **argv) {
    uint64_t cycles = strtoull(argv[1], nullptr, 10);
    int busy = atoi(argv[2]);
    Vcodec_top *t = new Vcodec_top;
    t->sys_rst = 1;
    for (int i = 0; i < 4; i++) { t->sys_clk = 0; t->eval(); t->sys_clk = 1; t->eval(); }
    t->sys_rst = 0;
    uint64_t k = 0, outs = 0, passes = 0;
    // CPU time of this process, not wall time: the figure stays meaningful on a loaded machine
    timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (uint64_t c = 0; c < cycles; c++) {
        t->sys_clk = 0;
        t->sink_valid = busy;
        t->sink_payload_data = BEATS[k];
        t->sink_last = LASTS[k];
        t->source_ready = 1;
        t->eval();
        bool in = busy && t->sink_ready;
        if (t->source_valid) outs++;
        t->sys_clk = 1;
        t->eval();
        if (in && ++k == NBEATS) { k = 0; passes++; }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("{\"ns\": %.0f, \"out_beats\": %llu, \"in_passes\": %llu, \"in_beats\": %llu, "
           "\"expect_out_per_pass\": %d}\n", ns, (unsigned long long)outs,
           (unsigned long long)passes, (unsigned long long)(passes * NBEATS + k), EXPECT_OUT);
    delete t;
    return 0;
}
"""


def _pages(n: int) -> np.ndarray:
    from host.traces.format import load_trace
    kv = load_trace(str(ROOT / "traces" / "mini-chatbot.safetensors")).kv
    pages = kv.reshape(-1, *kv.shape[3:])
    idx = np.random.default_rng(0).choice(len(pages), n, replace=False)
    return pages[idx]


def stimulus(core: str, mode: str, dw: int, n: int):
    """(beats, lasts, expected output beats for one pass over the input)."""
    pages = _pages(n)
    L = dw // 16
    if core == "compressor":
        frames = [R.as_bits(p).reshape(-1) for p in pages]
        beats = []
        for f in frames:
            v = f.astype(np.uint64)
            beats.append([sum(int(v[i + j]) << (16 * j) for j in range(L))
                          for i in range(0, v.size, L)])
        out = sum(len(b) for b in R.compress_batch(pages, mode)) * 8 // dw
    else:
        nb = dw // 8
        beats = [[int.from_bytes(b[i: i + nb], "little") for i in range(0, len(b), nb)]
                 for b in R.compress_batch(pages, mode)]
        out = pages[0].nbytes * 8 // dw * n
    flat = [x for f in beats for x in f]
    lasts = [int(i == len(f) - 1) for f in beats for i in range(len(f))]
    return flat, lasts, out


def build(core: str, mode: str, dw: int, out: Path, n: int) -> Path:
    from migen.fhdl.verilog import convert

    from gateware.codec.compressor import KVCompressor
    from gateware.codec.decompressor import KVDecompressor
    dut = (KVCompressor if core == "compressor" else KVDecompressor)(mode, dw=dw)
    ios = {dut.sink.valid, dut.sink.ready, dut.sink.data, dut.sink.last,
           dut.source.valid, dut.source.ready, dut.source.data, dut.source.last}
    v = str(convert(dut, ios=ios, name="codec_top"))
    beats, lasts, exp = stimulus(core, mode, dw, n)
    ctype = {32: "uint32_t", 64: "uint64_t"}.get(dw)
    if ctype is None:
        raise SystemExit("--dw must be 32 or 64 (Verilator's wide ports are arrays)")
    hdr = (f"#define NBEATS {len(beats)}\n#define EXPECT_OUT {exp}\n"
           f"static const {ctype} BEATS[] = {{{', '.join(f'{b}ull' for b in beats)}}};\n"
           f"static const uint8_t LASTS[] = {{{', '.join(map(str, lasts))}}};\n")
    key = hashlib.sha256("\n".join(l for l in v.splitlines() if not l.startswith("//"))
                         .encode() + hdr.encode() + MAIN_CPP.encode()
                         + repr(VFLAGS).encode()).hexdigest()[:12]
    d = out / f"{core}_{mode}_dw{dw}_{key}"
    exe = d / "obj" / "Vcodec_top"
    if exe.exists():
        return exe
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "codec_top.v").write_text(v)
    (d / "beats.h").write_text(hdr)
    (d / "main.cpp").write_text(MAIN_CPP)
    verilator = shutil.which("verilator")
    if not verilator:
        raise SystemExit("verilator not found (apt-get install verilator)")
    cmd = [verilator, "--cc", "--exe", "--build", "-j", "2", *VFLAGS, "--Mdir", "obj",
           "-CFLAGS", "-O2", "codec_top.v", "main.cpp"]
    with open(d / "build.log", "w") as f:
        if subprocess.run(cmd, cwd=d, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"Verilator build failed, see {d / 'build.log'}")
    return exe


def measure(exe: Path, cycles: int, busy: bool) -> dict:
    p = subprocess.run([str(exe), str(cycles), str(int(busy))], capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="kivi_k4v3,kivi_n10v9",
                    help="comma-separated codec modes, of the gateware's "
                         f"({', '.join(GATEWARE_MODES)}; default: kivi_k4v3,kivi_n10v9)")
    ap.add_argument("--cores", default=",".join(CORES), help="compressor,decompressor")
    ap.add_argument("--dw", type=int, default=64, help="stream width, 32 or 64 (default 64)")
    ap.add_argument("--pages", type=int, default=16, help="distinct trace pages streamed")
    ap.add_argument("--cycles", type=int, default=1_000_000, help="cycles per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="measurements (median reported)")
    ap.add_argument("--out", default=str(ROOT / "build" / "codec-simcost"), help="build folder")
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
    rows = []
    for mode in modes:
        for core in cores:
            exe = build(core, mode, args.dw, Path(args.out), args.pages)
            row = {"core": core, "mode": mode, "dw": args.dw, "cycles": args.cycles}
            for busy in (True, False):
                runs = sorted((measure(exe, args.cycles, busy) for _ in range(args.repeat)),
                              key=lambda r: r["ns"])
                r = runs[len(runs) // 2]
                tag = "busy" if busy else "idle"
                row[f"{tag}_ns_per_eval"] = round(r["ns"] / (2 * args.cycles), 1)
                row[f"{tag}_mevals_s"] = round(2 * args.cycles / r["ns"] * 1e3, 2)
                if busy:
                    # output beats must match the reference's sizes for the pages streamed
                    exp = r["in_passes"] * r["expect_out_per_pass"]
                    ok = exp <= r["out_beats"] <= exp + r["expect_out_per_pass"]
                    row["out_beats"], row["out_ok"] = r["out_beats"], ok
                    row["in_beats"] = r["in_beats"]
                    if not ok:
                        raise SystemExit(f"{core} {mode}: {r['out_beats']} output beats for "
                                         f"{r['in_passes']} passes, expected about {exp}")
                    # FP16 KV bytes a cycle: taken by the compressor, given by the decompressor
                    fp16 = r["in_beats"] if core == "compressor" else r["out_beats"]
                    row["fp16_bytes_per_cycle"] = round(fp16 * args.dw / 8 / args.cycles, 4)
                    if args.dw == BOARD_DMA_DW:
                        row["boards_mb_s"] = {
                            b.name: round(row["fp16_bytes_per_cycle"] * b.sys_clk_freq / 1e6, 1)
                            for b in BOARDS.values()}
            rows.append(row)
    print(f"\nVerilator {_verilator_version()}, -O3, one core alone, {args.cycles} cycles, "
          f"median of {args.repeat}, {datetime.date.today()}")
    boards = [f"MB/s {b.name} {b.sys_clk_freq / 1e6:g} MHz" for b in BOARDS.values()]
    print(f"{'core':<13} {'mode':<11} {'busy ns/eval':>13} {'busy Mevals/s':>14} "
          f"{'idle ns/eval':>13} {'idle Mevals/s':>14} {'FP16 B/cycle':>13}"
          + ("".join(f" {h:>22}" for h in boards) if args.dw == BOARD_DMA_DW else ""))
    for r in rows:
        print(f"{r['core']:<13} {r['mode']:<11} {r['busy_ns_per_eval']:>13} "
              f"{r['busy_mevals_s']:>14} {r['idle_ns_per_eval']:>13} {r['idle_mevals_s']:>14} "
              f"{r['fp16_bytes_per_cycle']:>13}"
              + "".join(f" {v:>22}" for v in r.get("boards_mb_s", {}).values()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": {
            "date": str(datetime.date.today()), "verilator": _verilator_version(),
            "command": " ".join(["python bench/codec_sim_cost.py"] + (argv or sys.argv[1:]))},
            "rows": rows}, indent=1))
    return 0


def _verilator_version() -> str:
    try:
        return subprocess.run(["verilator", "--version"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
