"""The board host link in simulation: the simulation SoC wired as on a board (console on the
crossover UART, UARTBone on a real serial line, the bridge behind the message tunnel, the
codecs on their own clock), built into a Verilator model whose native loop serves the serial
line (``soc/sim/serial_socket.py``). ``tests/test_board_link.py`` replays through
``litex_server`` on it."""

import time
from pathlib import Path

from soc.board import keep_cores_as_modules, tunnel_soc
from soc.builder import (VERILATOR_CACHE, SimBuild, absolute_readmem, firmware_pass,
                         make_builder, quiet_litex, say)
from soc.hier import strip_hierarchy_comment_file

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
    from migen import ClockDomain
    from migen.genlib.io import CRG

    platform = _sim_link_platform()
    crg = CRG(platform.request("sys_clk"), rst=platform.request("sys_rst"))
    crg.clock_domains.cd_codec = ClockDomain("codec")
    crg.comb += [crg.cd_codec.clk.eq(platform.request("codec_clk")),
                 crg.cd_codec.rst.eq(crg.cd_sys.rst)]
    module_cls = litedram_modules.MT48LC16M16
    module = module_cls(100e6, "1:{}".format(sdram_module_nphases[module_cls.memtype]))
    phy = SDRAMPHYModel(module=module, data_width=16, clk_freq=100e6)
    return tunnel_soc(platform, sys_clk_freq, crg, rom_init, phy, module,
                      sys_clk_freq / cycles_per_bit, "codec",
                      host_bus_pads=platform.request("host_bus"),
                      sim_ctrl_pads=platform.request("sim_ctrl"))


def build_sim_link(build_dir, sys_clk_freq=100e6, quiet=True):
    """Build the board-link simulation SoC: gateware, firmware, Verilator model (cached by
    content in build/verilator). Returns a ``soc.builder.SimBuild``."""
    from soc.sim.model import CFLAGS, build_model

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    t0 = time.time()
    fw, words = firmware_pass(lambda rom: sim_link_soc(sys_clk_freq, rom_init=rom),
                              build_dir, log, "sim-link", quiet)
    say(quiet, f"[sim-link] pass 2 ({time.time() - t0:.1f} s) ...")
    soc = sim_link_soc(sys_clk_freq, rom_init=words)
    builder = make_builder(soc, build_dir, compile_software=False)
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
        absolute_readmem(v, gateware)
    b = SimBuild(build_dir=build_dir, verilog=verilog, cpu_sources=cpu_sources,
                 csr_json=Path(builder.csr_json), csr_csv=Path(builder.csr_csv),
                 csr_h=Path(builder.generated_dir) / "csr.h", firmware_bin=fw)
    say(quiet, f"[sim-link] Verilator model ({time.time() - t0:.1f} s) ...")
    b.model = build_model(verilog, cpu_sources, VERILATOR_CACHE, log=log,
                          cflags=CFLAGS + " -DSPK_BOARD_LINK")
    say(quiet, f"[sim-link] done in {time.time() - t0:.1f} s")
    return b
