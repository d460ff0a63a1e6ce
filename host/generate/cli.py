"""``speckv-generate``: generate text with the KV cache disaggregated to the SpecKV device.

Examples (``speckv-generate`` is ``python -m host.generate.cli``)::

    speckv-generate --prompt "The GNU General Public License is"       # SmolLM2, model backend
    speckv-generate --prompt-file notes.txt --codec kivi_n10v9 --selection sparse --compare
    speckv-generate --model ~/models/TinyLlama-1.1B --prompt "Hello" --backend rtl
    speckv-generate --prompt "Hi" --compare --json build/gen.json
    speckv-generate --workload summarization --codec kivi_n10v9 --selection sparse --compare

Prints the generated text, the tier statistics (L1 / L2 / late / miss page reads), the
compression ratio and tokens/s; ``--compare`` also generates with the plain cache and
reports the first token where the two differ and the perplexity of both on the plain text.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import host.traces.model  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from host.replayer.engine import PREFETCHERS, ReplayError
from host.driver.link import PROFILES

from gateware.codec import reference as R


def build_parser():
    p = argparse.ArgumentParser(
        prog="speckv-generate",
        description="Generate text (greedy) with the model's KV cache disaggregated to the "
                    "SpecKV device: the recent window in host memory (L1), full 16-token pages "
                    "compressed in the device pool, read back from L2 (prefetched by the "
                    "device's predictor from the hint after each layer) or by demand reads.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt text")
    src.add_argument("--prompt-file", type=Path, help="a UTF-8 text file holding the prompt")
    src.add_argument("--workload", choices=("chatbot", "summarization", "codegen", "qa"),
                     help="the prompt of a trace workload (host/traces/workloads.py): chat "
                          "template, instruction, a cut of a real document")
    p.add_argument("--prompt-tokens", type=int, default=None,
                   help="cut the document to make the prompt exactly this many tokens "
                        "(default: the whole --prompt / --prompt-file, or the workload's length)")
    p.add_argument("--model", default=None,
                   help="a local Hugging Face folder or GGUF file of a LLaMA-architecture model "
                        "(default: the bundled SmolLM2-135M-Instruct, Q4_1 GGUF)")
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"),
                   help="model dtype; float16 is what the device stores, so the raw codec "
                        "is lossless")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at end of sequence")
    p.add_argument("--backend", default="model", choices=("model", "rtl"),
                   help="model: reference models, calibrated timing; rtl: the Verilator SoC")
    p.add_argument("--codec", default="kivi_k4v3", choices=list(R.MODES),
                   help="the device's codec (rtl: the SoC's, kivi_k4v3)")
    p.add_argument("--selection", default="dense", choices=("dense", "sparse"),
                   help="pages attention reads: all, or the window + Quest's top k")
    p.add_argument("--k", type=int, default=8, help="sparse: pages selected outside the window; "
                   "also the prefetcher's pages per stream")
    p.add_argument("--window", type=int, default=64, help="local window in tokens")
    p.add_argument("--l1-pages", type=int, default=None,
                   help="full pages per (layer, KV head) kept in host memory (default: window/16)")
    p.add_argument("--prefetcher", default="lstm", choices=PREFETCHERS)
    p.add_argument("--link", default="cxl2-x16", choices=list(PROFILES))
    p.add_argument("--timing", default="on", choices=("on", "off"),
                   help="on: the device works while the host computes --step-ns a step "
                        "(late prefetches count); off: each hint served before the host goes on")
    p.add_argument("--step-ns", type=float, default=20_000.0,
                   help="host compute time per decode step the prefetches may hide behind")
    p.add_argument("--compare", action="store_true",
                   help="also generate with the plain cache: first divergent token, perplexity "
                        "of both on the plain text")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _prompt_ids(tok, args):
    import torch
    from host.traces.capture import build_prompt
    if args.workload is not None:
        from host.traces.workloads import WORKLOADS, prompt_ids
        return torch.tensor([prompt_ids(WORKLOADS[args.workload], tok, args.prompt_tokens)])
    if args.prompt_file is not None:
        try:
            text = args.prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--prompt-file {args.prompt_file}: {e}") from None
    else:
        text = args.prompt
    if not text.strip():
        raise ValueError("the prompt is empty")
    if args.prompt_tokens is not None:
        return torch.tensor([build_prompt(tok, text, args.prompt_tokens, chat=args.chat)[0]])
    if args.chat:
        return tok.apply_chat_template([{"role": "user", "content": text}],
                                       add_generation_prompt=True, return_tensors="pt",
                                       return_dict=True)["input_ids"]
    return tok(text, return_tensors="pt").input_ids


def _tiers_table(st):
    rows = [("L1 reads", st["l1"]), ("L2 hits", st["l2"]), ("late prefetches", st["late"]),
            ("misses", st["miss"]), ("L2 hit rate", st["l2_hit_rate"]),
            ("pages offloaded", st["pages_offloaded"]),
            ("compression ratio", st["compression_ratio"]),
            ("prefetches issued", st["prefetch_issued"]),
            ("pages checked / bad", f"{st['check']['pages_checked']} / {st['check']['mismatches']}")]
    out = []
    for k, v in rows:
        v = f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))
        out.append(f"  {k:<22} {v}")
    return "\n".join(out)


def main(argv=None) -> int:
    from host.generate.cache import GenerateError
    from host.generate.run import GenOptions, compare, generate
    from host.traces.model import ModelError, ModelNotFoundError, load_model

    args = build_parser().parse_args(argv)
    opts = GenOptions(**{f.name: getattr(args, f.name) for f in fields(GenOptions)
                         if hasattr(args, f.name)}, stop_at_eos=not args.ignore_eos)
    try:
        if args.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens {args.max_new_tokens}: must be >= 1")
        model, tok = load_model(threads=args.threads, path=args.model, dtype=args.dtype)
        ids = _prompt_ids(tok, args)
        progress = not args.no_progress
        if args.compare:
            res = compare(model, ids, opts, progress=progress)
        else:
            res = {"options": opts.__dict__, "prompt_tokens": int(ids.shape[1]),
                   "device": generate(model, ids, opts, progress=progress)}
    except (GenerateError, ModelError, ModelNotFoundError, ReplayError, ValueError) as e:
        print(f"speckv-generate: error: {e}", file=sys.stderr)
        return 2
    dev = res["device"]
    print(tok.decode(dev["tokens"], skip_special_tokens=True))
    print(f"\n{res['prompt_tokens']} prompt tokens, {len(dev['tokens'])} generated on the "
          f"{args.backend} backend, codec {args.codec}, {args.selection} selection: "
          f"{dev['tokens_per_s']:.2f} tokens/s")
    print(_tiers_table(dev["device"]))
    if args.compare:
        pl = res["plain"]
        d = res["first_divergence"]
        print(f"\nplain cache: {pl['tokens_per_s']:.2f} tokens/s")
        print(tok.decode(pl["tokens"], skip_special_tokens=True))
        print("\nfirst divergent token: " + ("none (identical)" if d is None else
              f"{d} (plain {tok.decode(pl['tokens'][d:d + 1])!r}, device "
              f"{tok.decode(dev['tokens'][d:d + 1])!r})"))
        pp = res["perplexity"]
        print(f"perplexity on the plain text ({res['scored_tokens']} tokens): plain "
              f"{pp['plain']:.4f}, device {pp['device']:.4f} ({pp['change']:+.2%})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
