"""CXL.mem-style message protocol between the host and the bridge endpoint.

One message is one flit: a 128-bit header plus a 64-byte data unit (a CXL cache line),
in each direction. This mirrors CXL.mem at message level: a host read of device memory is
one MemRd per 64 B line (answered by a MemData data response), a write is one MemWr with its
line (answered by a Cmp completion without data). Config messages give the host 32-bit
access to CSRs and the firmware mailbox.

Header (128 bits, little-endian fields):

| bits     | field  | meaning |
| -------- | ------ | ------- |
| 7:0      | opcode | see ``Op`` |
| 15:8     | tag    | chosen by the requester, echoed in the response |
| 23:16    | status | responses: see ``Status``; 0 in requests |
| 31:24    | -      | reserved, 0 |
| 95:32    | addr   | byte address (64 B aligned for Mem*, 4 B aligned for Cfg*) |
| 127:96   | value  | 32-bit data of CfgWr / CfgData |

Data: 512 bits, byte ``i`` of the line in bits ``8i+7:8i``.
"""

import enum
from dataclasses import dataclass, field

from gateware.common import LINE_BYTES, PTE_FLAGS_WIDTH, PTE_LEN_WIDTH

HDR_BITS  = 128
LINE      = LINE_BYTES      # 64 bytes: one cache line per message
DATA_BITS = 8 * LINE


class Op(enum.IntEnum):
    # host -> device
    MEM_RD   = 0x01  # read one 64 B line of device memory
    MEM_WR   = 0x02  # write one 64 B line of device memory
    CFG_RD   = 0x03  # 32-bit read of a CSR / mailbox word
    CFG_WR   = 0x04  # 32-bit write of a CSR / mailbox word
    PAGE_RD  = 0x05  # demand read of KV page `value` (vpn): the device deposits the
                     # decompressed page at host address `addr` (HostWr), then answers Cmp
    XLATE    = 0x06  # translate KV page `value` (vpn) without moving data (an ATS-style
                     # translation request): Cmp with addr = DRAM slot, value = length |
                     # flags << 16 | hit << 23, or PAGE_FAULT with the ATU fault code
    # device -> host
    CMP      = 0x81  # completion without data (MemWr, CfgWr, errors)
    MEM_DATA = 0x82  # data response to MemRd
    CFG_DATA = 0x83  # data response to CfgRd (value field)
    HOST_WR  = 0x90  # device writes bytes [0, value) of a 64 B line into host memory
                     # (DMA deposit; value = byte count 1..64; no response)


class Status(enum.IntEnum):
    OK           = 0
    BUS_ERROR    = 1  # the device bus answered with an error
    UNSUPPORTED  = 2  # unknown opcode
    MISALIGNED   = 3  # address not aligned to the access size
    OUT_OF_RANGE = 4  # address outside the windows the message may reach
    PAGE_FAULT   = 5  # PageRd: the ATU refused the vpn (value = ATU fault code)
    DMA_ERROR    = 6  # PageRd: the page transfer failed (value = DMA status code)


# Device-initiated writes into host memory (from the DMA engine): one line each.
host_write_layout = [
    ("addr", 64),         # host byte address, 64 B aligned
    ("data", DATA_BITS),  # the line
    ("nbytes", 7),        # valid bytes from the line start, 1..64 (sent in `value`)
    ("tag",  8),          # DMA job tag, carried for tracing
]

# PageRd requests forwarded to the page engine, and its answers.
page_request_layout = [
    ("tag",  8),    # bridge request tag
    ("vpn",  32),   # virtual KV page number
    ("addr", 64),   # host byte address of the destination, 64 B aligned (PageRd)
    ("xlate", 1),   # 1: XLATE, translate only (no DMA)
]
page_response_layout = [
    ("tag",    8),   # tag of the PageRd / XLATE
    ("status", 8),   # Status: OK, PAGE_FAULT or DMA_ERROR
    ("value",  32),  # ATU fault or DMA status code with the errors; XLATE: xlate_value()
    ("addr",   64),  # XLATE: DRAM byte address of the page slot; else 0
]


# XLATE answer ``value``: the PTE's length and flags fields, then the TLB hit flag.
_XLATE_LEN_MASK   = (1 << PTE_LEN_WIDTH) - 1          # 0xFFFF
_XLATE_FLAGS_MASK = (1 << PTE_FLAGS_WIDTH) - 1        # 0x7F
_XLATE_HIT_BIT    = PTE_LEN_WIDTH + PTE_FLAGS_WIDTH    # 23


def xlate_value(length, flags, hit):
    """The ``value`` of an XLATE answer: PTE length, flags and the TLB hit flag."""
    return ((length & _XLATE_LEN_MASK) | (flags & _XLATE_FLAGS_MASK) << PTE_LEN_WIDTH
            | int(bool(hit)) << _XLATE_HIT_BIT)


def xlate_fields(value):
    """(length, flags, hit) of an XLATE answer's ``value``."""
    return (value & _XLATE_LEN_MASK, (value >> PTE_LEN_WIDTH) & _XLATE_FLAGS_MASK,
            bool(value >> _XLATE_HIT_BIT & 1))

# Migen stream layout of one message (payload), used by both directions.
message_layout = [
    ("opcode", 8),    # Op
    ("tag",    8),    # requester's tag, echoed
    ("status", 8),    # Status (responses)
    ("addr",   64),   # byte address
    ("value",  32),   # CfgWr / CfgData word
    ("data",   DATA_BITS),  # one 64 B line
]


@dataclass
class Message:
    opcode: int
    tag: int = 0
    addr: int = 0
    value: int = 0
    data: bytes = bytes(LINE)
    status: int = 0

    def __post_init__(self):
        if len(self.data) != LINE:
            raise ValueError(f"a message carries exactly {LINE} data bytes, got {len(self.data)}")
        if not 0 <= self.tag < 256:
            raise ValueError(f"tag must fit 8 bits, got {self.tag}")

    def header(self):
        """The 128-bit header as an integer."""
        return ((self.opcode & 0xFF) | (self.tag & 0xFF) << 8 | (self.status & 0xFF) << 16
                | (self.addr & (2**64 - 1)) << 32 | (self.value & 0xFFFFFFFF) << 96)

    @classmethod
    def from_header(cls, hdr, data=bytes(LINE)):
        return cls(opcode=hdr & 0xFF, tag=(hdr >> 8) & 0xFF, status=(hdr >> 16) & 0xFF,
                   addr=(hdr >> 32) & (2**64 - 1), value=(hdr >> 96) & 0xFFFFFFFF,
                   data=bytes(data))

    def data_int(self):
        return int.from_bytes(self.data, "little")

    def __repr__(self):
        try:
            op = Op(self.opcode).name
        except ValueError:
            op = f"0x{self.opcode:02x}"
        st = Status(self.status).name if self.status in Status._value2member_map_ else self.status
        return f"Message({op}, tag={self.tag}, addr=0x{self.addr:x}, value=0x{self.value:x}, status={st})"


@dataclass(frozen=True)
class Window:
    """A byte-address range [base, base + size) a message class may reach."""
    base: int
    size: int

    def contains(self, addr, length):
        return self.base <= addr and addr + length <= self.base + self.size


@dataclass
class EndpointConfig:
    """Address windows and queueing of the endpoint."""
    mem_windows: list = field(default_factory=list)  # Window list for MemRd/MemWr
    cfg_windows: list = field(default_factory=list)  # Window list for CfgRd/CfgWr
    credits: int = 8  # requests the host may have outstanding (input queue depth)

    def __post_init__(self):
        if self.credits < 1:
            raise ValueError(f"credits must be >= 1, got {self.credits}")
        for w in self.mem_windows:
            if w.base % LINE or w.size % LINE:
                raise ValueError(f"memory window {w} is not {LINE} B aligned")
