"""SimDriver: drive the Verilator SoC model from Python without one call per clock.

The model's shared library holds pyverilator's wrapper plus ``native.cpp``. Python asks the
native loop to run up to N cycles and stop on events (a UART byte, a pattern on the UART,
the firmware's finish, a host-bus completion); it touches the model only when something
happens.

    drv = SimDriver(so_path, csr_json="build/sim/csr.json")
    drv.reset()
    text = drv.uart_read_until(b"speckv> ", max_cycles=5_000_000)
    magic = drv.csr_read("identifier_regs_magic")
"""

import ctypes
import enum
import json
from pathlib import Path


class Stop(enum.IntFlag):
    MAX_CYCLES = 1 << 0
    UART_TX    = 1 << 1
    FINISH     = 1 << 2
    BUS_DONE   = 1 << 3
    TX_MATCH   = 1 << 4
    D2H        = 1 << 5


class SimTimeout(RuntimeError):
    """The cycle budget ran out before the awaited event."""


class BusError(RuntimeError):
    """A host-bus transaction ended with a Wishbone error or did not complete."""


class SimDriver:
    def __init__(self, so_path, csr_json=None, command_args=()):
        import pyverilator  # the pyverilator-mm fork
        self.so_path = str(so_path)
        self._pv = pyverilator.PyVerilator(self.so_path, auto_eval=False,
                                           command_args=list(command_args))
        self.lib = self._pv.lib
        self._bind()
        self._state = self.lib.spk_new(self._pv.model)
        self._trace = None
        self.csr = {}
        self.csr_bases = {}
        self.constants = {}
        self.memories = {}
        if csr_json is not None:
            self.load_csr_map(csr_json)

    # ctypes signatures ---------------------------------------------------------------------
    def _bind(self):
        L, vp, u32, u64 = self.lib, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
        u8p = ctypes.POINTER(ctypes.c_uint8)
        sigs = {
            "spk_new":            ([vp], vp),
            "spk_free":           ([vp], None),
            "spk_cycle_count":    ([vp], u64),
            "spk_run":            ([vp, u64, u32], u32),
            "spk_set_reset":      ([vp, u32], None),
            "spk_uart_write":     ([vp, u8p, u32], None),
            "spk_uart_pending_rx": ([vp], u32),
            "spk_uart_read":      ([vp, u8p, u32], u32),
            "spk_set_tx_pattern": ([vp, u8p, u32], None),
            "spk_bus_xfer":       ([vp, u32, u32, u32, u32, u64, ctypes.POINTER(u32)], u32),
            "spk_finished":       ([vp], u32),
            "spk_finish_code":    ([vp], u32),
            "spk_set_trace":      ([vp, vp, u64, u64], None),
            "spk_bare_loop":      ([vp, u64], u64),
            "spk_link_config":    ([vp, ctypes.c_double, u64, u64, u32, u64], None),
            "spk_link_send":      ([vp, ctypes.POINTER(u32), ctypes.POINTER(u32)], None),
            "spk_link_recv":      ([vp, ctypes.POINTER(u32), ctypes.POINTER(u32),
                                    ctypes.POINTER(u64)], u32),
            "spk_link_stats":     ([vp, ctypes.POINTER(u64)], None),
            "spk_link_stalls":    ([vp, u32, u32, u64], None),
            "spk_link_faults":    ([vp, u32, u32, u32, u32, u64], None),
            "spk_link_reset":     ([vp], None),
            "spk_link_host_memory": ([vp, vp, u64, u64], None),
            "spk_link_host_writes": ([vp], u64),
            "spk_timed_run":      ([vp, u64], u64),
            "start_vcd_trace":    ([vp, ctypes.c_char_p], vp),
            "stop_vcd_trace":     ([vp], ctypes.c_int),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(L, name)
            fn.argtypes, fn.restype = args, res

    def close(self):
        if self._state is not None:
            self.trace_stop()
            self.lib.spk_free(self._state)
            self._state = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Clock ---------------------------------------------------------------------------------
    @property
    def cycle(self):
        """Rising edges simulated so far."""
        return self.lib.spk_cycle_count(self._state)

    def reset(self, cycles=4):
        """Hold sys_rst for ``cycles`` clock cycles."""
        self.lib.spk_set_reset(self._state, 1)
        self.lib.spk_run(self._state, cycles, 0)
        self.lib.spk_set_reset(self._state, 0)

    def run(self, max_cycles, until=Stop(0)):
        """Run natively until an event in ``until`` or ``max_cycles``; return the Stop flags."""
        if max_cycles < 0:
            raise ValueError(f"max_cycles must be >= 0, got {max_cycles}")
        return Stop(self.lib.spk_run(self._state, int(max_cycles), int(until)))

    @property
    def finished(self):
        return bool(self.lib.spk_finished(self._state))

    @property
    def exit_code(self):
        return self.lib.spk_finish_code(self._state) if self.finished else None

    # UART ----------------------------------------------------------------------------------
    def uart_write(self, data):
        if isinstance(data, str):
            data = data.encode()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.lib.spk_uart_write(self._state, buf, len(data))

    def uart_read(self):
        """Bytes the SoC sent since the last read."""
        out = bytearray()
        buf = (ctypes.c_uint8 * 4096)()
        while True:
            n = self.lib.spk_uart_read(self._state, buf, 4096)
            out += bytes(buf[:n])
            if n < 4096:
                return bytes(out)

    def uart_read_until(self, pattern, max_cycles):
        """Run until the UART output ends with ``pattern``; return everything read.

        Raises :class:`SimTimeout` (with the text so far) if ``max_cycles`` pass first, and
        stops early if the firmware finishes the simulation.
        """
        if isinstance(pattern, str):
            pattern = pattern.encode()
        if not pattern:
            raise ValueError("pattern must not be empty")
        pbuf = (ctypes.c_uint8 * len(pattern)).from_buffer_copy(pattern)
        self.lib.spk_set_tx_pattern(self._state, pbuf, len(pattern))
        try:
            ev = self.run(max_cycles, Stop.TX_MATCH | Stop.FINISH)
        finally:
            self.lib.spk_set_tx_pattern(self._state, pbuf, 0)
        text = self.uart_read()
        if ev & Stop.TX_MATCH or ev & Stop.FINISH:
            return text
        raise SimTimeout(f"no {pattern!r} on the UART within {max_cycles} cycles; "
                         f"got {text[-200:]!r}")

    # Host bus / CSRs -----------------------------------------------------------------------
    def load_csr_map(self, csr_json):
        m = json.loads(Path(csr_json).read_text())
        self.csr = m["csr_registers"]
        self.csr_bases = m["csr_bases"]
        self.constants = m.get("constants", {})
        self.memories = m.get("memories", {})

    def bus_read(self, addr, timeout=10_000):
        return self._xfer(0, addr, 0, timeout)

    def bus_write(self, addr, value, timeout=10_000):
        self._xfer(1, addr, value, timeout)

    def _xfer(self, we, addr, value, timeout):
        if addr % 4:
            raise ValueError(f"host bus address 0x{addr:x} is not 32-bit aligned")
        dat = ctypes.c_uint32(0)
        st = self.lib.spk_bus_xfer(self._state, we, addr & 0xFFFFFFFF, value & 0xFFFFFFFF,
                                   0xF, timeout, ctypes.byref(dat))
        if st == 1:
            raise BusError(f"bus error at 0x{addr:08x}")
        if st == 2:
            raise BusError(f"no ack at 0x{addr:08x} within {timeout} cycles")
        if st == 3:
            raise BusError(f"simulation finished during access to 0x{addr:08x}")
        return dat.value

    def _csr(self, name):
        try:
            return self.csr[name]
        except KeyError:
            raise KeyError(f"no CSR named {name!r} (known: {', '.join(sorted(self.csr)[:8])}, ...)")

    def csr_read(self, name):
        """Read a CSR by its csr.json name; multi-word CSRs are assembled MSB first."""
        reg = self._csr(name)
        width = self.constants.get("config_csr_data_width", 32)
        value = 0
        for i in range(reg["size"]):
            value = (value << width) | self.bus_read(reg["addr"] + 4 * i)
        return value

    def csr_write(self, name, value):
        reg = self._csr(name)
        width = self.constants.get("config_csr_data_width", 32)
        for i in range(reg["size"]):
            shift = width * (reg["size"] - 1 - i)
            self.bus_write(reg["addr"] + 4 * i, (value >> shift) & ((1 << width) - 1))

    # The emulated CXL/PCIe link (native.cpp) -------------------------------------------------
    LINK_LAYER_STATS = ("link_layer", "link_down", "replay_timeout") + tuple(
        f"{d}_{c}" for d in ("h2d", "d2h") for c in (
            "dropped", "duplicated", "delayed", "corrupted",       # faults injected
            "crc_errors", "seq_gaps", "duplicates", "naks", "acks",  # its receiver saw
            "replays", "timer_replays", "flits_replayed", "unacked"))  # its sender did
    LINK_STATS = ("credits", "waiting", "h2d_in_flight", "d2h_in_flight", "inbox",
                  "h2d_msgs", "d2h_msgs", "h2d_bytes", "d2h_bytes") + LINK_LAYER_STATS

    def link_config(self, bytes_per_cycle, lat_min, lat_max, credits, seed):
        """Serialisation rate, one-way latency range (cycles) and credits of the link model;
        also detaches any host memory (:meth:`link_host_memory`)."""
        self.lib.spk_link_config(self._state, bytes_per_cycle, lat_min, lat_max, credits, seed)
        self.link_host_memory(None, 0)

    def link_stalls(self, h2d_q16, d2h_q16, seed):
        """Per-cycle valid/ready stall probabilities at the link pads, in 1/65536."""
        self.lib.spk_link_stalls(self._state, h2d_q16, d2h_q16, seed)

    def link_faults(self, drop_q16, dup_q16, delay_q16, corrupt_q16, seed):
        """Turn on the link layer (sequence numbers, CRC, replay) with per-flit fault
        probabilities in 1/65536; no message may be in flight."""
        self.lib.spk_link_faults(self._state, drop_q16, dup_q16, delay_q16, corrupt_q16, seed)

    def link_reset(self):
        """Drop every message waiting, in flight or unread; credits back to the device's."""
        self.lib.spk_link_reset(self._state)

    def link_send(self, header, data):
        """Queue one host message: a 128-bit header and its 64 data bytes."""
        h = (ctypes.c_uint32 * 4)(*[(header >> (32 * i)) & 0xFFFFFFFF for i in range(4)])
        d = (ctypes.c_uint32 * 16).from_buffer_copy(data)
        self.lib.spk_link_send(self._state, h, d)

    def link_recv(self):
        """The oldest device message that has reached the host, as (header, data, cycle
        sent, cycle arrived), or None."""
        h, d, t = (ctypes.c_uint32 * 4)(), (ctypes.c_uint32 * 16)(), (ctypes.c_uint64 * 2)()
        if not self.lib.spk_link_recv(self._state, h, d, t):
            return None
        return sum(h[i] << (32 * i) for i in range(4)), bytes(d), t[0], t[1]

    def link_host_memory(self, buffer, base):
        """Let the native loop write well-formed HostWr lines for ``base`` .. ``base +
        len(buffer)`` straight into ``buffer`` (a bytearray, kept alive here); None detaches."""
        view = (ctypes.c_uint8 * len(buffer)).from_buffer(buffer) if buffer else None
        self._host_memory = (buffer, view)
        self.lib.spk_link_host_memory(self._state, ctypes.addressof(view) if view else None,
                                      base if view else 0, len(view) if view else 0)

    @property
    def link_host_writes(self):
        """HostWr lines the native loop has written into host memory so far."""
        return self.lib.spk_link_host_writes(self._state)

    def link_stats(self):
        v = (ctypes.c_uint64 * len(self.LINK_STATS))()
        self.lib.spk_link_stats(self._state, v)
        return dict(zip(self.LINK_STATS, v))

    def line_config(self, cycles_per_bit):
        """Set the serial line's cycles per bit in a model built with SPK_BOARD_LINK (its UART
        runs at sys_clk / cycles_per_bit baud; the SoC must be built for the same rate)."""
        fn = self.lib.spk_line_config
        fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_uint32], None
        fn(self._state, int(cycles_per_bit))

    @property
    def pyverilator(self):
        """The pyverilator wrapper of the same model (benchmarks compare the two ways)."""
        return self._pv

    def bare_loop(self, cycles):
        """Nanoseconds the native loop takes for ``cycles`` clock cycles with nothing attached
        (the simulator's own speed; benchmarks)."""
        return self.lib.spk_bare_loop(self._state, cycles)

    # Waveforms -----------------------------------------------------------------------------
    def trace_start(self, path, start=None, end=None):
        """Write an FST waveform to ``path`` of the cycles ``start <= cycle < end``
        (default: from now until :meth:`trace_stop`). Time unit: half a clock cycle."""
        if self._trace is not None:
            raise RuntimeError("a waveform is already being written")
        start = self.cycle if start is None else int(start)
        end = (1 << 64) - 1 if end is None else int(end)
        if end <= start:
            raise ValueError(f"waveform window is empty: start {start}, end {end}")
        self._trace = self.lib.start_vcd_trace(self._pv.model, str(path).encode())
        self.lib.spk_set_trace(self._state, self._trace, start, end)

    def trace_stop(self):
        if self._trace is not None:
            self.lib.spk_set_trace(self._state, None, 0, 0)
            self.lib.stop_vcd_trace(self._trace)
            self._trace = None
