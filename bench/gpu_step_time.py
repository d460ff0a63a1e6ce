"""Decode-step time of LLaMA-architecture models on a GPU, per layer and per step, over batch
and context length, each step captured in a CUDA graph so the table measures the GPU.

The step is host/serving/llama.py's (plain torch, random weights: a step's time does not
depend on their values; tests/test_serving_llama.py checks it equals transformers' LLaMA).
Every (model, dtype, context, batch) gets its own static KV cache; batches grow until the
weights plus the cache no longer fit. For each it times the captured full step, the
captured layer 0 alone, and (batch 1 only) the same step launched eagerly, kernel by kernel,
to show what launch overhead does to it. It also measures the card's copy bandwidth and
gives each row its floor: the bytes a step must read (weights + KV) over that bandwidth.

    PYTHONPATH=. python bench/gpu_step_time.py --json docs/results/gpu/step_times.json
    PYTHONPATH=. python bench/gpu_step_time.py --models smollm2-135m --contexts 512 --batches 1,8
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from host.serving.llama import DecodeStep
from host.serving.shapes import SHAPES, shape_of

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _ints(text):
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _time_graph(fn, iters, warmup=3):
    """Capture ``fn`` in a CUDA graph, replay it; median milliseconds of ``iters`` replays."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    for _ in range(warmup):
        graph.replay()
    return _median_ms(graph.replay, iters), graph


def _median_ms(fn, iters):
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for a, b in zip(starts, ends):
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in zip(starts, ends))


def copy_bandwidth_gbs(nbytes=4 << 30):
    """Device-to-device copy, bytes read plus written per second (the memory ceiling)."""
    src = torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    ms = _median_ms(lambda: dst.copy_(src), 20)
    return nbytes / (ms / 1e3) / 1e9


def measure(step, batch, context, iters, eager, bw_gbs):
    step.alloc_cache(batch, context)
    tokens = torch.randint(0, step.shape.vocab, (batch,), device="cuda")
    x = torch.randn(batch, step.shape.hidden, device="cuda", dtype=step.dtype)
    with torch.no_grad():
        step_ms, g1 = _time_graph(lambda: step(tokens), iters)
        layer_ms, g2 = _time_graph(lambda: step.layer(0, x), iters)
        eager_ms = _median_ms(lambda: step(tokens), max(3, iters // 5)) if eager else None
    del g1, g2
    s = step.shape
    kv_read = batch * (context + 1) * s.kv_bytes_per_token(torch.finfo(step.dtype).bits // 8)
    floor_ms = (step.weight_bytes() + kv_read) / (bw_gbs * 1e9) * 1e3
    return {"batch": batch, "context": context, "step_ms": round(step_ms, 4),
            "layer_ms": round(layer_ms, 4),
            "head_ms": round(step_ms - s.layers * layer_ms, 4),
            "eager_step_ms": None if eager_ms is None else round(eager_ms, 4),
            "floor_ms": round(floor_ms, 4), "kv_bytes": kv_read,
            "tokens_per_s": round(batch / (step_ms / 1e3), 1)}


def _result(argv, t0, gpu, bw, models, rows, skipped):
    return {"what": "decode-step time, CUDA graph replay, median of --iters",
            "command": "python bench/gpu_step_time.py " + " ".join(argv or sys.argv[1:]),
            "date": datetime.date.today().isoformat(), "gpu": gpu,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "copy_bandwidth_gbs": round(bw, 1),
            "graph": "torch.cuda.CUDAGraph (full step; layer 0)",
            "shapes": {m: shape_of(m).as_dict() for m in models},
            "rows": rows, "skipped": skipped, "wall_s": round(time.time() - t0, 1)}


def _write(path, result):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", default=",".join(SHAPES),
                    help=f"comma-separated model shapes, of: {', '.join(SHAPES)} (default all)")
    ap.add_argument("--dtypes", default="bf16,fp16", help="bf16, fp16 or both (default both)")
    ap.add_argument("--contexts", type=_ints, default=[512, 1024, 2048, 4096, 8192],
                    help="context lengths in tokens (default 512..8192)")
    ap.add_argument("--batches", type=_ints, default=[1, 2, 4, 8, 16, 32, 64, 128, 256],
                    help="batch sizes tried, each while weights + KV cache fit (default 1..256)")
    ap.add_argument("--iters", type=int, default=30, help="timed replays per row (median kept)")
    ap.add_argument("--headroom", type=float, default=0.9,
                    help="use at most this share of the GPU's free memory (default 0.9)")
    ap.add_argument("--json", type=Path, help="write the table and its provenance here "
                    "(rewritten after every row, so a stopped run keeps what it measured)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="stop starting new rows after this many seconds")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in SHAPES:
            ap.error(f"unknown model {m!r}: known are {', '.join(SHAPES)}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        ap.error(f"unknown dtype {bad[0]!r}: use bf16 or fp16")
    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible; this benchmark measures a GPU (see docs/serving.md "
              "for the committed table)", file=sys.stderr)
        return 2

    t0 = time.time()
    gpu = torch.cuda.get_device_name()
    bw = copy_bandwidth_gbs()
    print(f"{gpu}: copy bandwidth {bw:.0f} GB/s (read + write)", flush=True)
    rows, skipped = [], []
    for name in models:
        for dt in dtypes:
            torch.cuda.empty_cache()
            step = DecodeStep(shape_of(name), dtype=DTYPES[dt], device="cuda")
            for ctx in args.contexts:
                for b in args.batches:
                    if args.time_limit and time.time() - t0 > args.time_limit:
                        skipped.append({"model": name, "dtype": dt, "batch": b, "context": ctx,
                                        "why": "--time-limit reached"})
                        break
                    step.k_cache = step.v_cache = None
                    torch.cuda.empty_cache()
                    free, _ = torch.cuda.mem_get_info()
                    need = step.cache_bytes_for(b, ctx) + (b * step.shape.vocab * 4) * 4
                    if need > free * args.headroom:
                        skipped.append({"model": name, "dtype": dt, "batch": b, "context": ctx,
                                        "why": f"needs {need / 2**30:.1f} GiB, "
                                               f"{free / 2**30:.1f} GiB free"})
                        break
                    try:
                        r = measure(step, b, ctx, args.iters, eager=b == 1, bw_gbs=bw)
                    except torch.cuda.OutOfMemoryError:
                        skipped.append({"model": name, "dtype": dt, "batch": b, "context": ctx,
                                        "why": "out of memory"})
                        step.k_cache = step.v_cache = None
                        torch.cuda.empty_cache()
                        break
                    rows.append({"model": name, "dtype": dt, **r})
                    if args.json:
                        _write(args.json, _result(argv, t0, gpu, bw, models, rows, skipped))
                    print(f"{name:13s} {dt} ctx {ctx:5d} batch {b:4d}: step {r['step_ms']:8.3f} ms"
                          f"  layer {r['layer_ms']:7.4f} ms  floor {r['floor_ms']:7.3f} ms"
                          + (f"  eager {r['eager_step_ms']:.2f} ms" if r["eager_step_ms"] else ""),
                          flush=True)
            del step
    if args.json:
        _write(args.json, _result(argv, t0, gpu, bw, models, rows, skipped))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
