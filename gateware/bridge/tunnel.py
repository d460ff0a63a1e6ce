"""Message tunnel: the bridge link carried over a Wishbone slave, for boards.

On an FPGA board there are no CXL pads. The bridge endpoint still speaks its messages
(``protocol.py``: 128-bit header + 64 B line); this core carries them over any Wishbone master
the host reaches, e.g. LiteX's UARTBone or Etherbone driven by ``litex_server``. The host
stages one h2d message in registers and pushes it; it reads d2h messages from a one-entry
head register and pops them. ``host/driver/tunnel.py`` is the host side.

The core drives a record with the same fields as the simulation platform's ``bridge`` pads
(``BRIDGE_PADS_LAYOUT``), so ``SpecKVSoC.add_bridge`` wires it exactly as it wires the pads.

Register map (byte offsets from the base; 32-bit words, header and data little-endian words:
header word i = header bits 32i+31..32i, data word j = line bytes 4j..4j+3):

| offset        | access | meaning |
| ------------- | ------ | ------- |
| 0x00 - 0x0c   | W/R    | h2d header words 0..3 (staging) |
| 0x10 - 0x4c   | W/R    | h2d data words 0..15 (staging) |
| 0x50          | W      | PUSH: hand the staged message to the endpoint (any value) |
| 0x50          | R      | bit 0: a pushed message has not been taken yet |
| 0x80          | R      | STATUS: bit 0 a d2h message is in the head; bit 1 as 0x50 bit 0 |
| 0x84 - 0x90   | R      | d2h head header words 0..3 |
| 0x94 - 0xd0   | R      | d2h head data words 0..15 |
| 0xd4          | W      | POP: drop the head message (any value) |
| 0xfc          | R      | ID: ``TUNNEL_ID`` ("TNL1") |

Writes to the staging registers or PUSH while a pushed message is still waiting are held
(no ack) until the endpoint takes it, so a message can never be overwritten half-sent. The
host keeps to the endpoint's credits (one request per credit, a response returns it), so the
endpoint's request queue always has room and a held write lasts a few cycles. A host that
reads STATUS (0x80) and the head (0x84..0xd0) in one 21-word burst sees a consistent message:
the head only changes on POP.
"""

from migen import Case, Cat, If, Module, Signal

from litex.soc.interconnect import wishbone

HDR_WORDS, DATA_WORDS = 4, 16
TUNNEL_SIZE = 0x100
TUNNEL_ID = 0x314C4E54  # "TNL1" in ASCII, little-endian

# Word offsets (byte offset / 4).
H2D_HDR, H2D_DATA, H2D_PUSH = 0x00 // 4, 0x10 // 4, 0x50 // 4
D2H_STATUS, D2H_HDR, D2H_DATA, D2H_POP = 0x80 // 4, 0x84 // 4, 0x94 // 4, 0xd4 // 4
ID = 0xfc // 4

# Same fields as the simulation platform's "bridge" pads (soc/platform.py).
BRIDGE_PADS_LAYOUT = [
    ("h2d_valid", 1), ("h2d_ready", 1), ("h2d_hdr", 128), ("h2d_data", 512),
    ("d2h_valid", 1), ("d2h_ready", 1), ("d2h_hdr", 128), ("d2h_data", 512),
]


class MessageTunnel(Module):
    """Wishbone slave ``bus`` (32-bit, word addressed, ``TUNNEL_SIZE`` bytes) <-> the bridge
    message record ``pads`` (``BRIDGE_PADS_LAYOUT``)."""
    def __init__(self, pads):
        self.bus = bus = wishbone.Interface(data_width=32, adr_width=30)
        self.pads = pads

        # h2d staging registers and the pending flag.
        h2d_words = [Signal(32, name=f"h2d_w{i}") for i in range(HDR_WORDS + DATA_WORDS)]
        pending = Signal()
        # d2h head register.
        head = Signal(128 + 512)
        head_valid = Signal()
        head_words = [head[32 * i:32 * (i + 1)] for i in range(HDR_WORDS + DATA_WORDS)]

        self.comb += [
            pads.h2d_valid.eq(pending),
            pads.h2d_hdr.eq(Cat(*h2d_words[:HDR_WORDS])),
            pads.h2d_data.eq(Cat(*h2d_words[HDR_WORDS:])),
            pads.d2h_ready.eq(~head_valid),
        ]

        offset = Signal(6)
        access = Signal()
        stall = Signal()
        pop = Signal()
        push = Signal()
        self.comb += [
            offset.eq(bus.adr[:6]),
            access.eq(bus.cyc & bus.stb & ~bus.ack),
            # Writes below POP that touch the staging area or PUSH wait for the endpoint.
            stall.eq(bus.we & pending & (offset <= H2D_PUSH)),
            push.eq(access & bus.we & ~stall & (offset == H2D_PUSH)),
            pop.eq(access & bus.we & (offset == D2H_POP)),
        ]

        # Wishbone: ack one cycle after the request (registered read data).
        cases = {i: bus.dat_r.eq(w) for i, w in enumerate(h2d_words)}
        cases[H2D_PUSH] = bus.dat_r.eq(pending)
        cases[D2H_STATUS] = bus.dat_r.eq(Cat(head_valid, pending))
        cases.update({D2H_HDR + i: bus.dat_r.eq(w) for i, w in enumerate(head_words)})
        cases[ID] = bus.dat_r.eq(TUNNEL_ID)
        cases["default"] = bus.dat_r.eq(0)
        self.sync += [
            bus.ack.eq(access & ~stall),
            Case(offset, cases),
        ]
        for i, w in enumerate(h2d_words):
            for b in range(4):
                self.sync += If(access & bus.we & ~stall & (offset == i) & bus.sel[b],
                                w[8 * b:8 * (b + 1)].eq(bus.dat_w[8 * b:8 * (b + 1)]))
        self.sync += [
            If(push, pending.eq(1)).Elif(pads.h2d_ready, pending.eq(0)),
            If(pads.d2h_valid & ~head_valid,
                head.eq(Cat(pads.d2h_hdr, pads.d2h_data)),
                head_valid.eq(1),
            ).Elif(pop, head_valid.eq(0)),
        ]
