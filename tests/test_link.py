"""The emulated CXL.mem link into the Verilator SoC: bridge endpoint, credits, latency,
bandwidth, errors."""

import dataclasses
import random

import pytest

from gateware.bridge.protocol import LINE, Message, Op, Status
from host.driver.link import PROFILES, SimLink, LinkError, LinkProfile
from soc.mailbox import MBOX_READY
from soc.sim import Stop
from soc.soc import IDENT_MAGIC, MAILBOX_BASE


def test_csr_read_over_the_link(sim):
    link = SimLink(sim, "ideal")
    assert link.csr_read("identifier_regs_magic") == IDENT_MAGIC
    # The bridge's own counters saw that request.
    assert link.csr_read("bridge_requests") == 2  # magic + this read
    assert link.csr_read("bridge_credits") == link.credits


def test_device_reports_ready(sim):
    link = SimLink(sim, "ideal")
    assert link.cfg_read(MAILBOX_BASE) != MBOX_READY  # not yet: firmware still booting
    waited = link.wait_ready(2_000_000)
    assert 0 < waited < 2_000_000
    assert link.cfg_read(MAILBOX_BASE) == MBOX_READY


def test_mailbox_read_write(ready):
    sim = ready
    link = SimLink(sim, "ideal")
    for i, v in enumerate([0x01234567, 0x89ABCDEF, 0, 0xFFFFFFFF]):
        link.cfg_write(MAILBOX_BASE + 4 * (i + 1), v)
    assert [link.cfg_read(MAILBOX_BASE + 4 * (i + 1)) for i in range(4)] == \
           [0x01234567, 0x89ABCDEF, 0, 0xFFFFFFFF]


def test_page_write_read_roundtrip_and_host_bus_agrees(ready):
    sim = ready
    link = SimLink(sim, "cxl2-x16")
    base = sim.memories["main_ram"]["base"] + 0x10000
    page = bytes(random.Random(3).getrandbits(8) for _ in range(4096))
    link.mem_write(base, page)
    assert link.mem_read(base, 4096) == page
    # The same bytes through the other master: they really are in LiteDRAM.
    words = [sim.bus_read(base + 4 * i) for i in (0, 1, 511, 1023)]
    assert words == [int.from_bytes(page[4 * i:4 * i + 4], "little") for i in (0, 1, 511, 1023)]


def test_outstanding_requests_tags_and_credits(ready):
    sim = ready
    link = SimLink(sim, "cxl2-x16")
    base = sim.memories["main_ram"]["base"]
    lines = [bytes([i]) * LINE for i in range(40)]
    link.mem_write(base, b"".join(lines))
    # 40 reads at once with shuffled addresses: only `credits` may be in flight.
    order = list(range(40))
    random.Random(5).shuffle(order)
    msgs = [Message(Op.MEM_RD, 100 + k, base + LINE * i) for k, i in enumerate(order)]
    for m in msgs:
        link.send(m)
    st = link.stats()
    assert st["credits"] == 0 and st["waiting"] == 40 - link.credits
    assert st["h2d_in_flight"] == link.credits
    got = {}
    while len(got) < 40:
        sim.run(1_000_000, until=Stop.D2H)
        for a in link.recv():
            got[a.msg.tag] = a.msg
        s = link.stats()
        assert s["credits"] + s["h2d_in_flight"] + s["d2h_in_flight"] <= link.credits + 1
    for k, i in enumerate(order):
        assert got[100 + k].opcode == Op.MEM_DATA and got[100 + k].data == lines[i]
    assert link.stats()["credits"] == link.credits


def test_latency_follows_the_profile(sim):
    fast = SimLink(sim, "cxl2-x16")
    lat_cxl = [fast.transact([Message(Op.CFG_RD, t, sim.csr["identifier_regs_magic"]["addr"])])[0].latency
               for t in range(20)]
    slow = SimLink(sim, "pcie4-x16")
    lat_pcie = [slow.transact([Message(Op.CFG_RD, t, sim.csr["identifier_regs_magic"]["addr"])])[0].latency
                for t in range(20)]
    # Round trip = two one-way latencies + serialisation + device service time.
    assert min(lat_cxl) >= 2 * fast.lat_min and max(lat_cxl) <= 2 * fast.lat_max + 100
    assert min(lat_pcie) >= 2 * slow.lat_min and max(lat_pcie) <= 2 * slow.lat_max + 100
    assert len(set(lat_cxl)) > 1, "latency is drawn from the profile's range"
    assert fast.lat_min == 25 and fast.lat_max == 40  # 250/400 ns at 100 MHz


def test_bandwidth_limits_throughput(ready):
    sim = ready
    slow = LinkProfile("slow", bandwidth_gbps=0.8, latency_ns_min=0, latency_ns_max=0)
    link = SimLink(sim, slow)  # 8 B/cycle at 100 MHz: a MemWr (80 B on the wire) = 10 cycles
    base = sim.memories["main_ram"]["base"]
    start, sent = sim.cycle, link.stats()["h2d_bytes"]
    link.mem_write(base, bytes(64 * LINE))
    assert sim.cycle - start >= 64 * 80 / 8
    assert link.stats()["h2d_bytes"] - sent == 64 * 80


RAM_END = 0xFFFF_FFFF_FFC0   # stands for the first line past main RAM (its size is the build's)


@pytest.mark.parametrize("msg,status", [
    (Message(Op.MEM_RD, 1, 0x0), Status.OUT_OF_RANGE),                # ROM is not device memory
    (Message(Op.MEM_WR, 2, RAM_END), Status.OUT_OF_RANGE),
    (Message(Op.MEM_RD, 3, 0x40000020), Status.MISALIGNED),
    (Message(Op.CFG_RD, 4, 0x10000000), Status.OUT_OF_RANGE),         # SRAM: firmware only
    (Message(Op.CFG_WR, 5, MAILBOX_BASE + 2), Status.MISALIGNED),
    (Message(0x42, 6, 0), Status.UNSUPPORTED),
])
def test_bad_requests_are_refused(sim, msg, status):
    if msg.addr == RAM_END:
        ram = sim.memories["main_ram"]
        msg = dataclasses.replace(msg, addr=ram["base"] + ram["size"])
    link = SimLink(sim, "ideal")
    rsp = link.transact([msg], check=False)[0].msg
    assert rsp.status == status and rsp.tag == msg.tag
    with pytest.raises(LinkError, match=status.name):
        link.transact([Message(msg.opcode, msg.tag, msg.addr, data=msg.data)])
    assert link.csr_read("bridge_errors") == 2


def test_profile_errors(sim):
    with pytest.raises(ValueError, match="unknown link profile 'pcie9'"):
        SimLink(sim, "pcie9")
    assert set(PROFILES) >= {"cxl2-x16", "pcie4-x16"}
    with pytest.raises(ValueError, match="aligned"):
        SimLink(sim, "ideal").mem_read(0x40000004, 64)
