#!/usr/bin/env python3
"""Cache-engine datapath benchmarks in the Verilator SoC (through pyverilator), in cycles
and in ns at the SoC's sys_clk:

  dma      DMA engine throughput (bytes per cycle) for DRAM -> DRAM copies, DRAM -> host
           copies and page decompression into the host, against the peaks of the DMA's
           LiteDRAM port (one word a cycle: 128 bits on ddr3, 64 on sdr, 32 on sdr32) and of the DRAM
           behind it (--dram: DDR3-800 x16 16 B/cycle, SDR x16 2 B/cycle).
           Timed from the push of the job (CSR write) to the completion showing in the
           status register, polled every --poll cycles (the error is at most that).
  tlb      ATU translation latency, TLB hit and miss (page walk), from the page engine's
           hardware timestamps (request accepted -> translation back), and the host round
           trip of an XLATE request on the ideal link.
  demand   demand-read (PageRd) latency of a real compressed KV page, miss and hit, for each
           link profile, broken down with the page engine's timestamps:
             link     host send -> request at the engine, and Cmp -> host, plus the page's
                      64 lines on the wire after the device sent the last one
             atu      request accepted -> translation (TLB hit, or page walk in DRAM)
             dram     descriptor queued -> first compressed word from DRAM
             decomp   first compressed word -> last decompressed line handed to the link
                      (reads, decompression and line output overlap; the decompressor's
                      one beat per cycle bounds it)
             cmp      last line -> Cmp sent (DMA completion, answer arbitration)

Results: a table on stdout and JSON (--json).

    python bench/datapath.py                     # builds the SoC model if needed
    python bench/datapath.py --dram sdr          # the same on the 16-bit SDR model
    python bench/datapath.py --dram sdr32        # ... with the boards' 32-bit engines (ULX3S)
"""

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

from soc.targets.sim import (DEFAULT_DRAM, DRAMS, build_sim, default_build_dir, dma_port_bytes,
                             dram_peak_bytes_per_cycle)

ROOT = Path(__file__).resolve().parent.parent

HOST_BASE, HOST_SIZE = 0x3_0000_0000, 64 * 4096
SCRATCH = 0x01C0_0000
PROFILES = ("ideal", "cxl2-x16", "pcie4-x16")
STAMPS = ("req", "xlate", "desc", "rd", "line", "last", "done")


def _stamps(link):
    return {k: link.csr_read("engine_t_" + k) for k in STAMPS}


def _dma_job(link, op, src, dst, n, cap=0, host=False, poll=64):
    """Push one job through the firmware DMA's CSRs; cycles from the push to completion."""
    link.csr_write("dma_src", src)
    link.csr_write("dma_dst", dst)
    link.csr_write("dma_length", n)
    link.csr_write("dma_cap", cap or n)
    t0 = link.cycle
    link.csr_write("dma_push", op | int(host) << 2 | 1 << 3 | 7 << 8)
    t_push = link.cycle  # the push took effect just before its Cmp came back
    while True:
        c = link.csr_read("dma_completion")
        if c & 1:
            break
        link.run(poll)
    t_end = link.cycle
    nbytes = link.csr_read("dma_completion_bytes")
    link.csr_write("dma_pop", 1)
    status = (c >> 4) & 0xF
    assert status == 0, f"DMA job failed with status {status}"
    return nbytes, t_end - t_push, t_push - t0


def bench_dma(sim, blob, page_bytes, poll):
    from host.driver.link import SimLink
    link = SimLink(sim, "ideal")
    size = sim.memories["main_ram"]["size"]
    for k, v in (("dma_dram_base", 0), ("dma_dram_size", size), ("dma_host_base", HOST_BASE),
                 ("dma_host_size", HOST_SIZE)):
        link.csr_write(k, v)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    ram = sim.memories["main_ram"]["base"]
    src, dst = SCRATCH, SCRATCH + 0x20_0000
    link.mem_write(ram + src, bytes(range(256)) * 16)
    blob_at = SCRATCH + 0x10_0000
    link.mem_write(ram + blob_at, blob + bytes(-len(blob) % 64))
    rows = []
    for name, op, s, d, n, cap, host in (
            ("copy DRAM->DRAM 64 KiB", 0, src, dst, 0x1_0000, 0, False),
            ("copy DRAM->DRAM 1 MiB", 0, src, dst, 0x10_0000, 0, False),
            ("copy DRAM->DRAM 64 KiB, src+3 dst+5", 0, src + 3, dst + 5, 0x1_0000, 0, False),
            ("copy DRAM->host 64 KiB", 0, src, HOST_BASE, 0x1_0000, 0, True),
            ("decompress page -> host", 2, blob_at, HOST_BASE, len(blob), 4096, True)):
        nbytes, cycles, _ = _dma_job(link, op, s, d, n, cap, host, poll)
        dram_read = n
        dram_written = nbytes if not host else 0
        rows.append({
            "job": name, "source_bytes": n, "dest_bytes": nbytes, "cycles": cycles,
            "dest_bytes_per_cycle": nbytes / cycles,
            "dram_bytes_per_cycle": (dram_read + dram_written) / cycles,
        })
    return rows


def bench_tlb(sim, repeat=20):
    from gateware.atu.model import pack_pte
    from gateware.bridge.protocol import Message, Op
    from host.driver.link import SimLink
    link = SimLink(sim, "ideal")
    ram, size = sim.memories["main_ram"]["base"], sim.memories["main_ram"]["size"]
    pt = SCRATCH
    table = b"".join(pack_pte(0x10_0000 + 0x1000 * v, 1000).to_bytes(8, "little")
                     for v in range(64))
    link.mem_write(ram + pt, table)
    for k, v in (("atu_pt_base", pt), ("atu_pt_entries", 64), ("atu_dram_base", 0),
                 ("atu_dram_size", size)):
        link.csr_write(k, v)
    out = {"hit": [], "miss": [], "hit_round_trip": [], "miss_round_trip": []}
    for i in range(repeat):
        vpn = i % 64
        link.csr_write("atu_inval", vpn)
        for kind in ("miss", "hit"):
            a = link.transact([Message(Op.XLATE, 1, 0, value=vpn)])[0]
            assert bool(a.msg.value >> 23 & 1) == (kind == "hit")
            st = _stamps(link)
            out[kind].append(st["xlate"] - st["req"])
            out[kind + "_round_trip"].append(a.latency)
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
            for k, v in out.items()}


def bench_demand(sim, blob, want, profile, repeat):
    from gateware.atu.model import pack_pte
    from gateware.bridge.protocol import Message, Op
    from host.driver.link import SimLink
    link = SimLink(sim, profile, seed=3)
    ram, size = sim.memories["main_ram"]["base"], sim.memories["main_ram"]["size"]
    pt, slot = SCRATCH + 0x3_0000, SCRATCH + 0x4_0000
    link.mem_write(ram + slot, blob + bytes(-len(blob) % 64))
    table = bytearray(64)
    table[8:16] = pack_pte(slot, len(blob)).to_bytes(8, "little")
    link.mem_write(ram + pt, bytes(table))
    for k, v in (("atu_pt_base", pt), ("atu_pt_entries", 8), ("atu_dram_base", 0),
                 ("atu_dram_size", size), ("engine_dram_base", 0), ("engine_dram_size", size),
                 ("engine_host_base", HOST_BASE), ("engine_host_size", HOST_SIZE)):
        link.csr_write(k, v)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    res = {}
    for kind in ("miss", "hit"):
        parts = {k: [] for k in ("total", "link", "atu", "dram", "decomp", "first_line", "cmp")}
        for _ in range(repeat):
            if kind == "miss":
                link.csr_write("atu_inval", 1)
            else:
                link.transact([Message(Op.XLATE, 2, 0, value=1)])  # make it resident
            link.host_memory[:4096] = bytes(4096)
            a = link.transact([Message(Op.PAGE_RD, 1, HOST_BASE, value=1)])[0]
            assert bytes(link.host_memory[:4096]) == want, "page differs from the reference"
            s = _stamps(link)
            device = s["done"] - s["req"]
            parts["total"].append(a.latency)
            parts["link"].append(a.latency - device)
            parts["atu"].append(s["xlate"] - s["req"])
            parts["dram"].append(s["rd"] - s["xlate"])
            parts["decomp"].append(s["last"] - s["rd"])
            parts["first_line"].append(s["line"] - s["rd"])
            parts["cmp"].append(s["done"] - s["last"])
        res[kind] = {k: statistics.median(v) for k, v in parts.items()}
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dram", default=DEFAULT_DRAM, choices=list(DRAMS),
                   help="DRAM model of the simulation SoC (soc/targets/sim.py).")
    p.add_argument("--build-dir", default=None,
                   help="SoC build directory (built if missing or stale; default build/sim, "
                        "build/sim-NAME for another --dram).")
    p.add_argument("--repeat", type=int, default=5, help="Demand reads per profile and kind.")
    p.add_argument("--poll", type=int, default=64,
                   help="Cycles between completion polls in the DMA measurements.")
    p.add_argument("--json", default=str(ROOT / "build" / "bench" / "datapath.json"))
    args = p.parse_args(argv)

    from gateware.codec import reference as R
    from host.driver.link import SimLink
    from host.traces.format import load_trace
    from soc.sim import SimDriver

    b = build_sim(args.build_dir or default_build_dir(args.dram), quiet=True, dram=args.dram)
    t = load_trace(ROOT / "traces" / "mini-chatbot.safetensors")
    mode = next(k[len("codec_mode_"):].lower() for k in json.loads(
        Path(b.csr_json).read_text())["constants"] if k.startswith("codec_mode_"))
    page = t.page(t.vpn(3, 1, 2))
    blob = R.compress(page, mode)
    want = R.decompress(blob).tobytes()

    def fresh():
        drv = SimDriver(b.model, csr_json=b.csr_json)
        drv.reset()
        SimLink(drv, "ideal").wait_ready(2_000_000)
        return drv

    clk = None
    drv = fresh()
    clk = float(drv.constants["config_clock_frequency"])
    ns = 1e9 / clk
    dma = bench_dma(drv, blob, len(want), args.poll)
    tlb = bench_tlb(drv)
    drv.close()
    demand = {}
    for prof in PROFILES:
        drv = fresh()
        demand[prof] = bench_demand(drv, blob, want, prof, args.repeat)
        drv.close()

    port_peak = dma_port_bytes(args.dram)             # bytes per cycle: a port word a cycle
    sdram_peak = dram_peak_bytes_per_cycle(args.dram)
    res = {
        "command": "python bench/datapath.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sys_clk_hz": clk, "dram": args.dram, "codec_mode": mode, "compressed_page_bytes": len(blob),
        "port_peak_bytes_per_cycle": port_peak, "sdram_peak_bytes_per_cycle": sdram_peak,
        "dma": dma, "tlb": tlb, "demand_read": demand,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")

    print(f"sys_clk {clk / 1e6:.0f} MHz; DMA port peak {port_peak} B/cycle (a {8 * port_peak}-bit "
          f"word a cycle), DRAM ({args.dram}) peak {sdram_peak} B/cycle")
    print(f"\n{'DMA job':<38} {'cycles':>8} {'dest B/cyc':>10} {'DRAM B/cyc':>10} "
          f"{'of DRAM peak':>13}")
    for r in dma:
        print(f"{r['job']:<38} {r['cycles']:>8} {r['dest_bytes_per_cycle']:>10.3f} "
              f"{r['dram_bytes_per_cycle']:>10.3f} {r['dram_bytes_per_cycle'] / sdram_peak:>12.1%}")
    print(f"\n{'TLB (engine accept -> translation)':<38} {'cycles':>8} {'ns':>8} "
          f"{'host round trip (ideal link)':>30}")
    for k in ("hit", "miss"):
        print(f"{k:<38} {tlb[k]['median']:>8} {tlb[k]['median'] * ns:>8.0f} "
              f"{tlb[k + '_round_trip']['median']:>24} cycles")
    print(f"\nDemand read of a {len(blob)} B {mode} page (medians of {args.repeat}), cycles / ns:")
    cols = ("total", "link", "atu", "dram", "decomp", "cmp")
    print(f"{'profile':<11} {'TLB':<5} " + " ".join(f"{c:>13}" for c in cols))
    for prof in PROFILES:
        for kind in ("miss", "hit"):
            r = demand[prof][kind]
            print(f"{prof:<11} {kind:<5} " + " ".join(
                f"{r[c]:>6.0f}/{r[c] * ns:>6.0f}" for c in cols))
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
