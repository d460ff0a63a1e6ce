"""The replay engine: the host's side of every decode step of a real KV trace, against the
simulated SoC (``--backend rtl``) or the reference models (``--backend model``).

Per decode step the host (stand-in for GPU + serving engine):

1. offloads the pages that became full (compressed into the device pool: flow 1);
2. reads every page the step attends (dense: all; sparse: the trace's Quest selection):
   from L1 (the last ``--l1-pages`` full pages of each (layer, KV head), plus the tail),
   else from L2 (the prefetch buffer the device writes; looked up in its directory in host
   memory), else by a synchronous demand read over the link (flow 2); every page read from
   L2 or the device is checked against the trace's original KV (``host/replayer/page_check.py``:
   values within the mode's error bound, the page asked for, bit-exact with the reference
   decode);
3. posts the step's hint; the device's firmware predicts the next step's pages and
   prefetches them into L2 (flow 3). Epochs are synchronous: the step's prefetches complete
   before the next step reads, so both backends see the same hits; the time they take is
   reported next to the step's compute budget.

The command line is ``host/replay.py``; ``compare`` runs the paper's baselines side by side.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gateware.common import PAGE_BYTES as PAGE

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACE = ROOT / "traces" / "mini-replay.safetensors"
PREFETCHERS = ("none", "last", "stride", "markov", "layer_ahead", "lstm")


@dataclass
class ReplayOptions:
    trace: str = str(DEFAULT_TRACE)
    backend: str = "model"
    link: str = "cxl2-x16"
    codec: str = "kivi_k4v3"
    prefetcher: str = "lstm"
    k: int = 8
    ucb: bool = False
    throttle: bool = False
    mode: str = "sparse"
    l1_pages: int | None = None    # None: the trace's sparse window / 16; -1: everything (GPU only)
    l2_slots: int = 512
    steps: int | None = None
    layers: int | None = None
    step_ns: float = 20_000.0      # compute time per decode step the prefetches may hide behind
    label: str = ""
    waveform: tuple | None = None  # rtl: (fst file, first cycle, last cycle)
    server: str = "localhost:1234"             # board: litex_server's host:port
    board_dir: str = str(ROOT / "build" / "ulx3s")  # board: its build (csr.csv, csr.json)


@dataclass
class StepLog:
    step: int
    l1: int = 0
    l2: int = 0
    l3: int = 0
    miss_cycles: list = field(default_factory=list)
    issued: list = field(default_factory=list)   # (vpn, slot)
    record: dict = field(default_factory=dict)
    prefetch_cycles: int = 0


class ReplayError(RuntimeError):
    pass


def _setup_trace(opts):
    from host.traces.format import load_trace
    t = load_trace(opts.trace)
    if opts.mode not in ("dense", "sparse"):
        raise ReplayError(f"--mode must be dense or sparse, not {opts.mode!r}")
    layers = t.n_layers if opts.layers is None else opts.layers
    if not 1 <= layers <= t.n_layers:
        raise ReplayError(f"--layers {layers}: the trace has {t.n_layers} layers")
    if layers * t.n_kv_heads > 96:
        raise ReplayError(f"{layers} layers x {t.n_kv_heads} KV heads = "
                          f"{layers * t.n_kv_heads} streams; the device serves at most 96")
    steps = t.n_steps if opts.steps is None else opts.steps
    if not 1 <= steps <= t.n_steps:
        raise ReplayError(f"--steps {steps}: the trace has {t.n_steps} decode steps")
    return t, layers, steps


def make_backend(opts, build=None):
    from host.replayer.backends import BoardBackend, ModelBackend, RtlBackend
    if opts.backend == "model":
        return ModelBackend(opts.codec, opts.link)
    if opts.backend == "board":
        from litex.tools.litex_client import RemoteClient
        from host.driver.tunnel import RemoteTarget
        board = Path(opts.board_dir)
        host, _, port = opts.server.rpartition(":")
        bus = RemoteClient(host=host or "localhost", port=int(port),
                           csr_csv=str(board / "csr.csv"))
        bus.open()
        return BoardBackend(RemoteTarget(bus, board / "csr.json"), opts.codec, own_bus=True)
    if opts.backend == "rtl":
        if build is None:
            from soc.targets.sim import build_sim
            build = build_sim(ROOT / "build" / "sim", quiet=True)
        return RtlBackend(build, opts.codec, opts.link, waveform=opts.waveform)
    raise ReplayError(f"unknown backend {opts.backend!r}: model or rtl")


def replay(opts: ReplayOptions, backend=None, build=None, progress=True):
    """Replay one configuration; returns the result dict (see :func:`summarize`)."""
    from host.driver.hints import SpecConfig, encode_step
    from host.replayer.page_check import PageCheck
    from host.prefetch import make_predictor

    if opts.prefetcher not in PREFETCHERS:
        raise ReplayError(f"unknown prefetcher {opts.prefetcher!r}; known: {', '.join(PREFETCHERS)}")
    t, layers, steps = _setup_trace(opts)
    H = t.n_kv_heads
    n_streams = layers * H
    l1 = opts.l1_pages
    if l1 is None:
        l1 = max(1, t.meta["sparse"]["window"] // 16)
    gpu_only = l1 < 0
    if gpu_only:
        l1 = 255
    own = backend is None
    backend = backend or make_backend(opts, build)
    wall0 = time.time()
    mask = t.access_mask(opts.mode)                     # [S, L, H, P]
    cfg = SpecConfig(request=0x5EC0 + 1, kind=PREFETCHERS.index(opts.prefetcher), k=opts.k,
                     ucb=opts.ucb, throttle=opts.throttle, heads=H, layers=layers,
                     l2_base=0, l2_slots=opts.l2_slots, l1_pages=l1)
    pred = make_predictor(opts.prefetcher, l1=l1)
    backend.start(cfg, pred)

    digest = hashlib.sha256()
    check = PageCheck(t, opts.codec)
    mismatches = 0
    lengths = {}
    offloaded = 0
    logs = []
    accesses = []   # (step, vpn, tier)
    owner = {}      # L2 slot -> (step issued, vpn): a prefetch is used if read before overwritten
    used_keys = set()

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"replay {opts.backend} {opts.label or opts.prefetcher}",
                   unit="step", file=sys.stderr, leave=False)
    try:
        for s in range(steps):
            log = StepLog(s)
            n_full = int(t.n_full[s])
            # 1. offload the pages that became full (not for the GPU-only case: no device)
            if not gpu_only:
                for p in range(offloaded, n_full):
                    for st in range(n_streams):
                        vpn = (st << t.page_bits) | p
                        n = backend.offload(vpn, t.page(vpn))
                        lengths[vpn] = n
                        mismatches += not check.offload(vpn, n)
                offloaded = max(offloaded, n_full)
            # 2. reads
            index = {} if gpu_only else backend.l2_index()
            streams = []
            for st in range(n_streams):
                acc = np.nonzero(mask[s, st // H, st % H, :n_full])[0]
                streams.append((n_full, acc))
                for p in acc:
                    vpn = (st << t.page_bits) | int(p)
                    if p >= n_full - l1:
                        log.l1 += 1
                        accesses.append((s, vpn, 1))
                        continue
                    if vpn in index:
                        data = backend.l2_page(index[vpn])
                        if owner.get(index[vpn], (0, -1))[1] == vpn:
                            used_keys.add(owner[index[vpn]])
                        log.l2 += 1
                        accesses.append((s, vpn, 2))
                    else:
                        data, cyc = backend.demand_read(vpn)
                        log.l3 += 1
                        log.miss_cycles.append(int(cyc))
                        accesses.append((s, vpn, 3))
                    digest.update(data)
                    mismatches += not check.read(vpn, data)
            # 3. hint -> prefetches for the next step
            if not gpu_only:
                chunks = encode_step(cfg.request, s, streams, dense=opts.mode == "dense")
                rec, issued = backend.hint(chunks)
                log.record = rec
                log.issued = issued
                for vpn, slot in issued:
                    owner[slot] = (s, vpn)
                log.prefetch_cycles = int(rec.get("predict_cycles", 0)) + int(rec.get("issue_cycles", 0))
            logs.append(log)
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
        drv = getattr(backend, "drv", None)
        sim_cycles = drv.cycle if drv is not None else None
        if own:
            backend.close()
    wall = time.time() - wall0
    return summarize(opts, t, layers, steps, l1, gpu_only, logs, accesses, lengths,
                     check.summary(), mismatches, digest.hexdigest(), wall, sim_cycles,
                     backend, used_keys)


def summarize(opts, t, layers, steps, l1, gpu_only, logs, accesses, lengths, check,
              mismatches, digest, wall, sim_cycles, backend, used_keys):
    from host.driver.link import PROFILES
    ns_per_cycle = 1.0 / backend.cycles_per_ns
    note = PROFILES[opts.link].note
    if opts.backend == "board":
        note = ("board: UARTBone through litex_server and the message tunnel; latencies are "
                "the UART's, device cycles from the SoC's uptime counter")
    l1n = sum(g.l1 for g in logs)
    l2n = sum(g.l2 for g in logs)
    l3n = sum(g.l3 for g in logs)
    miss = np.array([c for g in logs for c in g.miss_cycles], dtype=np.float64) * ns_per_cycle
    issued = sum(len(g.issued) for g in logs)
    used = len(used_keys)
    wasted = issued - used
    pf_ns = np.array([g.prefetch_cycles for g in logs if not gpu_only], dtype=np.float64) * ns_per_cycle
    stall_ns = np.array([sum(g.miss_cycles) for g in logs], dtype=np.float64) * ns_per_cycle
    lat_all = np.concatenate([np.zeros(l1n + l2n), miss]) if (l1n + l2n + l3n) else np.zeros(1)
    per_layer = {}
    for vpn, n in lengths.items():
        layer = (vpn >> t.page_bits) // t.n_kv_heads
        per_layer.setdefault(layer, []).append(n)
    ratio_layer = {int(k): PAGE * len(v) / sum(v) for k, v in sorted(per_layer.items())}
    non_l1 = l2n + l3n
    res = {
        "config": {**asdict(opts), "l1_pages": l1 if not gpu_only else "all", "layers": layers,
                   "steps": steps, "trace_sha256": t.meta.get("sha256") or None,
                   "workload": t.meta.get("workload", {}).get("name"),
                   "link_note": note},
        "accesses": {"total": l1n + l2n + l3n, "l1": l1n, "l2": l2n, "l3": l3n,
                     "l2_hit_rate": (l2n / non_l1) if non_l1 else None},
        "prefetch": {"issued": issued, "used": used, "wasted": wasted,
                     "precision": used / issued if issued else None,
                     "coverage": (l2n / non_l1) if non_l1 else None,
                     "wasted_bytes": wasted * PAGE,
                     "mean_step_ns": float(pf_ns.mean()) if len(pf_ns) else 0.0,
                     "max_step_ns": float(pf_ns.max()) if len(pf_ns) else 0.0,
                     "steps_over_budget": int((pf_ns > opts.step_ns).sum()),
                     "mean_ns_per_page": float(pf_ns.sum() / issued) if issued else None},
        "latency_ns": {"source": backend.CALIBRATION,
                       "sync_fetch_mean": float(miss.mean()) if len(miss) else None,
                       "sync_fetch_p50": float(np.percentile(miss, 50)) if len(miss) else None,
                       "sync_fetch_p99": float(np.percentile(miss, 99)) if len(miss) else None,
                       "effective_mean": float(lat_all.mean()),
                       "effective_mean_outside_l1": float(miss.sum() / non_l1) if non_l1 else None,
                       "stall_per_step_mean": float(stall_ns.mean()) if len(stall_ns) else 0.0},
        "link_bytes": {"demand": l3n * PAGE, "prefetch": issued * (PAGE + 64),
                       "offload": len(lengths) * PAGE},
        "compression": {"pages": len(lengths),
                        "ratio": PAGE * len(lengths) / sum(lengths.values()) if lengths else None,
                        "per_layer": ratio_layer},
        "check": {**check, "mismatches": mismatches, "digest": digest},
        "speed": {"wall_s": wall, "steps_per_s": steps / wall if wall else None,
                  "sim_cycles": sim_cycles,
                  "sim_cycles_per_s": (sim_cycles / wall) if sim_cycles and wall else None},
        "sequence": {"accesses": [list(map(int, a)) for a in accesses],
                     "issued": [[g.step, int(v), int(sl)] for g in logs for v, sl in g.issued],
                     "records": [g.record for g in logs]},
        "per_step": [{"step": g.step, "l1": g.l1, "l2": g.l2, "l3": g.l3,
                      "issued": len(g.issued), "prefetch_ns": g.prefetch_cycles * ns_per_cycle,
                      "stall_ns": sum(g.miss_cycles) * ns_per_cycle} for g in logs],
        "latencies_ns": miss.tolist(),
    }
    return res


COMPARE = [("gpu-only", dict(l1_pages=-1, prefetcher="none")),
           ("cxl-nospec", dict(prefetcher="none")),
           ("last", dict(prefetcher="last")),
           ("stride", dict(prefetcher="stride")),
           ("markov", dict(prefetcher="markov")),
           ("layer_ahead", dict(prefetcher="layer_ahead")),
           ("lstm", dict(prefetcher="lstm"))]


def compare(opts, build=None, progress=True):
    out = []
    for label, over in COMPARE:
        o = ReplayOptions(**{**asdict(opts), **over, "label": label})
        out.append(replay(o, build=build, progress=progress))
    return out
