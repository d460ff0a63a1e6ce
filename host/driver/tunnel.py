"""Host link to an SpecKV device on an FPGA board, through LiteX's host bridge.

A board has no CXL pads: the bridge endpoint's messages travel through the Wishbone message
tunnel (``gateware/bridge/tunnel.py``), which the host reaches with any LiteX bus bridge:
UARTBone on the board's USB UART (or Etherbone), served by ``litex_server`` and driven here
through ``litex.tools.litex_client.RemoteClient``:

    litex_server --uart --uart-port /dev/ttyUSB0 --uart-baudrate 1000000

    from litex.tools.litex_client import RemoteClient
    bus = RemoteClient(csr_csv="build/ulx3s/csr.csv"); bus.open()
    target = RemoteTarget(bus, "build/ulx3s/csr.json")
    link = TunnelLink(target)            # same interface as host.driver.link.SimLink
    link.wait_ready()
    dev = Device(link)                   # host.driver.device: mailbox commands, offload, prefetch

``RemoteTarget`` stands where ``soc.sim.driver.SimDriver`` stands in simulation: the CSR map,
and time in device cycles, read from the SoC's free-running uptime counter (timeouts of the
host tools stay in device cycles). ``TunnelLink`` is the sibling of ``SimLink``: the same
``Link``, its messages through the tunnel instead of the emulated link; it keeps the
endpoint's credits itself.
"""

import json
import time
from pathlib import Path

from gateware.bridge import tunnel as T
from gateware.bridge.protocol import LINE, Message, Op
from host.driver.link import Arrival, Link, LinkError
from soc.sim.driver import Stop

RESPONSES = (Op.CMP, Op.MEM_DATA, Op.CFG_DATA)


class RemoteTarget:
    """The device behind a LiteX bus bridge: ``bus`` has ``read(addr, length=None)`` and
    ``write(addr, value_or_list)`` (RemoteClient); ``csr_json`` is the build's register map."""

    def __init__(self, bus, csr_json):
        self.bus = bus
        m = json.loads(Path(csr_json).read_text())
        self.csr = m["csr_registers"]
        self.csr_bases = m["csr_bases"]
        self.constants = m.get("constants", {})
        self.memories = m.get("memories", {})
        if "tunnel" not in self.memories:
            raise LinkError("the build has no message tunnel (not a board build?)")
        if "timer0_uptime_cycles" not in self.csr:
            raise LinkError("the build has no uptime counter (timer_uptime)")
        self.sys_clk_freq = float(self.constants["config_clock_frequency"])
        self.console = bytearray()  # firmware console bytes drained so far

    # SimDriver's interface, as host.driver.link / host.driver.device use it ----------------------------------
    @property
    def cycle(self):
        """Device cycles since reset (the SoC's uptime counter)."""
        self.bus.write(self.csr["timer0_uptime_latch"]["addr"], 1)
        hi, lo = self.bus.read(self.csr["timer0_uptime_cycles"]["addr"], 2)
        return (hi << 32) | lo

    def run(self, max_cycles, until=Stop(0)):
        """The device runs by itself: wait the wall time of ``max_cycles`` device cycles."""
        time.sleep(max_cycles / self.sys_clk_freq)
        return Stop.MAX_CYCLES

    def bus_read(self, addr):
        return self.bus.read(addr)

    def bus_write(self, addr, value):
        self.bus.write(addr, value)

    def csr_read(self, name):
        reg = self.csr[name]
        words = self.bus.read(reg["addr"], reg["size"]) if reg["size"] > 1 else [self.bus.read(reg["addr"])]
        value = 0
        for w in words:
            value = (value << 32) | w
        return value

    def csr_write(self, name, value):
        reg = self.csr[name]
        n = reg["size"]
        self.bus.write(reg["addr"], [(value >> (32 * (n - 1 - i))) & 0xFFFFFFFF for i in range(n)])

    # Firmware console (LiteX crossover UART) ----------------------------------------------------
    def console_read(self, limit=4096):
        """Drain the firmware's console (the crossover UART's device->host FIFO); returns the
        new bytes. The firmware blocks when its console is full, so a host drains it."""
        rxtx = self.csr["uart_xover_rxtx"]["addr"]
        rxempty = self.csr["uart_xover_rxempty"]["addr"]
        out = bytearray()
        while len(out) < limit and not self.bus.read(rxempty):
            out.append(self.bus.read(rxtx) & 0xFF)  # the read pops the byte
        self.console += out
        return bytes(out)


class TunnelLink(Link):
    """A :class:`~host.driver.link.Link` over the message tunnel of a board (or of its
    simulation)."""

    RESPONSE_TIMEOUT = 20_000_000
    READY_TIMEOUT = 200_000_000
    READY_POLL = 1_000_000

    def __init__(self, target, credits=None, poll_interval=0.0):
        super().__init__(target, credits, target.sys_clk_freq)
        self.profile = None
        self.base = target.memories["tunnel"]["base"]
        ident = target.bus.read(self.base + 4 * T.ID)
        if ident != T.TUNNEL_ID:
            raise LinkError(f"no message tunnel at 0x{self.base:x} (id 0x{ident:08x})")
        self.poll_interval = poll_interval
        self._free = self.credits
        self._waiting = []
        self._counts = {"h2d_msgs": 0, "d2h_msgs": 0, "h2d_bytes": 0, "d2h_bytes": 0}

    # Tunnel registers ---------------------------------------------------------------------------
    def _push(self, msg):
        hdr = msg.header()
        words = [(hdr >> (32 * i)) & 0xFFFFFFFF for i in range(T.HDR_WORDS)]
        words += [int.from_bytes(msg.data[4 * j:4 * j + 4], "little") for j in range(T.DATA_WORDS)]
        # Staging words then PUSH, one burst (the tunnel holds it while a push is pending).
        self.target.bus.write(self.base, words + [1])
        self._counts["h2d_msgs"] += 1
        self._counts["h2d_bytes"] += 16 + (LINE if msg.opcode == Op.MEM_WR else 0)

    def _pop(self):
        """The head d2h message, or None; one burst read of STATUS and the head."""
        n = 1 + T.HDR_WORDS + T.DATA_WORDS
        words = self.target.bus.read(self.base + 4 * T.D2H_STATUS, n)
        if not words[0] & 1:
            return None
        self.target.bus.write(self.base + 4 * T.D2H_POP, 1)
        hdr = sum(w << (32 * i) for i, w in enumerate(words[1:1 + T.HDR_WORDS]))
        data = b"".join(w.to_bytes(4, "little") for w in words[1 + T.HDR_WORDS:])
        m = Message.from_header(hdr, data)
        self._counts["d2h_msgs"] += 1
        self._counts["d2h_bytes"] += 16 + (LINE if m.opcode in (Op.MEM_DATA, Op.HOST_WR) else 0)
        return m

    def _pump(self):
        while self._free > 0 and self._waiting:
            m = self._waiting.pop(0)
            self._push(m)
            self._free -= 1

    # The Link interface ---------------------------------------------------------------------------
    def set_host_memory(self, base, size):
        """``HostWr`` lines are applied by :meth:`recv` as they are drained from the tunnel."""
        self.host_memory_base = base
        self.host_memory = bytearray(size)

    @property
    def host_writes(self):
        return self._py_host_writes

    def send(self, msg):
        self.sent[msg.tag] = (msg, None)
        self._waiting.append(msg)
        self._pump()

    def recv(self):
        """Times are not known on a board: an arrival's cycles are None."""
        out = []
        while True:
            m = self._pop()
            if m is None:
                break
            if m.opcode == Op.HOST_WR:
                self._host_write(m)
                continue
            if m.opcode in RESPONSES:
                self._free = min(self.credits, self._free + 1)
                self._pump()
            out.append(Arrival(m, None, None))
        return out

    def _arrivals(self, start, max_cycles):
        """An arrival's ``latency``: device cycles from the send until the host had the
        response (the UART's transfers included)."""
        arrived = self.recv()
        if arrived:
            now = self.cycle
            for a in arrived:
                a.latency = now - start
        elif self.poll_interval:
            time.sleep(self.poll_interval)
        return arrived

    def stats(self):
        return dict(credits=self._free, waiting=len(self._waiting), **self._counts)

    def _while_waiting(self):
        # A full console would stall the firmware's boot: drain it while waiting.
        self.target.console_read()

    def _when_ready(self):
        self.target.console_read()
        self.set_dma_watchdogs()

    def set_dma_watchdogs(self, cycles=None):
        """Lengthen the DMA watchdogs (``engine_timeout``, ``dma_timeout``; default 4096
        cycles without progress) to ``cycles`` (default: one second of device time). Through
        the tunnel the host drains each HostWr line over the UART, so a page DMA waits tens of
        thousands of cycles per line for the host; with the default watchdog it would give
        up (DMA_ERROR, status timeout). ``wait_ready`` sets them."""
        cycles = int(cycles if cycles is not None else self.sys_clk_freq)
        for name in ("engine_timeout", "dma_timeout"):
            if name in self.target.csr:
                self.target.csr_write(name, cycles)
