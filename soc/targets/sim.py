"""The simulation target: the SpecKV SoC on LiteX's simulation platform with LiteDRAM's
SDRAM model, built into a Verilator model (``soc/sim/``).

Two DRAMs (``dram=``): ``ddr3`` (default) a DDR3-800 x16 part behind a 4:1 PHY model, whose
128-bit native port peaks at 16 B a sys_clk cycle, as a board's DDR3 would; ``sdr`` the 16-bit
SDR part of LiteX's own simulation target (2 B a cycle).

    from soc.targets.sim import build_sim
    b = build_sim("build/sim")        # gateware, firmware in ROM, Verilator model (cached)

``python soc/build.py --sim`` builds it and replays the bundled trace or drives its console.
"""

import time
from pathlib import Path

from soc.board import BOARD_DMA_DW
from soc.builder import (ROOT, VERILATOR_CACHE, SimBuild, absolute_readmem, firmware_pass,
                         make_builder, quiet_litex, say)

DEFAULT_BUILD_DIR = ROOT / "build" / "sim"
DEFAULT_SYS_CLK = 100e6
# name: (LiteDRAM module, data bits of the part, width of the DMA engines and their codecs)
DRAMS = {
    # DDR3L 1 Gb x16 (128 MiB), DDR3-800 at 100 MHz x 4 phases: native port 128 bits. The DMA
    # ports are native: LiteDRAM's up-converter keeps one command in flight (1 B a cycle).
    "ddr3": ("MT41K64M16", 16, 128),
    # SDR 256 Mb x16 (32 MiB, the ULX3S part family), 100 MHz: native port 16 bits
    "sdr": ("MT48LC16M16", 16, 64),
    # the board shape of the ULX3S: the same SDR part, the boards' engines and codecs
    "sdr32": ("MT48LC16M16", 16, BOARD_DMA_DW),
}
DEFAULT_DRAM = "ddr3"


def default_build_dir(dram=DEFAULT_DRAM):
    """build/sim for the default DRAM, build/sim-<dram> for another: one build a directory."""
    return DEFAULT_BUILD_DIR if dram == DEFAULT_DRAM else ROOT / "build" / f"sim-{dram}"


def dma_port_bytes(dram):
    """Bytes a cycle of the DMA engines' LiteDRAM ports (one word a cycle) for ``dram``."""
    return DRAMS[dram][2] // 8


def dram_peak_bytes_per_cycle(dram):
    """Peak bytes a sys_clk cycle of the simulated DRAM's native port (one word a cycle), from
    the PHY model's own settings."""
    from litedram import modules as litedram_modules
    from litedram.phy.model import get_sdram_phy_settings
    name, bits, _ = DRAMS[dram]
    st = get_sdram_phy_settings(getattr(litedram_modules, name).memtype, bits, DEFAULT_SYS_CLK)
    return st.dfi_databits * st.nphases // 8


def sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init, dram=DEFAULT_DRAM):
    from litedram import modules as litedram_modules
    from litedram.phy.model import SDRAMPHYModel, sdram_module_nphases
    from migen.genlib.io import CRG

    from soc.platform import Platform
    from soc.soc import SpecKVSoC

    platform = Platform()
    crg = CRG(platform.request("sys_clk"), rst=platform.request("sys_rst"))
    sdram_phy = sdram_module = None
    dma_dw = 64
    if with_sdram:
        # LiteDRAM's SDRAM model, as LiteX's own simulation target uses it, at 100 MHz
        if dram not in DRAMS:
            raise ValueError(f"unknown simulated DRAM {dram!r}; valid: {', '.join(DRAMS)}")
        name, bits, dma_dw = DRAMS[dram]
        module_cls = getattr(litedram_modules, name)
        sdram_module = module_cls(100e6, "1:{}".format(sdram_module_nphases[module_cls.memtype]))
        sdram_phy = SDRAMPHYModel(module=sdram_module, data_width=bits, clk_freq=100e6)
    soc = SpecKVSoC(platform, sys_clk_freq, crg,
        cpu_variant   = cpu_variant,
        rom_init      = rom_init,
        uart_name     = "sim",
        sdram_phy     = sdram_phy,
        sdram_module  = sdram_module,
        host_bus_pads = platform.request("host_bus"),
        bridge_pads   = platform.request("bridge"),
        sim_ctrl_pads = platform.request("sim_ctrl"),
        dma_dw        = dma_dw,
    )
    return soc


def build_sim(build_dir=DEFAULT_BUILD_DIR, sys_clk_freq=DEFAULT_SYS_CLK,
              cpu_variant="full+cfu", with_sdram=True, with_model=True, quiet=False,
              dram=DEFAULT_DRAM):
    """Build the simulation SoC: headers + libraries, firmware, Verilog, Verilator model."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    t0 = time.time()

    def make_soc(rom_init):
        return sim_soc(sys_clk_freq, cpu_variant, with_sdram, rom_init=rom_init, dram=dram)
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
