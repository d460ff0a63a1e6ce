"""Serving model: continuous-batching decode throughput and per-token latency over batch size
for GPU-only, GPU with compressed KV, CXL without prediction and CXL-SpecKV (the rules:
``host/serving/model.py``; the inputs and their sources: docs/serving.md).

Examples (``speckv-serve`` is ``python -m host.serving.cli``)::

    speckv-serve                                   # llama2-7b, 4096 tokens, both devices
    speckv-serve --models smollm2-135m,llama2-7b,llama2-13b --context 2048 \\
        --json docs/results/serving/serving.json --plots docs/results/serving
    speckv-serve --model llama2-13b --gpu-memory-gib 80 --prefetcher markov
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

from host.driver.link import PROFILES
from host.serving.model import (CONFIGS, PAGE_TOKENS, Device, Gpu, Link, ServingError,
                                ServingInputs, Traffic, saturation, sweep)
from host.serving.shapes import SHAPES, shape_of
from host.serving.step_time import ROOFLINE_GPU, TABLE, StepTimeError, step_time

ROOT = Path(__file__).resolve().parents[2]
REPLAYS = ROOT / "docs" / "results" / "replay" / "layered"
CALIBRATION = ROOT / "host" / "replayer" / "calibration.json"
WORKLOADS = ("chatbot", "summarization", "codegen", "qa")
BATCHES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
TRACE_MODEL = shape_of("smollm2-135m")   # the model the traces were captured from
TRACE_PAGE_BYTES = 4096           # the pages the device costs were measured on (head_dim 64)
# The target devices: stated clocks and DRAM, the firmware's measured cycles.
DEVICES = {
    # dram_gbs None: the DRAM the calibration was measured on (its peak bytes a cycle)
    "sim-100mhz": dict(clock_mhz=100.0, dram_gbs=None,
                       note="the simulated SoC as measured: 100 MHz and its DRAM model"),
    "paper-800mhz": dict(clock_mhz=800.0, dram_gbs=1600.0,
                         note="the paper's device (4.1): 800 MHz, HBM at 1.6 TB/s; our "
                              "firmware's measured cycles at that clock"),
    "ideal": dict(clock_mhz=1e9, dram_gbs=1e12,
                  note="an upper bound: the device's work takes no time; only the link and "
                       "the measured hit rate remain"),
}


@dataclass
class ServeOptions:
    """One evaluation of the serving model: a model, a device and a batch, every
    configuration (a sweep's ``serve`` cell); its defaults are the command line's."""
    model: str = "llama2-7b"
    device: str = "sim-100mhz"
    batch: int = 1
    context: int = 4096
    device_gib: float = 64.0
    prefetcher: str = "lstm"
    hit_rate: float | None = None
    link: str = "cxl2-x16"
    gpu_name: str = "NVIDIA H200"
    gpu_memory_gib: float = ROOFLINE_GPU["memory_gib"]
    headroom: float = 0.9
    replays: str | None = None      # None: REPLAYS
    table: str | None = None        # None: TABLE


def run_one(o: ServeOptions):
    """``run`` for one model, device and batch: the points of every configuration."""
    args = SimpleNamespace(**{**vars(o), "models": [o.model], "devices": [o.device],
                              "batches": [o.batch],
                              "replays": Path(o.replays) if o.replays else REPLAYS,
                              "table": Path(o.table) if o.table else TABLE})
    args.argv = [f"--model={o.model}", f"--devices={o.device}", f"--batches={o.batch}",
                 f"--context={o.context}", f"--prefetcher={o.prefetcher}", f"--link={o.link}"]
    out = run(args)
    dev = out["models"][o.model]["devices"][o.device]
    return {"points": dev["points"], "traffic_source": out["traffic"]["source"],
            "step_source": dev["step_source"], "device_note": dev["device"]["note"]}


def load_traffic(prefetcher, replays=REPLAYS, workloads=WORKLOADS):
    """Per-stream traffic pooled over the workloads' synchronous (``--timing off``) replays."""
    pages = issued = candidates = l2 = streams_steps = 0
    l1, ratio, used = None, [], []
    for w in workloads:
        path = Path(replays) / f"{w}.json"
        if not path.is_file():
            continue
        rows = {(r["config"]["label"], r["config"]["timing"]): r
                for r in json.loads(path.read_text())}
        r = rows.get((prefetcher, "off"))
        if r is None:
            raise ServingError(f"{path} has no --timing off row for prefetcher {prefetcher!r}")
        c, a = r["config"], r["accesses"]
        n = c["steps"] * c["layers"] * TRACE_MODEL.kv_heads        # streams x steps
        pages += a["l2"] + a["l3"]
        l2 += a["l2"]
        issued += r["prefetch"]["issued"]
        if "candidates" not in r["prefetch"]:
            raise ServingError(f"{path}: no prefetch candidates count (replayed before it was "
                               "recorded: replay again, bench/replay_timing.py)")
        candidates += r["prefetch"]["candidates"]
        streams_steps += n
        l1 = c["l1_pages"]
        ratio.append(r["compression"]["ratio"])
        used.append(f"{w} ({c['steps']} steps)")
    if not used:
        raise ServingError(f"no replay results in {replays} (make them with bench/replay_timing.py "
                           "or host/replay.py --compare --timing both; docs/replay.md)")
    return Traffic(pages=pages / streams_steps, l1_pages=int(l1), issued=issued / streams_steps,
                   candidates=candidates / streams_steps,
                   hit_sync=l2 / pages, codec_ratio=sum(ratio) / len(ratio),
                   source=f"replay --timing off of {', '.join(used)}, prefetcher {prefetcher}, "
                          f"k 8, sparse (Quest) attention; {Path(replays).relative_to(ROOT)}")


def make_device(name, prefetcher, page_bytes, codec_ratio, memory_gib, calibration=CALIBRATION):
    """A target device: the calibrated cycles, per-page costs scaled to the model's page size,
    the simulated DRAM's share of them replaced by the stated DRAM's time."""
    if name not in DEVICES:
        raise ServingError(f"unknown device {name!r}: {', '.join(DEVICES)}")
    cal = json.loads(Path(calibration).read_text())
    cyc = cal["cycles"]
    if prefetcher not in cyc["predict"]:
        raise ServingError(f"no calibrated prediction cost for {prefetcher!r}")
    scale = page_bytes / TRACE_PAGE_BYTES
    prov = cal["provenance"]
    if "dram_peak_bytes_per_cycle" not in prov:
        raise ServingError(f"{calibration}: no DRAM in its provenance (recalibrate: "
                           "python -m host.replayer.calibrate)")
    peak = prov["dram_peak_bytes_per_cycle"]
    dram_cycles = page_bytes / codec_ratio / peak
    d = DEVICES[name]
    dram_gbs = d["dram_gbs"] or peak * prov["sys_clk_hz"] / 1e9
    return Device(name=name, clock_mhz=d["clock_mhz"], dram_gbs=dram_gbs,
                  memory_gib=memory_gib, predict_cycles=cyc["predict"][prefetcher],
                  issue_fixed_cycles=cyc["issue_fixed"],
                  issue_candidate_cycles=cyc["issue_candidate"],
                  issue_page_cycles=cyc["issue_page"] * scale,
                  demand_cycles=cyc["demand_device"] * scale,
                  offload_cycles=cyc["offload_command"] * scale,
                  dram_cycles_measured=dram_cycles,
                  note=f"{d['note']}; cycles from {Path(calibration).name} "
                       f"({prov['date']}, commit {prov['commit']}, {prov['dram']} DRAM), "
                       f"per-page costs x{scale:g} for {page_bytes}-byte pages, of which "
                       f"{dram_cycles:.0f} cycles (compressed page at {peak} B/cycle) "
                       f"replaced by its time at {dram_gbs:g} GB/s")


def make_inputs(model, context, device, prefetcher, gpu, link, traffic, device_gib,
                table=TABLE):
    shape = shape_of(model)
    page_bytes = PAGE_TOKENS * 2 * shape.head_dim * 2
    dev = make_device(device, prefetcher, page_bytes, traffic.codec_ratio, device_gib)
    floor_ctx = 512     # the smallest context the GPU table measures

    def step_ns(batch, attended):
        st = step_time(model, batch, max(attended, floor_ctx), table=table, extrapolate=True)
        return st.step_ns, st.source
    return ServingInputs(model=model, shape=shape, gpu=gpu, link=link, device=dev,
                         traffic=traffic, context=context, step_ns=step_ns)


def run(args):
    """Every (model, device) sweep; returns the result dict."""
    traffic = load_traffic(args.prefetcher, args.replays)
    if args.hit_rate is not None:
        traffic = replace(traffic, hit_sync=args.hit_rate,
                          source=traffic.source + f"; hit rate set to {args.hit_rate} by "
                                                  "--hit-rate (a what-if, not measured)")
    p = PROFILES[args.link]
    link = Link(p.name, p.bandwidth_gbps, p.latency_ns_min + p.latency_ns_max)
    gpu = Gpu(args.gpu_name, args.gpu_memory_gib, args.headroom)
    out = {"command": "speckv-serve " + " ".join(args.argv), "traffic": vars(traffic),
           "gpu": vars(gpu), "link": vars(link), "context": args.context, "models": {}}
    for model in args.models:
        res = out["models"][model] = {"shape": shape_of(model).as_dict(), "devices": {}}
        for dname in args.devices:
            inp = make_inputs(model, args.context, dname, args.prefetcher, gpu, link, traffic,
                              args.device_gib, args.table)
            configs = CONFIGS if dname == args.devices[0] else ("cxl-nospec", "cxl-speckv")
            pts = sweep(inp, args.batches, configs)
            res["devices"][dname] = {"device": vars(inp.device),
                                     "step_source": inp.step_ns(1, 512)[1],
                                     "points": [x.as_dict() for x in pts],
                                     "saturation": saturation(pts)}
    return out


def print_table(out, file=None):
    file = file or sys.stdout
    for model, res in out["models"].items():
        print(f"\n{model}, context {out['context']}, GPU {out['gpu']['name']} "
              f"({out['gpu']['memory_gib']:.0f} GiB), link {out['link']['name']}", file=file)
        print(f"{'device':13s} {'config':15s} {'best batch':>10s} {'tok/s':>10s} "
              f"{'step ms':>9s} {'max batch':>9s}  stops at", file=file)
        for dname, d in res["devices"].items():
            for c, s in d["saturation"].items():
                if s["batch"] is None:
                    print(f"{dname:13s} {c:15s} {'-':>10s} {'-':>10s} {'-':>9s} {'-':>9s}  "
                          f"{s['limit']}", file=file)
                    continue
                print(f"{dname:13s} {c:15s} {s['batch']:10d} {s['tokens_per_s']:10.1f} "
                      f"{s['step_ns'] / 1e6:9.3f} {s['max_feasible_batch']:9d}  {s['limit']}",
                      file=file)
    print(f"\ntraffic: {out['traffic']['source']}", file=file)


def save_plots(out, folder):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = list(out["models"])
    paths = []
    for key, ylabel, name in (("tokens_per_s", "tokens/s", "throughput_vs_batch.png"),
                              ("step_ns", "per-token latency (ms)", "latency_vs_batch.png")):
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
        for ax, model in zip(axes[0], models):
            for dname, d in out["models"][model]["devices"].items():
                for c in dict.fromkeys(x["config"] for x in d["points"]):
                    pts = [x for x in d["points"] if x["config"] == c and x["feasible"]]
                    if not pts:
                        continue
                    ys = [x[key] / (1e6 if key == "step_ns" else 1) for x in pts]
                    label = c if c.startswith("gpu") else f"{c} ({dname})"
                    ax.plot([x["batch"] for x in pts], ys, marker=".", label=label,
                            linestyle="-" if dname == list(out["models"][model]["devices"])[0]
                            else "--")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{model}, context {out['context']}")
            ax.set_xlabel("batch")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        paths.append(folder / name)
    return paths


def _list(kind, known):
    def parse(text):
        items = [x for x in text.split(",") if x]
        for x in items:
            if x not in known:
                raise argparse.ArgumentTypeError(f"unknown {kind} {x!r}: known are "
                                                 f"{', '.join(known)}")
        return items
    return parse


def _batches(text):
    try:
        out = sorted({int(x) for x in text.split(",") if x})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes, got {text!r}")
    if not out or out[0] < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got {text!r}")
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="speckv-serve", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", "--model", type=_list("model", SHAPES), default=["llama2-7b"],
                    help=f"comma-separated model shapes, of: {', '.join(SHAPES)} "
                         "(default llama2-7b)")
    ap.add_argument("--context", type=int, default=ServeOptions.context,
                    help="tokens of context per request (default %(default)s)")
    ap.add_argument("--batches", type=_batches, default=list(BATCHES),
                    help="batch sizes to evaluate (default 1..1024)")
    ap.add_argument("--devices", type=_list("device", DEVICES), default=list(DEVICES),
                    help="target devices, of: " + "; ".join(f"{k}: {v['note']}"
                                                           for k, v in DEVICES.items()))
    ap.add_argument("--device-gib", type=float, default=ServeOptions.device_gib,
                    help="device memory for the compressed KV, GiB (default %(default)s: the "
                         "paper's 64 GB of HBM per FPGA)")
    ap.add_argument("--prefetcher", default=ServeOptions.prefetcher,
                    choices=("last", "stride", "markov", "layer_ahead", "lstm"),
                    help="whose measured hit rate and prediction cost (default %(default)s)")
    ap.add_argument("--hit-rate", type=float, default=None,
                    help="what-if: this synchronous L2 hit rate instead of the measured one "
                         "(e.g. 0.947, the paper's Table 3); labelled in the output")
    ap.add_argument("--link", default=ServeOptions.link, choices=list(PROFILES),
                    help="link profile (default %(default)s)")
    ap.add_argument("--gpu-name", default=ServeOptions.gpu_name,
                    help="the GPU whose memory is modelled (default %(default)s; step times "
                         "come from the table or the roofline, whatever this says)")
    ap.add_argument("--gpu-memory-gib", type=float, default=ServeOptions.gpu_memory_gib,
                    help="GPU memory, GiB (default %(default).1f: the H200's 141 GB; 74.5 for "
                         "an 80 GB A100 as in the paper)")
    ap.add_argument("--headroom", type=float, default=ServeOptions.headroom,
                    help="share of GPU memory for weights and KV (default %(default)s)")
    ap.add_argument("--replays", type=Path, default=REPLAYS,
                    help="folder of the workloads' replay JSONs (default %(default)s)")
    ap.add_argument("--table", type=Path, default=TABLE,
                    help="GPU step-time table (default %(default)s; absent: roofline)")
    ap.add_argument("--json", type=Path, help="write every point and its inputs here")
    ap.add_argument("--plots", type=Path, help="write throughput and latency vs batch PNGs here")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.hit_rate is not None and not 0 <= args.hit_rate <= 1:
        ap.error(f"--hit-rate {args.hit_rate}: must be between 0 and 1")
    if args.context < 1:
        ap.error(f"--context {args.context}: must be at least 1 token")
    try:
        out = run(args)
    except (ServingError, StepTimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_table(out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plots:
        for p in save_plots(out, args.plots):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
