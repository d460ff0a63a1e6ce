"""Executing a sweep's cells as Ray tasks: a local Ray runtime on this machine's cores, or an
existing cluster (``address``). Finished cells (by key) are skipped; each cell's record is
appended to the results file the moment it arrives; a failed cell is recorded and the sweep
goes on; Ctrl-C cancels what is still running and keeps what finished.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from host.sweep.cells import run_cell
from host.sweep.grid import ROOT

# Not shipped to a cluster with the code (build outputs, the venv, history, docs).
SHIP_EXCLUDES = ["build/", ".venv/", ".git/", "docs/", "**/__pycache__/"]


@dataclass
class SweepStats:
    cells: int = 0
    skipped: int = 0          # finished in an earlier run (same key)
    ran: int = 0
    failed: int = 0
    wall_s: float = 0.0
    cpus: float = 0.0
    ran_keys: list = field(default_factory=list)


def pending(cells, done, retry_failed=True):
    """The cells still to run, given ``done`` ({key: last record}) from the results file."""
    out, seen = [], set()
    for c in cells:
        rec = done.get(c.key)
        if c.key in seen or (rec and (rec["status"] == "ok" or not retry_failed)):
            continue
        seen.add(c.key)
        out.append(c)
    return out


def _init_ray(address, cpus, quiet):
    """Start (or join) Ray; returns (ray module, whether we started it)."""
    import ray
    if ray.is_initialized():
        return ray, False
    kw = dict(include_dashboard=False, log_to_driver=not quiet, logging_level="ERROR",
              configure_logging=True)
    if address:
        # the code travels with the job; input files must be at the same paths on every
        # node (each cell checks their hashes before it runs)
        ray.init(address=address, runtime_env={"working_dir": str(ROOT),
                                               "excludes": SHIP_EXCLUDES}, **kw)
    else:
        ray.init(num_cpus=cpus or os.cpu_count(), object_store_memory=200 * 2**20, **kw)
    return ray, True


def run_sweep(cells, store, name="", address=None, cpus=None, retry_failed=True,
              progress=True, build=None):
    """Run the cells ``store`` has not finished; returns ``SweepStats``.

    ``build``: the simulation build (``soc.targets.sim.build_sim``) the rtl cells share.
    """
    done = store.load()
    todo = pending(cells, done, retry_failed)
    stats = SweepStats(cells=len({c.key for c in cells}))
    stats.skipped = stats.cells - len(todo)
    if not todo:
        return stats
    t0 = time.time()
    ray, started = _init_ray(address, cpus, quiet=not progress)
    stats.cpus = ray.cluster_resources().get("CPU", 0.0)
    task = ray.remote(num_cpus=1, max_retries=0)(run_cell)
    refs = {task.remote(c.kind, c.params, c.inputs, build if c.kind == "replay"
                        and c.params["backend"] == "rtl" else None): c for c in todo}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f"sweep {name}".strip(), unit="cell", file=sys.stderr)
    waiting = list(refs)
    try:
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in ready:
                cell = refs[ref]
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayError as e:   # the worker died, the task was lost
                    rec = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                store.append(cell, rec, name)
                stats.ran += 1
                stats.ran_keys.append(cell.key)
                if rec["status"] != "ok":
                    stats.failed += 1
                    if bar is not None:
                        bar.write(f"failed: {cell.kind} {cell.label()}: {rec['error']}")
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                running = min(len(waiting), int(stats.cpus))
                bar.set_postfix_str(f"done {stats.ran - stats.failed}, running {running}, "
                                    f"queued {len(waiting) - running}, failed {stats.failed}")
    except KeyboardInterrupt:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        stats.wall_s = time.time() - t0
        if started:
            ray.shutdown()
    return stats
