"""speckv-sweep: design-space sweeps (replays, codec evaluations, serving-model runs) as a grid
of cells executed as Ray tasks, on this machine (a local Ray runtime on its cores) or on a
cluster (``--address``). Finished cells are found by key and skipped: rerunning a command
resumes it. Results: one JSON Lines file (a line per cell) and a summary table.

Examples::

    speckv-sweep run docs/results/sweep/predictors.toml
    speckv-sweep run --kind replay --set backend=model --axis prefetcher=last,lstm \\
        --axis k=4,8 --results build/sweeps/quick.jsonl
    speckv-sweep run grid.yaml --address ray://head:10001
    speckv-sweep summary build/sweeps/quick.jsonl
    speckv-sweep plot build/sweeps/quick.jsonl --out build/sweeps/plots
    speckv-sweep params replay
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from host.sweep.grid import (KINDS, ROOT, GridError, expand, hash_inputs, load_grid,
                             params_help, parse_assignments)
from host.sweep.report import save_plots, summary_markdown, write_summary
from host.sweep.store import Store

DEFAULT_DIR = ROOT / "build" / "sweeps"


def _cells(a, ap):
    """(name, results path, cells) of the grid file or the command line's grid."""
    if a.grid and (a.kind or a.set or a.axis):
        ap.error("give a grid file or --kind/--set/--axis, not both")
    try:
        if a.grid:
            name, results, tables = load_grid(a.grid)
            if results and not a.results:          # a grid's results: beside the grid file
                results = Path(a.grid).parent / results
        else:
            if not a.kind:
                ap.error("no grid: give a grid file, or --kind with --set/--axis")
            name, results = a.name or f"{a.kind}-cli", a.results
            tables = [parse_assignments(a.kind, a.set, a.axis)]
        cells = [c for t in tables for c in expand(t)]
        hash_inputs(cells)
    except GridError as e:
        print(f"speckv-sweep: error: {e}", file=sys.stderr)
        sys.exit(2)
    name = a.name or name
    return name, Path(results or DEFAULT_DIR / f"{name}.jsonl"), cells


def _records(store, cells=None):
    done = store.load()
    if cells is None:
        return list(done.values())
    keys = list(dict.fromkeys(c.key for c in cells))
    return [done[k] for k in keys if k in done]


def cmd_run(a, ap):
    from host.sweep.runner import pending, run_sweep
    name, path, cells = _cells(a, ap)
    store = Store(path)
    todo = pending(cells, store.load(), retry_failed=not a.keep_failed)
    n = len({c.key for c in cells})
    print(f"sweep {name}: {n} cells, {n - len(todo)} finished earlier, {len(todo)} to run; "
          f"results {path}", file=sys.stderr)
    if a.dry_run:
        for c in todo:
            print(f"{c.key}  {c.kind:6s} {c.label()}")
        return 0
    build = None
    if any(c.kind == "replay" and c.params["backend"] == "rtl" for c in todo):
        from soc.targets.sim import build_sim
        build = build_sim(a.build_dir, quiet=a.quiet)
    def stop(signum, frame):          # SIGTERM (and SIGINT in a background job) as Ctrl-C
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        st = run_sweep(cells, store, name, address=a.address, cpus=a.cpus,
                       retry_failed=not a.keep_failed, progress=not a.quiet, build=build)
    except KeyboardInterrupt:
        left = len(pending(cells, store.load(), retry_failed=not a.keep_failed))
        print(f"\nsweep {name}: interrupted; {n - left} of {n} cells finished are kept in "
              f"{path}; run the same command again to resume", file=sys.stderr)
        return 130
    recs = _records(store, cells)
    summary, _ = write_summary(recs, path, name)
    print(summary_markdown(recs))
    ran = (f"ran {st.ran} cells ({st.failed} failed) in {st.wall_s:.1f} s on {st.cpus:g} CPUs, "
           f"{st.skipped} finished earlier" if st.ran else
           f"nothing to run: all {st.cells} cells finished earlier")
    print(f"sweep {name}: {ran}; results {path}, summary {summary}", file=sys.stderr)
    if a.plots:
        for p in save_plots(recs, a.plots):
            print(f"plot: {p}", file=sys.stderr)
    return 1 if any(r["status"] != "ok" for r in recs) else 0


def _results(path, ap):
    if not Path(path).is_file():
        ap.error(f"results file not found: {path}")
    try:
        return Store(path).load()
    except (ValueError, KeyError) as e:
        ap.error(f"{path}: not a sweep results file ({e})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="speckv-sweep", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a grid's unfinished cells (the grid file format: "
                                   "host/sweep/grid.py, docs/sweeps.md)")
    r.add_argument("grid", nargs="?", help="grid file (.toml, .yaml)")
    r.add_argument("--kind", choices=KINDS, help="without a grid file: the cells' kind")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="without a grid file: a parameter fixed for every cell (repeatable)")
    r.add_argument("--axis", action="append", default=[], metavar="NAME=V1,V2",
                   help="without a grid file: an axis of the grid (repeatable)")
    r.add_argument("--name", help="the sweep's name (default: the grid file's name)")
    r.add_argument("--results", help="JSON Lines results file (default: the grid's "
                                     "'results', else build/sweeps/NAME.jsonl)")
    r.add_argument("--address", help="join this Ray cluster (ray://HOST:PORT or HOST:PORT); "
                                     "default: start a local Ray runtime on this machine")
    r.add_argument("--cpus", type=int, default=None,
                   help="local runtime: CPUs it may use, one cell each (default: all cores)")
    r.add_argument("--keep-failed", action="store_true",
                   help="do not run again the cells that failed in an earlier run")
    r.add_argument("--dry-run", action="store_true", help="list the cells still to run, run none")
    r.add_argument("--plots", help="also write the plots into this folder")
    r.add_argument("--build-dir", default=str(ROOT / "build" / "sim"),
                   help="rtl replay cells: the simulation build they share (built once)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("summary", help="print the summary table of a results file")
    s.add_argument("results")
    s.add_argument("--write", action="store_true",
                   help="also write RESULTS.summary.md and .summary.json beside it")
    p = sub.add_parser("plot", help="write the plots of a results file")
    p.add_argument("results")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    k = sub.add_parser("params", help="list each kind's parameters and defaults")
    k.add_argument("kind", nargs="?", choices=KINDS)
    a = ap.parse_args(argv)
    if a.cmd == "run":
        if a.cpus is not None and a.cpus < 1:
            ap.error(f"--cpus {a.cpus}: at least 1")
        return cmd_run(a, ap)
    if a.cmd == "summary":
        recs = list(_results(a.results, ap).values())
        print(summary_markdown(recs))
        if a.write:
            for f in write_summary(recs, a.results, Path(a.results).stem):
                print(f"wrote {f}", file=sys.stderr)
        return 0
    if a.cmd == "plot":
        paths = save_plots(list(_results(a.results, ap).values()), a.out)
        if not paths:
            ap.error(f"{a.results}: no finished cells to plot")
        for f in paths:
            print(f"plot: {f}")
        return 0
    for kind in [a.kind] if a.kind else KINDS:
        print(f"{kind}:")
        print("\n".join(params_help(kind)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
