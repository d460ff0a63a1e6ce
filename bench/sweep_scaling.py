"""A sweep's wall time on this machine's cores beside the serial time of the same cells: the
grid runs twice through speckv-sweep's Ray runner, into two fresh results files, on a local
Ray runtime with all CPUs and with one (one cell at a time: the serial time, the same
per-cell overhead); the two runs' results must be identical cell for cell (wall times
aside). The parallel run's results file and its plots are kept.

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
import tempfile
from pathlib import Path

from host.sweep.grid import expand, hash_inputs, load_grid
from host.sweep.report import save_plots, summary_markdown
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
    a = ap.parse_args(argv)
    name, results, tables = load_grid(a.grid)
    cells = hash_inputs([c for t in tables for c in expand(t)])
    keep = Path(a.keep) if a.keep else Path(a.grid).parent / (results or f"{name}.jsonl")
    tmp = Path(tempfile.mkdtemp(prefix="sweep-scaling-"))
    runs = {}
    for label, cpus in (("parallel", a.cpus), ("serial", 1)):
        store = Store(tmp / f"{label}.jsonl")
        print(f"[{label}] {len(cells)} cells on {cpus} CPU(s) ...", file=sys.stderr)
        st = run_sweep(cells, store, f"{name}-{label}", cpus=cpus)
        recs = store.load()
        runs[label] = {"cpus": cpus, "wall_s": round(st.wall_s, 1), "ran": st.ran,
                       "failed": st.failed,
                       "sum_cell_wall_s": round(sum(r["wall_s"] for r in recs.values()), 1)}
        runs[label]["records"] = recs
    par, ser = runs["parallel"].pop("records"), runs["serial"].pop("records")
    same = sum(par[k]["status"] == ser[k]["status"] == "ok" and _strip(par[k]) == _strip(ser[k])
               for k in par)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    out = {"grid": str(Path(a.grid).resolve().relative_to(ROOT)), "cells": len(cells),
           "machine_cpus": os.cpu_count(), "runs": runs,
           "speedup": round(runs["serial"]["wall_s"] / runs["parallel"]["wall_s"], 3),
           "identical_results": same, "date": str(datetime.date.today()), "commit": commit,
           "command": "python bench/sweep_scaling.py " + " ".join(argv or sys.argv[1:])}
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp / "parallel.jsonl", keep)
    keep.with_suffix(".summary.md").write_text(f"# sweep {name}\n\n"
                                               + summary_markdown(list(par.values())))
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
    shutil.rmtree(tmp)
    return 0 if same == len(cells) else 1


if __name__ == "__main__":
    sys.exit(main())
