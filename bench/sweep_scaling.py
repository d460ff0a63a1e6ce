"""A sweep's wall time on this machine's cores beside the serial time of the same cells: the
grid runs twice through speckv-sweep's Ray runner, into two fresh results files, on a local
Ray runtime with all CPUs and with one (one cell at a time: the serial time, the same
per-cell overhead); the two runs' results must be identical cell for cell (wall times
aside). Both runs' results files are kept in build/sweeps/; the parallel run's is copied
beside the grid with its summary and plots. Nothing else should run on the machine
meanwhile (``--runs serial`` remakes one run alone).

    python bench/sweep_scaling.py                          # the issue-24 grid, ~1 h on 2 cores
    python bench/sweep_scaling.py --grid my.toml --json build/sweeps/scaling.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from host.sweep.grid import expand, hash_inputs, load_grid
from host.sweep.report import save_plots, write_summary
from host.sweep.runner import run_sweep
from host.sweep.store import Store

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "docs" / "results" / "sweep" / "predictors.toml"


def _strip(rec):
    return json.dumps({k: v for k, v in rec["result"].items() if k != "speed"}, sort_keys=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--grid", default=str(GRID), help="grid file (default %(default)s)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count(),
                    help="CPUs of the parallel run (default: all, %(default)s)")
    ap.add_argument("--json", default=str(GRID.parent / "scaling.json"),
                    help="write the timings here (default %(default)s)")
    ap.add_argument("--keep", default=None,
                    help="copy the parallel run's results file here (default: the grid's "
                         "'results', beside it) and its plots and summary beside it")
    ap.add_argument("--runs", default="parallel,serial",
                    help="the runs to make now (default both); a run not made is taken from "
                         "its kept results (build/sweeps/scaling-NAME-RUN.jsonl) and --json")
    a = ap.parse_args(argv)
    todo = [x for x in a.runs.split(",") if x]
    if not todo or set(todo) - {"parallel", "serial"}:
        ap.error(f"--runs {a.runs!r}: parallel, serial or both")
    name, results, tables = load_grid(a.grid)
    cells = hash_inputs([c for t in tables for c in expand(t)])
    keep = Path(a.keep) if a.keep else Path(a.grid).parent / (results or f"{name}.jsonl")
    before = json.loads(Path(a.json).read_text())["runs"] if Path(a.json).is_file() else {}
    runs, recs = {}, {}
    for label, cpus in (("parallel", a.cpus), ("serial", 1)):
        path = ROOT / "build" / "sweeps" / f"scaling-{name}-{label}.jsonl"
        if label in todo:
            path.unlink(missing_ok=True)
            print(f"[{label}] {len(cells)} cells on {cpus} CPU(s) ...", file=sys.stderr)
            st = run_sweep(cells, Store(path), f"{name}-{label}", cpus=cpus)
            runs[label] = {"cpus": cpus, "wall_s": round(st.wall_s, 1), "ran": st.ran,
                           "failed": st.failed, "date": str(datetime.date.today())}
        elif label in before and path.is_file():
            runs[label] = before[label]
        else:
            ap.error(f"no earlier {label} run to take ({path}, {a.json}): run it (--runs)")
        recs[label] = Store(path).load()
        runs[label]["sum_cell_wall_s"] = round(sum(r["wall_s"] for r in recs[label].values()), 1)
    par, ser = recs["parallel"], recs["serial"]
    same = sum(k in ser and par[k]["status"] == ser[k]["status"] == "ok"
               and _strip(par[k]) == _strip(ser[k]) for k in par)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    out = {"grid": str(Path(a.grid).resolve().relative_to(ROOT)), "cells": len(cells),
           "machine_cpus": os.cpu_count(), "runs": runs,
           "speedup": round(runs["serial"]["wall_s"] / runs["parallel"]["wall_s"], 3),
           "identical_results": same, "commit": commit,
           "command": "python bench/sweep_scaling.py " + " ".join(argv or sys.argv[1:])}
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "build" / "sweeps" / f"scaling-{name}-parallel.jsonl", keep)
    cells_order = list(dict.fromkeys(c.key for c in cells))
    write_summary([par[k] for k in cells_order], keep, name)
    plots = save_plots(list(par.values()), keep.parent)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{'run':10s} {'CPUs':>5s} {'cells':>6s} {'failed':>6s} {'wall s':>9s} "
          f"{'sum of cell walls s':>20s}")
    for label, r in runs.items():
        print(f"{label:10s} {r['cpus']:5d} {r['ran']:6d} {r['failed']:6d} {r['wall_s']:9.1f} "
              f"{r['sum_cell_wall_s']:20.1f}")
    print(f"speedup {out['speedup']:.2f}x on {a.cpus} CPUs; results identical in "
          f"{same} of {len(cells)} cells")
    print(f"results {keep}; plots {', '.join(p.name for p in plots)}; timings {a.json}")
    return 0 if same == len(cells) else 1


if __name__ == "__main__":
    sys.exit(main())
