"""The serving model: continuous-batching decode throughput and per-token latency of a GPU
serving one LLaMA-architecture model, for four ways of holding the KV cache:

- ``gpu-only``: all KV in GPU memory beside the weights (vLLM-style; the baseline);
- ``gpu-compressed``: the same, KV stored at the codec's ratio (decompression on the GPU is
  not charged: an upper bound for that baseline);
- ``cxl-nospec``: KV compressed in the device's DRAM; every page a step attends beyond the
  GPU's L1 window is demand-read over the link;
- ``cxl-speckv``: the same, and the device predicts the next step's pages and prefetches
  them while the GPU computes; a page the device could not prefetch in time is demand-read.

Every input is measured or stated (``ServingInputs``): the GPU step time (measured table or a
labelled roofline, ``host/serving/step_time.py``), the model's KV bytes per token, the
codec's ratio, the link profile, the device's costs in cycles (measured on the simulated SoC
by ``python -m host.replayer.calibrate``) at a stated clock and DRAM bandwidth, and the
pages a stream attends and the prefetchers' hit rates (from the replay of the workload
traces). The model's own assumptions are the rules below; each is stated where it is used.

One decode step of batch B (S = offloaded requests x layers x KV heads streams, each
attending ``pages`` pages beyond its L1 window):

- GPU time T_gpu: the measured step at the attended context (sparse attention: the GPU reads
  the L1 window plus the selected pages; the smallest measured context stands in when that
  is shorter, an upper bound).
- Demand reads (n pages): each layer's reads go out together after the layer starts, so a
  step pays ``layers`` round trips plus the slowest of: link (n x page bytes / bandwidth),
  device service (n x demand cycles / clock), device DRAM (n x compressed bytes / DRAM
  bandwidth).
- Speculation: the device must predict S streams and move the predicted pages in the step
  it is given (the step's own length, minus the offloads of the pages that filled); the
  share it finishes, phi = min(1, window / work), scales the synchronous hit rate measured
  by the replay (``--timing off``). Its pages also count against link and DRAM bandwidth.
  The step's length depends on phi and phi on the step's length: solved by iteration.
- Capacity: GPU-only needs weights + B x context x KV bytes per token in GPU memory. The CXL
  configurations keep whole requests' KV in GPU memory while it fits (then they are GPU-only)
  and offload the others: an offloaded request keeps its working set (L1 window and selected
  pages, raw) in GPU memory and its compressed KV in the device's. Only offloaded requests'
  streams read over the link and need predictions.

Tokens per second = B / T_step; the per-token (decode) latency is T_step.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from host.serving.shapes import Shape

CONFIGS = ("gpu-only", "gpu-compressed", "cxl-nospec", "cxl-speckv")
PAGE_TOKENS = 16        # tokens per KV page (one layer, one KV head: K and V), as in the traces


class ServingError(ValueError):
    pass


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float
    headroom: float = 0.9         # share of memory for weights + KV (the rest: activations)


@dataclass(frozen=True)
class Link:
    name: str
    bandwidth_gbps: float         # GB/s each direction
    round_trip_ns: float          # request out + data back, mean of the profile's range


@dataclass(frozen=True)
class Device:
    """The device's costs: cycles measured on the simulated SoC, run at a stated clock with a
    stated DRAM; ``dram_cycles_measured`` is the share of the measured page costs that the
    simulated 2-byte SDRAM spent moving the compressed page, replaced by the stated DRAM's
    time (the scaling, shown in every result)."""
    name: str
    clock_mhz: float
    dram_gbs: float               # peak DRAM bandwidth
    memory_gib: float             # KV capacity (all devices together)
    predict_cycles: float         # per stream, for the prefetcher in use
    issue_fixed_cycles: float     # per hint chunk (one layer of one request)
    issue_page_cycles: float      # per prefetched page
    demand_cycles: float          # per demand read, device side
    offload_cycles: float         # per page written to the device
    dram_cycles_measured: float   # of issue_page / demand / offload: the simulated DRAM's part
    issue_candidate_cycles: float = 0.0   # per prediction filtered (page table, directory)
    note: str = ""

    def ns(self, cycles):
        return cycles * 1e3 / self.clock_mhz

    def page_ns(self, cycles, compressed_bytes):
        """A per-page cost with its measured DRAM part replaced by the stated DRAM's time."""
        rest = max(cycles - self.dram_cycles_measured, 0.0)
        return self.ns(rest) + compressed_bytes / self.dram_gbs


@dataclass(frozen=True)
class Traffic:
    """What a stream does per decode step, measured by the replay of a workload trace."""
    pages: float                  # pages attended beyond the L1 window, per stream per step
    l1_pages: int                 # the GPU's window of recent full pages per stream
    issued: float                 # pages the prefetcher issues, per stream per step
    candidates: float             # predictions the device filters, per stream per step
    hit_sync: float               # L2 hit rate of the pages beyond L1, synchronous replay
    codec_ratio: float
    source: str = ""


@dataclass(frozen=True)
class ServingInputs:
    model: str
    shape: Shape
    gpu: Gpu
    link: Link
    device: Device
    traffic: Traffic
    context: int
    step_ns: object               # callable (batch, attended context) -> (ns, source)
    dtype_bytes: int = 2

    @property
    def page_bytes(self):
        return PAGE_TOKENS * 2 * self.shape.head_dim * self.dtype_bytes

    @property
    def weights_bytes(self):
        return self.shape.params() * self.dtype_bytes


@dataclass
class Point:
    config: str
    batch: int
    feasible: bool
    limit: str                    # what binds: gpu-memory, device-memory, gpu, link, ...
    tokens_per_s: float = 0.0
    step_ns: float = 0.0
    gpu_ns: float = 0.0
    stall_ns: float = 0.0
    offloaded: int = 0            # requests whose KV lives in the device (CXL configurations)
    hit: float = 0.0              # share of the pages beyond L1 found in L2 in time
    phi: float = 1.0              # share of the step's speculation the device finished
    gpu_gib: float = 0.0
    device_gib: float = 0.0
    parts_ns: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


def _gib(x):
    return x / 2**30


def _demand_ns(inp, n, layers):
    """Stall of ``n`` demand reads spread over a step's layers, and its parts."""
    if n <= 0:
        return 0.0, {}
    dev, comp = inp.device, inp.page_bytes / inp.traffic.codec_ratio
    parts = {"link": n * inp.page_bytes / inp.link.bandwidth_gbps,
             "device": n * dev.ns(max(dev.demand_cycles - dev.dram_cycles_measured, 0.0)),
             "dram": n * comp / dev.dram_gbs}
    return layers * inp.link.round_trip_ns + max(parts.values()), parts


def _spec_ns(inp, streams, comp):
    """The device's work for one step's speculation: the firmware's predictions, filtering
    and page issues (serial on its CPU; a hint chunk per layer of each request), the
    prefetched pages on the link and in DRAM (pipelined)."""
    dev, t = inp.device, inp.traffic
    pages = streams * t.issued
    chunks = streams / inp.shape.kv_heads
    return {"predict": dev.ns(streams * dev.predict_cycles + chunks * dev.issue_fixed_cycles),
            "issue": (pages * dev.ns(max(dev.issue_page_cycles - dev.dram_cycles_measured, 0))
                      + streams * t.candidates * dev.ns(dev.issue_candidate_cycles)),
            "link": pages * inp.page_bytes / inp.link.bandwidth_gbps,
            "dram": pages * comp / dev.dram_gbs}


def _spec_work(spec):
    return max(spec["predict"] + spec["issue"], spec["link"], spec["dram"])


def evaluate(inp: ServingInputs, config: str, batch: int) -> Point:
    """One configuration at one batch size (see the module's rules)."""
    if config not in CONFIGS:
        raise ServingError(f"unknown configuration {config!r}: {', '.join(CONFIGS)}")
    s, t = inp.shape, inp.traffic
    kv = batch * inp.context * s.kv_bytes_per_token(inp.dtype_bytes)
    gpu_cap = inp.gpu.memory_gib * 2**30 * inp.gpu.headroom
    attended = min(inp.context, int((t.l1_pages + t.pages) * PAGE_TOKENS + PAGE_TOKENS / 2))
    if config.startswith("gpu"):
        need = inp.weights_bytes + (kv / t.codec_ratio if config == "gpu-compressed" else kv)
        p = Point(config, batch, need <= gpu_cap, "gpu", gpu_gib=_gib(need))
        if not p.feasible:
            p.limit = "gpu-memory"
            return p
        p.gpu_ns = p.step_ns = inp.step_ns(batch, attended)[0]
        p.tokens_per_s = batch / p.step_ns * 1e9
        p.hit = 1.0
        return p
    # Whole requests keep their KV in GPU memory while it fits; the others (``off``) keep
    # only their working set there and their compressed KV in the device.
    per_req = inp.context * s.kv_bytes_per_token(inp.dtype_bytes)
    work = s.layers * s.kv_heads * (t.l1_pages + t.pages + 1) * inp.page_bytes
    room = gpu_cap - inp.weights_bytes - batch * work
    resident = batch if per_req <= work else min(batch, max(0, int(room // (per_req - work))))
    off = batch - resident
    need_gpu = inp.weights_bytes + resident * per_req + off * work
    need_dev = off * per_req / t.codec_ratio
    p = Point(config, batch, True, "gpu", gpu_gib=_gib(need_gpu), device_gib=_gib(need_dev))
    p.offloaded = off
    if need_gpu > gpu_cap:
        p.feasible, p.limit = False, "gpu-memory"
        return p
    if _gib(need_dev) > inp.device.memory_gib:
        p.feasible, p.limit = False, "device-memory"
        return p
    gpu_ns = inp.step_ns(batch, attended)[0]
    off_streams = off * s.layers * s.kv_heads
    n = off_streams * t.pages
    comp = inp.page_bytes / t.codec_ratio
    offload_ns = off_streams / PAGE_TOKENS * inp.device.page_ns(inp.device.offload_cycles, comp)
    phi, hit = 0.0, 0.0
    spec = _spec_ns(inp, off_streams, comp) if config == "cxl-speckv" and off else {}
    step = gpu_ns
    for _ in range(100):                       # the step's length <-> the share speculated
        if spec:
            window = max(step - offload_ns, 0.0)
            phi = min(1.0, window / _spec_work(spec))
            hit = t.hit_sync * phi
        stall, parts = _demand_ns(inp, n * (1 - hit), s.layers)
        new = gpu_ns + stall
        if abs(new - step) < 1e-3 * new:
            step = new
            break
        step = new
    p.gpu_ns, p.step_ns, p.stall_ns = gpu_ns, step, step - gpu_ns
    p.hit, p.phi = (hit if off else 1.0), (phi if spec else 1.0)
    p.tokens_per_s = batch / step * 1e9
    p.parts_ns = {**{f"demand_{k}": v for k, v in parts.items()},
                  "round_trips": s.layers * inp.link.round_trip_ns if n * (1 - hit) > 0 else 0.0,
                  "offload": offload_ns, **{f"spec_{k}": v for k, v in spec.items()}}
    p.limit = _limit(p, gpu_ns, parts, spec)
    return p


def _limit(p, gpu_ns, parts, spec):
    """What binds a feasible point: the device's speculation when it finishes less than all
    of a step's (its CPU, link or DRAM), else the GPU when the stall is under 5 % of its
    time, else the largest part of the stall."""
    if spec and p.phi < 1.0:
        cpu = spec["predict"] + spec["issue"]
        if cpu >= max(spec["link"], spec["dram"]):
            return "device-" + ("predict" if spec["predict"] >= spec["issue"] else "issue")
        return "spec-" + ("link" if spec["link"] >= spec["dram"] else "dram")
    if p.stall_ns <= 0.05 * gpu_ns or not parts:
        return "gpu"
    return "demand-" + max(parts, key=parts.get)


def sweep(inp: ServingInputs, batches, configs=CONFIGS):
    return [evaluate(inp, c, b) for c in configs for b in batches]


def saturation(points):
    """Per configuration: the batch with the most tokens/s, and what stops it going further
    (the limit of the next batch tried, or of the best batch at the sweep's end)."""
    out = {}
    for c in dict.fromkeys(p.config for p in points):
        ps = [p for p in points if p.config == c]
        ok = [p for p in ps if p.feasible]
        if not ok:
            out[c] = {"batch": None, "tokens_per_s": 0.0, "limit": ps[0].limit}
            continue
        best = max(ok, key=lambda p: p.tokens_per_s)
        after = [p for p in ps if p.batch > best.batch]
        why = after[0].limit if after else best.limit
        out[c] = {"batch": best.batch, "tokens_per_s": best.tokens_per_s,
                  "step_ns": best.step_ns, "max_feasible_batch": max(p.batch for p in ok),
                  "limit": why}
    return out
