"""The replay engine: the host's side of every decode step of a real KV trace, against the
simulated SoC (``--backend rtl``) or the reference models (``--backend model``).

Per decode step the host (stand-in for GPU + serving engine):

1. offloads the pages that became full (compressed into the device pool: flow 1);
2. runs the step layer by layer: at the start of layer l it reads every page layer l
   attends (dense: all; sparse: the trace's Quest selection) from L1 (the last
   ``--l1-pages`` full pages of each (layer, KV head), plus the tail), else from L2 (the
   prefetch buffer the device writes; looked up in its directory in host memory), else by a
   synchronous demand read over the link (flow 2), then computes for the layer's share of
   the step time; every page read from L2 or the device is checked against the trace's
   original KV (``host/replayer/page_check.py``: values within the mode's error bound, the
   page asked for, bit-exact with the reference decode);
3. posts the hint layer by layer: once it has read layer l, the pages layer l's streams
   read (a chunk per layer); the device's firmware predicts those streams' next-step pages
   and prefetches them into L2 at once (flow 3), so the next step's first layers are served
   first.

Two timings (``--timing``):

- ``on`` (timing-true): each layer's hint is posted and the host goes on; the device serves
  it while the host computes (on ``rtl`` the simulated clock runs for the compute time; on
  ``model`` the calibrated costs of ``host/replayer/costs.py``). A page counts as an L2 hit
  only if its directory line was visible when the host read it. The host does not wait for
  prefetches in flight: it demand-reads every page not in L2, and a demand read of a page
  that a hint posted earlier was still bringing is a *late* prefetch; the others are misses.
  A step whose first layer's hint finds the device still serving the previous step's is not
  hinted (the step *overran*): the firmware accepts a later step than the one it expects.
- ``off`` (synchronous, an upper bound): the host waits until each layer's hint is served
  (its prefetches all in L2) before it reads the next layer; no time is charged for it, the
  prefetch time is reported next to the step's compute budget.

The command line is ``host/replay.py``; ``compare`` runs the paper's baselines side by side.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gateware.common import PAGE_BYTES as PAGE
from host.replayer.tiers import HostTiers, ReplayError, StepLog

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
    gpu_model: str | None = None   # else: step_ns from the GPU step-time table (host/serving)
    batch: int = 1
    context: int | None = None     # tokens; None: the trace's (its full pages x 16)
    timing: str = "on"             # on: timing-true replay; off: synchronous epochs
    label: str = ""
    waveform: tuple | None = None  # rtl: (fst file, first cycle, last cycle)
    link_faults: float | None = None  # rtl: link layer on, this per-flit fault rate (0: clean)
    link_fault_seed: int = 1
    device_reset_at: int | None = None  # rtl: reset the SoC before this step; the host checks
                                        # the device at every step start and recovers
    server: str = "localhost:1234"             # board: litex_server's host:port
    board_dir: str = str(ROOT / "build" / "ulx3s")  # board: its build (csr.csv, csr.json)




def _setup_trace(opts):
    from host.traces.format import load_trace
    t = load_trace(opts.trace)
    if opts.mode not in ("dense", "sparse"):
        raise ReplayError(f"--mode must be dense or sparse, not {opts.mode!r}")
    if t.kv.shape[-1] != 64:
        raise ReplayError(f"{opts.trace}: head_dim {t.kv.shape[-1]}; the device's pages are 16 "
                          f"tokens x 64 channels, so the replay takes head_dim 64 traces (live "
                          f"generation, speckv-generate, splits a larger head into 64-channel pages)")
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
        return RtlBackend(build, opts.codec, opts.link, waveform=opts.waveform,
                          faults=None if opts.link_faults is None
                          else (opts.link_faults, opts.link_fault_seed))
    raise ReplayError(f"unknown backend {opts.backend!r}: model or rtl")


class _Run(HostTiers):
    """One replay's host: the trace's steps over the shared tier protocol (``tiers.py``)."""

    def __init__(self, opts, t, layers, backend, cfg, l1, gpu_only):
        from host.replayer.page_check import PageCheck
        super().__init__(backend, cfg, t.n_kv_heads, t.page_bits, layers,
                         timed=opts.timing == "on" and not gpu_only, dense=opts.mode == "dense",
                         check=PageCheck(t, opts.codec))
        self.opts, self.t, self.l1, self.gpu_only = opts, t, l1, gpu_only
        self.mask = t.access_mask(opts.mode)                 # [S, L, H, P]
        self.offloaded = 0

    def step(self, s):
        if self.opts.device_reset_at is not None and not self.backend.alive():
            self.recover(s, self.t.page)
        log = StepLog(s)
        t0 = self.backend.clock() if self.timed else 0
        n_full = int(self.t.n_full[s])
        if not self.gpu_only:          # the pages that became full go to the device
            for p in range(self.offloaded, n_full):
                for st in range(self.layers * self.H):
                    vpn = (st << self.t.page_bits) | p
                    self.offload(vpn, self.t.page(vpn))
            self.offloaded = max(self.offloaded, n_full)
        index = {} if self.gpu_only else self.backend.l2_index()
        layer_cycles = self.opts.step_ns * self.backend.cycles_per_ns / self.layers
        self.hinting = not self.gpu_only
        for layer in range(self.layers):
            if layer and not self.gpu_only:   # the device wrote L2 since the last layer
                index = self.backend.l2_index()
            streams = []
            for h in range(self.H):
                st = layer * self.H + h
                acc = np.nonzero(self.mask[s, layer, h, :n_full])[0]
                streams.append((n_full, acc))
                for p in acc:
                    self.read(s, (st << self.t.page_bits) | int(p), p >= n_full - self.l1,
                              index, log)
            if self.hinting:
                self.hint(s, layer, streams, log)
            if self.timed:
                self.compute(layer_cycles)
        if self.timed:
            log.step_cycles = self.backend.clock() - t0
        self.logs.append(log)


def replay(opts: ReplayOptions, backend=None, build=None, progress=True):
    """Replay one configuration; returns the result dict (see :func:`summarize`)."""
    from host.driver.hints import SpecConfig
    from host.prefetch import make_predictor

    if opts.prefetcher not in PREFETCHERS:
        raise ReplayError(f"unknown prefetcher {opts.prefetcher!r}; known: {', '.join(PREFETCHERS)}")
    if opts.timing not in ("on", "off"):
        raise ReplayError(f"--timing must be on or off, not {opts.timing!r}")
    if opts.device_reset_at is not None and opts.backend != "rtl":
        raise ReplayError("--device-reset-at needs --backend rtl (the SoC is reset)")
    if opts.link_faults is not None and opts.backend != "rtl":
        raise ReplayError("--link-faults needs --backend rtl (the emulated link's link layer)")
    if opts.timing == "on" and opts.backend == "board":
        raise ReplayError("--timing on needs --backend rtl or model (a board's link is a UART)")
    t, layers, steps = _setup_trace(opts)
    step_source = "--step-ns"
    if opts.gpu_model:
        from host.serving.step_time import StepTimeError, step_time
        try:
            st = step_time(opts.gpu_model, opts.batch, opts.context or 16 * int(t.n_full[-1]))
        except StepTimeError as e:
            raise ReplayError(str(e)) from None
        opts = ReplayOptions(**{**asdict(opts), "step_ns": st.step_ns, "context": st.context})
        step_source = f"{st.model}, batch {st.batch}, context {st.context}: {st.source}"
    if opts.step_ns <= 0:
        raise ReplayError(f"--step-ns {opts.step_ns}: must be > 0")
    l1 = opts.l1_pages
    if l1 is None:
        l1 = max(1, t.meta["sparse"]["window"] // 16)
    gpu_only = l1 < 0
    if gpu_only:
        l1 = 255
    own = backend is None
    backend = backend or make_backend(opts, build)
    wall0 = time.time()
    cfg = SpecConfig(request=0x5EC0 + 1, kind=PREFETCHERS.index(opts.prefetcher), k=opts.k,
                     ucb=opts.ucb, throttle=opts.throttle, heads=t.n_kv_heads, layers=layers,
                     l2_base=0, l2_slots=opts.l2_slots, l1_pages=l1)
    backend.start(cfg, make_predictor(opts.prefetcher, l1=l1))
    run = _Run(opts, t, layers, backend, cfg, l1, gpu_only)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"replay {opts.backend} {opts.label or opts.prefetcher}",
                   unit="step", file=sys.stderr, leave=False)
    try:
        for s in range(steps):
            if s == opts.device_reset_at:
                backend.inject_reset()
            run.step(s)
            if bar:
                bar.update(1)
        if run.timed:
            run.drain()
    finally:
        if bar:
            bar.close()
        drv = getattr(backend, "drv", None)
        sim_cycles = drv.cycle if drv is not None else None
        link_layer = (backend.link.reliability()
                      if drv is not None and opts.link_faults is not None else None)
        if own:
            backend.close()
    used = run.classify()
    wall = time.time() - wall0
    res = summarize(opts, t, layers, steps, l1, gpu_only, run, wall, sim_cycles, backend, used)
    res["timing"]["step_ns_source"] = step_source
    if link_layer is not None:
        res["link_layer"] = link_layer
    if opts.device_reset_at is not None:
        res["device_resets"] = run.resets
    return res


def candidates(rec):
    """Predictions the firmware filtered in a step (each costs a page-table and a directory
    lookup, issued or not)."""
    return sum(rec[k] for k in ("issued", "skip_l1", "skip_unmapped", "skip_resident",
                                "throttled"))


def _pct(x, q):
    return float(np.percentile(x, q)) if len(x) else None


def summarize(opts, t, layers, steps, l1, gpu_only, run, wall, sim_cycles, backend, used_keys):
    from host.driver.link import PROFILES
    logs, lengths = run.logs, run.lengths
    ns_per_cycle = 1.0 / backend.cycles_per_ns
    note = PROFILES[opts.link].note
    if opts.backend == "board":
        note = ("board: UARTBone through litex_server and the message tunnel; latencies are "
                "the UART's, device cycles from the SoC's uptime counter")
    l1n = sum(g.l1 for g in logs)
    l2n = sum(g.l2 for g in logs)
    l3n = sum(g.l3 for g in logs)
    late_n = sum(g.late for g in logs)
    miss = np.array([c for g in logs for c in g.miss_cycles], dtype=np.float64) * ns_per_cycle
    late = np.array([c for g in logs for c in g.late_cycles], dtype=np.float64) * ns_per_cycle
    demand = np.concatenate([miss, late])
    issued = sum(len(g.issued) for g in logs)
    used = len(used_keys)
    wasted = issued - used
    pf_ns = np.array([g.prefetch_cycles for g in logs if not gpu_only], dtype=np.float64) * ns_per_cycle
    stall_ns = np.array([sum(g.miss_cycles) + sum(g.late_cycles) for g in logs],
                        dtype=np.float64) * ns_per_cycle
    lat_all = np.concatenate([np.zeros(l1n + l2n), demand]) if (l1n + l2n + l3n) else np.zeros(1)
    per_layer = {}
    for vpn, n in lengths.items():
        layer = (vpn >> t.page_bits) // t.n_kv_heads
        per_layer.setdefault(layer, []).append(n)
    ratio_layer = {int(k): PAGE * len(v) / sum(v) for k, v in sorted(per_layer.items())}
    non_l1 = l2n + l3n
    timing = {"mode": opts.timing if not gpu_only else "off (GPU only: no device)",
              "step_ns": opts.step_ns}
    if run.timed:
        served = np.array([g.served_cycles for g in logs if g.record], dtype=np.float64) * ns_per_cycle
        step_t = np.array([g.step_cycles for g in logs], dtype=np.float64) * ns_per_cycle
        timing.update({
            "hints_served": int(len(served)),
            "steps_overran": int(sum(g.overran for g in logs)),
            "hint_served_ns_mean": float(served.mean()) if len(served) else None,
            "step_ns_mean": float(step_t.mean()),
            "step_ns_p99": _pct(step_t, 99),
            "late_stall_per_step_mean": float(late.sum() / steps),
            "late_per_layer": run.late_per_layer()})
    res = {
        "config": {**asdict(opts), "l1_pages": l1 if not gpu_only else "all", "layers": layers,
                   "steps": steps, "trace_sha256": t.meta.get("sha256") or None,
                   "workload": t.meta.get("workload", {}).get("name"),
                   "link_note": note},
        "accesses": {"total": l1n + l2n + l3n, "l1": l1n, "l2": l2n, "l3": l3n,
                     "late": late_n, "miss": l3n - late_n,
                     "l2_hit_rate": (l2n / non_l1) if non_l1 else None,
                     "late_rate": (late_n / non_l1) if non_l1 else None},
        "timing": timing,
        "prefetch": {"issued": issued, "used": used, "wasted": wasted,
                     "candidates": sum(candidates(g.record) for g in logs if g.record),
                     "precision": used / issued if issued else None,
                     "coverage": (l2n / non_l1) if non_l1 else None,
                     "wasted_bytes": wasted * PAGE,
                     "mean_step_ns": float(pf_ns.mean()) if len(pf_ns) else 0.0,
                     "max_step_ns": float(pf_ns.max()) if len(pf_ns) else 0.0,
                     "steps_over_budget": int((pf_ns > opts.step_ns).sum()),
                     "mean_ns_per_page": float(pf_ns.sum() / issued) if issued else None},
        "latency_ns": {"source": backend.CALIBRATION,
                       "sync_fetch_mean": float(demand.mean()) if len(demand) else None,
                       "sync_fetch_p50": _pct(demand, 50),
                       "sync_fetch_p99": _pct(demand, 99),
                       "effective_mean": float(lat_all.mean()),
                       "effective_mean_outside_l1": float(demand.sum() / non_l1) if non_l1 else None,
                       "stall_per_step_mean": float(stall_ns.mean()) if len(stall_ns) else 0.0},
        "link_bytes": {"demand": l3n * PAGE, "prefetch": issued * (PAGE + 64),
                       "offload": len(lengths) * PAGE},
        "compression": {"pages": len(lengths),
                        "ratio": PAGE * len(lengths) / sum(lengths.values()) if lengths else None,
                        "per_layer": ratio_layer},
        "check": {**run.check.summary(), "mismatches": run.mismatches,
                  "digest": run.digest.hexdigest()},
        "speed": {"wall_s": wall, "steps_per_s": steps / wall if wall else None,
                  "sim_cycles": sim_cycles,
                  "sim_cycles_per_s": (sim_cycles / wall) if sim_cycles and wall else None},
        "sequence": {"accesses": [list(map(int, a)) for a in run.accesses],
                     "issued": [[g.step, int(v), int(sl)] for g in logs for v, sl in g.issued],
                     "records": [g.record for g in logs]},
        "per_step": [{"step": g.step, "l1": g.l1, "l2": g.l2, "l3": g.l3, "late": g.late,
                      "issued": len(g.issued), "overran": g.overran,
                      "prefetch_ns": g.prefetch_cycles * ns_per_cycle,
                      "stall_ns": (sum(g.miss_cycles) + sum(g.late_cycles)) * ns_per_cycle,
                      "step_ns": g.step_cycles * ns_per_cycle if run.timed else None}
                     for g in logs],
        "latencies_ns": demand.tolist(),
    }
    return res


COMPARE = [("gpu-only", dict(l1_pages=-1, prefetcher="none")),
           ("cxl-nospec", dict(prefetcher="none")),
           ("last", dict(prefetcher="last")),
           ("stride", dict(prefetcher="stride")),
           ("markov", dict(prefetcher="markov")),
           ("layer_ahead", dict(prefetcher="layer_ahead")),
           ("lstm", dict(prefetcher="lstm"))]


def timings(opts):
    """``opts`` once per timing mode it asks for (``--timing both``: off, then on)."""
    modes = ("off", "on") if opts.timing == "both" else (opts.timing,)
    return [ReplayOptions(**{**asdict(opts), "timing": m}) for m in modes]


def compare(opts, build=None, progress=True):
    """The paper's baselines and every predictor, in each timing mode ``opts`` asks for."""
    out = []
    for label, over in COMPARE:
        for o in timings(ReplayOptions(**{**asdict(opts), **over, "label": label})):
            out.append(replay(o, build=build, progress=progress))
    return out
