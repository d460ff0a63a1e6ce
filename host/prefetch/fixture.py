"""A small held-out test fixture bundled in git: the Quest-sparse access pattern (k = 8,
64-token window) of the first decode steps of the full chatbot and codegen traces
(``build/traces``, not in git), packed bitmaps only (no KV). Tests use it because the bundled
mini traces (5 pages per stream) leave nothing to predict outside the 4-page L1 window.

    python -m host.prefetch.fixture            # build/traces -> traces/prefetch-heldout.npz
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from host.prefetch import make_predictor
from host.prefetch.dataset import Streams

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "traces" / "prefetch-heldout.npz"
WORKLOADS = ("chatbot", "codegen")
STEPS = 64


def records_for(st, steps, ks=(1, 2, 4, 8, 16), start=0):
    """(s, layer, n_pages, k, acc) for steps start..start+steps-1, streams in order; k cycles
    through ks."""
    out = []
    for t in range(start, start + steps):
        n = int(st.n_pages[t])
        for s in range(st.n_streams):
            out.append((s, s // st.n_heads, n, ks[(t * st.n_streams + s) % len(ks)], st.acc[t][s]))
    return out


def reference(kind, records, l1=4):
    p = make_predictor(kind, l1=l1)
    return [p.step(s, layer, n, acc, k) for s, layer, n, k, acc in records]


def write(traces_dir: Path, out: Path = FIXTURE, steps: int = STEPS):
    from host.traces.format import load_trace, sha256_file
    arrays, meta = {}, {}
    for w in WORKLOADS:
        p = traces_dir / f"{w}.safetensors"
        t = load_trace(p)
        bits = t.packed_mask("sparse")[:steps]                       # [S, L, H, ceil(P/8)] packed
        arrays[f"{w}_bits"] = bits.reshape(bits.shape[0], -1, bits.shape[-1])
        arrays[f"{w}_n_full"] = t.n_full[:steps].astype(np.int32)
        meta[w] = {"trace": p.name, "sha256": sha256_file(p), "source": t.meta["source"]["label"],
                   "n_layers": t.n_layers, "n_kv_heads": t.n_kv_heads, "n_pages": t.n_pages,
                   "steps": int(bits.shape[0]), "sparse": t.meta["sparse"]}
    np.savez_compressed(out, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return out


def load(name: str, path: Path = FIXTURE, steps: int | None = None) -> Streams:
    z = np.load(path)
    meta = json.loads(str(z["meta"]))[name]
    bits = z[f"{name}_bits"]
    S = bits.shape[0] if steps is None else min(steps, bits.shape[0])
    mask = np.unpackbits(bits[:S], axis=-1, count=meta["n_pages"], bitorder="little")
    acc = [[np.flatnonzero(mask[t, s]).tolist() for s in range(mask.shape[1])] for t in range(S)]
    return Streams(name, "sparse", meta["n_layers"], meta["n_kv_heads"], acc,
                   z[f"{name}_n_full"][:S].astype(np.int64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="speckv-prefetch-fixture", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--traces", type=Path, default=ROOT / "build" / "traces")
    ap.add_argument("--out", type=Path, default=FIXTURE)
    ap.add_argument("--steps", type=int, default=STEPS)
    args = ap.parse_args(argv)
    print(f"wrote {write(args.traces, args.out, args.steps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
