"""Speed and ratio of the reference KV codec against zstd (level 1) and lz4 on the same pages.

Every codec works page by page (4 KiB FP16 pages, as the device pool stores them). The numpy
reference is vectorized over a batch of pages; zstd and lz4 are called once per page.
MB/s counts uncompressed bytes (FP16 page bytes) per second of wall time, best of --repeat.

    python bench/codec_speed.py                      # bundled trace pages
    python bench/codec_speed.py --trace traces/mini-codegen.safetensors --json build/codec_speed.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np


from gateware.codec import reference as R


def _best(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def load_pages(path: str) -> np.ndarray:
    from host.traces.format import load_trace
    kv = load_trace(path).kv
    return np.ascontiguousarray(kv.reshape(-1, *kv.shape[3:]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", default="traces/mini-chatbot.safetensors",
                    help="trace file whose KV pages are compressed (default: bundled chatbot)")
    ap.add_argument("--modes", default=",".join(R.MODES), help="reference modes to run")
    ap.add_argument("--repeat", type=int, default=3, help="timing repetitions (best kept)")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)

    import lz4.block
    import zstandard

    pages = load_pages(args.trace)
    raw = [p.tobytes() for p in pages]
    nbytes = sum(len(r) for r in raw)
    mb = nbytes / 1e6
    rows = []

    for name in [m for m in args.modes.split(",") if m]:
        tc, blobs = _best(lambda: R.compress_batch(pages, name), args.repeat)
        td, out = _best(lambda: R.decompress_batch(blobs), args.repeat)
        rows.append({"codec": f"reference {name}", "ratio": nbytes / sum(map(len, blobs)),
                     "compress_MBps": mb / tc, "decompress_MBps": mb / td})

    zc = zstandard.ZstdCompressor(level=1)
    zd = zstandard.ZstdDecompressor()
    tc, zb = _best(lambda: [zc.compress(r) for r in raw], args.repeat)
    td, zo = _best(lambda: [zd.decompress(b) for b in zb], args.repeat)
    assert zo == raw
    rows.append({"codec": "zstd level 1 (per page)", "ratio": nbytes / sum(map(len, zb)),
                 "compress_MBps": mb / tc, "decompress_MBps": mb / td})
    tc, lb = _best(lambda: [lz4.block.compress(r, store_size=False) for r in raw], args.repeat)
    td, lo = _best(lambda: [lz4.block.decompress(b, uncompressed_size=len(r))
                            for b, r in zip(lb, raw)], args.repeat)
    assert lo == raw
    rows.append({"codec": "lz4 block (per page)", "ratio": nbytes / sum(map(len, lb)),
                 "compress_MBps": mb / tc, "decompress_MBps": mb / td})

    print(f"{len(pages)} pages ({mb:.2f} MB FP16) from {args.trace}, {datetime.date.today()}")
    print(f"{'codec':<28} {'ratio':>7} {'compress MB/s':>14} {'decompress MB/s':>16}")
    for r in rows:
        print(f"{r['codec']:<28} {r['ratio']:>7.3f} {r['compress_MBps']:>14.1f} "
              f"{r['decompress_MBps']:>16.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"trace": args.trace, "pages": len(pages),
                                               "date": str(datetime.date.today()),
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
