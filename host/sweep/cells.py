"""Running one cell: a replay, a codec evaluation or a serving-model evaluation, through the
same functions their command lines call. Runs inside a Ray worker (or any process); knows
nothing of Ray.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path

from host.sweep.grid import file_sha256, trace_path

# Replay result fields too large for a results line (every access, every latency, per step).
REPLAY_DROP = ("sequence", "latencies_ns", "per_step")


def replay_options(params, trace=None):
    """The ``ReplayOptions`` of a replay cell (``trace``: the path its inputs name)."""
    from host.replayer.engine import ReplayOptions
    skip = {"workload", "trace", "traces_dir"}
    return ReplayOptions(trace=str(trace or trace_path(params)),
                         **{k: v for k, v in params.items() if k not in skip},
                         label=params["prefetcher"])


def compact_replay(res):
    """A replay's result as a sweep keeps it (the large per-access fields dropped)."""
    return {k: v for k, v in res.items() if k not in REPLAY_DROP}


def _replay(params, inputs, build):
    from host.replayer.engine import replay
    o = replay_options(params, inputs["trace"]["path"])
    return compact_replay(replay(o, build=build, progress=False))


def _codec(params):
    from host.codec_eval.perplexity import EvalOptions, evaluate
    return evaluate(EvalOptions(**params), threads=_threads())


def _serve(params):
    from host.serving.cli import ServeOptions, run_one
    return run_one(ServeOptions(**params))


def _threads():
    """The CPUs this worker was given (Ray sets OMP_NUM_THREADS to the task's num_cpus)."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))


def _check_inputs(inputs):
    """The files this worker sees are the ones the cell was keyed by (a cluster node with
    another copy of a trace would otherwise file a result under the wrong key)."""
    for role, f in inputs.items():
        if not Path(f["path"]).is_file():
            raise FileNotFoundError(f"{role} file {f['path']} is not on node "
                                    f"{socket.gethostname()}")
        got = file_sha256(f["path"])
        if got != f["sha256"]:
            raise ValueError(f"{role} file {f['path']} on node {socket.gethostname()} has "
                             f"SHA-256 {got[:12]}, the cell was keyed by {f['sha256'][:12]}")


def run_cell(kind, params, inputs, build=None):
    """Run one cell; never raises: returns ``{"status", "result" | "error", "wall_s", ...}``."""
    t0 = time.time()
    rec = {"node": socket.gethostname(), "pid": os.getpid()}
    try:
        _check_inputs(inputs)
        if kind == "replay":
            result = _replay(params, inputs, build)
        elif kind == "codec":
            result = _codec(params)
        elif kind == "serve":
            result = _serve(params)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        rec.update(status="ok", result=result)
    except Exception as e:            # a failed cell is recorded, the sweep goes on
        rec.update(status="failed", error=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc(limit=8))
    rec["wall_s"] = round(time.time() - t0, 3)
    return rec
