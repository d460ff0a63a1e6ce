"""The emulated link's link layer under injected faults (soc/sim/link_layer.cpp): dropped,
duplicated, late and corrupted flits either way are detected and replayed, so memory,
non-idempotent CSR writes (DMA pushes) and a whole replay come out exactly as without
faults; a link that cannot recover says so."""

import random

import pytest

from gateware.bridge.protocol import Message, Op
from gateware.dma.model import OP_COPY, Descriptor
from host.driver.batch import Batch, dma_jobs
from host.driver.link import FAULT_KINDS, LinkError, SimLink
from host.replayer.engine import DEFAULT_TRACE, ReplayOptions, replay
from host.replayer.equivalence import functional
from soc.mailbox import DRAM_SCRATCH


def _settle(link):
    """Run until nothing is in flight or unacknowledged either way."""
    for _ in range(100):
        st = link.stats()
        if not (st["h2d_in_flight"] or st["d2h_in_flight"] or st["h2d_unacked"]
                or st["d2h_unacked"]):
            return st
        link.run(st["replay_timeout"])
    raise AssertionError(f"the link did not settle: {st}")


def test_memory_and_dma_pushes_exact_under_faults(ready):
    link = SimLink(ready, "cxl2-x16", seed=4)
    link.set_faults(0.05, seed=11)
    base = link.region("main_ram") + DRAM_SCRATCH
    rng = random.Random(2)
    data = rng.randbytes(32 * 1024)
    link.mem_write(base, data)
    assert link.mem_read(base, len(data)) == data
    # DMA copies inside the DRAM: each push is a CfgWr a duplicate would apply twice
    # (16 pushes would complete 17 jobs and dma_jobs would never see its 16).
    dst = DRAM_SCRATCH + 64 * 1024
    jobs = [(rng.randrange(0, 16 * 1024), rng.randrange(1, 1024)) for _ in range(16)]
    descs = [Descriptor(OP_COPY, DRAM_SCRATCH + off, dst + 1024 * i, n, tag=i)
             for i, (off, n) in enumerate(jobs)]
    got = dma_jobs(Batch(link), descs, budget=2_000_000)
    assert got == [(i, 0, n) for i, (_, n) in enumerate(jobs)]
    out = link.mem_read(link.region("main_ram") + dst, 16 * 1024)
    for i, (off, n) in enumerate(jobs):
        assert out[1024 * i:1024 * i + n] == data[off:off + n], f"job {i}"
    st = _settle(link)
    assert not st["link_down"]
    for d in ("h2d", "d2h"):
        assert all(st[f"{d}_{k}"] for k in ("dropped", "duplicated", "delayed", "corrupted")), st
        # every corrupted flit was caught by the CRC; drops and late flits left gaps
        assert st[f"{d}_crc_errors"] == st[f"{d}_corrupted"], st
        assert st[f"{d}_seq_gaps"] and st[f"{d}_duplicates"] >= st[f"{d}_duplicated"], st
        assert st[f"{d}_replays"] and st[f"{d}_timer_replays"] and st[f"{d}_naks"], st


def test_corrupted_writes_never_land(ready):
    """A quarter of the flits corrupted: the device's end drops every bad one, so DRAM
    holds exactly what the host wrote (read back over a clean link layer)."""
    link = SimLink(ready, "cxl2-x16", seed=5)
    link.set_faults(0.25, kinds=("corrupt",), seed=3)
    base = link.region("main_ram") + DRAM_SCRATCH
    data = random.Random(7).randbytes(16 * 1024)
    link.mem_write(base, data)
    st = _settle(link)
    assert st["h2d_crc_errors"] == st["h2d_corrupted"] > 100
    link.set_faults(0.0)
    assert link.mem_read(base, len(data)) == data
    assert link.reliability()["d2h_crc_errors"] == 0


def test_a_link_that_cannot_recover_says_so(ready):
    link = SimLink(ready, "cxl2-x16")
    link.set_faults(1.0, kinds=("drop",))
    with pytest.raises(LinkError, match="the link is down"):
        link.transact([Message(Op.CFG_RD, link.tag(), link.region("mbox"))], max_cycles=200_000)


def test_fault_arguments_are_checked(ready):
    link = SimLink(ready, "ideal")
    with pytest.raises(ValueError, match="unknown fault kind"):
        link.set_faults(0.01, kinds=("melt",))
    with pytest.raises(ValueError, match="fault rate"):
        link.set_faults(1.5)
    assert set(FAULT_KINDS) == {"drop", "duplicate", "delay", "corrupt"}


def test_replay_under_faults_reads_the_same_bytes(sim_build):
    """The mini trace (4 steps, 4 layers) on the SoC with 2 % of the flits faulted against the same replay over a
    clean link layer: same accesses, decisions and bytes (synchronous epochs), no mismatch."""
    base = dict(trace=str(DEFAULT_TRACE), backend="rtl", prefetcher="last", k=2, steps=4,
                layers=4, timing="off")
    clean = replay(ReplayOptions(**base, link_faults=0.0), build=sim_build, progress=False)
    hit = replay(ReplayOptions(**base, link_faults=0.02, link_fault_seed=9), build=sim_build,
                 progress=False)
    assert hit["check"]["mismatches"] == clean["check"]["mismatches"] == 0
    assert functional(hit) == functional(clean)
    ll = hit["link_layer"]
    assert not ll["link_down"] and ll["h2d_corrupted"] and ll["d2h_dropped"]
    assert ll["h2d_replays"] and ll["d2h_replays"]
    assert not any(v for k, v in clean["link_layer"].items()
                   if k.endswith(("dropped", "duplicated", "delayed", "corrupted")))
