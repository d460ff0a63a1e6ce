"""The board host link, end to end in simulation: the SoC as a board builds it (message
tunnel feeding the bridge, UARTBone on a real 8N1 serial line, console on the crossover
UART, the cores as separate Verilog modules as in the bitstream), its serial line served on
a TCP socket, a real ``litex_server --uart`` attached to it and the host tools
(``host.driver.tunnel.TunnelLink`` + ``host.driver.device.Device``) on ``RemoteClient``. A real trace page
is offloaded and read back on demand, byte for byte against the reference codec."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateware.bridge.protocol import Message, Op, Status
from gateware.codec import reference as R
from host.driver.device import Device
from host.traces.format import load_trace

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "test-sim-link"
MODE = "kivi_k4v3"
HOST_BASE, HOST_SIZE = 0x2_0000_0000, 4 * 4096


@pytest.fixture(scope="module")
def link_build():
    from soc.board_link import build_sim_link
    return build_sim_link(BUILD)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _litex_server():
    exe = shutil.which("litex_server", path=str(Path(sys.executable).parent))
    assert exe, "litex_server (from the litex package) is not installed in the venv"
    return exe


@pytest.fixture
def remote(link_build):
    """(RemoteTarget, TunnelLink, SerialSocket) on a freshly reset model."""
    from litex.tools.litex_client import RemoteClient
    from host.driver.tunnel import RemoteTarget, TunnelLink
    from soc.board_link import SIM_LINK_CYCLES_PER_BIT
    from soc.sim.driver import SimDriver
    from soc.sim.serial_socket import SerialSocket

    drv = SimDriver(link_build.model, csr_json=link_build.csr_json)
    drv.line_config(SIM_LINK_CYCLES_PER_BIT)
    drv.reset()
    serial = SerialSocket(drv, max_cycles=400_000_000).start()
    port = _free_port()
    server = subprocess.Popen([_litex_server(), "--uart", "--uart-port", serial.url,
                               "--bind-ip", "127.0.0.1", "--bind-port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bus = None
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("litex_server did not start:\n" + server.stdout.read())
                time.sleep(0.2)
        bus = RemoteClient(host="127.0.0.1", port=port, csr_csv=str(link_build.csr_csv))
        bus.open()
        target = RemoteTarget(bus, link_build.csr_json)
        yield target, TunnelLink(target), serial
    finally:
        if bus is not None:
            bus.close()
        server.terminate()
        server.wait(timeout=30)
        serial.stop()
        drv.close()
    assert serial.error is None, serial.error


@pytest.fixture(scope="module")
def kv():
    t = load_trace(ROOT / "traces" / "mini-codegen.safetensors")
    vpn = int(t.vpn(1, 2, 3))
    return vpn, t.page(vpn)


def test_offload_and_demand_read_over_uartbone(remote, kv):
    target, link, serial = remote
    boot_cycles = link.wait_ready()
    console = target.console.decode(errors="replace")
    assert "SpecKV-FPGA firmware" in console and "ready" in console, console
    # The same CSR through both paths: UARTBone directly, and a CfgRd through the tunnel.
    assert target.csr_read("identifier_regs_magic") == 0x53504B56
    assert link.csr_read("identifier_regs_magic") == 0x53504B56
    assert 0 < boot_cycles < target.cycle
    assert target.csr_read("engine_timeout") == target.sys_clk_freq  # set by wait_ready

    for name in ("engine", "dma"):
        link.csr_write(f"{name}_host_base", HOST_BASE)
        link.csr_write(f"{name}_host_size", HOST_SIZE)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    dev = Device(link)

    vpn, page = kv
    blob = R.compress(page, MODE)
    done = dev.offload(vpn, page.tobytes(), staging_slot=0)
    assert done.length == len(blob)
    # The compressed page in device DRAM, read back with MemRd through the tunnel.
    got = link.mem_read(dev.ram + done.slot, (len(blob) + 63) & ~63)[:len(blob)]
    assert got == blob

    # Demand read: PageRd -> ATU -> DMA + decompressor -> 64 HostWr lines + Cmp.
    before = link.host_writes
    (a,) = link.transact([Message(Op.PAGE_RD, 7, HOST_BASE + 4096, value=vpn)])
    assert a.msg.status == Status.OK
    assert link.host_writes - before == 64
    want = R.decompress(blob).tobytes()
    assert bytes(link.host_memory[4096:8192]) == want
    assert bytes(link.host_memory[:4096]) == bytes(4096)  # nothing written elsewhere
    # Unmapped page: the fault comes back through the tunnel as a status.
    (bad,) = link.transact([Message(Op.PAGE_RD, 8, HOST_BASE, value=vpn + 1)], check=False)
    assert bad.msg.status == Status.PAGE_FAULT
    assert serial.bytes_in > 0 and serial.bytes_out > 0


def test_replay_over_uartbone_matches_the_model(remote):
    """host/replay.py's board backend (the path a board takes: litex_server, RemoteClient,
    the message tunnel) on the board-link SoC: every page read back equals the reference
    codec's, and the functional results (tiers of every access, pages prefetched into which
    L2 slots, compressed lengths, data digest) equal the model backend's."""
    from host.replayer.backends import BoardBackend
    from host.replayer.engine import ReplayOptions, replay

    target, _, serial = remote
    opts = ReplayOptions(trace=str(ROOT / "traces" / "mini-codegen.safetensors"),
                         backend="board", codec=MODE, prefetcher="last", k=1, steps=3,
                         layers=1, l2_slots=16, timing="off")
    got = replay(opts, backend=BoardBackend(target, MODE), progress=False)
    want = replay(ReplayOptions(**{**opts.__dict__, "backend": "model"}), progress=False)
    assert got["check"]["mismatches"] == 0 and got["check"]["pages_checked"] > 0
    assert got["accesses"]["l3"] > 0 and got["prefetch"]["issued"] > 0
    for key in ("accesses", "check", "compression"):
        assert got[key] == want[key], key
    for key in ("accesses", "issued"):
        assert got["sequence"][key] == want["sequence"][key], key
    assert "UARTBone" in got["config"]["link_note"]
    assert serial.bytes_in > 0
