"""FPGA board builds of the SpecKV SoC: ECP5 boards with DRAM, built with the open toolchain
(yosys, nextpnr-ecp5, ecppack from the YoWASP packages; ``soc/toolchain.py``).

    python soc/build.py --board ulx3s            generate the project (Verilog, LPF, build.sh)
    python soc/build.py --board ulx3s --build    ... and run it: bitstream + report
    python soc/build.py --board ulx3s --load     print (and run, if possible) openFPGALoader

The boards themselves (platform, clock generator, DRAM) are in ``soc/targets/``, one file
each. What a board build carries: the same SoC as the simulation (VexRiscv + firmware in
ROM, LiteDRAM on the board's DRAM, the cache engine: bridge endpoint, ATU, page DMA with the
KV decompressor, firmware DMA with compressor and decompressor, page engine, mailbox). A
board has no CXL pads, so the bridge's message link is carried by a Wishbone message tunnel
(``gateware/bridge/tunnel.py``) that the host reaches through LiteX's UARTBone on the
board's USB UART (``litex_server --uart``); the firmware console shares that UART as
LiteX's "crossover" UART. ``host/driver/tunnel.py`` is the host side.

Per-core resources come from the synthesis of the real bitstream: the cache-engine cores and
the CPU are kept as separate Verilog modules (``soc/hier.py``) and synthesized with
``keep_hierarchy``; yosys' per-module statistics are reported, then the netlist is flattened
for place and route.
"""

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from soc.builder import ROOT, firmware_pass, make_builder, quiet_litex, say
from soc.hier import strip_hierarchy_comment_file
from soc.toolchain import build_script, load, run_build, yosys_script

# DMA/codec datapath width of board builds: at the simulation's 64 bits the SoC needs 102 %
# of the 85F's LUTs (yosys, measured); at 32 bits the codec lanes halve.
BOARD_DMA_DW = 32
TUNNEL_BASE = 0x8C000000  # in the CPU's uncached IO region
CPU_MODULE = "VexRiscv"


@dataclass
class Board:
    name: str
    description: str
    device: str          # as LiteX names it
    nextpnr_args: list   # device/package/speed for nextpnr-ecp5
    sys_clk_freq: float  # default system clock
    loader_board: str    # openFPGALoader -b NAME
    dram: str            # description of the DRAM and its PHY
    baudrate: int = 1_000_000  # default UARTBone rate (>= 16 sys_clk cycles per bit)
    # Whether the board's clock generator can give the codec cores their own clock
    # (`--codec-clk-freq`, "codec", gateware/dma/codec.CodecCDC); by default they run on
    # sys_clk.
    codec_clock: bool = False
    make_platform: object = field(repr=False, default=None)
    make_crg: object = field(repr=False, default=None)
    make_sdram: object = field(repr=False, default=None)  # (soc-less) -> (phy, module, hook)



# SoC -------------------------------------------------------------------------------------------

def add_tunnel(soc, pads):
    """The message tunnel on the SoC bus at TUNNEL_BASE, feeding the bridge record ``pads``."""
    from litex.soc.integration.soc import SoCRegion
    from gateware.bridge.tunnel import TUNNEL_SIZE, MessageTunnel
    soc.tunnel = MessageTunnel(pads)
    soc.bus.add_slave("tunnel", soc.tunnel.bus,
                      SoCRegion(origin=TUNNEL_BASE, size=TUNNEL_SIZE, cached=False))


def tunnel_soc(platform, sys_clk_freq, crg, rom_init, phy, module, baudrate, codec_cd,
               **extra):
    """A ``SpecKVSoC`` wired as on a board: console on LiteX's crossover UART, UARTBone at
    ``baudrate``, the bridge fed by the message tunnel; ``extra``: more SoC arguments (the
    simulated board link keeps its host bus and simulation control)."""
    from migen import Record
    from gateware.bridge.tunnel import BRIDGE_PADS_LAYOUT
    from soc.soc import SpecKVSoC

    pads = Record(BRIDGE_PADS_LAYOUT)
    soc = SpecKVSoC(platform, sys_clk_freq, crg,
        rom_init      = rom_init,
        uart_name     = "crossover",
        sdram_phy     = phy,
        sdram_module  = module,
        bridge_pads   = pads,
        dma_dw        = BOARD_DMA_DW,
        codec_cd      = codec_cd,
        timer_uptime  = True,
        **extra,
    )
    soc.add_uartbone(baudrate=baudrate)
    add_tunnel(soc, pads)
    return soc


def board_soc(board, sys_clk_freq, rom_init, baudrate, codec_clk_freq=None):
    platform = board.make_platform()
    crg = board.make_crg(platform, sys_clk_freq, codec_clk_freq)
    phy, module, hook = board.make_sdram(platform, sys_clk_freq, crg)
    soc = tunnel_soc(platform, sys_clk_freq, crg, rom_init, phy, module, baudrate,
                     "codec" if codec_clk_freq else None)
    soc.comb += hook
    return soc


# Cores kept as their own Verilog modules (soc/hier.py): report name -> attribute path.
def engine_cores(soc):
    """The cores of ``soc`` kept as modules: the cache engine, LiteDRAM, the L2 cache."""
    from gateware.codec.compressor import KVCompressor
    from gateware.dma.codec import CodecCDC

    def core(xf):
        return (xf.codec if isinstance(xf, CodecCDC) else xf).core

    def codec(dma, compressor):
        # with CodecCDC, the kept module includes its FIFOs and clock crossing
        found = [xf for xf in dma.xfs if isinstance(core(xf), KVCompressor) == compressor]
        assert len(found) == 1, "one codec of each kind per DMA"
        return found[0]
    return [
        ("codec_compressor",   codec(soc.dma, True)),
        ("codec_decompressor", codec(soc.dma, False)),
        ("page_decompressor",  codec(soc.page_dma, False)),
        ("dma",                soc.dma),
        ("page_dma",           soc.page_dma),
        ("atu",                soc.atu),
        ("page_engine",        soc.engine),
        ("bridge",             soc.bridge),
        ("tunnel",             soc.tunnel),
        ("litedram",           soc.sdram),      # controller + crossbar (the PHY stays in the top)
        ("l2_cache",           soc.l2_cache),   # the CPU's L2 in front of LiteDRAM
    ]


def keep_cores_as_modules(soc, top, gateware_dir):
    """Detach ``engine_cores(soc)`` now; when the top (``top``) Verilog is generated, each is
    written to ``<gateware_dir>/<name>.v`` and instantiated (``soc/hier.py``). Call before
    the SoC is finalized (before the builder runs). Returns the detached cores."""
    from soc.hier import Detached, instantiate
    detached = [Detached(name, m) for name, m in engine_cores(soc)]
    platform = soc.platform
    orig_get_verilog = platform.get_verilog

    def get_verilog(fragment, name="top", **kwargs):
        if name == top:
            instantiate(platform, fragment, detached, gateware_dir)
        return orig_get_verilog(fragment, name=name, **kwargs)
    platform.get_verilog = get_verilog
    return detached


# Project generation ------------------------------------------------------------------------------

@dataclass
class BoardProject:
    board: Board
    build_dir: Path
    gateware_dir: Path
    top: str
    sys_clk_freq: float
    codec_clk_freq: float  # None: the codecs run on sys_clk
    baudrate: int
    cores: list           # names of the modules kept in the hierarchy (plus the CPU)
    sources: list         # Verilog files, relative to gateware_dir
    csr_csv: Path = None
    csr_json: Path = None

    @property
    def bitstream(self):
        return self.gateware_dir / f"{self.top}.bit"


def generate(board, build_dir=None, sys_clk_freq=None, baudrate=None,
             quiet=False, firmware=True, codec_clk_freq=None):
    """Write the board project: SoC Verilog (top + one file per kept core), the CPU's
    Verilog, LPF constraints, the yosys script and build.sh, csr.json/csv, firmware.
    ``firmware=False`` skips the firmware (one pass, the ROM holds a placeholder word): the
    same project otherwise, for checks of its structure."""
    sys_clk_freq = float(sys_clk_freq or board.sys_clk_freq)
    baudrate = int(baudrate or board.baudrate)
    if codec_clk_freq and not board.codec_clock:
        raise ValueError(f"--codec-clk-freq: board {board.name} has no codec clock "
                         f"(its codecs run on sys_clk)")
    codec_clk_freq = float(codec_clk_freq) if codec_clk_freq else None
    if sys_clk_freq / baudrate < 16:
        raise ValueError(f"--uart-baudrate {baudrate}: fewer than 16 cycles of the "
                         f"{sys_clk_freq / 1e6:g} MHz sys_clk per bit")
    build_dir = Path(build_dir or ROOT / "build" / board.name).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    top = board.name
    t0 = time.time()

    def make_soc(rom_init):
        return board_soc(board, sys_clk_freq, rom_init=rom_init, baudrate=baudrate,
                         codec_clk_freq=codec_clk_freq)
    words = [0]
    if firmware:
        _, words = firmware_pass(make_soc, build_dir, log, top, quiet, run=False,
                                 build_name=top)

    say(quiet, f"[{top}] SoC with firmware in ROM, cores as modules ({time.time() - t0:.1f} s) ...")
    soc = make_soc(words)
    platform = soc.platform
    builder = make_builder(soc, build_dir, compile_software=False)
    gateware_dir = Path(builder.gateware_dir)
    gateware_dir.mkdir(parents=True, exist_ok=True)
    # Nothing stale from an earlier run may pass for this one's results.
    stale = [f"{top}.json", f"{top}_stat.txt", f"{top}_stat.json", f"{top}_yosys.log",
             f"{top}_nextpnr.json", f"{top}_nextpnr.log", f"{top}.config", f"{top}.bit",
             f"{top}.svf", "build_sh.out"]
    for p in list(gateware_dir.glob("*.v")) + [gateware_dir / n for n in stale]:
        p.unlink(missing_ok=True)
    for p in (build_dir / "report.json", build_dir / "report.txt"):
        p.unlink(missing_ok=True)
    detached = keep_cores_as_modules(soc, top, gateware_dir)
    quiet_litex(log, lambda: builder.build(run=False, build_name=top))
    strip_hierarchy_comment_file(gateware_dir / f"{top}.v")

    # Sources into the build folder, referenced relatively.
    cpu_files = []
    for src in platform.sources:
        p = Path(src[0])
        if p.parent != gateware_dir:
            shutil.copy(p, gateware_dir / p.name)
            cpu_files.append(p.name)
    core_files = [f"{d.name}.v" for d in detached]
    sources = cpu_files + core_files + [f"{top}.v"]
    for stale in (gateware_dir / f"build_{top}.sh",):
        stale.unlink(missing_ok=True)
    keep = [CPU_MODULE] + [d.name for d in detached]
    (gateware_dir / f"{top}.ys").write_text(yosys_script(top, sources, keep))
    script = gateware_dir / "build.sh"
    script.write_text(build_script(board, top))
    script.chmod(0o755)
    say(quiet, f"[{top}] project in {gateware_dir} ({time.time() - t0:.1f} s)")
    return BoardProject(board=board, build_dir=build_dir, gateware_dir=gateware_dir, top=top,
                        sys_clk_freq=sys_clk_freq, codec_clk_freq=codec_clk_freq,
                        baudrate=baudrate, cores=keep,
                        sources=sources, csr_csv=Path(builder.csr_csv),
                        csr_json=Path(builder.csr_json))


def host_link_hint(proj):
    return (f"host link: litex_server --uart --uart-port /dev/ttyUSB0 --uart-baudrate "
            f"{proj.baudrate}; then host.driver.tunnel.RemoteTarget(RemoteClient(csr_csv="
            f"'{proj.csr_csv}'), '{proj.csr_json}') and host.driver.tunnel.TunnelLink")


def run(board, args, argv_text):
    """``soc/build.py --board NAME [--build] [--load]`` for ``board``."""
    build_dir = Path(args.build_dir) if args.build_dir else ROOT / "build" / board.name
    bit = build_dir.resolve() / "gateware" / f"{board.name}.bit"
    if args.build or not args.load:
        proj = generate(board, build_dir, args.sys_clk_freq, args.uart_baudrate,
                        codec_clk_freq=args.codec_clk_freq)
        bit = proj.bitstream
        if args.build:
            report = run_build(proj, argv_text, seed=args.seed)
            for c in report["clocks"]:
                if not c["met"]:
                    print(f"[{board.name}] timing NOT met: {c['net']} reaches "
                          f"{c['achieved_mhz']} MHz of {c['constraint_mhz']} MHz")
        else:
            print(f"[{board.name}] project generated; run {proj.gateware_dir / 'build.sh'} "
                  f"or add --build")
        print(host_link_hint(proj))
    if args.load:
        code = load(board, bit)
        return 0 if code in (0, None) else code
    return 0
