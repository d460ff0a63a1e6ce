"""SpecKV KV-trace file format (version 1): writer and validating loader.

A trace is one safetensors file. Its header metadata has a single key, ``speckv_trace``,
holding a JSON object (see traces/README.md for every field). Tensors:

=====================  =========  ==========================================  ==============
name                   dtype      shape                                       optional
=====================  =========  ==========================================  ==============
tokens                 int32      [T]                                         no
kv                     float16    [L, H, P, 2, 16, D]  (2: 0 = K, 1 = V)       no
kv_tail                float16    [L, H, 2, T - 16 P, D]                      no
page_offload_step      int32      [P]                                         no
steps.seq_len          int32      [S]                                         no
steps.n_full           int32      [S]                                         no
access.dense           uint8      [S, L, H, ceil(P / 8)]  (packed bits)        no
access.sparse          uint8      [S, L, H, ceil(P / 8)]  (packed bits)        no
sparse.mass_kept       float32    [S, L, H]                                   no
queries                float32    [S, L, Hq, D]                               yes
=====================  =========  ==========================================  ==============

T tokens, P = T // 16 full pages, S decode steps, L layers, H KV heads, Hq query heads,
D head_dim. Bitmaps are ``numpy.packbits(..., bitorder="little")`` along the page axis:
page p of row r is bit ``p % 8`` of byte ``p // 8``.

Virtual page number of (layer l, KV head h, page p): ``((l * H + h) << vpn_page_bits) | p``.

Use :func:`load_trace` to read; every inconsistency raises :class:`TraceFormatError`
whose message starts with the file path.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT_NAME = "speckv-kv-trace"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
METADATA_KEY = "speckv_trace"
PAGE_TOKENS = 16
VPN_PAGE_BITS = 12  # up to 4096 pages = 65536 tokens per (layer, KV head)

_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "I32": np.int32, "U8": np.uint8,
              "I64": np.int64, "F64": np.float64, "BF16": None, "I16": np.int16,
              "U16": np.uint16, "I8": np.int8, "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}
_NP_TO_ST = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.int32): "I32",
             np.dtype(np.uint8): "U8"}

REQUIRED_META = ("format", "format_version", "project_version", "model", "tokenizer", "dtype",
                 "page", "source", "workload", "prompt_tokens", "gen_tokens", "total_tokens",
                 "n_pages", "decode_steps", "sampling", "sparse", "has_queries")


class TraceFormatError(ValueError):
    """A trace file is malformed. The message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def vpn(layer, kv_head, page, n_kv_heads: int, page_bits: int = VPN_PAGE_BITS):
    """Virtual page number of (layer, kv_head, page index). Works on ints and numpy arrays."""
    return ((np.asarray(layer, dtype=np.int64) * n_kv_heads + kv_head) << page_bits) | np.asarray(page, dtype=np.int64)


def vpn_split(v, n_kv_heads: int, page_bits: int = VPN_PAGE_BITS):
    """Inverse of :func:`vpn`: returns (layer, kv_head, page)."""
    v = np.asarray(v, dtype=np.int64)
    page = v & ((1 << page_bits) - 1)
    lh = v >> page_bits
    return lh // n_kv_heads, lh % n_kv_heads, page


def _expected_shapes(meta: dict) -> dict:
    m = meta["model"]
    n_l, n_h, n_q, d = m["num_hidden_layers"], m["num_key_value_heads"], m["num_attention_heads"], m["head_dim"]
    t, p, s = meta["total_tokens"], meta["n_pages"], meta["decode_steps"]
    pt = meta["page"]["tokens"]
    nb = (p + 7) // 8
    shapes = {
        "tokens": ("I32", (t,)),
        "kv": ("F16", (n_l, n_h, p, 2, pt, d)),
        "kv_tail": ("F16", (n_l, n_h, 2, t - pt * p, d)),
        "page_offload_step": ("I32", (p,)),
        "steps.seq_len": ("I32", (s,)),
        "steps.n_full": ("I32", (s,)),
        "access.dense": ("U8", (s, n_l, n_h, nb)),
        "access.sparse": ("U8", (s, n_l, n_h, nb)),
        "sparse.mass_kept": ("F32", (s, n_l, n_h)),
    }
    if meta["has_queries"]:
        shapes["queries"] = ("F32", (s, n_l, n_q, d))
    return shapes


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- writing

def write_trace(path, meta: dict, tensors: dict) -> str:
    """Validate shapes against metadata, write atomically, return the file's SHA-256.

    Output is byte-deterministic: tensors are laid out by safetensors' fixed order and
    the metadata JSON is serialised with sorted keys.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    meta = dict(meta)
    meta.setdefault("format", FORMAT_NAME)
    meta.setdefault("format_version", FORMAT_VERSION)
    expected = _expected_shapes(meta)
    if set(tensors) != set(expected):
        raise ValueError(f"tensor set {sorted(tensors)} != expected {sorted(expected)}")
    for name, (dt, shape) in expected.items():
        a = tensors[name]
        if _NP_TO_ST.get(a.dtype) != dt or tuple(a.shape) != shape:
            raise ValueError(f"{name}: {a.dtype}{a.shape}, expected {dt}{shape}")
    meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
              metadata={METADATA_KEY: meta_json})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return sha256_file(path)


# --------------------------------------------------------------------------- loading

def _read_header(path: Path):
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise TraceFormatError(path, "file does not exist") from None
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TraceFormatError(path, f"truncated: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000 or 8 + n > size:
            raise TraceFormatError(path, f"truncated or not a safetensors file: header claims {n} bytes, "
                                         f"file has {size - 8} after the length field")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceFormatError(path, f"safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise TraceFormatError(path, "safetensors header is not a JSON object")
    data_len = size - 8 - n
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            a, b = info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise TraceFormatError(path, f"tensor {name!r} has no valid data_offsets") from None
        end = max(end, b)
    if end > data_len:
        raise TraceFormatError(path, f"truncated: tensor data needs {end} bytes but only {data_len} are present")
    if end < data_len:
        raise TraceFormatError(path, f"{data_len - end} unexpected trailing bytes after the tensor data")
    return header


def _parse_meta(path: Path, header: dict) -> dict:
    md = header.get("__metadata__") or {}
    if METADATA_KEY not in md:
        raise TraceFormatError(path, f"no '{METADATA_KEY}' metadata: not a SpecKV trace")
    try:
        meta = json.loads(md[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise TraceFormatError(path, f"metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise TraceFormatError(path, "metadata is not a JSON object")
    if meta.get("format") != FORMAT_NAME:
        raise TraceFormatError(path, f"format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    v = meta.get("format_version")
    if v not in SUPPORTED_VERSIONS:
        raise TraceFormatError(path, f"unknown trace format version {v!r} (this loader reads "
                                     f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise TraceFormatError(path, f"metadata lacks field(s): {', '.join(missing)}")
    for k in ("num_hidden_layers", "num_key_value_heads", "num_attention_heads", "head_dim"):
        if not isinstance(meta["model"].get(k), int) or meta["model"][k] <= 0:
            raise TraceFormatError(path, f"metadata model.{k} is missing or not a positive integer")
    for k in ("total_tokens", "n_pages", "decode_steps", "prompt_tokens", "gen_tokens"):
        if not isinstance(meta[k], int) or meta[k] < 0:
            raise TraceFormatError(path, f"metadata {k} is not a non-negative integer")
    if meta["page"].get("tokens") != PAGE_TOKENS:
        raise TraceFormatError(path, f"page.tokens is {meta['page'].get('tokens')!r}, expected {PAGE_TOKENS}")
    if meta["total_tokens"] != meta["prompt_tokens"] + meta["gen_tokens"]:
        raise TraceFormatError(path, "total_tokens != prompt_tokens + gen_tokens")
    if meta["n_pages"] != meta["total_tokens"] // PAGE_TOKENS:
        raise TraceFormatError(path, f"n_pages {meta['n_pages']} contradicts total_tokens "
                                     f"{meta['total_tokens']} (expected {meta['total_tokens'] // PAGE_TOKENS})")
    if meta["decode_steps"] != meta["gen_tokens"]:
        raise TraceFormatError(path, "decode_steps != gen_tokens")
    return meta


@dataclass
class Trace:
    """A loaded, validated trace. Arrays are numpy; see traces/README.md for meanings."""

    path: Path
    meta: dict
    tokens: np.ndarray
    kv: np.ndarray
    kv_tail: np.ndarray
    page_offload_step: np.ndarray
    seq_len: np.ndarray
    n_full: np.ndarray
    mass_kept: np.ndarray
    queries: np.ndarray | None
    _bits: dict = field(repr=False, default_factory=dict)

    # geometry -----------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.meta["model"]["num_hidden_layers"]

    @property
    def n_kv_heads(self) -> int:
        return self.meta["model"]["num_key_value_heads"]

    @property
    def n_pages(self) -> int:
        return self.meta["n_pages"]

    @property
    def n_steps(self) -> int:
        return self.meta["decode_steps"]

    @property
    def page_bits(self) -> int:
        return self.meta["page"]["vpn_page_bits"]

    def vpn(self, layer, kv_head, page):
        return vpn(layer, kv_head, page, self.n_kv_heads, self.page_bits)

    def vpn_split(self, v):
        return vpn_split(v, self.n_kv_heads, self.page_bits)

    # data ---------------------------------------------------------------------
    def keys(self, layer: int, kv_head: int) -> np.ndarray:
        """Post-RoPE keys [T, D] (float16) of one (layer, KV head): pages then tail."""
        return np.concatenate([self.kv[layer, kv_head, :, 0].reshape(-1, self.kv.shape[-1]),
                               self.kv_tail[layer, kv_head, 0]], axis=0)

    def values(self, layer: int, kv_head: int) -> np.ndarray:
        return np.concatenate([self.kv[layer, kv_head, :, 1].reshape(-1, self.kv.shape[-1]),
                               self.kv_tail[layer, kv_head, 1]], axis=0)

    def page(self, v: int) -> np.ndarray:
        """The 4 KiB page [2, 16, D] float16 (K then V) of virtual page number v."""
        l, h, p = (int(x) for x in self.vpn_split(v))
        if not (0 <= l < self.n_layers and 0 <= p < self.n_pages):
            raise KeyError(f"virtual page {v} is not in this trace")
        return self.kv[l, h, p]

    def packed_mask(self, mode: str) -> np.ndarray:
        """The access bitmap of ``mode`` as stored: [steps, layers, KV heads, ceil(pages/8)]
        bytes, little bit order."""
        return self._bits[mode]

    def access_mask(self, mode: str) -> np.ndarray:
        """bool [S, L, H, P]: True where step s reads page p of (layer l, KV head h)."""
        if mode not in ("dense", "sparse"):
            raise ValueError("mode must be 'dense' or 'sparse'")
        packed = self._bits[mode]
        return np.unpackbits(packed, axis=-1, count=self.n_pages, bitorder="little").astype(bool)

    def step_vpns(self, step: int, mode: str) -> np.ndarray:
        """Sorted int64 array of the virtual pages read at decode step `step`."""
        m = np.unpackbits(self._bits[mode][step], axis=-1, count=self.n_pages, bitorder="little")
        l, h, p = np.nonzero(m)
        return np.sort(self.vpn(l, h, p))

    def access_lists(self, mode: str):
        """CSR form of the whole access pattern: (vpns int64 [N], offsets int64 [S+1])."""
        lists = [self.step_vpns(s, mode) for s in range(self.n_steps)]
        offsets = np.zeros(self.n_steps + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(x) for x in lists])
        vpns = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        return vpns, offsets


def load_trace(path, check_sha: str | None = None) -> Trace:
    """Load and validate a trace. Raises TraceFormatError naming the file and the problem."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    header = _read_header(path)
    meta = _parse_meta(path, header)
    try:
        expected = _expected_shapes(meta)
    except (KeyError, TypeError) as e:
        raise TraceFormatError(path, f"metadata lacks a geometry field: {e}") from None
    present = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = [k for k in expected if k not in present]
    if missing:
        raise TraceFormatError(path, f"missing tensor(s): {', '.join(missing)}")
    extra = [k for k in present if k not in expected]
    if extra:
        raise TraceFormatError(path, f"unexpected tensor(s): {', '.join(extra)}")
    for name, (dt, shape) in expected.items():
        info = present[name]
        if info.get("dtype") != dt:
            raise TraceFormatError(path, f"tensor {name!r} has dtype {info.get('dtype')}, metadata implies {dt}")
        if tuple(info.get("shape", ())) != shape:
            raise TraceFormatError(path, f"tensor {name!r} has shape {tuple(info.get('shape', ()))}, "
                                         f"metadata implies {shape}")
    if check_sha is not None and sha256_file(path) != check_sha:
        raise TraceFormatError(path, "SHA-256 does not match the expected value")
    try:
        t = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise TraceFormatError(path, f"safetensors could not read the file ({e})") from None

    tr = Trace(path=path, meta=meta, tokens=t["tokens"], kv=t["kv"], kv_tail=t["kv_tail"],
               page_offload_step=t["page_offload_step"], seq_len=t["steps.seq_len"],
               n_full=t["steps.n_full"], mass_kept=t["sparse.mass_kept"],
               queries=t.get("queries"),
               _bits={"dense": t["access.dense"], "sparse": t["access.sparse"]})
    _check_content(tr)
    return tr


def _check_content(tr: Trace) -> None:
    """Cheap semantic checks: step lengths, dense = all full pages, sparse within dense."""
    p = tr.path
    m = tr.meta
    s = np.arange(tr.n_steps)
    if not np.array_equal(tr.seq_len, m["prompt_tokens"] + s + 1):
        raise TraceFormatError(p, "steps.seq_len is not prompt_tokens + step + 1")
    if not np.array_equal(tr.n_full, (tr.seq_len - 1) // PAGE_TOKENS):
        raise TraceFormatError(p, "steps.n_full is not (seq_len - 1) // 16")
    vocab = m["model"].get("vocab_size")
    if tr.tokens.size and (tr.tokens.min() < 0 or (vocab and tr.tokens.max() >= vocab)):
        raise TraceFormatError(p, "token ids outside the vocabulary")
    dense = tr.access_mask("dense")
    want = np.arange(tr.n_pages)[None, :] < tr.n_full[:, None]  # [S, P]
    if not (dense == want[:, None, None, :]).all():
        raise TraceFormatError(p, "access.dense is not 'every full page of the sequence' at every step")
    first_tok = PAGE_TOKENS * np.arange(tr.n_pages) + PAGE_TOKENS - 1
    off = np.where(first_tok < m["prompt_tokens"], -1, first_tok - m["prompt_tokens"])
    if not np.array_equal(tr.page_offload_step, off):
        raise TraceFormatError(p, "page_offload_step does not match the page geometry")
    sparse = tr.access_mask("sparse")
    if (sparse & ~dense).any():
        raise TraceFormatError(p, "access.sparse selects a page that is not yet written")
    if tr.mass_kept.size and not (np.isfinite(tr.mass_kept).all()
                                  and tr.mass_kept.min() >= -1e-4 and tr.mass_kept.max() <= 1 + 1e-4):
        raise TraceFormatError(p, "sparse.mass_kept outside [0, 1]")
    if not np.isfinite(tr.kv).all():
        raise TraceFormatError(p, "kv holds non-finite values")
