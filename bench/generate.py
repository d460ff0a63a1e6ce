"""Live generation through the device cache against the plain cache, per workload prompt and
device configuration (codec x page selection): first divergent token, perplexity of both on
the plain cache's text, tokens/s of both (CPU wall time), tier counts and compression.

    python bench/generate.py --json docs/results/generate/generate.json

Every cell is ``host.generate.run.compare`` (``speckv-generate --compare``): greedy, SmolLM2
in float16 (what the device stores, so ``raw`` is lossless), the model backend, timing-true
with the default 20 us step. A cell whose prompt does not fit the device pool in its codec
(``raw`` holds about 39 pages per stream of SmolLM2's 90) is skipped with the reason.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import host.traces.model  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch is imported)
from host.generate.cache import GenerateError, check_capacity  # noqa: E402
from host.generate.run import GenOptions, compare  # noqa: E402

CONFIGS = {   # name: (codec, selection)
    "raw-dense": ("raw", "dense"),
    "k4v3-dense": ("kivi_k4v3", "dense"),
    "n10v9-dense": ("kivi_n10v9", "dense"),
    "raw-sparse": ("raw", "sparse"),
    "n10v9-sparse": ("kivi_n10v9", "sparse"),
}
WORKLOADS = ("chatbot", "codegen", "summarization", "qa")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--k", type=int, default=8, help="Quest's k (and the prefetcher's)")
    ap.add_argument("--window", type=int, default=64, help="local window, tokens")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from host.traces.model import load_model
    from host.traces.workloads import WORKLOADS as WL, prompt_ids
    import torch

    model, tok = load_model(dtype="float16")
    rows = []
    for wname in args.workloads.split(","):
        ids = torch.tensor([prompt_ids(WL[wname], tok)])
        for cname in args.configs.split(","):
            codec, sel = CONFIGS[cname]
            opts = GenOptions(max_new_tokens=args.max_new_tokens, codec=codec, selection=sel,
                              k=args.k, window=args.window, stop_at_eos=False)
            row = {"workload": wname, "config": cname, "prompt_tokens": int(ids.shape[1])}
            try:
                check_capacity(model.config, ids.shape[1] + opts.max_new_tokens, codec)
            except GenerateError as e:
                rows.append({**row, "skipped": str(e)})
                print(f"{wname} {cname}: skipped: {e}", file=sys.stderr)
                continue
            t0 = time.time()
            r = compare(model, ids, opts, progress=not args.no_progress)
            d = r["device"]["device"]
            rows.append({**row, "options": asdict(opts),
                         "first_divergence": r["first_divergence"],
                         "ppl_plain": r["perplexity"]["plain"],
                         "ppl_device": r["perplexity"]["device"],
                         "ppl_change": r["perplexity"]["change"],
                         "tokens_per_s_plain": r["plain"]["tokens_per_s"],
                         "tokens_per_s_device": r["device"]["tokens_per_s"],
                         "tiers": {k: d[k] for k in ("l1", "l2", "late", "miss", "l2_hit_rate")},
                         "compression_ratio": d["compression_ratio"],
                         "check": d["check"], "plain_tokens": r["plain"]["tokens"],
                         "device_tokens": r["device"]["tokens"], "wall_s": time.time() - t0})
            print(f"{wname} {cname}: first divergence {r['first_divergence']}, ppl "
                  f"{r['perplexity']['plain']:.4f} -> {r['perplexity']['device']:.4f} "
                  f"({r['perplexity']['change']:+.2%})", file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF) in float16", "backend": "model",
                "max_new_tokens": args.max_new_tokens, "k": args.k, "window": args.window,
                "command": " ".join(["python bench/generate.py"] + (argv or sys.argv[1:])),
                "torch_threads": torch.get_num_threads()}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


def table(rows) -> str:
    out = ["| workload | prompt | config | first divergent token | ppl plain | ppl device | "
           "change | tok/s plain | tok/s device | L2 hit rate | ratio | bad pages |",
           "|" + " --- |" * 12]
    skipped = [f"{r['workload']} {r['config']}" for r in rows if "skipped" in r]
    for r in rows:
        if "skipped" in r:
            continue
        d = r["first_divergence"]
        hr = r["tiers"]["l2_hit_rate"]
        out.append(f"| {r['workload']} | {r['prompt_tokens']} | {r['config']} | "
                   f"{'none' if d is None else d} | {r['ppl_plain']:.4f} | {r['ppl_device']:.4f} | "
                   f"{r['ppl_change']:+.2%} | {r['tokens_per_s_plain']:.1f} | "
                   f"{r['tokens_per_s_device']:.1f} | {'-' if hr is None else f'{hr:.3f}'} | "
                   f"{r['compression_ratio']:.3f} | {r['check']['mismatches']} |")
    if skipped:
        out.append(f"\nNot run (the prompt does not fit the device pool in that codec): "
                   f"{', '.join(skipped)}.")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
