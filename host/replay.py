"""Trace replay: the host's side of every decode step of a real KV trace, against the
simulated SoC (``--backend rtl``), a board (``--backend board``) or the reference models
(``--backend model``). What one step does: ``host/replayer/engine.py``.

Examples::

    python host/replay.py traces/mini-replay.safetensors --backend model --prefetcher last
    python host/replay.py --backend rtl --steps 4 --layers 2
    python host/replay.py build/traces/chatbot.safetensors --compare --json out.json --plots out/
"""

import argparse
import json
import sys
from pathlib import Path

from host.replayer.engine import (DEFAULT_TRACE, PREFETCHERS, ROOT, ReplayError, ReplayOptions,
                                  compare, replay, timings)


def _faults(ap, a, opts):
    """The injected faults (--device-reset-at, --link-faults) into ``opts``, checked."""
    if a.device_reset_at is not None:
        if a.backend != "rtl":
            ap.error("--device-reset-at needs --backend rtl")
        opts.device_reset_at = a.device_reset_at
    if a.link_faults is not None:
        if a.backend != "rtl":
            ap.error("--link-faults needs --backend rtl")
        if not 0 <= a.link_faults <= 1:
            ap.error(f"--link-faults {a.link_faults}: a rate in [0, 1]")
        opts.link_faults, opts.link_fault_seed = a.link_faults, a.link_fault_seed


def main(argv=None, build=None):
    from host.replayer.report import print_table, save_plots
    ap = argparse.ArgumentParser(
        prog="replay.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Tiers: L1 = recent window in host memory, L2 = prefetch buffer the device "
               "writes, L3 = the device pool (demand read). Results: a summary table on "
               "stdout, --json for everything, --plots for PNG figures.")
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE),
                    help="trace file (format: traces/README.md); default: the bundled %(default)s")
    ap.add_argument("--backend", choices=("model", "rtl", "board"), default="model",
                    help="rtl: the Verilator SoC (slow, exact hardware); model: the reference "
                         "models (fast); board: a board running the SoC (soc/build.py --board) "
                         "through litex_server (--server, --board-dir). Default %(default)s")
    ap.add_argument("--link", default="cxl2-x16", help="link profile: cxl2-x16, pcie4-x16, ideal")
    ap.add_argument("--codec", default="kivi_k4v3",
                    help="codec mode of the pool (rtl: must be the one the SoC is built with)")
    ap.add_argument("--prefetcher", default="lstm", choices=PREFETCHERS,
                    help="predictor the firmware runs (default %(default)s)")
    ap.add_argument("-k", "--k", type=int, default=8, help="pages predicted per (layer, KV head) "
                    "and step, 1..16; with --ucb the largest depth tried (default %(default)s)")
    ap.add_argument("--ucb", action="store_true", help="adaptive k per request (UCB bandit)")
    ap.add_argument("--throttle", action="store_true", help="bandwidth throttling by precision feedback")
    ap.add_argument("--mode", choices=("sparse", "dense"), default="sparse",
                    help="which access pattern of the trace to replay (default %(default)s)")
    ap.add_argument("--l1-pages", type=int, default=None,
                    help="full pages per (layer, KV head) kept in L1 (default: the trace's "
                         "sparse window / 16; -1: everything, the GPU-only case)")
    ap.add_argument("--l2-slots", type=int, default=512, help="L2 prefetch buffer, in 4 KiB pages")
    ap.add_argument("--steps", type=int, default=None, help="replay only the first N decode steps")
    ap.add_argument("--layers", type=int, default=None, help="replay only the first N layers")
    ap.add_argument("--step-ns", type=float, default=20_000.0,
                    help="the GPU's compute time of one decode step, shared equally by its "
                         "layers (ns; default %(default)s)")
    ap.add_argument("--gpu-model", default=None,
                    help="take the step time from the GPU step-time table for this model "
                         "(smollm2-135m, llama2-7b, llama2-13b; a roofline estimate where the "
                         "table has no row, labelled so): overrides --step-ns. The replay still "
                         "replays the trace's one sequence: with --batch B the device gets a "
                         "B-sequence step's time for one sequence's prefetches (an upper bound)")
    ap.add_argument("--batch", type=int, default=1, help="with --gpu-model: the GPU's batch")
    ap.add_argument("--context", type=int, default=None,
                    help="with --gpu-model: context length in tokens (default: the trace's)")
    ap.add_argument("--timing", choices=("on", "off", "both"), default=None,
                    help="on: timing-true (each layer's hint is posted once the host has read "
                         "the layer; prefetches count only if they landed before the layer "
                         "read them; a step is not hinted while the device still serves the "
                         "previous step's hint); off: synchronous, each layer's prefetches land "
                         "before the host reads the next layer (an upper bound); both: each "
                         "configuration both ways, side by side (default: on; off for a "
                         "board, whose link is a UART)")
    ap.add_argument("--compare", action="store_true",
                    help="run GPU-only, CXL without prediction, every baseline and the LSTM")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "sim"),
                    help="rtl: SoC build directory (built if needed)")
    ap.add_argument("--waveform", default=None, metavar="FILE:START:END",
                    help="rtl: dump an FST waveform of cycles START..END into FILE")
    ap.add_argument("--server", default="localhost:1234", metavar="HOST:PORT",
                    help="board: the litex_server serving the board's UARTBone "
                         "(litex_server --uart --uart-port /dev/ttyUSB0 --uart-baudrate RATE); "
                         "default %(default)s")
    ap.add_argument("--board-dir", default=str(ROOT / "build" / "ulx3s"),
                    help="board: the board build whose bitstream runs (its csr.csv and "
                         "csr.json); default %(default)s")
    ap.add_argument("--link-faults", type=float, default=None, metavar="RATE",
                    help="rtl: run the emulated link's link layer (sequence numbers, CRC-32 "
                         "per flit, go-back-N replay) and inject faults into RATE of the flits "
                         "either way (drop, duplicate, delay beyond the replay timeout, "
                         "corrupt, evenly); 0: the link layer without faults")
    ap.add_argument("--link-fault-seed", type=int, default=1, help="seed of the fault draws")
    ap.add_argument("--device-reset-at", type=int, default=None, metavar="STEP",
                    help="rtl: reset the SoC before decode step STEP without telling the host; "
                         "the host checks the device at each step (ready word, its DMA "
                         "window), brings it back and offloads its pages again")
    ap.add_argument("--json", default=None, help="write the results here (JSON)")
    ap.add_argument("--json-sequences", action="store_true",
                    help="also write every access, prefetch decision, step record and "
                         "demand-read latency (large)")
    ap.add_argument("--plots", default=None, help="write PNG plots into this directory")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if not Path(a.trace).is_file():
        ap.error(f"trace file not found: {a.trace}")
    if not 1 <= a.k <= 16:
        ap.error(f"--k {a.k}: must be 1..16")
    if not 1 <= a.l2_slots <= 1024:
        ap.error(f"--l2-slots {a.l2_slots}: must be 1..1024")
    from host.driver.link import PROFILES
    if a.link not in PROFILES:
        ap.error(f"unknown link profile {a.link!r}; known: {', '.join(PROFILES)}")
    from gateware.codec.reference import MODES
    if a.codec not in MODES:
        ap.error(f"unknown codec mode {a.codec!r}; known: {', '.join(MODES)}")
    a.timing = a.timing or ("off" if a.backend == "board" else "on")
    if a.backend == "board" and a.timing != "off":
        ap.error("--backend board replays with --timing off: its UART link has no CXL timing")
    opts = ReplayOptions(trace=a.trace, backend=a.backend, link=a.link, codec=a.codec,
                         prefetcher=a.prefetcher, k=a.k, ucb=a.ucb, throttle=a.throttle,
                         mode=a.mode, l1_pages=a.l1_pages, l2_slots=a.l2_slots, steps=a.steps,
                         layers=a.layers, step_ns=a.step_ns, timing=a.timing,
                         gpu_model=a.gpu_model, batch=a.batch, context=a.context)
    wave = None
    if a.waveform:
        try:
            f, w0, w1 = a.waveform.rsplit(":", 2)
            wave = (f, int(w0), int(w1))
        except ValueError:
            ap.error(f"--waveform {a.waveform!r}: expected FILE:START:END")
        if a.backend != "rtl":
            ap.error("--waveform needs --backend rtl")
    opts.waveform = wave
    _faults(ap, a, opts)
    if a.backend == "board":
        if a.compare:
            ap.error("--compare needs a fresh device per configuration: not with --backend "
                     "board (reset the board and run each configuration on its own)")
        for f in ("csr.csv", "csr.json"):
            if not (Path(a.board_dir) / f).is_file():
                ap.error(f"--board-dir {a.board_dir}: no {f} (build the board's project with "
                         f"soc/build.py --board NAME first)")
        host, _, port = a.server.rpartition(":")
        if not port.isdigit():
            ap.error(f"--server {a.server!r}: expected HOST:PORT")
        opts.server, opts.board_dir = a.server, a.board_dir
    if a.backend == "rtl" and build is None:
        from soc.targets.sim import build_sim
        build = build_sim(a.build_dir, quiet=a.quiet)
    try:
        results = (compare(opts, build, not a.quiet) if a.compare else
                   [replay(o, build=build, progress=not a.quiet) for o in timings(opts)])
    except (ReplayError, ValueError) as e:
        print(f"replay: error: {e}", file=sys.stderr)
        return 2
    print_table(results)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        keep = [r if a.json_sequences else
                {k: v for k, v in r.items() if k not in ("sequence", "latencies_ns")}
                for r in results]
        Path(a.json).write_text(json.dumps(keep if len(keep) > 1 else keep[0], indent=1))
        print(f"results: {a.json}")
    if a.plots:
        for f in save_plots(results, a.plots):
            print(f"plot: {f}")
    bad = sum(r["check"]["mismatches"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
