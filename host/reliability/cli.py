"""speckv-fuzz: corrupt compressed pages through the SoC's decompressor behind its DMA engine
(Verilator), counted against the reference decoder: hangs, out-of-bounds writes, verdict
disagreements, data mismatches (``host/reliability/fuzz.py``). Exit status 1 on any.

    speckv-fuzz --pages 10000 --json build/fuzz.json
    speckv-fuzz --pages 200 --seed 7          # another reproducible stream
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOOT_CYCLES = 2_000_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="speckv-fuzz", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--pages", type=int, default=10_000, help="corrupt pages (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="corruption and stall stream (default 0)")
    ap.add_argument("--stalls", type=float, default=0.2,
                    help="per-cycle valid/ready stall probability at the link pads (default 0.2)")
    ap.add_argument("--timeout", type=int, default=4096,
                    help="the DMA's watchdog, cycles without progress (default %(default)s)")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "sim"),
                    help="the simulation SoC's build (built if needed; default %(default)s)")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if a.pages < 1:
        ap.error(f"--pages {a.pages}: at least 1")
    if not 0 <= a.stalls < 1:
        ap.error(f"--stalls {a.stalls}: a probability in [0, 1)")
    from host.driver.link import SimLink
    from host.reliability.fuzz import fuzz
    from soc.sim import SimDriver
    from soc.targets.sim import build_sim
    build = build_sim(a.build_dir, quiet=a.quiet)
    sim = SimDriver(build.model, csr_json=build.csr_json)
    try:
        sim.reset()
        SimLink(sim, "ideal").wait_ready(BOOT_CYCLES)
        rep = fuzz(sim, a.pages, a.seed, stalls=(a.stalls, a.stalls), timeout=a.timeout,
                   progress=not a.quiet)
    finally:
        sim.close()
    print(f"{'corruption':16s} {'pages':>6s} {'ok':>6s} {'corrupt':>8s} {'overflow':>8s}")
    for k, v in rep.by_kind.items():
        print(f"{k:16s} {v['pages']:6d} {v['ok']:6d} {v['corrupt']:8d} {v['overflow']:8d}")
    print(f"pages {rep.pages} ({rep.mode}, seed {rep.seed}): hangs {rep.hangs}, out-of-bounds "
          f"writes {rep.out_of_bounds_writes}, verdict disagreements "
          f"{rep.verdict_disagreements}, byte-count disagreements "
          f"{rep.byte_count_disagreements}, data mismatches {rep.data_mismatches}; "
          f"{rep.cycles:,} cycles, {rep.wall_s} s")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({**asdict(rep), "command": "speckv-fuzz " + " ".join(
            argv if argv is not None else sys.argv[1:])}, indent=1) + "\n")
        print(f"report: {a.json}")
    return 1 if rep.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
