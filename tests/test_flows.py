"""The offload and prefetch flows in the Verilator SoC: the firmware's control plane
compresses host pages into the pool with the hardware compressor and maps them; the
demand-read gateware and firmware prefetches then return them. Real KV pages; every byte
compared with the reference codec."""

from pathlib import Path

import numpy as np
import pytest

from gateware.bridge.protocol import Message, Op, Status
from gateware.codec import reference as R
from host.driver.device import Device, DeviceError
from host.driver.link import SimLink
from host.traces.format import load_trace
from soc.mailbox import MBOX_ERR_UNMAPPED, MBOX_ERR_VPN, MBOX_ERRORS

ROOT = Path(__file__).resolve().parent.parent
MODE = "kivi_k4v3"
HOST_BASE, HOST_SIZE = 0x2_0000_0000, 8 * 4096


@pytest.fixture(scope="module")
def kv():
    t = load_trace(ROOT / "traces" / "mini-codegen.safetensors")
    rng = np.random.default_rng(1)
    picks = [(int(rng.integers(t.n_layers)), int(rng.integers(t.n_kv_heads)),
              int(rng.integers(t.n_pages))) for _ in range(4)]
    return [(int(t.vpn(*p)), t.page(t.vpn(*p))) for p in picks]


@pytest.fixture
def dev(ready):
    link = SimLink(ready, "cxl2-x16")
    link.csr_write("engine_host_base", HOST_BASE)
    link.csr_write("engine_host_size", HOST_SIZE)
    link.csr_write("dma_host_base", HOST_BASE)
    link.csr_write("dma_host_size", HOST_SIZE)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    return Device(link)


def test_offload_then_demand_read(dev, kv):
    link = dev.link
    slots = []
    for i, (vpn, page) in enumerate(kv):
        done = dev.offload(vpn, page.tobytes(), staging_slot=i)
        blob = R.compress(page, MODE)
        assert done.length == len(blob), "hardware compressed size differs from the reference"
        slots.append(done.slot)
        # The compressed page in DRAM is the reference's byte for byte.
        got = link.mem_read(dev.ram + done.slot, (len(blob) + 63) & ~63)[:len(blob)]
        assert got == blob
    # Pages pack at their compressed size.
    assert slots == sorted(slots) and slots[1] - slots[0] == (len(R.compress(kv[0][1], MODE)) + 63) & ~63
    msgs = [Message(Op.PAGE_RD, 40 + i, HOST_BASE + 4096 * i, value=vpn) for i, (vpn, _) in enumerate(kv)]
    for a in link.transact(msgs, max_cycles=5_000_000):
        assert a.msg.status == Status.OK
    for i, (vpn, page) in enumerate(kv):
        want = R.decompress(R.compress(page, MODE)).tobytes()
        assert bytes(link.host_memory[4096 * i:4096 * (i + 1)]) == want


def test_prefetch_deposits_into_host_memory(dev, kv):
    link = dev.link
    vpn, page = kv[0]
    dev.offload(vpn, page.tobytes())
    before = link.host_writes
    dev.prefetch(vpn, HOST_BASE + 3 * 4096)
    assert link.host_writes - before == 64
    assert bytes(link.host_memory[3 * 4096:4 * 4096]) == R.decompress(R.compress(page, MODE)).tobytes()


def test_bad_commands_are_rejected_and_counted(dev, kv):
    vpn, page = kv[0]
    with pytest.raises(DeviceError, match=MBOX_ERRORS[MBOX_ERR_UNMAPPED]):
        dev.prefetch(12345, HOST_BASE)                     # never offloaded
    with pytest.raises(DeviceError, match=MBOX_ERRORS[MBOX_ERR_VPN]):
        dev.prefetch(1 << 21, HOST_BASE)                   # beyond the page table
    done = dev.command(0x7F, vpn)                          # unknown command
    assert done.status == 1
    with pytest.raises(DeviceError, match="DMA status 1"):  # host window: fault, nothing moved
        dev.offload(vpn, page.tobytes())
        dev.prefetch(vpn, HOST_BASE + HOST_SIZE)
    assert dev.rejected() == 3
    # Still serving afterwards.
    dev.prefetch(vpn, HOST_BASE)
