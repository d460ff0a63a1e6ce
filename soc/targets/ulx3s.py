"""Radiona ULX3S (LFE5U-85F-6BG381C, 32 MiB SDR SDRAM): LiteX-Boards' platform and clock
generator, LiteDRAM's GENSDRPHY at sys_clk."""

from soc.board import Board


def _platform():
    from litex_boards.platforms import radiona_ulx3s
    return radiona_ulx3s.Platform(device="LFE5U-85F", revision="2.0", toolchain="trellis")


def _crg(platform, sys_clk_freq, codec_clk_freq=None):
    assert codec_clk_freq is None
    from litex_boards.targets.radiona_ulx3s import _CRG
    return _CRG(platform, sys_clk_freq, sdram_rate="1:1")


def _sdram(platform, sys_clk_freq, crg):
    from litedram.modules import MT48LC16M16
    from litedram.phy import GENSDRPHY
    phy = GENSDRPHY(platform.request("sdram"), sys_clk_freq)
    return phy, MT48LC16M16(sys_clk_freq, "1:1"), []


BOARD = Board(
    name="ulx3s", description="Radiona ULX3S, LFE5U-85F-6BG381C, 32 MiB SDR SDRAM",
    device="LFE5U-85F-6BG381C", nextpnr_args=["--85k", "--package", "CABGA381", "--speed", "6"],
    # LiteX-Boards' ULX3S clock; the SDR SDRAM's GENSDRPHY runs at sys_clk.
    sys_clk_freq=50e6, loader_board="ulx3s",
    dram="MT48LC16M16 SDR SDRAM (32 MiB, 16 bit), LiteDRAM GENSDRPHY at sys_clk",
    make_platform=_platform, make_crg=_crg, make_sdram=_sdram)
