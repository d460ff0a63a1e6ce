"""ATU reference model: the specification of the address-translation unit.

Virtual KV page number (vpn) -> (physical DRAM byte address, compressed length, flags), via a
fully associative TLB in front of a flat page table of 64-bit PTEs kept in DRAM. The Migen
core (`core.py`) matches this model exactly: results, fault codes, TLB hit/miss sequence,
replacement decisions and counters. See README.md for the prose version.

All addresses here are DRAM byte offsets, as seen by a LiteDRAM native port (byte 0 = first
byte of the SDRAM; the CPU sees it at the SoC's ``main_ram`` base).
"""

from dataclasses import dataclass
from typing import NamedTuple

# The PTE format and the fault codes are shared with the firmware and the page engine: they
# live in gateware/common.py.
from gateware.common import (FAULT_BAD_PTE, FAULT_BUS_ERROR, FAULT_INVALID, FAULT_NONE,
                             FAULT_UNMAPPED, PTE, PTE_BYTES, PTE_LEN_WIDTH, PTE_SLOT_WIDTH,
                             SLOT_ALIGN_BITS, SLOT_MAX_BYTES, pack_pte)

POLICIES = ("lru", "fifo", "random")
COUNTER_WIDTH = 32

LFSR_SEED = 0x0001   # 16-bit Galois LFSR of the "random" policy, x^16+x^14+x^13+x^11+1
LFSR_TAPS = 0xB400


def lfsr_next(state):
    """One step of the 16-bit Galois LFSR used by the 'random' replacement policy."""
    lsb = state & 1
    state >>= 1
    if lsb:
        state ^= LFSR_TAPS
    return state


@dataclass(frozen=True)
class ATUParams:
    """Build-time parameters shared by the model and the core (checked here, once)."""
    entries:     int = 16      # TLB entries (fully associative), 1..64
    policy:      str = "lru"   # replacement when the TLB is full: lru, fifo, random
    vpn_width:   int = 24      # virtual page number bits
    paddr_width: int = 32      # physical (DRAM byte) address bits: paddr, pt_base, window
    tag_width:   int = 8       # requester tag bits, returned unchanged
    max_length:  int = SLOT_MAX_BYTES  # largest valid compressed length (4 KiB page + 64 B)

    def __post_init__(self):
        def need(cond, msg):
            if not cond:
                raise ValueError(msg)
        for name in ("entries", "vpn_width", "paddr_width", "tag_width", "max_length"):
            need(isinstance(getattr(self, name), int) and not isinstance(getattr(self, name), bool),
                 "{} must be an int, got {!r}".format(name, getattr(self, name)))
        need(1 <= self.entries <= 64, "entries must be in 1..64, got {}".format(self.entries))
        need(self.policy in POLICIES,
             "policy must be one of {}, got {!r}".format(", ".join(POLICIES), self.policy))
        need(self.policy != "random" or self.entries & (self.entries - 1) == 0,
             "policy 'random' needs a power-of-two number of entries, got {}".format(self.entries))
        need(1 <= self.vpn_width <= 31, "vpn_width must be in 1..31, got {}".format(self.vpn_width))
        need(SLOT_ALIGN_BITS < self.paddr_width <= SLOT_ALIGN_BITS + PTE_SLOT_WIDTH,
             "paddr_width must be in {}..{}, got {}".format(
                 SLOT_ALIGN_BITS + 1, SLOT_ALIGN_BITS + PTE_SLOT_WIDTH, self.paddr_width))
        need(1 <= self.tag_width <= 32, "tag_width must be in 1..32, got {}".format(self.tag_width))
        need(1 <= self.max_length < (1 << PTE_LEN_WIDTH),
             "max_length must be in 1..{}, got {}".format(
                 (1 << PTE_LEN_WIDTH) - 1, self.max_length))


class Translation(NamedTuple):
    fault:  int   # FAULT_*
    paddr:  int   # 0 on fault
    length: int   # 0 on fault
    flags:  int   # 0 on fault
    hit:    bool  # served by the TLB (no page walk)


class SparseMemory:
    """Byte-addressed little-endian memory, zero where never written (dict of 8-byte words)."""

    def __init__(self):
        self.words = {}

    def read(self, addr, n):
        out = bytearray()
        a = addr
        while a < addr + n:
            w, o = divmod(a, 8)
            take = min(8 - o, addr + n - a)
            out += self.words.get(w, 0).to_bytes(8, "little")[o:o + take]
            a += take
        return bytes(out)

    def write(self, addr, data):
        a = addr
        i = 0
        while i < len(data):
            w, o = divmod(a, 8)
            take = min(8 - o, len(data) - i)
            b = bytearray(self.words.get(w, 0).to_bytes(8, "little"))
            b[o:o + take] = data[i:i + take]
            self.words[w] = int.from_bytes(b, "little")
            a += take
            i += take

    def read64(self, addr):
        if addr % 8 == 0:
            return self.words.get(addr // 8, 0)
        return int.from_bytes(self.read(addr, 8), "little")

    def write64(self, addr, value):
        if addr % 8 == 0:
            self.words[addr // 8] = value & (2**64 - 1)
        else:
            self.write(addr, (value & (2**64 - 1)).to_bytes(8, "little"))


class ATUModel:
    """The ATU as software sees it: configuration registers, TLB, page walker, counters.

    ``memory`` needs ``read64(addr)`` (and ``write64`` for ``map``/``unmap``).
    ``port_bytes`` is the size of the DRAM address space the walker's native port reaches
    (2**address_width * data_width/8); a PTE at or beyond it is a bus error, not a read.
    """

    def __init__(self, memory=None, port_bytes=1 << 32, **params):
        self.p = p = ATUParams(**params)
        if port_bytes <= 0 or port_bytes & (port_bytes - 1):
            raise ValueError("port_bytes must be a power of two, got {}".format(port_bytes))
        self.memory = SparseMemory() if memory is None else memory
        self.port_bytes = port_bytes
        # Configuration registers (reset values: empty table, empty window).
        self.pt_base = self.pt_entries = self.dram_base = self.dram_size = 0
        # TLB state.
        self.valid = [False] * p.entries
        self.tags  = [0] * p.entries                  # vpn of each entry
        self.data  = [(0, 0, 0)] * p.entries           # (paddr, length, flags)
        # LRU state: the core keeps per-entry ages (a permutation of 0..N-1, 0 = most recent,
        # reset age[i] = i); here the same order as a dict, least recent first (O(1) updates).
        self.recency = dict.fromkeys(reversed(range(p.entries)))
        self.where = {}                                # vpn -> entry, for valid entries
        self.fifo_ptr = 0
        self.lfsr = LFSR_SEED
        self.clear_counters()

    # Registers ------------------------------------------------------------------------------

    def configure(self, pt_base=None, pt_entries=None, dram_base=None, dram_size=None):
        """Write configuration registers. Any change of value flushes the TLB (as the core
        does by itself one cycle after the change)."""
        p = self.p
        new = dict(pt_base=self.pt_base, pt_entries=self.pt_entries,
                   dram_base=self.dram_base, dram_size=self.dram_size)
        masks = dict(pt_base=p.paddr_width, pt_entries=p.vpn_width + 1,
                     dram_base=p.paddr_width, dram_size=p.paddr_width)
        for k, v in (("pt_base", pt_base), ("pt_entries", pt_entries),
                     ("dram_base", dram_base), ("dram_size", dram_size)):
            if v is not None:
                new[k] = v & ((1 << masks[k]) - 1)
        changed = any(getattr(self, k) != v for k, v in new.items())
        for k, v in new.items():
            setattr(self, k, v)
        if changed:
            self.invalidate_all()

    def clear_counters(self):
        self.hits = self.misses = self.walks = self.faults = 0
        self.last_fault_code = self.last_fault_vpn = 0

    def invalidate(self, vpn):
        i = self.where.pop(vpn, None)
        if i is not None:
            self.valid[i] = False

    def invalidate_all(self):
        self.valid = [False] * self.p.entries
        self.where = {}

    # Software helpers: write PTEs (the CPU / host does this; remember to invalidate) ---------

    def pte_addr(self, vpn):
        return (self.pt_base & ~7) + PTE_BYTES * vpn

    def map(self, vpn, paddr, length, flags=0, invalidate=True):
        self.memory.write64(self.pte_addr(vpn), pack_pte(paddr, length, flags))
        if invalidate:
            self.invalidate(vpn)

    def unmap(self, vpn, invalidate=True):
        self.memory.write64(self.pte_addr(vpn), 0)
        if invalidate:
            self.invalidate(vpn)

    # Lookup ---------------------------------------------------------------------------------

    @property
    def ages(self):
        """LRU ages per entry, as the core holds them (0 = most recently used)."""
        order = list(self.recency)
        n = len(order)
        return [n - 1 - order.index(i) for i in range(n)]

    def _touch(self, i):
        del self.recency[i]
        self.recency[i] = None

    def _victim(self):
        for i in range(self.p.entries):
            if not self.valid[i]:
                return i
        if self.p.policy == "lru":
            return next(iter(self.recency))
        if self.p.policy == "fifo":
            v = self.fifo_ptr
            self.fifo_ptr = (self.fifo_ptr + 1) % self.p.entries
            return v
        v = self.lfsr & (self.p.entries - 1)
        self.lfsr = lfsr_next(self.lfsr)
        return v

    def _count(self, name):
        setattr(self, name, (getattr(self, name) + 1) % (1 << COUNTER_WIDTH))

    def _fault(self, vpn, code):
        self._count("faults")
        self.last_fault_code, self.last_fault_vpn = code, vpn
        return Translation(code, 0, 0, 0, False)

    def lookup(self, vpn):
        p = self.p
        if not 0 <= vpn < (1 << p.vpn_width):
            raise ValueError("vpn {} does not fit {} bits".format(vpn, p.vpn_width))
        i = self.where.get(vpn)
        if i is not None:
            self._count("hits")
            if p.policy == "lru":
                self._touch(i)
            paddr, length, flags = self.data[i]
            return Translation(FAULT_NONE, paddr, length, flags, True)
        self._count("misses")
        if vpn >= self.pt_entries:
            return self._fault(vpn, FAULT_UNMAPPED)
        addr = self.pte_addr(vpn)
        if addr + PTE_BYTES > self.port_bytes:
            return self._fault(vpn, FAULT_BUS_ERROR)
        self._count("walks")
        pte = PTE.unpack(self.memory.read64(addr))
        if not pte.valid:
            return self._fault(vpn, FAULT_INVALID)
        if (pte.length == 0 or pte.length > p.max_length
                or pte.paddr >> p.paddr_width
                or pte.paddr < self.dram_base
                or pte.paddr + pte.length > self.dram_base + self.dram_size):
            return self._fault(vpn, FAULT_BAD_PTE)
        i = self._victim()
        if self.valid[i]:
            del self.where[self.tags[i]]
        self.valid[i], self.tags[i] = True, vpn
        self.where[vpn] = i
        self.data[i] = (pte.paddr, pte.length, pte.flags)
        if p.policy == "lru":
            self._touch(i)
        return Translation(FAULT_NONE, pte.paddr, pte.length, pte.flags, False)

    @staticmethod
    def cycles(result, port_latency, beats=1):
        """Core latency of one lookup, request handshake to response handshake, with no
        back-pressure and an idle port: 1 for a hit or a fault found before memory
        (unmapped, PTE beyond the port), else ``beats + port_latency + 2`` (``beats`` =
        native words per PTE, max(1, 64 // dw); ``port_latency`` = cycles from a port
        command to its data). Checked against the core by tests/test_atu_core.py."""
        if result.hit or result.fault in (FAULT_UNMAPPED, FAULT_BUS_ERROR):
            return 1
        return beats + port_latency + 2

    def counters(self):
        return dict(hits=self.hits, misses=self.misses, walks=self.walks, faults=self.faults,
                    last_fault_code=self.last_fault_code, last_fault_vpn=self.last_fault_vpn)
