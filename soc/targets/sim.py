"""The simulation target: the SpecKV SoC on LiteX's simulation platform with LiteDRAM's
SDRAM model, built into a Verilator model (``soc/sim/``).

    from soc.targets.sim import build_sim
    b = build_sim("build/sim")        # gateware, firmware in ROM, Verilator model (cached)

``python soc/build.py --sim`` builds it and replays the bundled trace or drives its console.
"""

import time
from pathlib import Path

from soc.builder import (ROOT, VERILATOR_CACHE, SimBuild, absolute_readmem, firmware_pass,
                         make_builder, quiet_litex, say)

DEFAULT_BUILD_DIR = ROOT / "build" / "sim"
DEFAULT_SYS_CLK = 100e6


def sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init):
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


def build_sim(build_dir=DEFAULT_BUILD_DIR, sys_clk_freq=DEFAULT_SYS_CLK,
              cpu_variant="full+cfu", with_sdram=True, with_model=True, quiet=False):
    """Build the simulation SoC: headers + libraries, firmware, Verilog, Verilator model."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    t0 = time.time()

    def make_soc(rom_init):
        return sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init=rom_init)
    fw, words = firmware_pass(make_soc, build_dir, log, "build", quiet)

    say(quiet, f"[build] pass 2: SoC with firmware in ROM ({time.time() - t0:.1f} s) ...")
    soc = make_soc(words)
    builder = make_builder(soc, build_dir, compile_software=False)
    quiet_litex(log, lambda: builder.build())
    gateware = Path(builder.gateware_dir)
    verilog = gateware / "sim.v"
    absolute_readmem(verilog, gateware)
    cpu_sources = [Path(s[0]) for s in soc.platform.sources if s[0].endswith(".v")
                   and Path(s[0]).name != "sim.v"]
    b = SimBuild(build_dir=build_dir, verilog=verilog, cpu_sources=cpu_sources,
                 csr_json=Path(builder.csr_json), csr_csv=Path(builder.csr_csv),
                 csr_h=Path(builder.generated_dir) / "csr.h", firmware_bin=fw)
    if with_model:
        from soc.sim.model import build_model
        say(quiet, f"[build] Verilator model ({time.time() - t0:.1f} s; cached by content) ...")
        b.model = build_model(verilog, cpu_sources, VERILATOR_CACHE, log=log)
    say(quiet, f"[build] done in {time.time() - t0:.1f} s -> {build_dir}")
    return b
