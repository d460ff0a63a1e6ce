"""Compression ratio of every codec mode on real KV pages, overall and per layer.

Ratios are FP16 page bytes / compressed bytes with every header, scale, padding and CRC
byte counted. Fixed-size modes have the same ratio on every page by construction; the
variable-size ones (int8_delta_rle, and zstd level 1 for comparison, on the FP16 page and on
the int8 payload) are where a per-layer difference can show (the paper claims early layers
compress better than late ones). Also the RMS relative error of each lossy mode
(sqrt(sum err^2 / sum x^2) over all pages, no SINK flag).

    python bench/codec_ratio.py --trace traces/mini-chatbot.safetensors
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np


from gateware.codec import reference as R


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", action="append",
                    help="trace file(s) (repeatable; default: both bundled traces)")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    traces = args.trace or ["traces/mini-chatbot.safetensors", "traces/mini-codegen.safetensors"]

    import zstandard

    from host.traces.format import load_trace

    kvs = [load_trace(t).kv for t in traces]               # (L, H, P, 2, 16, D) each
    L = kvs[0].shape[0]
    per_layer = [np.concatenate([kv[l].reshape(-1, *kv.shape[3:]) for kv in kvs]) for l in range(L)]
    page_bytes = per_layer[0][0].nbytes
    zc = zstandard.ZstdCompressor(level=1)
    cols = {}
    for name in R.MODES:
        cols[name] = [page_bytes * len(p) / sum(map(len, R.compress_batch(p, name)))
                      for p in per_layer]
    allp = np.concatenate(per_layer)
    x = allp.astype(np.float64)
    relerr = {}
    for name in R.MODES:
        y = R.decompress_batch(R.compress_batch(allp, name)).astype(np.float64)
        relerr[name] = float(np.sqrt(((y - x) ** 2).sum() / (x ** 2).sum()))
    cols["zstd1 fp16"] = [page_bytes * len(p) / sum(len(zc.compress(x.tobytes())) for x in p)
                          for p in per_layer]

    def zint8(p):
        # zstd-1 over the int8 mode's page (header, scales and payload) instead of RLE
        return page_bytes * len(p) / sum(len(zc.compress(b)) for b in R.compress_batch(p, "int8"))

    cols["zstd1 int8"] = [zint8(p) for p in per_layer]
    n_pages = sum(len(p) for p in per_layer)
    overall = {k: float(page_bytes * n_pages / sum(page_bytes * len(p) / r
                                                   for p, r in zip(per_layer, v)))
               for k, v in cols.items()}

    print(f"{n_pages} real KV pages ({', '.join(traces)}), {datetime.date.today()}")
    print(f"{'mode':<16} {'overall':>8} {'layer 0':>8} {'layer 1':>8} {'mid':>8} {'last':>8}"
          f" {'early 0-9':>10} {'late 20-29':>11} {'RMS rel err':>12}")
    for k, v in cols.items():
        early = np.mean(v[: L // 3])
        late = np.mean(v[-(L // 3):])
        print(f"{k:<16} {overall[k]:>8.3f} {v[0]:>8.3f} {v[1]:>8.3f} {v[L // 2]:>8.3f} "
              f"{v[-1]:>8.3f} {early:>10.3f} {late:>11.3f} "
              f"{relerr[k] if k in relerr else float('nan'):>12.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"traces": traces, "pages": n_pages,
                                               "date": str(datetime.date.today()),
                                               "overall": overall, "per_layer": cols,
                                               "rms_relative_error": relerr}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
