"""``SpecKVCache``: a ``transformers`` KV cache whose full pages live in the SpecKV device.

A model generates with it as with any cache (``model.generate(..., past_key_values=cache)``);
what changes is where the KV is:

* **L1, the host.** The tail (the 1..16 tokens of the page being filled, the current token
  among them) and the last ``l1_pages`` full pages of every (layer, KV head) stay in host
  memory, in the model's dtype.
* **The device pool.** A page is offloaded as it fills (when its 17th token arrives): its K
  and V are cast to FP16 and stored, compressed by the device's codec, in the device pool
  (``Backend.offload``). Once it leaves L1 the host keeps no copy of it, only its per-channel
  key bounds (Quest's page metadata).
* **Reads.** At every decode step, layer by layer, attention reads the pages it needs: all of
  them (``selection="dense"``) or the window pages plus the ``k`` pages with the highest
  Quest upper bound for the step's real query (``"sparse"``, ``host/traces/sparse.py``, the
  rule the traces use). A page outside L1 comes from L2 (the prefetch buffer the device
  writes into host memory) or by a demand read over the link; its bytes are the device's
  decode, checked against the reference codec (``host/replayer/page_check.py``).
* **Hints.** After reading a layer the host posts that layer's part of the step's hint (the
  pages each stream read); the device's prefetcher predicts the next step's pages and
  prefetches them into L2. The tier protocol (L1 / L2 / late / miss, timing-true or
  synchronous) is the trace replay's, ``host/replayer/tiers.py``.

A head of ``head_dim`` D > 64 is stored as D / 64 device pages per token page (channels
0-63, 64-127, ...): a device page is 16 tokens x 64 channels of K and V (4 KiB FP16), the
codec cores' geometry. Device stream ``(layer * kv_heads + head) * parts + part``.

Sparse selection needs the query, which a cache does not see: the model's attention is
switched to ``speckv`` (eager attention over the selected pages) while the cache is open;
``close()`` switches it back. Dense selection leaves the model's attention as it is.
Batch size 1.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers.cache_utils import Cache, DynamicLayer

from gateware.codec import reference as R
from gateware.common import PAGE_BYTES
from host.driver.device import pool_pages
from host.driver.hints import SpecConfig
from host.prefetch import make_predictor
from host.replayer.engine import PREFETCHERS, ReplayOptions, make_backend
from host.replayer.page_check import PageCheck
from host.replayer.tiers import HostTiers, StepLog
from host.traces import sparse as sp
from soc.mailbox import DRAM_POOL, DRAM_POOL_END, SPEC_MAX_PAGES, VPN_PAGE_BITS, VPN_WIDTH

PAGE_TOKENS = 16
DEVICE_D = 64               # channels of a device page
ATTN_IMPL = "speckv"
_ACTIVE: list = [None]      # the open sparse cache (its update ran last; the attention reads it)


class GenerateError(ValueError):
    """A model, prompt or option the device cannot serve; the message names it."""


def geometry(config):
    """(layers, KV heads, query heads per KV head, head_dim, device pages per token page)."""
    n_q = int(config.num_attention_heads)
    d = int(getattr(config, "head_dim", None) or config.hidden_size // n_q)
    L, H = int(config.num_hidden_layers), int(config.num_key_value_heads)
    if d % DEVICE_D:
        raise GenerateError(f"head_dim {d}: a device page holds {DEVICE_D} channels, so head_dim "
                            f"must be a multiple of {DEVICE_D}")
    return L, H, n_q // H, d, d // DEVICE_D


def check_capacity(config, tokens: int, codec: str):
    """Raise GenerateError if ``tokens`` (prompt + new) do not fit the device."""
    L, H, _, _, parts = geometry(config)
    streams = L * H * parts
    pages = max(0, (tokens - 1) // PAGE_TOKENS)
    if streams > 1 << (VPN_WIDTH - VPN_PAGE_BITS):
        raise GenerateError(f"{L} layers x {H} KV heads x {parts} pages per head = {streams} "
                            f"device streams; the page table addresses {1 << (VPN_WIDTH - VPN_PAGE_BITS)}")
    if pages > SPEC_MAX_PAGES:
        raise GenerateError(f"{tokens} tokens = {pages} pages per stream; a stream holds at most "
                            f"{SPEC_MAX_PAGES} pages ({SPEC_MAX_PAGES * PAGE_TOKENS} tokens)")
    cap = pool_pages(codec)
    if streams * pages > cap:
        raise GenerateError(
            f"{tokens} tokens need {streams * pages} device pages ({streams} streams x {pages} "
            f"pages); the device pool holds {cap} pages in codec {codec} "
            f"({(DRAM_POOL_END - DRAM_POOL) >> 20} MiB, soc/mailbox.py DRAM_POOL..DRAM_POOL_END): "
            f"shorten the prompt or --max-new-tokens, or use a denser codec")


class _Originals:
    """What the page check compares device reads with: the FP16 pages as offloaded."""

    def __init__(self):
        self.pages = {}

    def page(self, vpn):
        return self.pages[vpn]


def _attention(module, query, key, value, attention_mask, **kwargs):
    from transformers.models.llama.modeling_llama import eager_attention_forward
    cache = _ACTIVE[0]
    if cache is not None and query.shape[2] == 1 and cache.sparse_pending(module.layer_idx):
        key, value = cache.sparse_kv(module.layer_idx, query)
        attention_mask = None        # one query, every selected token is in its past
    return eager_attention_forward(module, query, key, value, attention_mask, **kwargs)


class _Layer(DynamicLayer):
    """One layer's host side: the tail, the L1 pages and every page's key bounds."""

    def __init__(self, owner, idx):
        super().__init__()
        self.owner, self.idx = owner, idx
        self.tail_k = self.tail_v = None      # [1, H, t, D]
        self.l1 = {}                          # page -> (k, v) [H, 16, D]
        self.kmin, self.kmax = [], []         # per page [H, D] float32
        self.n_tokens = 0
        self.pending = False                  # sparse: the decode step's read is due

    @property
    def n_full(self):
        return len(self.kmin)

    def get_seq_length(self) -> int:
        return self.n_tokens

    def get_mask_sizes(self, query_length: int):
        return self.n_tokens + query_length, 0

    def update(self, key_states, value_states, *args, **kwargs):
        if key_states.shape[0] != 1:
            raise GenerateError(f"SpecKVCache serves batch size 1, got {key_states.shape[0]}")
        o = self.owner
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.tail_k, self.tail_v = key_states[:, :, :0], value_states[:, :, :0]
        q_len = key_states.shape[-2]
        if q_len == 1 and self.idx == 0:
            o.begin_step()
        k = torch.cat([self.tail_k, key_states], dim=-2)
        v = torch.cat([self.tail_v, value_states], dim=-2)
        fresh = {}
        while k.shape[-2] > PAGE_TOKENS:
            p = self.n_full
            fresh[p] = (k[0, :, :PAGE_TOKENS], v[0, :, :PAGE_TOKENS])
            o.offload_page(self, p, *fresh[p])
            k, v = k[:, :, PAGE_TOKENS:], v[:, :, PAGE_TOKENS:]
        self.tail_k, self.tail_v = k, v
        self.n_tokens += q_len
        if q_len > 1:                       # prefill (or a chunk): every page, host or device
            pages = [fresh[p] if p in fresh else o.fetch(self, p) for p in range(self.n_full)]
            return self._assemble(pages)
        if o.selection == "sparse":
            self.pending = True
            return self._assemble([self.l1[p] for p in sorted(self.l1)])
        pages = o.read_layer(self, [np.arange(self.n_full)] * o.H)
        return self._assemble(pages)

    def _assemble(self, pages):
        """[1, H, n * 16 + t, D] keys and values: the pages (per head lists or (k, v) pairs
        of [H, 16, D]) then the tail."""
        ks = [pk[None] for pk, _ in pages] + [self.tail_k]
        vs = [pv[None] for _, pv in pages] + [self.tail_v]
        return torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)

    def crop(self, tokens_to_remove):
        raise GenerateError("SpecKVCache cannot be cropped (pages already left the host)")


class SpecKVCache(Cache):
    """A KV cache backed by a SpecKV device (see the module docstring). ``backend``: "model"
    (reference models, calibrated timing; the default), "rtl" (the Verilator SoC; ``build``:
    its ``build_sim`` result, built on first use otherwise), or a ``Backend``. ``codec``: a
    codec mode (rtl: the SoC's, kivi_k4v3). ``timing``: "on" (timing-true: the device works
    while the host computes ``step_ns`` per decode step) or "off" (each layer's hint served
    before the host goes on)."""

    def __init__(self, model, backend="model", codec="kivi_k4v3", selection="dense", k=8,
                 window=64, l1_pages=None, prefetcher="lstm", link="cxl2-x16", timing="on",
                 step_ns=20_000.0, l2_slots=512, build=None, max_tokens=None):
        if selection not in ("dense", "sparse"):
            raise GenerateError(f"selection must be dense or sparse, not {selection!r}")
        if prefetcher not in PREFETCHERS:
            raise GenerateError(f"unknown prefetcher {prefetcher!r}; known: {', '.join(PREFETCHERS)}")
        if codec not in R.MODES:
            raise GenerateError(f"unknown codec {codec!r}; known: {', '.join(R.MODES)}")
        if timing not in ("on", "off"):
            raise GenerateError(f"timing must be on or off, not {timing!r}")
        self.model, self.config = model, model.config
        self.L, self.H, self.G, self.D, self.parts = geometry(self.config)
        if max_tokens is not None:
            check_capacity(self.config, max_tokens, codec)
        self.codec, self.selection, self.k, self.window = codec, selection, k, window
        self.capacity = pool_pages(codec)
        self.l1_pages = max(0, window // PAGE_TOKENS) if l1_pages is None else l1_pages
        self.step_ns, self.step = step_ns, -1
        if isinstance(backend, str):
            backend = make_backend(ReplayOptions(backend=backend, codec=codec, link=link), build)
        self.backend = backend
        cfg = SpecConfig(request=0x5EC0 + 2, kind=PREFETCHERS.index(prefetcher), k=k, ucb=False,
                         throttle=False, heads=self.H * self.parts, layers=self.L, l2_base=0,
                         l2_slots=l2_slots, l1_pages=self.l1_pages)
        backend.start(cfg, make_predictor(prefetcher, l1=self.l1_pages))
        self.originals = _Originals()
        self.tiers = HostTiers(backend, cfg, self.H * self.parts, VPN_PAGE_BITS, self.L,
                               timed=timing == "on", dense=selection == "dense",
                               check=PageCheck(self.originals, codec, (PAGE_TOKENS, DEVICE_D)))
        self.log, self.index, self.t0 = None, {}, 0
        super().__init__(layers=[_Layer(self, i) for i in range(self.L)])
        self._attn_before = None
        if selection == "sparse":
            from transformers import AttentionInterface
            from transformers.masking_utils import AttentionMaskInterface, eager_mask
            AttentionInterface.register(ATTN_IMPL, _attention)
            AttentionMaskInterface.register(ATTN_IMPL, eager_mask)
            self._attn_before = model.config._attn_implementation
            model.set_attn_implementation(ATTN_IMPL)
            _ACTIVE[0] = self

    # device pages ---------------------------------------------------------------------------
    def vpn(self, layer, head, part, page):
        return (((layer * self.H + head) * self.parts + part) << VPN_PAGE_BITS) | page

    def offload_page(self, layer, p, k, v):
        """Page ``p`` of ``layer`` filled: its bounds, its L1 copy, its device pages."""
        kf = k.float().numpy()
        layer.kmin.append(kf.min(axis=1))
        layer.kmax.append(kf.max(axis=1))
        layer.l1[p] = (k.clone(), v.clone())
        for old in [q for q in layer.l1 if q < p + 1 - self.l1_pages]:
            del layer.l1[old]
        kv = torch.stack([k, v], dim=1).to(torch.float16).numpy()      # [H, 2, 16, D]
        for h in range(self.H):
            for part in range(self.parts):
                vpn = self.vpn(layer.idx, h, part, p)
                page = np.ascontiguousarray(kv[h, :, :, part * DEVICE_D:(part + 1) * DEVICE_D])
                if len(self.tiers.lengths) >= self.capacity:
                    raise GenerateError(
                        f"the device pool is full ({self.capacity} pages in codec {self.codec}) "
                        f"at page {p} of layer {layer.idx}: the sequence is longer than the "
                        f"device holds")
                self.originals.pages[vpn] = page
                self.tiers.offload(vpn, page)

    def fetch(self, layer, p):
        """(k, v) [H, 16, D] of page ``p`` outside a decode step (a multi-token forward
        after pages left the host): the L1 copy, else device reads, with no hint."""
        if p in layer.l1:
            return layer.l1[p]
        log = StepLog(self.step)
        return self._device_page(layer, p, range(self.H), self.backend.l2_index(), log)

    def _device_page(self, layer, p, heads, index, log, s=None):
        k = torch.zeros(len(heads), PAGE_TOKENS, self.D, dtype=layer.dtype)
        v = torch.zeros_like(k)
        for i, h in enumerate(heads):
            for part in range(self.parts):
                data = self.tiers.read(self.step if s is None else s,
                                       self.vpn(layer.idx, h, part, p), False, index, log)
                page = torch.from_numpy(np.frombuffer(data, np.float16).reshape(2, PAGE_TOKENS,
                                                                                DEVICE_D).copy())
                sl = slice(part * DEVICE_D, (part + 1) * DEVICE_D)
                k[i, :, sl], v[i, :, sl] = page[0].to(layer.dtype), page[1].to(layer.dtype)
        return k, v

    # decode steps ---------------------------------------------------------------------------
    def begin_step(self):
        if self.log is not None:
            self.end_step()
        self.step += 1
        self.log = StepLog(self.step)
        self.t0 = self.backend.clock() if self.tiers.timed else 0
        self.tiers.hinting = True

    def end_step(self):
        if self.tiers.timed:
            self.log.step_cycles = self.backend.clock() - self.t0
        self.tiers.logs.append(self.log)
        self.log = None

    def read_layer(self, layer, selected):
        """Read the step's pages of ``layer`` (``selected[h]``: page indices of head h), post
        the layer's hint, compute for its share of the step. Returns per selected page
        position a (k, v) pair of [H, 16, D]."""
        t, s, log = self.tiers, self.step, self.log
        self.index = self.backend.l2_index()     # the device writes L2 as it goes
        n_full, first_l1 = layer.n_full, layer.n_full - self.l1_pages
        per_head = []
        for h in range(self.H):
            ks, vs = [], []
            for p in selected[h]:
                p = int(p)
                if p >= first_l1:
                    for part in range(self.parts):
                        t.read(s, self.vpn(layer.idx, h, part, p), True, self.index, log)
                    ks.append(layer.l1[p][0][h])
                    vs.append(layer.l1[p][1][h])
                else:
                    k, v = self._device_page(layer, p, [h], self.index, log)
                    ks.append(k[0])
                    vs.append(v[0])
            per_head.append((ks, vs))
        streams = [(n_full, np.asarray(selected[h], dtype=np.int64))
                   for h in range(self.H) for _ in range(self.parts)]
        if t.hinting:
            t.hint(s, layer.idx, streams, log)
        if t.timed:
            t.compute(self.step_ns * self.backend.cycles_per_ns / self.L)
        n = len(selected[0])
        return [(torch.stack([per_head[h][0][i] for h in range(self.H)]),
                 torch.stack([per_head[h][1][i] for h in range(self.H)])) for i in range(n)]

    def sparse_pending(self, layer_idx):
        return self.layers[layer_idx].pending

    def sparse_kv(self, layer_idx, query):
        """Quest selection for the step's query [1, Hq, 1, D]: read the selected pages and
        return the keys and values attention runs over."""
        layer = self.layers[layer_idx]
        layer.pending = False
        n_full = layer.n_full
        sel = np.zeros((self.H, n_full), dtype=bool)
        if n_full:
            q = query[0, :, 0, :].float().numpy().reshape(1, self.H, self.G, self.D)
            kmin = np.stack(layer.kmin, axis=1)[None]             # [1, H, P, D]
            kmax = np.stack(layer.kmax, axis=1)[None]
            sel = sp.select_pages(q, kmin, kmax, layer.n_tokens, self.k, self.window)[0]
        counts = sel.sum(axis=1)
        if len(set(counts.tolist())) > 1:
            raise AssertionError(f"Quest selected unequal page counts per head: {counts}")
        pages = self.read_layer(layer, [np.nonzero(sel[h])[0] for h in range(self.H)])
        return layer._assemble(pages)

    # results --------------------------------------------------------------------------------
    def close(self):
        """End the last step, switch the model's attention back, release the device."""
        if self.log is not None:
            self.end_step()
        if self.tiers.timed and self.tiers.pending is not None:
            self.tiers.drain()
        if self._attn_before is not None:
            self.model.set_attn_implementation(self._attn_before)
            self._attn_before = None
        if _ACTIVE[0] is self:
            _ACTIVE[0] = None
        self.backend.close()

    def stats(self) -> dict:
        """Tier counts, compression and the data check, after ``close()``."""
        t = self.tiers
        t.classify()
        l1 = sum(g.l1 for g in t.logs)
        l2 = sum(g.l2 for g in t.logs)
        l3 = sum(g.l3 for g in t.logs)
        late = sum(g.late for g in t.logs)
        pages = len(t.lengths)
        return {"steps": len(t.logs), "l1": l1, "l2": l2, "late": late, "miss": l3 - late,
                "l2_hit_rate": l2 / (l2 + l3) if l2 + l3 else None,
                "pages_offloaded": pages,
                "compression_ratio": PAGE_BYTES * pages / sum(t.lengths.values()) if pages else None,
                "prefetch_issued": sum(len(g.issued) for g in t.logs),
                "check": {**t.check.summary(), "mismatches": t.mismatches,
                          "digest": t.digest.hexdigest()}}
