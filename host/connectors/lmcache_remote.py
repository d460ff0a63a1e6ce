"""LMCache remote-storage plugin: LMCache's KV chunks stored in the SpecKV device pool.

LMCache (``lmcache`` 0.5.6) hands a remote backend whole KV chunks (``MemoryObj``: all
layers' K and V of ``chunk_size`` tokens, format KV_2LTD ``[2, layers, tokens, kv_heads *
head_size]``) keyed by ``CacheEngineKey``. This connector stores a chunk as device pages
(``Backend.offload``: over the link into the pool, compressed by the device's codec) and
serves ``get`` by demand reads (``Backend.demand_read``: through the ATU and the page DMA).
Two layouts:

* ``codec raw`` (model backend): the chunk's bytes as they are, cut into 4 KiB pages;
  lossless for any dtype and shape.
* a KV codec (``kivi_k4v3``, the SoC's; ``kivi_n10v9``, the 4x mode): the chunk as device
  KV pages, one per (layer, KV head, 16 tokens, 64 channels) with K and V in FP16, so the
  device's codec compresses what it was built for; a read returns the decoded (lossy)
  values. Needs FP16 chunks, ``head_size`` a multiple of 64; a partial chunk's last page is
  padded with zeros.

Configured as an LMCache remote-storage plugin::

    remote_storage_plugins: ["speckv"]
    extra_config:
      remote_storage_plugin.speckv.module_path: host.connectors.lmcache_remote
      remote_storage_plugin.speckv.class_name: SpecKVConnector
      speckv.backend: model          # or rtl (the Verilator SoC)
      speckv.codec: raw              # or kivi_k4v3, kivi_n10v9
      speckv.link: cxl2-x16

The device has no page free command (its pool is an append-only extent allocator), so
a key is never evicted: a full pool fails ``put`` with the pool's size in the message. The
backends are synchronous (a simulation step, a link transaction); the async methods run
them inline.
"""
from __future__ import annotations

import numpy as np
import torch
from lmcache.v1.storage_backend.connector.base_connector import RemoteConnector

from gateware.common import PAGE_BYTES
from host.driver.device import pool_pages
from host.driver.hints import SpecConfig
from host.prefetch import make_predictor
from host.replayer.engine import ReplayOptions, make_backend

TOKENS, CHANNELS = 16, 64    # a device KV page: K and V of 16 tokens x 64 channels, FP16
_KEY = "speckv."


class SpecKVConnectorError(RuntimeError):
    pass


def chunk_to_pages(x: torch.Tensor) -> np.ndarray:
    """KV_2LTD chunk [2, L, T, H * D] (FP16, D a multiple of 64, H from the caller's
    reshape) as device KV pages [P, 2, 16, 64]: layer, head-channel block, token block."""
    two, L, T, HD = x.shape
    pad = (-T) % TOKENS
    if pad:
        x = torch.cat([x, x.new_zeros(two, L, pad, HD)], dim=2)
    nb = x.shape[2] // TOKENS
    y = x.reshape(2, L, nb, TOKENS, HD // CHANNELS, CHANNELS)     # [2, L, b, t, c, 64]
    return y.permute(1, 4, 2, 0, 3, 5).contiguous().reshape(-1, 2, TOKENS, CHANNELS).numpy()


def pages_to_chunk(pages: np.ndarray, shape) -> torch.Tensor:
    """Inverse of :func:`chunk_to_pages` for a chunk of ``shape`` [2, L, T, H * D]."""
    two, L, T, HD = shape
    nb = -(-T // TOKENS)
    y = torch.from_numpy(pages).reshape(L, HD // CHANNELS, nb, 2, TOKENS, CHANNELS)
    x = y.permute(3, 0, 2, 4, 1, 5).reshape(2, L, nb * TOKENS, HD)
    return x[:, :, :T].contiguous()


class SpecKVConnector(RemoteConnector):
    """LMCache remote connector over a SpecKV backend (see the module docstring)."""

    def __init__(self, loop=None, local_cpu_backend=None, config=None, backend=None):
        super().__init__(local_cpu_backend.config, local_cpu_backend.metadata)
        extra = dict(getattr(config or local_cpu_backend.config, "extra_config", None) or {})
        self.codec = extra.get(_KEY + "codec", "raw")
        self.local_cpu_backend = local_cpu_backend
        self.loop = loop
        if backend is None:
            backend = make_backend(ReplayOptions(backend=extra.get(_KEY + "backend", "model"),
                                                 codec=self.codec,
                                                 link=extra.get(_KEY + "link", "cxl2-x16")))
            backend.start(SpecConfig(request=0x5EC0 + 3, kind=0, k=1, ucb=False,
                                     throttle=False, heads=1, layers=1, l2_base=0, l2_slots=8,
                                     l1_pages=0), make_predictor("none", l1=0))
        self.backend = backend
        self.capacity = pool_pages(self.codec)
        self.index = {}        # key -> (vpns, nbytes, shapes, dtypes, fmt)
        self.next_vpn = 0
        self.stored_bytes = self.pool_bytes = 0

    # chunk <-> device pages ---------------------------------------------------------------
    def _pages(self, memory_obj):
        if self.codec == "raw":
            raw = np.frombuffer(bytes(memory_obj.byte_array), np.uint8)
            raw = np.concatenate([raw, np.zeros((-len(raw)) % PAGE_BYTES, np.uint8)])
            return raw.view(np.float16).reshape(-1, 2, TOKENS, CHANNELS)
        t = memory_obj.tensor
        if t is None or t.dtype != torch.float16 or t.dim() != 4 or t.shape[-1] % CHANNELS:
            raise SpecKVConnectorError(
                f"codec {self.codec} stores FP16 KV_2LTD chunks [2, layers, tokens, heads x "
                f"head_size] with a multiple of {CHANNELS} channels; got "
                f"{None if t is None else (t.dtype, tuple(t.shape))} (use speckv.codec raw)")
        return chunk_to_pages(t)

    async def put(self, key, memory_obj):
        if key in self.index:
            return
        pages = self._pages(memory_obj)
        if self.next_vpn + len(pages) > self.capacity:
            raise SpecKVConnectorError(
                f"the device pool is full: {self.next_vpn} of {self.capacity} pages in codec "
                f"{self.codec} are used and a chunk needs {len(pages)} more")
        vpns = list(range(self.next_vpn, self.next_vpn + len(pages)))
        self.next_vpn += len(pages)
        for vpn, page in zip(vpns, pages):
            self.pool_bytes += self.backend.offload(vpn, np.ascontiguousarray(page))
        self.stored_bytes += len(pages) * PAGE_BYTES
        self.index[key] = (vpns, len(memory_obj.byte_array), memory_obj.get_shapes(),
                           memory_obj.get_dtypes(), memory_obj.meta.fmt)

    async def get(self, key):
        entry = self.index.get(key)
        if entry is None:
            return None
        vpns, nbytes, shapes, dtypes, fmt = entry
        pages = np.stack([np.frombuffer(self.backend.demand_read(v)[0], np.float16)
                          .reshape(2, TOKENS, CHANNELS) for v in vpns])
        obj = self.local_cpu_backend.allocate(shapes, dtypes, fmt)
        if obj is None:
            return None
        if self.codec == "raw":
            data = pages.view(np.uint8).reshape(-1)[:nbytes]
            np.frombuffer(obj.byte_array, np.uint8)[:] = data
        else:
            obj.tensor.copy_(pages_to_chunk(pages, tuple(obj.tensor.shape)))
        return obj

    async def exists(self, key) -> bool:
        return key in self.index

    def exists_sync(self, key) -> bool:
        return key in self.index

    async def list(self):
        return [str(k) for k in self.index]

    async def close(self):
        self.backend.close()

    def compression_ratio(self):
        """Raw bytes over pool bytes of everything stored so far."""
        return self.stored_bytes / self.pool_bytes if self.pool_bytes else None
