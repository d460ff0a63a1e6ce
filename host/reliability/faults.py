"""speckv-faults: one trace replayed on the Verilator SoC twice, clean and under injected
faults, side by side. Link faults (``--link-faults RATE``): the emulated link's link layer
runs in both, and RATE of the flits either way are dropped, duplicated, delayed beyond the
replay timeout or corrupted (``soc/sim/link_layer.cpp``): faults injected, what the two
ends detected, what they replayed, whether the link went down. A device reset
(``--device-reset-at STEP``): the SoC is reset before STEP; when the host noticed, what it
offloaded again. Either way: the bytes read (digest, data check) and what recovery cost in
time. Exit status 1 if the bytes differ, a page fails the check, or the link went down.

    speckv-faults --link-faults 0.01 --json docs/results/reliability/link_faults.json
    speckv-faults --device-reset-at 12 --json docs/results/reliability/device_reset.json
    speckv-faults traces/mini-replay.safetensors --link-faults 0.05 --timing off --steps 8
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


def compare(opts: ReplayOptions, rate=None, seed=1, reset_at=None, build=None,
            progress=True) -> dict:
    """Replay ``opts`` (backend rtl) clean and with the faults asked for: ``rate`` of the
    flits faulted (None: no link faults), a device reset before step ``reset_at`` (None:
    none). The clean run has the link layer on (no faults) when ``rate`` is given. Returns
    the report dict (see the module docstring)."""
    if rate is None and reset_at is None:
        raise ValueError("nothing to inject: give a link fault rate, a reset step or both")
    clean = replay(replace(opts, link_faults=None if rate is None else 0.0, label="clean"),
                   build=build, progress=progress)
    hit = replay(replace(opts, link_faults=rate, link_fault_seed=seed, device_reset_at=reset_at,
                         label="faulted"), build=build, progress=progress)
    same_bytes = clean["check"]["digest"] == hit["check"]["digest"]
    out = {"config": {**{k: v for k, v in asdict(opts).items() if k not in ("waveform", "label")},
                      "link_faults": rate, "link_fault_seed": seed, "device_reset_at": reset_at},
           "clean": _run_summary(clean), "faulted": _run_summary(hit), "same_bytes": same_bytes}
    down = False
    if rate is not None:
        ll = hit["link_layer"]
        down = bool(ll["link_down"])
        out["link_faults"] = {
            "injected": sum(ll[f"{d}_{k}"] for d in ("h2d", "d2h") for k in KINDS),
            "detected": sum(ll[f"{d}_{k}"] for d in ("h2d", "d2h") for k in DETECTED),
            "flits_replayed": ll["h2d_flits_replayed"] + ll["d2h_flits_replayed"],
            "link_down": down, "replay_timeout_cycles": ll["replay_timeout"],
            "per_direction": {d: {"injected": {k: ll[f"{d}_{k}"] for k in KINDS},
                                  "detected": {k: ll[f"{d}_{k}"] for k in DETECTED},
                                  "recovery": {k: ll[f"{d}_{k}"] for k in RECOVERY}}
                              for d in ("h2d", "d2h")}}
    if reset_at is not None:
        out["device_resets"] = hit["device_resets"]
    if opts.timing == "off":   # synchronous epochs: the whole functional replay must agree
        out["same_functional_replay"] = functional(clean) == functional(hit)
    out["byte_mismatches"] = hit["check"]["mismatches"]
    out["ok"] = (same_bytes and not down and out["byte_mismatches"] == 0
                 and out.get("same_functional_replay", True)
                 and (reset_at is None or len(out["device_resets"]) == 1))
    return out


def print_report(rep):
    lf = rep.get("link_faults")
    if lf:
        print(f"{'direction':9s} " + " ".join(f"{k:>10s}" for k in KINDS + DETECTED + RECOVERY))
        for d, v in lf["per_direction"].items():
            vals = [*v["injected"].values(), *v["detected"].values(), *v["recovery"].values()]
            print(f"{d:9s} " + " ".join(f"{x:10d}" for x in vals))
        print()
    for ev in rep.get("device_resets", []):
        print(f"device reset before step {ev['step']}: noticed at cycle {ev['noticed_cycle']:,}, "
              f"{ev['reoffloaded']} pages offloaded again, back after "
              f"{ev['recovery_cycles']:,} cycles\n")
    c, h = rep["clean"], rep["faulted"]
    print(f"{'':22s} {'clean':>14s} {'faulted':>14s}")
    for k in ("sim_cycles", "step_ns_mean", "sync_fetch_mean_ns", "sync_fetch_p99_ns",
              "l2_hit_rate", "late", "pages_checked", "mismatches"):
        fmt = (lambda x: "-" if x is None else f"{x:14,.3f}" if isinstance(x, float) else f"{x:14,d}")
        print(f"{k:22s} {fmt(c[k]):>14s} {fmt(h[k]):>14s}")
    cost = (h["sim_cycles"] - c["sim_cycles"]) / c["sim_cycles"] if c["sim_cycles"] else 0.0
    if lf:
        print(f"\nlink faults injected {lf['injected']}, detected {lf['detected']}, flits "
              f"replayed {lf['flits_replayed']}, link down: {'yes' if lf['link_down'] else 'no'}")
    print(f"byte mismatches {rep['byte_mismatches']}; bytes read identical: "
          f"{'yes' if rep['same_bytes'] else 'NO'}; recovery cost {100 * cost:+.2f} % device "
          f"cycles")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="speckv-faults", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE),
                    help="KV trace (default: the bundled mini trace)")
    ap.add_argument("--link-faults", type=float, default=None, metavar="RATE",
                    help="fraction of flits faulted, either way (drop, duplicate, delay, "
                         "corrupt evenly)")
    ap.add_argument("--seed", type=int, default=1, help="link fault stream seed (default 1)")
    ap.add_argument("--device-reset-at", type=int, default=None, metavar="STEP",
                    help="reset the SoC before this decode step, without telling the host")
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
    if a.link_faults is None and a.device_reset_at is None:
        ap.error("nothing to inject: give --link-faults RATE, --device-reset-at STEP or both")
    if a.link_faults is not None and not 0 < a.link_faults <= 1:
        ap.error(f"--link-faults {a.link_faults}: a fraction in (0, 1]")
    if a.device_reset_at is not None and a.device_reset_at < 1:
        ap.error(f"--device-reset-at {a.device_reset_at}: a step after the first (>= 1)")
    from host.driver.link import PROFILES
    if a.link not in PROFILES:
        ap.error(f"unknown link profile {a.link!r}; known: {', '.join(PROFILES)}")
    from soc.targets.sim import build_sim
    from host.replayer.tiers import ReplayError
    build = build_sim(a.build_dir, quiet=a.quiet)
    opts = ReplayOptions(trace=a.trace, backend="rtl", link=a.link, prefetcher=a.prefetcher,
                         k=a.k, steps=a.steps, layers=a.layers, timing=a.timing)
    try:
        rep = compare(opts, a.link_faults, a.seed, a.device_reset_at, build,
                      progress=not a.quiet)
    except (ReplayError, ValueError) as e:
        print(f"speckv-faults: error: {e}", file=sys.stderr)
        return 2
    print_report(rep)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rep, indent=1) + "\n")
        print(f"report: {a.json}")
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
