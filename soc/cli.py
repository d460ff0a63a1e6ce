"""The command line of ``python soc/build.py``: build the simulation SoC and run it (trace
replay or the firmware console), or generate, build and load a board's bitstream.

    python soc/build.py --sim                 build gateware + firmware, replay the bundled
                                              KV trace under Verilator (the demo)
    python soc/build.py --sim --script 'ident;exit 0'   drive the firmware's UART console
    python soc/build.py --sim --trace         ... and dump a waveform (FST) for a cycle window
    python soc/build.py --build               build only (Verilog, csr.json/csv/h, firmware,
                                              Verilator model)
    python soc/build.py --board ulx3s [--build] [--load]
                                              FPGA board project [bitstream] [programming]

The pieces: ``soc/builder.py`` (shared two-pass build), ``soc/targets/`` (simulation and
boards), ``soc/board.py`` + ``soc/toolchain.py`` (board projects, yosys/nextpnr, reports),
``soc/sim/`` (Verilator model, driver, console).
"""

import argparse
import shlex
import sys
from pathlib import Path

from soc import board
from soc.builder import ROOT
from soc.sim.console import run_console
from soc.targets import BOARDS
from soc.targets.sim import (DEFAULT_BUILD_DIR, DEFAULT_DRAM, DEFAULT_SYS_CLK, DRAMS, build_sim,
                             default_build_dir)


def main(argv=None):
    p = argparse.ArgumentParser(
        description="SpecKV-FPGA SoC: VexRiscv + firmware + LiteDRAM (+ cache engine), "
                    "simulated with Verilator through pyverilator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sim", action="store_true",
                   help="Build, then simulate under Verilator: by default replay the bundled KV "
                        "trace end to end (host/replay.py, rtl backend) and print the summary; "
                        "with --script or --interactive, drive the firmware's UART console.")
    p.add_argument("--build", action="store_true",
                   help="Build only: Verilog, csr.json/csr.csv/csr.h, firmware, Verilator model.")
    p.add_argument("--build-dir", default=None,
                   help=f"Output directory of the LiteX builder (default: {DEFAULT_BUILD_DIR}, "
                        "build/<board> with --board).")
    p.add_argument("--sys-clk-freq", type=float, default=None,
                   help=f"System clock in Hz that the SoC (timer, reported times) assumes "
                        f"(default: {DEFAULT_SYS_CLK:.0f} in simulation, the board's own "
                        "with --board).")
    p.add_argument("--board", default=None, metavar="NAME",
                   help="FPGA board target (open ECP5 toolchain): "
                        + "; ".join(f"{b.name} = {b.description}, {b.sys_clk_freq / 1e6:.0f} MHz"
                                    for b in BOARDS.values())
                        + ". Alone it generates the project; with --build it makes the "
                          "bitstream and its report (build/<board>/report.txt).")
    p.add_argument("--load", action="store_true",
                   help="With --board: print the openFPGALoader command that programs the "
                        "board, and run it if the tool and a board are present.")
    p.add_argument("--seed", type=int, default=1,
                   help="With --board --build: nextpnr placement seed (recorded in the "
                        "report); another seed is the cheap retry of a near miss.")
    p.add_argument("--codec-clk-freq", type=float, default=None,
                   help="With --board: run the codec cores on their own clock of this many Hz "
                        "behind a clock-domain crossing, on boards that can ("
                        + ", ".join(b.name for b in BOARDS.values() if b.codec_clock)
                        + "); default: on sys_clk.")
    p.add_argument("--uart-baudrate", type=int, default=None,
                   help="With --board: baud rate of the USB UART (UARTBone host link); "
                        "default: the board's ("
                        + ", ".join(f"{b.name} {b.baudrate}" for b in BOARDS.values()) + ").")
    p.add_argument("--cpu-variant", default="full+cfu",
                   choices=["minimal", "lite", "standard", "full", "full+cfu"],
                   help="VexRiscv variant of the simulation SoC; 'full+cfu' adds the LSTM custom "
                        "function unit (gateware/lstm_cfu), which the firmware's LSTM uses.")
    p.add_argument("--dram", default=DEFAULT_DRAM, choices=list(DRAMS),
                   help="DRAM model of the simulation SoC: 'ddr3' a DDR3-800 x16 part, 128-bit "
                        "native port (16 B a cycle at peak); 'sdr' the 16-bit SDR part of "
                        "LiteX's simulation target (2 B a cycle); 'sdr32' the same with the "
                        "boards' 32-bit engines and codecs (the ULX3S's shape). Default build "
                        "directory: build/sim, build/sim-NAME for the others.")
    p.add_argument("--no-sdram", action="store_true",
                   help="Leave out LiteDRAM and its SDRAM model (faster model, no main RAM).")
    p.add_argument("--sim-cycles", type=int, default=20_000_000,
                   help="Cycle budget of the simulation; it stops when spent.")
    p.add_argument("--script", default=None,
                   help="Console mode: UART commands sent one by one at the firmware prompt, "
                        "';'-separated, e.g. 'ident;dram 4096;exit 0' ('exit N' ends the "
                        "simulation with code N).")
    p.add_argument("--replay-trace", default=str(ROOT / "traces" / "mini-replay.safetensors"),
                   help="Replay mode: the KV trace to replay.")
    p.add_argument("--replay-steps", type=int, default=None,
                   help="Replay mode: replay only the first N decode steps (default: all).")
    p.add_argument("--replay-args", default="--timing both",
                   help="Replay mode: more host/replay.py options (default: '%(default)s', the "
                        "timing-true replay beside the synchronous one), e.g. "
                        "'--prefetcher last -k 2 --timing on'.")
    p.add_argument("--interactive", action="store_true",
                   help="After the script, forward stdin lines to the UART.")
    p.add_argument("--trace", action="store_true",
                   help="Dump a waveform (FST) of the window --trace-start..--trace-end.")
    p.add_argument("--trace-start", type=int, default=0, help="First cycle of the waveform.")
    p.add_argument("--trace-end", type=int, default=20_000, help="Last cycle of the waveform.")
    p.add_argument("--trace-file", default=None,
                   help="Waveform path (default: <build-dir>/sim.fst).")
    args = p.parse_args(argv)

    if args.board is not None:
        if args.board not in BOARDS:
            p.error(f"unknown board {args.board!r}; valid boards: {', '.join(sorted(BOARDS))}")
        if args.sim:
            p.error("--sim and --board are exclusive (the board link is simulated by the tests)")
        argv_text = "python soc/build.py " + " ".join(argv if argv is not None else sys.argv[1:])
        return board.run(BOARDS[args.board], args, argv_text)
    if args.load:
        p.error("--load needs --board NAME")
    if args.build_dir is None:
        args.build_dir = str(default_build_dir(args.dram))
    if args.sys_clk_freq is None:
        args.sys_clk_freq = DEFAULT_SYS_CLK

    if not (args.sim or args.build):
        p.error("nothing to do: give --sim or --build")
    if args.trace and args.trace_end <= args.trace_start:
        p.error(f"--trace-end ({args.trace_end}) must be after --trace-start ({args.trace_start})")
    if args.sim_cycles <= 0:
        p.error(f"--sim-cycles must be positive, got {args.sim_cycles}")
    if args.sys_clk_freq <= 0:
        p.error(f"--sys-clk-freq must be positive, got {args.sys_clk_freq}")

    b = build_sim(args.build_dir, args.sys_clk_freq, args.cpu_variant,
                  with_sdram=not args.no_sdram, dram=args.dram)
    if args.sim:
        trace = None
        if args.trace:
            path = args.trace_file or str(Path(args.build_dir) / "sim.fst")
            trace = (path, args.trace_start, args.trace_end)
        if args.script is not None or args.interactive:
            script = [c.strip() for c in (args.script or "").split(";") if c.strip()]
            code = run_console(b, args.sim_cycles, script, args.interactive, trace)
            return 0 if code in (0, None) else code
        # The application runs on top of the build, across a lazy import: host/ imports soc/,
        # never the reverse at module level.
        from host.replay import main as replay_main
        rargs = [args.replay_trace, "--backend", "rtl", "--build-dir", args.build_dir]
        if args.replay_steps is not None:
            rargs += ["--steps", str(args.replay_steps)]
        if trace:
            rargs += ["--waveform", f"{trace[0]}:{trace[1]}:{trace[2]}"]
        return replay_main(rargs + shlex.split(args.replay_args), build=b)
    return 0
