"""Do the rtl and model backends give the same functional replay? A command and its check.

The model backend stands in for the Verilator SoC in every long replay (the four-workload
tables, sweeps), so it must decide exactly what the SoC decides. This replays one
configuration on both with synchronous epochs (``--timing off``) and compares, step by step: the tier of every page access (step,
page, L1/L2/L3), every prefetch decision (page and L2 slot, in DMA order), the firmware's
step records (minus its cycle counts) and the bytes read (SHA-256 over every page read).
Timing is not compared: the model's latencies are estimates (``host/replayer/costs.py``).

    python -m host.replayer.equivalence                       # the whole bundled mini trace
    python -m host.replayer.equivalence --steps 6 --layers 4 --prefetcher last -k 2
    python -m host.replayer.equivalence --json docs/results/rtl_vs_model_mini.json

Exit status 0 when the backends agree, 1 when they differ (the differences are listed).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from host.replayer.engine import DEFAULT_TRACE, PREFETCHERS, ROOT, ReplayOptions, replay

RECORD_TIMING = ("predict_cycles", "issue_cycles", "dma_wait_cycles")   # firmware timer fields: not functional


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, separators=(",", ":")).encode()).hexdigest()


def _shown(path) -> str:
    """A path as shown in results: relative to the repository when inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _file_sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def functional(r: dict) -> dict:
    """The functional part of a replay result, per step: access tiers, prefetch decisions,
    step records without cycle counts; and the digest of every byte read."""
    steps = r["config"]["steps"]
    acc = [[] for _ in range(steps)]
    for s, vpn, tier in r["sequence"]["accesses"]:
        acc[s].append([vpn, tier])
    iss = [[] for _ in range(steps)]
    for s, vpn, slot in r["sequence"]["issued"]:
        iss[s].append([vpn, slot])
    recs = [{k: v for k, v in rec.items() if k not in RECORD_TIMING}
            for rec in r["sequence"]["records"]]
    return {"accesses": acc, "issued": iss, "records": recs, "digest": r["check"]["digest"]}


def differences(model: dict, rtl: dict) -> list[str]:
    """What differs between two replay results, functionally ([] if nothing)."""
    fm, fr = functional(model), functional(rtl)
    out = []
    for what in ("accesses", "issued", "records"):
        for s, (a, b) in enumerate(zip(fm[what], fr[what])):
            if a != b:
                out.append(f"step {s}: {what} differ")
        if len(fm[what]) != len(fr[what]):
            out.append(f"{what}: {len(fm[what])} steps (model) vs {len(fr[what])} (rtl)")
    if fm["digest"] != fr["digest"]:
        out.append("the bytes read differ (data digest)")
    for name, r in (("model", model), ("rtl", rtl)):
        if r["check"]["mismatches"]:
            out.append(f"{name}: {r['check']['mismatches']} pages failed the data check")
    return out


def per_step(r: dict) -> list[dict]:
    """One row a step: tiers, prefetches, and hashes of the step's accesses, decisions and
    record (what the committed result pins)."""
    f = functional(r)
    return [{"step": s["step"], "l1": s["l1"], "l2": s["l2"], "l3": s["l3"],
             "issued": s["issued"], "accesses_sha256": _sha(f["accesses"][i]),
             "issued_sha256": _sha(f["issued"][i]), "record_sha256": _sha(f["records"][i])}
            for i, s in enumerate(r["per_step"])]


def compare(opts: ReplayOptions, build=None, progress=True) -> dict:
    """Replay `opts` on the model and rtl backends with synchronous epochs (``timing off``:
    their decisions are then identical, cycle counts aside); the comparison as a JSON-able
    dict. Timing-true replays agree within a tolerance instead (tests/test_replay.py)."""
    opts = replace(opts, timing="off")
    m = replay(replace(opts, backend="model", label="model"), progress=progress)
    r = replay(replace(opts, backend="rtl", label="rtl"), build=build, progress=progress)
    diff = differences(m, r)
    rows_m, rows_r = per_step(m), per_step(r)
    return {
        "config": {**{k: v for k, v in asdict(opts).items()
                      if k not in ("backend", "label", "waveform", "server", "board_dir")},
                   "trace": _shown(opts.trace), "trace_file_sha256": _file_sha(opts.trace),
                   "steps": m["config"]["steps"], "layers": m["config"]["layers"]},
        "equal": not diff, "differences": diff,
        "totals": {name: {"accesses": x["accesses"], "prefetch_issued": x["prefetch"]["issued"],
                          "check": x["check"], "prefetch": x["prefetch"],
                          "latency_ns": x["latency_ns"], "compression": x["compression"]}
                   for name, x in (("model", m), ("rtl", r))},
        "per_step": rows_m if rows_m == rows_r else {"model": rows_m, "rtl": rows_r},
        "speed": {"model_wall_s": m["speed"]["wall_s"], "rtl_wall_s": r["speed"]["wall_s"],
                  "rtl_sim_cycles": r["speed"]["sim_cycles"]},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host.replayer.equivalence",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Defaults are those of `make sim` (the demo): the whole "
                                        "trace, LSTM, k 8. The rtl replay of the whole mini "
                                        "trace takes about ten minutes on 2 cores.")
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE),
                    help="trace file (default: the bundled %(default)s)")
    ap.add_argument("--steps", type=int, default=None, help="first N decode steps (default all)")
    ap.add_argument("--layers", type=int, default=None, help="first N layers (default all)")
    ap.add_argument("--prefetcher", choices=PREFETCHERS, default="lstm")
    ap.add_argument("-k", "--k", type=int, default=8, help="prediction depth (default %(default)s)")
    ap.add_argument("--ucb", action="store_true", help="adaptive k (UCB)")
    ap.add_argument("--throttle", action="store_true", help="precision throttle")
    ap.add_argument("--l2-slots", type=int, default=512, help="L2 slots (default %(default)s)")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "sim"),
                    help="SoC build directory (built if needed; default %(default)s)")
    ap.add_argument("--json", default=None, help="write the comparison here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    if not Path(a.trace).is_file():
        ap.error(f"trace file not found: {a.trace}")
    opts = ReplayOptions(trace=a.trace, prefetcher=a.prefetcher, k=a.k, ucb=a.ucb,
                         throttle=a.throttle, l2_slots=a.l2_slots, steps=a.steps,
                         layers=a.layers)
    from soc.targets.sim import build_sim
    res = compare(opts, build_sim(a.build_dir, quiet=a.quiet), progress=not a.quiet)
    c = res["config"]
    print(f"{Path(c['trace']).name}: {c['steps']} steps x {c['layers']} layers, "
          f"{c['prefetcher']} k {c['k']}: "
          + ("rtl == model (tiers, prefetch decisions, step records, bytes)" if res["equal"]
             else "rtl != model"))
    for name, t in res["totals"].items():
        a_ = t["accesses"]
        print(f"  {name:5s}  L1 {a_['l1']}  L2 {a_['l2']}  L3 {a_['l3']}  prefetched "
              f"{t['prefetch_issued']}  checked {t['check']['pages_checked']}/"
              f"{t['check']['mismatches']}  digest {t['check']['digest'][:16]}")
    for d in res["differences"]:
        print(f"  DIFFERS: {d}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
        print(f"results: {a.json}")
    return 0 if res["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
