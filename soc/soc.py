"""The SpecKV SoC: VexRiscv + ROM firmware + SRAM + LiteDRAM + UART + identifier.

Later issues add the cache engine (bridge endpoint, ATU, DMA, codec) here; each core lives
in ``gateware/`` and is wired in by one ``add_*`` method.
"""

from migen import Cat, Module, Replicate

from litex.soc.integration.soc_core import SoCCore
from litex.soc.interconnect import wishbone
from litex.soc.interconnect.csr import AutoCSR, CSRField, CSRStatus

from gateware.atu.core import ATU
from gateware.bridge.core import BridgeEndpoint
from gateware.bus import WishboneSlice
from gateware.codec.compressor import KVCompressor
from gateware.codec.decompressor import KVDecompressor
from gateware.dma.codec import CodecCDC, PackedCodec
from gateware.dma.core import DMA
from gateware.arbiter import RoundRobin
from gateware.engine.core import PageEngine
from gateware.bridge.protocol import HDR_BITS, EndpointConfig, Window
from soc.mailbox import MAILBOX_SIZE, VPN_WIDTH
from soc.simctrl import SimControl

# "SPKV" in ASCII: the identifier register's magic, read back by host tools and tests.
IDENT_MAGIC   = 0x53504B56
IDENT_VERSION = 0x00000100  # major.minor.patch as 0x00MMmmpp -> 0.1.0

# Memory map (bytes) and sizes, kept fixed so the register map does not move between the
# firmware pass and the final pass of the build.
ROM_SIZE  = 0x8000   # 32 KiB: firmware (text + rodata + data image)
SRAM_SIZE = 0x10000  # 64 KiB: data, bss, stack (predictor state, L2 directory)
MAILBOX_BASE = 0x20000000  # host <-> firmware mailbox (hints, commands): soc/mailbox.py
BRIDGE_CREDITS = 8   # requests the host may have outstanding at the bridge endpoint
ENGINE_DW = 64       # LiteDRAM native-port width of the cache engine (ATU walker, DMA)
ATU_ENTRIES = 16     # TLB entries (fully associative)
ATU_POLICY = "lru"   # TLB replacement
PADDR_WIDTH = 32     # ATU physical (DRAM byte) address bits


def cfu_verilog():
    """Path of the LSTM CFU's Verilog (``Cfu``), generated from its Migen core."""
    from pathlib import Path
    from gateware.lstm_cfu.core import write_verilog
    return str(write_verilog(Path(__file__).resolve().parents[1] / "build" / "cfu"))


def _pad_rom(words):
    words = list(words) if words is not None else []
    return words + [0] * (ROM_SIZE // 4 - len(words))


class Identifier(Module, AutoCSR):
    """Read-only identifier registers: project magic, version and the sys_clk frequency."""
    def __init__(self, sys_clk_freq):
        self.magic = CSRStatus(32, reset=IDENT_MAGIC, description="Project magic, ASCII 'SPKV'.")
        self.version = CSRStatus(32, fields=[
            CSRField("patch", size=8, offset=0,  reset=(IDENT_VERSION >> 0) & 0xFF,
                     description="Patch version."),
            CSRField("minor", size=8, offset=8,  reset=(IDENT_VERSION >> 8) & 0xFF,
                     description="Minor version."),
            CSRField("major", size=8, offset=16, reset=(IDENT_VERSION >> 16) & 0xFF,
                     description="Major version."),
        ], description="Gateware version.")
        self.sys_clk_freq = CSRStatus(32, reset=int(sys_clk_freq),
                                      description="sys_clk frequency in Hz the build assumes.")


class SpecKVSoC(SoCCore):
    """SoC shared by simulation and boards.

    ``platform``/``crg`` are given by the target; in simulation ``uart_name="sim"`` gives the
    stream UART and ``sdram_phy`` is LiteDRAM's ``SDRAMPHYModel``.
    """
    def __init__(self, platform, sys_clk_freq, crg,
                 cpu_variant="standard",
                 rom_init=None,
                 uart_name="serial",
                 sdram_phy=None, sdram_module=None,
                 host_bus_pads=None,
                 bridge_pads=None,
                 sim_ctrl_pads=None,
                 codec_mode="kivi_k4v3",
                 dma_dw=ENGINE_DW,
                 codec_cd=None,
                 **kwargs):
        if sys_clk_freq <= 0:
            raise ValueError(f"sys_clk_freq must be positive, got {sys_clk_freq}")
        if rom_init is not None and len(rom_init) * 4 > ROM_SIZE:
            raise ValueError(f"firmware image is {len(rom_init) * 4} bytes, ROM holds {ROM_SIZE}")
        self.crg = crg
        SoCCore.__init__(self, platform, clk_freq=sys_clk_freq,
            ident                = "SpecKV-FPGA SoC",
            # No build date in the identifier: the same design gives the same Verilog, so
            # the Verilator model cache hits.
            ident_version        = False,
            cpu_type             = "vexriscv",
            cpu_variant          = cpu_variant,
            integrated_rom_size  = ROM_SIZE,
            # Padded to the full ROM so the Verilog (and so the Verilator model) only changes
            # when the hardware does; a placeholder image lets the first pass skip the BIOS.
            integrated_rom_init  = _pad_rom(rom_init),
            integrated_sram_size = SRAM_SIZE,
            uart_name            = uart_name,
            # full+cfu: the LSTM custom function unit, converted from Migen (gateware/lstm_cfu)
            cpu_cfu              = cfu_verilog() if "cfu" in cpu_variant else None,
            **kwargs)
        self.identifier_regs = Identifier(sys_clk_freq)

        if sdram_phy is not None:
            # LiteX's DRAM library finds a DDR PHY's (leveling) registers as "ddrphy".
            ddr = sdram_phy.settings.memtype.startswith("DDR")
            self.add_module(name="ddrphy" if ddr else "sdrphy", module=sdram_phy)
            self.add_sdram("sdram",
                phy                     = sdram_phy,
                module                  = sdram_module,
                l2_cache_size           = 8192,
                l2_cache_min_data_width = 128,
            )
            self._slice_main_ram()
            # The firmware runs its own short DRAM check; skip the library's long memtest.
            self.add_constant("SDRAM_TEST_DISABLE")
            # the L2 cache's line (one word of its DRAM side): the firmware's write-back stride
            self.add_constant("L2_LINE_BYTES", self.l2_cache.slave.data_width // 8)

        # Mailbox: a small RAM both the host (over the bridge) and the firmware reach.
        self.add_ram("mbox", origin=MAILBOX_BASE, size=MAILBOX_SIZE)  # "mailbox" is a SystemVerilog keyword

        if host_bus_pads is not None:
            self.add_host_bus(host_bus_pads)
        if bridge_pads is not None:
            self.add_bridge(bridge_pads, with_pages=sdram_phy is not None)
            if sdram_phy is not None:
                self.add_cache_engine(codec_mode, dma_dw, codec_cd)
        if sim_ctrl_pads is not None:
            self.sim_ctrl = SimControl(sim_ctrl_pads)
        if "cfu" in cpu_variant:
            self.add_lstm_cfu_constants()

    def add_lstm_cfu_constants(self):
        """The LSTM custom function unit's instruction codes, as soc.h constants for the
        firmware (the unit itself is the CPU's ``Cfu``: ``cfu_verilog``)."""
        from gateware.lstm_cfu import model as cfu
        self.add_constant("LSTM_CFU")
        for name, code in cfu.OPS.items():
            self.add_constant(f"LSTM_CFU_OP_{name.upper()}", code)
        for name in ("R_WX", "R_WR", "R_BIAS", "R_LUT", "R_CFG"):
            self.add_constant(f"LSTM_CFU_{name}", getattr(cfu, name))
        self.add_constant("LSTM_CFU_INFO", cfu.INFO)

    def _slice_main_ram(self):
        """Puts a registered Wishbone stage between the SoC bus and the L2 cache: the L2
        answers a hit combinationally from its tag compare, so the bus arbiter's grant, the
        address mux, the compare and every master's ack handling were one path (the board
        builds' longest after the cache engine's own). Costs two cycles per L2 access, which
        the CPU's L1 caches mostly hide."""
        wb_l2 = self.bus.slaves["main_ram"]
        front = wishbone.Interface(data_width=wb_l2.data_width,
                                   address_width=wb_l2.address_width, addressing="word")
        self.bus.slaves["main_ram"] = front
        self.main_ram_slice = WishboneSlice(front, wb_l2)

    def add_cache_engine(self, codec_mode, dma_dw=ENGINE_DW, codec_cd=None):
        """ATU + page DMA (with the KV decompressor) + PageEngine behind the bridge: the
        demand-read path. Each core gets its own LiteDRAM crossbar port, up-converted to
        ENGINE_DW bits (the DMA engines and their codecs: ``dma_dw``; board builds use 32 to
        fit the ECP5-85F). ``codec_cd``: the codec cores run in this clock domain behind
        ``CodecCDC`` (DDR3 boards); None: on sys_clk."""
        def codec(core):
            c = PackedCodec(core)
            return c if codec_cd is None else CodecCDC(c, cd=codec_cd)
        xbar = self.sdram.crossbar
        self.atu = ATU(xbar.get_port(mode="read", data_width=ENGINE_DW), entries=ATU_ENTRIES,
                       policy=ATU_POLICY, vpn_width=VPN_WIDTH, paddr_width=PADDR_WIDTH)
        self.atu.add_csr()
        dec = codec(KVDecompressor(codec_mode, dw=dma_dw))
        self.page_dma = DMA(xbar.get_port(mode="read", data_width=dma_dw),
                            xbar.get_port(mode="write", data_width=dma_dw),
                            decompressor=dec)
        self.engine = PageEngine(self.atu, self.page_dma)
        self.engine.add_csr()
        # The firmware's DMA engine (control plane: offload compression, prefetch deposits),
        # driven through its CSRs.
        self.dma = DMA(xbar.get_port(mode="read", data_width=dma_dw),
                       xbar.get_port(mode="write", data_width=dma_dw),
                       compressor=codec(KVCompressor(codec_mode, dw=dma_dw)),
                       decompressor=codec(KVDecompressor(codec_mode, dw=dma_dw)))
        self.dma.add_csr()
        self.add_constant("CODEC_MODE_" + codec_mode.upper())
        self.host_lines = RoundRobin(self.bridge.host_write.description.payload_layout, 2)
        self.comb += [
            self.bridge.page_req.connect(self.engine.page_req),
            self.engine.page_rsp.connect(self.bridge.page_rsp),
            self.page_dma.host_source.connect(self.host_lines.sinks[0]),
            self.dma.host_source.connect(self.host_lines.sinks[1]),
            self.host_lines.source.connect(self.bridge.host_write),
        ]

    def add_bridge(self, pads, credits=BRIDGE_CREDITS, with_pages=False):
        """The CXL.mem-style bridge endpoint: host MemRd/MemWr reach main RAM, CfgRd/CfgWr
        reach the CSRs and the mailbox; nothing else."""
        mem = []
        if "main_ram" in self.bus.regions:
            r = self.bus.regions["main_ram"]
            mem.append(Window(r.origin, r.size))
        # The CSR region is created at finalize time; its base and size are fixed here.
        cfg = [Window(self.mem_map["csr"], 0x10000), Window(MAILBOX_BASE, MAILBOX_SIZE)]
        self.bridge = ep = BridgeEndpoint(EndpointConfig(mem_windows=mem, cfg_windows=cfg,
                                                         credits=credits),
                                          with_pages=with_pages)
        ep.add_csr()
        self.bus.add_master(name="bridge", master=ep.bus)
        if mem:
            # Host memory lines reach LiteDRAM on their own port, not through the CPU's
            # write-back L2 cache: the ATU and the DMA engines read DRAM directly.
            from litedram.frontend.wishbone import LiteDRAMWishbone2Native
            self.bridge_mem = LiteDRAMWishbone2Native(
                ep.mem_bus, self.sdram.crossbar.get_port(data_width=32),
                base_address=mem[0].base)
            self.add_constant("BRIDGE_MEM_BYPASSES_L2")
        self.add_constant("CXL_LINK_CREDITS", credits)
        h2d, d2h = ep.sink, ep.source
        self.comb += [
            h2d.valid.eq(pads.h2d_valid),
            pads.h2d_ready.eq(h2d.ready),
            h2d.opcode.eq(pads.h2d_hdr[0:8]),
            h2d.tag.eq(pads.h2d_hdr[8:16]),
            h2d.status.eq(pads.h2d_hdr[16:24]),
            h2d.addr.eq(pads.h2d_hdr[32:96]),
            h2d.value.eq(pads.h2d_hdr[96:128]),
            h2d.data.eq(pads.h2d_data),
            pads.d2h_valid.eq(d2h.valid),
            d2h.ready.eq(pads.d2h_ready),
            pads.d2h_hdr.eq(Cat(d2h.opcode, d2h.tag, d2h.status, Replicate(0, 8),
                                d2h.addr, d2h.value)),
            pads.d2h_data.eq(d2h.data),
        ]
        assert HDR_BITS == 128

    def add_host_bus(self, pads):
        """A Wishbone master driven from outside: the host's CSR/memory path."""
        bus = wishbone.Interface(data_width=32, adr_width=30)
        self.comb += [
            bus.adr.eq(pads.adr),
            bus.dat_w.eq(pads.dat_w),
            bus.sel.eq(pads.sel),
            bus.cyc.eq(pads.cyc),
            bus.stb.eq(pads.stb),
            bus.we.eq(pads.we),
            pads.dat_r.eq(bus.dat_r),
            pads.ack.eq(bus.ack),
            pads.err.eq(bus.err),
        ]
        self.bus.add_master(name="host", master=bus)
