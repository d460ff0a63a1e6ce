"""The LMCache remote-storage plugin (host/connectors/lmcache_remote.py), loaded by LMCache
itself (its ConnectorManager, from remote_storage_plugins + extra_config) under its
RemoteBackend and LocalCPUBackend, on the CPU: chunks put, found, and read back through the
device's pool (model backend), bit exact with codec raw, within the codec's error bound
with kivi_k4v3 (and each device page equal to the reference decode)."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import torch

lmcache = pytest.importorskip("lmcache", reason="scripts/setup.sh installs lmcache (no CUDA)")

from gateware.codec import reference as R  # noqa: E402
from host.connectors.lmcache_remote import chunk_to_pages, pages_to_chunk  # noqa: E402
from host.replayer.page_check import value_bound  # noqa: E402

CHUNK, LAYERS, HEADS, HEAD = 16, 2, 2, 64


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    t = threading.Thread(target=lp.run_forever, daemon=True)
    t.start()
    yield lp
    lp.call_soon_threadsafe(lp.stop)
    t.join(5)


def _backend(loop, codec):
    from lmcache.v1.config import LMCacheEngineConfig
    from lmcache.v1.metadata import LMCacheMetadata
    from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend
    from lmcache.v1.storage_backend.remote_backend import RemoteBackend
    cfg = LMCacheEngineConfig.from_defaults(
        chunk_size=CHUNK, local_cpu=True, max_local_cpu_size=0.05,
        remote_storage_plugins=["speckv"],
        extra_config={"remote_storage_plugin.speckv.module_path": "host.connectors.lmcache_remote",
                      "remote_storage_plugin.speckv.class_name": "SpecKVConnector",
                      "speckv.backend": "model", "speckv.codec": codec})
    md = LMCacheMetadata(model_name="speckv-test", world_size=1, local_world_size=1,
                         worker_id=0, local_worker_id=0, kv_dtype=torch.float16,
                         kv_shape=(LAYERS, 2, CHUNK, HEADS, HEAD), chunk_size=CHUNK)
    lcb = LocalCPUBackend(cfg, md, dst_device="cpu")
    rb = RemoteBackend(cfg, md, loop, lcb, dst_device="cpu", plugin_name="speckv")
    conn = getattr(rb.connection, "_connector", rb.connection)   # under LMCache's instrumentation
    assert type(conn).__name__ == "SpecKVConnector", "LMCache did not load the plugin"
    return rb, lcb, md


def _chunk(lcb, seed):
    from lmcache.utils import CacheEngineKey
    obj = lcb.allocate(torch.Size([2, LAYERS, CHUNK, HEADS * HEAD]), torch.float16)
    g = torch.Generator().manual_seed(seed)
    obj.tensor.copy_(torch.randn(obj.tensor.shape, generator=g).to(torch.float16))
    key = CacheEngineKey(model_name="speckv-test", world_size=1, worker_id=0,
                         chunk_hash=seed, dtype=torch.float16)
    return key, obj


def _roundtrip(rb, lcb, seeds):
    keys = []
    for s in seeds:
        key, obj = _chunk(lcb, s)
        want = obj.tensor.clone()
        assert not rb.contains(key)
        futures = rb.batched_submit_put_task([key], [obj])
        for f in futures or []:
            f.result(timeout=30)
        obj.ref_count_down()
        assert rb.contains(key)
        keys.append((key, want))
    out = []
    for key, want in keys:
        got = rb.get_blocking(key)
        out.append((got.tensor.clone(), want))
        got.ref_count_down()
    return out


def test_pages_layout_roundtrips():
    x = torch.randn(2, 3, 21, 2 * 128).to(torch.float16)
    p = chunk_to_pages(x)
    assert p.shape == (3 * 4 * 2, 2, 16, 64)
    assert np.array_equal(p[0, 0], x[0, 0, :16, :64].numpy())       # layer 0, block 0, K
    assert np.array_equal(p[1, 1, :5], x[1, 0, 16:21, :64].numpy())  # token block 1, V
    assert torch.equal(pages_to_chunk(p, tuple(x.shape)), x)


def test_lmcache_raw_chunks_roundtrip_bit_exact(loop):
    rb, lcb, _ = _backend(loop, "raw")
    try:
        for got, want in _roundtrip(rb, lcb, [1, 2, 3]):
            assert torch.equal(got, want)
        conn = rb.connection._connector
        assert conn.next_vpn == 3 * 2 * LAYERS * CHUNK * HEADS * HEAD * 2 // 4096   # FP16 bytes
    finally:
        rb.close()


def test_lmcache_codec_chunks_within_the_codec_bound(loop):
    rb, lcb, _ = _backend(loop, "kivi_k4v3")
    try:
        for got, want in _roundtrip(rb, lcb, [7, 8]):
            assert not torch.equal(got, want)                 # lossy: the codec ran
            pg, pw = chunk_to_pages(got), chunk_to_pages(want)
            for a, b in zip(pg, pw):
                ref = R.decompress(R.compress(b, "kivi_k4v3"))
                assert np.array_equal(a.view(np.uint16), ref.view(np.uint16))
                err = np.abs(a.astype(np.float64) - b.astype(np.float64))
                assert (err <= value_bound(b, "kivi_k4v3")).all()
        assert rb.connection._connector.compression_ratio() > 3.5
    finally:
        rb.close()
