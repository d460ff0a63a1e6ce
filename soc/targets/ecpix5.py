"""LambdaConcept ECPIX-5 (LFE5UM5G-85F-8BG554I, 512 MiB DDR3): LiteX-Boards' platform, its
target's clock generator vendored (that module imports LiteEth, which this project does not
need), LiteDRAM's ECP5DDRPHY; the codec cores on sys_clk or, as an option, on a third PLL output."""

from soc.board import Board


def _platform():
    from litex_boards.platforms import lambdaconcept_ecpix5
    return lambdaconcept_ecpix5.Platform(device="85F", toolchain="trellis")


def _crg(platform, sys_clk_freq, codec_clk_freq=None):
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


def _sdram(platform, sys_clk_freq, crg):
    from litedram.modules import MT41K256M16
    from litedram.phy import ECP5DDRPHY
    phy = ECP5DDRPHY(platform.request("ddram"), sys_clk_freq=sys_clk_freq)
    hook = [crg.stop.eq(phy.init.stop), crg.reset.eq(phy.init.reset)]
    return phy, MT41K256M16(sys_clk_freq, "1:2"), hook


BOARD = Board(
    name="ecpix5", description="LambdaConcept ECPIX-5, LFE5UM5G-85F-8BG554I, 512 MiB DDR3",
    device="LFE5UM5G-85F-8BG554I",
    nextpnr_args=["--um5g-85k", "--package", "CABGA554", "--speed", "8"],
    # LiteX-Boards' ECPIX-5 clock (the ECP5DDRPHY runs DRAM at 2 x sys_clk), codecs on it;
    # --codec-clk-freq puts them on a third PLL output behind CodecCDC.
    sys_clk_freq=75e6, codec_clock=True, loader_board="ecpix5",
    dram="MT41K256M16 DDR3 (512 MiB, 16 bit), LiteDRAM ECP5DDRPHY (sys2x = 2 x sys_clk)",
    make_platform=_platform, make_crg=_crg, make_sdram=_sdram)
