"""speckv-link-faults: one trace replayed on the Verilator SoC twice, over the emulated link's
link layer without faults and with a seeded fault rate (drop, duplicate, delay beyond the
replay timeout, corrupt; ``soc/sim/link_layer.cpp``), side by side: faults injected, what
the two ends detected, what they replayed, whether the link went down, the bytes read
(digest, data check) and what recovery cost in time. Exit status 1 if the bytes differ, a
page fails the check, or the faulted link went down.

    speckv-link-faults --rate 0.01 --json docs/results/reliability/link_faults.json
    speckv-link-faults traces/mini-replay.safetensors --rate 0.05 --timing off --steps 8
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from host.replayer.engine import DEFAULT_TRACE, PREFETCHERS, ROOT, ReplayOptions, replay
from host.replayer.equivalence import functional

KINDS = ("dropped", "duplicated", "delayed", "corrupted")
DETECTED = ("crc_errors", "seq_gaps", "duplicates")
RECOVERY = ("naks", "replays", "timer_replays", "flits_replayed")


def _run_summary(r):
    t, lat = r["timing"], r["latency_ns"]
    return {"sim_cycles": r["speed"]["sim_cycles"], "wall_s": round(r["speed"]["wall_s"], 1),
            "l2_hit_rate": r["accesses"]["l2_hit_rate"], "late": r["accesses"]["late"],
            "step_ns_mean": t.get("step_ns_mean"), "sync_fetch_mean_ns": lat["sync_fetch_mean"],
            "sync_fetch_p99_ns": lat["sync_fetch_p99"],
            "pages_checked": r["check"]["pages_checked"], "mismatches": r["check"]["mismatches"],
            "digest": r["check"]["digest"]}


def compare(opts: ReplayOptions, rate: float, seed: int = 1, build=None, progress=True) -> dict:
    """Replay ``opts`` (backend rtl) over a clean link layer and with ``rate`` of the flits
    faulted; the report dict (see the module docstring)."""
    clean = replay(replace(opts, link_faults=0.0, label="clean"), build=build, progress=progress)
    hit = replay(replace(opts, link_faults=rate, link_fault_seed=seed, label=f"faults {rate}"),
                 build=build, progress=progress)
    ll = hit["link_layer"]
    per_dir = {d: {"injected": {k: ll[f"{d}_{k}"] for k in KINDS},
                   "detected": {k: ll[f"{d}_{k}"] for k in DETECTED},
                   "recovery": {k: ll[f"{d}_{k}"] for k in RECOVERY}}
               for d in ("h2d", "d2h")}
    same_bytes = clean["check"]["digest"] == hit["check"]["digest"]
    out = {
        "config": {**{k: v for k, v in asdict(opts).items() if k not in ("waveform", "label")},
                   "link_faults": rate, "link_fault_seed": seed},
        "faults": {
            "injected": sum(ll[f"{d}_{k}"] for d in ("h2d", "d2h") for k in KINDS),
            "detected": sum(ll[f"{d}_{k}"] for d in ("h2d", "d2h") for k in DETECTED),
            "flits_replayed": ll["h2d_flits_replayed"] + ll["d2h_flits_replayed"],
            "link_down": bool(ll["link_down"]),
            "byte_mismatches": hit["check"]["mismatches"],
            "replay_timeout_cycles": ll["replay_timeout"],
            "per_direction": per_dir},
        "clean": _run_summary(clean), "faulted": _run_summary(hit),
        "same_bytes": same_bytes,
    }
    if opts.timing == "off":   # synchronous epochs: the whole functional replay must agree
        out["same_functional_replay"] = functional(clean) == functional(hit)
    out["ok"] = (same_bytes and not ll["link_down"] and out["faults"]["byte_mismatches"] == 0
                 and out.get("same_functional_replay", True))
    return out


def print_report(rep):
    f = rep["faults"]
    print(f"{'direction':9s} " + " ".join(f"{k:>10s}" for k in KINDS + DETECTED + RECOVERY))
    for d, v in f["per_direction"].items():
        vals = [*v["injected"].values(), *v["detected"].values(), *v["recovery"].values()]
        print(f"{d:9s} " + " ".join(f"{x:10d}" for x in vals))
    c, h = rep["clean"], rep["faulted"]
    print(f"\n{'':22s} {'clean':>14s} {'faulted':>14s}")
    for k in ("sim_cycles", "step_ns_mean", "sync_fetch_mean_ns", "sync_fetch_p99_ns",
              "l2_hit_rate", "late", "pages_checked", "mismatches"):
        a, b = c[k], h[k]
        fmt = (lambda x: "-" if x is None else f"{x:14,.3f}" if isinstance(x, float) else f"{x:14,d}")
        print(f"{k:22s} {fmt(a):>14s} {fmt(b):>14s}")
    cost = (h["sim_cycles"] - c["sim_cycles"]) / c["sim_cycles"] if c["sim_cycles"] else 0.0
    print(f"\nfaults injected {f['injected']}, detected {f['detected']}, flits replayed "
          f"{f['flits_replayed']}, link down: {'yes' if f['link_down'] else 'no'}; byte "
          f"mismatches {f['byte_mismatches']}; bytes read identical: "
          f"{'yes' if rep['same_bytes'] else 'NO'}; recovery cost {100 * cost:+.2f} % device "
          f"cycles")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="speckv-link-faults", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE),
                    help="KV trace (default: the bundled mini trace)")
    ap.add_argument("--rate", type=float, default=0.01,
                    help="fraction of flits faulted, either way (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="fault stream seed (default 1)")
    ap.add_argument("--link", default="cxl2-x16", help="link profile (default %(default)s)")
    ap.add_argument("--prefetcher", default="last", choices=PREFETCHERS,
                    help="default %(default)s (the firmware LSTM simulates slowly)")
    ap.add_argument("-k", "--k", type=int, default=4, help="pages predicted (default 4)")
    ap.add_argument("--steps", type=int, default=None, help="first N decode steps")
    ap.add_argument("--layers", type=int, default=None, help="first N layers")
    ap.add_argument("--timing", choices=("on", "off"), default="on",
                    help="on: timing-true replay (default); off: synchronous epochs, where the "
                         "whole functional replay must also agree")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "sim"),
                    help="the simulation SoC's build (built if needed)")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    if not Path(a.trace).is_file():
        ap.error(f"trace file not found: {a.trace}")
    if not 0 < a.rate <= 1:
        ap.error(f"--rate {a.rate}: a fraction in (0, 1]")
    from host.driver.link import PROFILES
    if a.link not in PROFILES:
        ap.error(f"unknown link profile {a.link!r}; known: {', '.join(PROFILES)}")
    from soc.targets.sim import build_sim
    from host.replayer.tiers import ReplayError
    build = build_sim(a.build_dir, quiet=a.quiet)
    opts = ReplayOptions(trace=a.trace, backend="rtl", link=a.link, prefetcher=a.prefetcher,
                         k=a.k, steps=a.steps, layers=a.layers, timing=a.timing)
    try:
        rep = compare(opts, a.rate, a.seed, build, progress=not a.quiet)
    except (ReplayError, ValueError) as e:
        print(f"speckv-link-faults: error: {e}", file=sys.stderr)
        return 2
    print_report(rep)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rep, indent=1) + "\n")
        print(f"report: {a.json}")
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
