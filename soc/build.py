#!/usr/bin/env python3
"""SpecKV-FPGA SoC target: VexRiscv + firmware in ROM + SRAM + LiteDRAM + UART.

    python soc/build.py --sim                 build gateware + firmware, run under Verilator
    python soc/build.py --sim --trace         ... and dump a waveform (FST) for a cycle window
    python soc/build.py --build               build only (Verilog, csr.json/csv/h, firmware,
                                              Verilator model)
    python soc/build.py --board ulx3s [--build] [--load]
                                              FPGA board project [bitstream] [programming]
                                              (soc/boards.py)

The build runs in two passes, as LiteX targets with custom ROM firmware do: pass 1 generates
the headers (csr.h, mem.h, soc.h) and the LiteX libraries the firmware links against; the
firmware is compiled; pass 2 regenerates the SoC with the firmware image in its ROM (the CPU
boots straight into it, no BIOS). The register map is exported by the LiteX builder
(csr.json, csr.csv, csr.h); nothing copies it by hand.
"""

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] != str(ROOT):  # run as a script: the repo first (not soc/, whose soc.py
    sys.path.insert(0, str(ROOT))  # would shadow the package), also when on PYTHONPATH
# Tools installed in the venv (meson, ninja) must be found by the makefiles LiteX runs.
_VENV_BIN = str(Path(sys.executable).parent)
if _VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VENV_BIN + os.pathsep + os.environ.get("PATH", "")

DEFAULT_BUILD_DIR = ROOT / "build" / "sim"
FIRMWARE_DIR = ROOT / "firmware"
DEFAULT_SYS_CLK = 100e6

# LiteX software libraries the firmware links against (the BIOS is not built).
SOFTWARE_LIBS = ["libc", "libcompiler_rt", "libbase", "liblitedram"]


@dataclass
class SimBuild:
    """Paths of one simulation build."""
    build_dir: Path
    verilog: Path
    cpu_sources: list
    csr_json: Path
    csr_csv: Path
    csr_h: Path
    firmware_bin: Path
    model: Path = None


def _say(quiet, msg):
    if not quiet:
        print(msg, flush=True)


def _sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init):
    from litedram import modules as litedram_modules
    from litedram.phy.model import SDRAMPHYModel, sdram_module_nphases
    from migen.genlib.io import CRG

    from soc.platform import Platform
    from soc.soc import SpecKVSoC

    platform = Platform()
    crg = CRG(platform.request("sys_clk"), rst=platform.request("sys_rst"))
    sdram_phy = sdram_module = None
    if with_sdram:
        # LiteDRAM's SDRAM model, as LiteX's own simulation target uses it: 32 MiB SDR
        # (MT48LC16M16, the ULX3S part family), 100 MHz timings.
        module_cls = litedram_modules.MT48LC16M16
        sdram_module = module_cls(100e6, "1:{}".format(sdram_module_nphases[module_cls.memtype]))
        sdram_phy = SDRAMPHYModel(module=sdram_module, data_width=16, clk_freq=100e6)
    soc = SpecKVSoC(platform, sys_clk_freq, crg,
        cpu_variant   = cpu_variant,
        rom_init      = rom_init,
        uart_name     = "sim",
        sdram_phy     = sdram_phy,
        sdram_module  = sdram_module,
        host_bus_pads = platform.request("host_bus"),
        bridge_pads   = platform.request("bridge"),
        sim_ctrl_pads = platform.request("sim_ctrl"),
    )
    return soc


def _builder(soc, build_dir, compile_software):
    from litex.soc.integration.builder import Builder
    builder = Builder(soc, output_dir=str(build_dir), compile_software=compile_software,
                      compile_gateware=False)
    builder.software_packages = []
    builder.software_libraries = []
    for lib in SOFTWARE_LIBS:
        builder.add_software_package(lib)
        builder.add_software_library(lib)
    return builder


def _firmware_build_id():
    """Short hash of the firmware sources plus the git revision, when there is one."""
    h = hashlib.sha256()
    for p in sorted(FIRMWARE_DIR.iterdir()):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "nogit"
    return f"{rev}-{h.hexdigest()[:8]}"


def build_firmware(build_dir, log, quiet=True):
    """Compile firmware/ against the generated headers/libraries of ``build_dir``."""
    obj_dir = Path(build_dir) / "firmware"
    obj_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "-C", str(obj_dir), "-f", str(FIRMWARE_DIR / "Makefile"),
           f"BUILD_DIR={build_dir}", f"FW_BUILD_ID={_firmware_build_id()}"]
    with open(log, "a") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = Path(log).read_text().splitlines()[-30:]
        raise RuntimeError("firmware build failed:\n" + "\n".join(tail))
    return obj_dir / "firmware.bin"


def _absolute_readmem(verilog, gateware_dir):
    """$readmemh paths in the Verilog become absolute, so the model runs from any cwd."""
    text = verilog.read_text()
    new = []
    for line in text.splitlines(keepends=True):
        if "$readmemh(\"" in line and "$readmemh(\"/" not in line:
            line = line.replace("$readmemh(\"", f"$readmemh(\"{gateware_dir}/")
        new.append(line)
    verilog.write_text("".join(new))


def build_sim(build_dir=DEFAULT_BUILD_DIR, sys_clk_freq=DEFAULT_SYS_CLK,
              cpu_variant="standard", with_sdram=True, with_model=True, quiet=False):
    """Build the simulation SoC: headers + libraries, firmware, Verilog, Verilator model."""
    from litex.soc.integration.common import get_mem_data

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("SoC", "SoCBusHandler", "SoCCSRHandler", "SoCIRQHandler", "SoCLocHandler"):
        logging.getLogger(name).setLevel(logging.WARNING)

    def litex_quiet(fn):
        # LiteX and the make/meson runs it starts print a lot; keep it in the log (fd level,
        # so child processes are caught too) and show its tail if something fails.
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(log, "a") as f:
                os.dup2(f.fileno(), 1)
                try:
                    return fn()
                finally:
                    sys.stdout.flush()
                    os.dup2(saved, 1)
        except Exception:
            print("\n".join(log.read_text().splitlines()[-25:]), file=sys.stderr)
            raise
        finally:
            os.close(saved)

    t0 = time.time()
    _say(quiet, "[build] pass 1: SoC headers and LiteX libraries ...")
    soc = _sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init=[0])
    litex_quiet(lambda: _builder(soc, build_dir, compile_software=True).build())

    _say(quiet, f"[build] firmware ({time.time() - t0:.1f} s) ...")
    fw = build_firmware(build_dir, log)

    _say(quiet, f"[build] pass 2: SoC with firmware in ROM ({time.time() - t0:.1f} s) ...")
    words = get_mem_data(str(fw), endianness="little", data_width=32)
    soc = _sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init=words)
    builder = _builder(soc, build_dir, compile_software=False)
    litex_quiet(lambda: builder.build())
    gateware = Path(builder.gateware_dir)
    verilog = gateware / "sim.v"
    _absolute_readmem(verilog, gateware)
    cpu_sources = [Path(s[0]) for s in soc.platform.sources if s[0].endswith(".v")
                   and Path(s[0]).name != "sim.v"]
    b = SimBuild(build_dir=build_dir, verilog=verilog, cpu_sources=cpu_sources,
                 csr_json=Path(builder.csr_json), csr_csv=Path(builder.csr_csv),
                 csr_h=Path(builder.generated_dir) / "csr.h", firmware_bin=fw)
    if with_model:
        from soc.sim.model import build_model
        _say(quiet, f"[build] Verilator model ({time.time() - t0:.1f} s; cached by content) ...")
        b.model = build_model(verilog, cpu_sources, ROOT / "build" / "verilator", log=log)
    _say(quiet, f"[build] done in {time.time() - t0:.1f} s -> {build_dir}")
    return b


def run_console(b, max_cycles, script, interactive, trace=None, quiet=False):
    """Boot the SoC under Verilator and print its UART; returns the firmware's exit code."""
    from soc.sim.driver import SimDriver, SimTimeout

    with SimDriver(b.model, csr_json=b.csr_json) as drv:
        t0 = time.time()
        drv.reset()
        if trace:
            drv.trace_start(trace[0], trace[1], trace[2])
        out = sys.stdout.buffer

        def pump(pattern, budget):
            try:
                text = drv.uart_read_until(pattern, budget)
            except SimTimeout:
                text = drv.uart_read()
                out.write(text)
                out.flush()
                raise
            out.write(text)
            out.flush()
            return text

        try:
            pump(b"speckv> ", max_cycles)
            for cmd in script:
                drv.uart_write(cmd + "\r")
                if drv.finished:
                    break
                pump(b"speckv> ", max_cycles - drv.cycle)
            if interactive:
                _interactive(drv, out, max_cycles)
        except SimTimeout as e:
            print(f"\n[sim] stopped: {e}", file=sys.stderr)
        finally:
            if trace:
                drv.trace_stop()
        dt = time.time() - t0
        code = drv.exit_code
        if not quiet:
            print(f"\n[sim] {drv.cycle} cycles in {dt:.2f} s "
                  f"({drv.cycle / dt / 1e6:.2f} M cycles/s), "
                  f"exit code {code if code is not None else '-'}")
            if trace:
                last = min(trace[2], drv.cycle)
                print(f"[sim] waveform of cycles {trace[1]}..{last} -> {trace[0]}")
        return code


def _interactive(drv, out, max_cycles):
    import select
    from soc.sim.driver import Stop
    while not drv.finished and drv.cycle < max_cycles:
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r:
            line = sys.stdin.readline()
            if not line:
                break
            drv.uart_write(line.rstrip("\n") + "\r")
        drv.run(min(200_000, max_cycles - drv.cycle), Stop.FINISH)
        out.write(drv.uart_read())
        out.flush()


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
    from soc.boards import BOARDS
    p.add_argument("--board", default=None, metavar="NAME",
                   help="FPGA board target (open ECP5 toolchain): "
                        + "; ".join(f"{b.name} = {b.description}, {b.sys_clk_freq / 1e6:.0f} MHz"
                                    + (f" (codecs {b.codec_clk_freq / 1e6:.0f} MHz)"
                                       if b.codec_clk_freq else "")
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
                   help="With --board: clock in Hz of the codec cores on boards that give them "
                        "their own clock (default: the board's: "
                        + ", ".join(f"{b.name} {b.codec_clk_freq:.0f}" for b in BOARDS.values()
                                    if b.codec_clk_freq) + ").")
    p.add_argument("--uart-baudrate", type=int, default=None,
                   help="With --board: baud rate of the USB UART (UARTBone host link); "
                        "default: the board's ("
                        + ", ".join(f"{b.name} {b.baudrate}" for b in BOARDS.values()) + ").")
    p.add_argument("--cpu-variant", default="standard",
                   choices=["minimal", "lite", "standard", "full"],
                   help="VexRiscv variant.")
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
    p.add_argument("--replay-args", default="",
                   help="Replay mode: more host/replay.py options, e.g. '--prefetcher last -k 2'.")
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
        from soc import boards
        if args.board not in boards.BOARDS:
            p.error(f"unknown board {args.board!r}; valid boards: {', '.join(sorted(boards.BOARDS))}")
        if args.sim:
            p.error("--sim and --board are exclusive (the board link is simulated by the tests)")
        argv_text = "python soc/build.py " + " ".join(argv if argv is not None else sys.argv[1:])
        return boards.main(args, argv_text)
    if args.load:
        p.error("--load needs --board NAME")
    if args.build_dir is None:
        args.build_dir = str(DEFAULT_BUILD_DIR)
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
                  with_sdram=not args.no_sdram)
    if args.sim:
        trace = None
        if args.trace:
            path = args.trace_file or str(Path(args.build_dir) / "sim.fst")
            trace = (path, args.trace_start, args.trace_end)
        if args.script is not None or args.interactive:
            script = [c.strip() for c in (args.script or "").split(";") if c.strip()]
            code = run_console(b, args.sim_cycles, script, args.interactive, trace)
            return 0 if code in (0, None) else code
        from host.replay import main as replay_main
        import shlex
        rargs = [args.replay_trace, "--backend", "rtl", "--build-dir", args.build_dir]
        if args.replay_steps is not None:
            rargs += ["--steps", str(args.replay_steps)]
        if trace:
            rargs += ["--waveform", f"{trace[0]}:{trace[1]}:{trace[2]}"]
        return replay_main(rargs + shlex.split(args.replay_args), build=b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
