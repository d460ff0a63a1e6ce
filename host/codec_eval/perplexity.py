"""Accuracy and compression ratio of the KV codec on a real model (SmolLM2-135M-Instruct).

The model reads a text file in chunks of one KV page (16 tokens). After every chunk, the page
that just filled is what the host would offload to the device pool: for every (layer, KV
head) its K and V are cast to FP16, compressed by the reference codec, decompressed, and
written back into the model's KV cache, so every later token attends to the round-tripped
page. The partial page being filled stays exact (it lives in the host's L1), which is also
what token-by-token decoding would see: chunked evaluation at page granularity is exactly
equivalent to decoding one token at a time with offload-on-full.

Reported per mode: perplexity on the text and its change against the FP16 baseline (`raw`:
pages rounded to FP16, the paper's baseline), the mean compression ratio over all pages
(every header, scale, padding and CRC byte counted) and the ratio per layer.

    python -m host.codec_eval.perplexity --text /usr/share/common-licenses/GPL-3 --json build/codec_eval.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateware.codec import reference as R

PAGE_TOKENS = 16


def _roundtrip_page(cache, start: int, mode, stats: dict, sink: bool = False) -> None:
    """Round-trip the page [start, start+16) of every layer through the codec, in place."""
    import torch

    ks, vs = [], []
    for layer in cache.layers:
        ks.append(layer.keys[0, :, start: start + PAGE_TOKENS, :])
        vs.append(layer.values[0, :, start: start + PAGE_TOKENS, :])
    k = torch.stack(ks)                    # (L, H, 16, D)
    v = torch.stack(vs)
    L, H, T, D = k.shape
    pages = torch.stack([k, v], dim=2).to(torch.float16).reshape(L * H, 2, T, D).numpy()
    blobs = R.compress_batch(pages, mode, sink=sink and mode.kivi_like)
    out = R.decompress_batch(blobs, expect_geometry=(T, D))
    lens = np.array([len(b) for b in blobs]).reshape(L, H)
    stats["bytes"] += lens.sum(axis=1)
    stats["pages"] += H
    back = torch.from_numpy(out.astype(np.float32)).reshape(L, H, 2, T, D)
    for li, layer in enumerate(cache.layers):
        dt = layer.keys.dtype
        layer.keys[0, :, start: start + PAGE_TOKENS, :] = back[li, :, 0].to(dt)
        layer.values[0, :, start: start + PAGE_TOKENS, :] = back[li, :, 1].to(dt)


def eval_mode(model, ids, mode, window_pages: int = 0, sink: bool = True) -> dict:
    """Perplexity of `ids` (1, N) with pooled pages round-tripped through `mode`
    (None: no codec, float32 cache). `sink`: the sequence's first page is compressed with
    the SINK flag (kivi modes: token 0's K kept exact)."""
    import torch
    from transformers import DynamicCache

    n_layers = model.config.num_hidden_layers
    stats = {"bytes": np.zeros(n_layers, np.int64), "pages": 0}
    cache = DynamicCache()
    nll, count = 0.0, 0
    N = ids.shape[1]
    pending = []                            # full pages not yet offloaded (the L1 window)
    with torch.no_grad():
        for s in range(0, N, PAGE_TOKENS):
            chunk = ids[:, s: s + PAGE_TOKENS]
            out = model(chunk, past_key_values=cache, use_cache=True)
            logits = out.logits[0].float()
            tgt = ids[0, s + 1: s + 1 + chunk.shape[1]]
            lp = torch.log_softmax(logits[: tgt.shape[0]], dim=-1)
            nll -= lp.gather(1, tgt[:, None]).sum().item()
            count += tgt.shape[0]
            if mode is not None and chunk.shape[1] == PAGE_TOKENS:
                pending.append(s)
                while len(pending) > window_pages:
                    p0 = pending.pop(0)
                    _roundtrip_page(cache, p0, mode, stats, sink=sink and p0 == 0)
    res = {"ppl": math.exp(nll / count), "tokens_scored": count}
    if mode is not None and stats["pages"]:
        per_layer_pages = stats["pages"]
        raw = 2 * PAGE_TOKENS * _head_dim(model) * 2
        res["ratio"] = raw * per_layer_pages * n_layers / stats["bytes"].sum()
        res["ratio_per_layer"] = (raw * per_layer_pages / stats["bytes"]).tolist()
        res["pages"] = per_layer_pages * n_layers
    return res


@dataclass
class EvalOptions:
    """One mode on one text (a sweep's ``codec`` cell); the command line's options."""
    text: str = ""                  # a UTF-8 file, or several comma-separated
    mode: str = "kivi_k4v3"
    tokens: int = 1024
    segments: int = 1
    window: int = 0
    sink: bool = True
    rotate_v: bool = False
    rotate_seed: int | None = None
    model: str | None = None        # None: the bundled SmolLM2-135M-Instruct


def load(model_path=None, rotate_v=False, rotate_seed=None, threads=None):
    """(model, tokenizer), V rotated into the weights on request (a fresh copy then)."""
    from host.traces.model import DEFAULT_THREADS, load_model
    model, tok = load_model(cache=not rotate_v, path=model_path,
                            threads=threads or DEFAULT_THREADS)
    if rotate_v:
        from host.traces.rotation import fold_value_rotation
        fold_value_rotation(model, rotate_seed)
    return model, tok


def text_segments(tok, text_files, tokens, segments):
    """``segments`` consecutive ``tokens``-token pieces of the files' text (joined by blank
    lines); ValueError naming the file when it is missing or too short."""
    files = [f for f in text_files.split(",") if f]
    for f in files:
        if not Path(f).is_file():
            raise ValueError(f"--text: no such file {f!r}")
    if tokens % PAGE_TOKENS:
        raise ValueError(f"--tokens {tokens}: must be a multiple of 16")
    text = "\n\n".join(Path(f).read_text(encoding="utf-8") for f in files)
    ids = tok(text, return_tensors="pt").input_ids
    need = tokens * segments
    if ids.shape[1] < need:
        raise ValueError(f"{text_files} has {ids.shape[1]} tokens, {need} needed")
    return [ids[:, i * tokens: (i + 1) * tokens] for i in range(segments)]


def score(model, segs, mode_name, window, sink, bar=None):
    """Perplexity (and ratio) of one mode (None: fp32, no codec) over the segments."""
    agg_nll, agg_n, per = 0.0, 0, []
    t0 = time.time()
    for seg in segs:
        r = eval_mode(model, seg, R.MODES[mode_name] if mode_name else None, window, sink=sink)
        per.append(r)
        agg_nll += math.log(r["ppl"]) * r["tokens_scored"]
        agg_n += r["tokens_scored"]
        if bar is not None:
            bar.update(1)
    res = {"ppl": math.exp(agg_nll / agg_n), "seconds": time.time() - t0,
           "ppl_per_segment": [r["ppl"] for r in per]}
    if mode_name is not None:
        res["ratio"] = float(np.mean([r["ratio"] for r in per]))
        res["ratio_per_layer"] = np.mean([r["ratio_per_layer"] for r in per], axis=0).tolist()
    return res


def evaluate(o: EvalOptions, threads=None):
    """One mode on one text: ``score``'s result."""
    model, tok = load(o.model, o.rotate_v, o.rotate_seed, threads)
    segs = text_segments(tok, o.text, o.tokens, o.segments)
    return score(model, segs, o.mode, o.window, o.sink)


def _head_dim(model) -> int:
    c = model.config
    return int(getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None,
                    help="a local Hugging Face folder or GGUF file of a LLaMA-architecture "
                         "model (default: the bundled SmolLM2-135M-Instruct, Q4_1 GGUF)")
    ap.add_argument("--text", required=True,
                    help="UTF-8 text file to score; several files comma-separated are scored as"
                         " one text (joined by blank lines), segments running across them")
    ap.add_argument("--modes", default=",".join(R.MODES),
                    help="comma-separated codec modes (default: all); 'raw' is the FP16 baseline"
                         " and is always run")
    ap.add_argument("--tokens", type=int, default=EvalOptions.tokens,
                    help="tokens per segment (multiple of 16; default 1024)")
    ap.add_argument("--segments", type=int, default=EvalOptions.segments,
                    help="number of consecutive segments of the text to score (default 1)")
    ap.add_argument("--window", type=int, default=EvalOptions.window,
                    help="full pages kept exact in the host L1 window besides the partial one"
                         " (default 0: every full page is offloaded)")
    ap.add_argument("--no-sink", action="store_true",
                    help="do not set the SINK flag on each sequence's first page (kivi modes"
                         " then quantize the attention-sink token's K like any other)")
    ap.add_argument("--skip-fp32", action="store_true",
                    help="skip the fp32-cache reference run (no codec); the FP16 baseline"
                         " (raw) still runs")
    ap.add_argument("--baseline-json",
                    help="take the FP16 baseline (raw) from this earlier --json output instead"
                         " of running it again; its text, tokens, segments and window must match"
                         " (raw pages never carry the SINK flag, so --no-sink does not matter)")
    ap.add_argument("--rotate-v", action="store_true",
                    help="fold a randomized Hadamard rotation of V into v_proj/o_proj first"
                         " (host/traces/rotation.py: the model's output is unchanged, the cached V is"
                         " rotated); every run, the FP16 baseline included, uses that model")
    ap.add_argument("--rotate-seed", type=int, default=None, metavar="N",
                    help="with --rotate-v: randomize the Hadamard matrix's row signs with seed N"
                         " (default: the plain Sylvester Hadamard matrix)")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in R.MODES:
            ap.error(f"unknown mode {m!r}; choose from {', '.join(R.MODES)}")
    baseline = None
    if args.baseline_json:
        try:
            prev = json.loads(Path(args.baseline_json).read_text())
            pm, baseline = prev["meta"], prev["results"]["raw"]
        except (OSError, ValueError, KeyError) as e:
            ap.error(f"--baseline-json {args.baseline_json}: not a codec_eval result ({e})")
        for k, v in (("text", args.text), ("tokens", args.tokens), ("segments", args.segments),
                     ("window_pages", args.window), ("rotate_v", args.rotate_v),
                     ("rotate_seed", args.rotate_seed)):
            if pm.get(k, False if k == "rotate_v" else None) != v:
                ap.error(f"--baseline-json {args.baseline_json}: {k} {pm.get(k)!r} != {v!r}")
        modes = [m for m in modes if m != "raw"]
    elif "raw" not in modes:
        modes.insert(0, "raw")

    from tqdm import tqdm

    try:
        model, tok = load(args.model, args.rotate_v, args.rotate_seed)
        segs = text_segments(tok, args.text, args.tokens, args.segments)
    except (ValueError, OSError) as e:
        ap.error(str(e))

    results = {}
    runs = ([] if args.skip_fp32 else [None]) + modes
    bar = tqdm(total=len(runs) * len(segs), desc="codec eval", unit="seg", file=sys.stderr)
    for m in runs:
        results["fp32 (no codec)" if m is None else m] = score(model, segs, m, args.window,
                                                             not args.no_sink, bar)
    bar.close()
    if baseline is not None:
        results = {"raw": dict(baseline, from_file=args.baseline_json), **results}
    base = results["raw"]["ppl"]
    base_seg = results["raw"].get("ppl_per_segment")
    for r in results.values():
        r["dppl_pct"] = 100 * (r["ppl"] / base - 1)
        # spread over the text: standard error of the per-segment changes (paired with the
        # baseline's segments; needs >= 2 segments and a baseline that recorded them)
        seg = r.get("ppl_per_segment")
        if seg and base_seg and len(seg) == len(base_seg) >= 2:
            d = 100 * (np.array(seg) / np.array(base_seg) - 1)
            r["dppl_se_pct"] = float(d.std(ddof=1) / math.sqrt(len(d)))

    print(f"\n{args.model or 'SmolLM2-135M-Instruct'}, {args.text}, {args.segments} x {args.tokens} tokens, "
          f"window {args.window} pages, sink flag {'off' if args.no_sink else 'on'}, "
          f"{'V rotated, ' if args.rotate_v else ''}"
          f"{datetime.date.today()}")
    print(f"{'mode':<18} {'ratio':>7} {'ppl':>9} {'dppl vs fp16':>13} {'+- s.e.':>8}  "
          f"ratio layer 0 / mid / last")
    for name, r in results.items():
        rl = r.get("ratio_per_layer")
        lay = f"{rl[0]:.3f} / {rl[len(rl) // 2]:.3f} / {rl[-1]:.3f}" if rl else ""
        ratio = f"{r['ratio']:.3f}" if "ratio" in r else "-"
        se = f"{r['dppl_se_pct']:.3f}%" if "dppl_se_pct" in r else "-"
        print(f"{name:<18} {ratio:>7} {r['ppl']:>9.4f} {r['dppl_pct']:>+12.3f}% {se:>8}  {lay}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        meta = {"text": args.text, "tokens": args.tokens, "segments": args.segments,
                "window_pages": args.window, "sink": not args.no_sink,
                "rotate_v": args.rotate_v, "rotate_seed": args.rotate_seed,
                "date": str(datetime.date.today()),
                "model": args.model or "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized fp32)",
                "command": " ".join(["python -m host.codec_eval.perplexity"] + (argv or sys.argv[1:]))}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
