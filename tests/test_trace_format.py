"""Trace file format: loader round trip and rejection of malformed files (no model needed)."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from host.traces.format import (FORMAT_VERSION, METADATA_KEY, PAGE_TOKENS, TraceFormatError, load_trace,
                        sha256_file, vpn, vpn_split, write_trace)
from tests.trace_fixtures import BUNDLED, bundled_trace_path  # noqa: F401  (fixture)


def _parts(path):
    """(meta dict, tensors dict) of a trace file, read with plain safetensors."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    return meta, load_file(str(path))


def _write_raw(path, meta, tensors):
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})


def _expect_error(path, *phrases):
    with pytest.raises(TraceFormatError) as ei:
        load_trace(path)
    msg = str(ei.value)
    assert str(path) in msg, msg
    for p in phrases:
        assert p in msg, msg
    return msg


# --------------------------------------------------------------------------- round trip

def test_bundled_traces_load_and_are_consistent():
    paths = sorted(BUNDLED.glob("*.safetensors"))
    assert len(paths) >= 2
    sums = dict(line.split()[::-1] for line in (BUNDLED / "SHA256SUMS").read_text().splitlines())
    total = 0
    for p in paths:
        total += p.stat().st_size
        assert sums[p.name] == sha256_file(p), f"{p.name} differs from traces/SHA256SUMS"
        t = load_trace(p)
        m = t.meta
        assert m["format_version"] == FORMAT_VERSION
        assert m["model"]["name"] == "SmolLM2-135M-Instruct"
        assert (m["model"]["num_hidden_layers"], m["model"]["num_key_value_heads"], m["model"]["head_dim"]) == (30, 3, 64)
        assert m["page"]["bytes"] == 4096 == t.kv[0, 0, 0].nbytes
        assert t.tokens.shape == (m["prompt_tokens"] + m["gen_tokens"],)
        assert m["source"]["sha256"] and m["workload"]["sources"]
        # sparse reads strictly fewer pages than dense in every bundled trace
        assert t.access_mask("sparse").sum() < t.access_mask("dense").sum()
        assert 0.0 < t.mass_kept.mean() < 1.0
    # mini-chatbot + mini-codegen (1.9 MB each) + mini-replay (5.0 MB): keep git lean
    assert total < 10_000_000, "bundled traces must stay a few MB"


def test_write_load_round_trip_is_byte_identical(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    out = tmp_path / "copy.safetensors"
    sha = write_trace(out, meta, tensors)
    assert sha == sha256_file(bundled_trace_path)
    t = load_trace(out)
    for name, arr in tensors.items():
        if name == "tokens":
            np.testing.assert_array_equal(t.tokens, arr)
    np.testing.assert_array_equal(t.kv, tensors["kv"])
    np.testing.assert_array_equal(t.kv_tail, tensors["kv_tail"])
    assert t.meta == meta


def test_access_lists_and_vpns(bundled_trace_path):
    t = load_trace(bundled_trace_path)
    dense = t.access_mask("dense")
    vpns, offsets = t.access_lists("sparse")
    assert offsets[0] == 0 and offsets[-1] == len(vpns) and len(offsets) == t.n_steps + 1
    sparse = t.access_mask("sparse")
    for s in range(t.n_steps):
        assert offsets[s + 1] - offsets[s] == sparse[s].sum()
        l, h, p = t.vpn_split(vpns[offsets[s]:offsets[s + 1]])
        assert sparse[s][l, h, p].all()
        # dense step s reads every full page: n_full per (layer, head)
        assert (dense[s].sum(axis=-1) == t.n_full[s]).all()
    # VPN scheme round trip and page accessor
    v = t.vpn(7, 2, 3)
    assert int(v) == ((7 * 3 + 2) << t.page_bits) | 3
    assert tuple(int(x) for x in vpn_split(v, 3, t.page_bits)) == (7, 2, 3)
    np.testing.assert_array_equal(t.page(int(v)), t.kv[7, 2, 3])
    # keys() concatenates pages and tail into the whole sequence
    assert t.keys(0, 0).shape == (t.meta["total_tokens"], 64)


def test_vpn_is_injective():
    l, h, p = np.meshgrid(np.arange(30), np.arange(3), np.arange(200), indexing="ij")
    v = vpn(l, h, p, 3)
    assert len(np.unique(v)) == v.size


# --------------------------------------------------------------------------- malformed files

@pytest.mark.parametrize("keep", [0, 5, 100, -1000, -1])
def test_truncated_file_is_rejected(tmp_path, bundled_trace_path, keep):
    data = bundled_trace_path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    _expect_error(bad, "truncated")


def test_missing_file_is_rejected(tmp_path):
    _expect_error(tmp_path / "nope.safetensors", "does not exist")


def test_missing_tensor_is_rejected(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    del tensors["access.sparse"]
    bad = tmp_path / "missing.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "missing tensor", "access.sparse")


def test_shape_contradicting_metadata_is_rejected(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    tensors["kv"] = np.ascontiguousarray(tensors["kv"][:, :, :-1])  # one page short
    bad = tmp_path / "shape.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "'kv'", "shape")


def test_metadata_contradicting_shapes_is_rejected(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    meta["model"]["head_dim"] = 128
    bad = tmp_path / "meta.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "shape", "metadata implies")


def test_dtype_contradicting_metadata_is_rejected(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    tensors["kv"] = tensors["kv"].astype(np.float32)
    bad = tmp_path / "dtype.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "'kv'", "dtype F32", "F16")


@pytest.mark.parametrize("version", [0, 2, 99, "1", None])
def test_unknown_format_version_is_rejected(tmp_path, bundled_trace_path, version):
    meta, tensors = _parts(bundled_trace_path)
    meta["format_version"] = version
    bad = tmp_path / "version.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "unknown trace format version", repr(version))


def test_not_a_trace_is_rejected(tmp_path):
    bad = tmp_path / "plain.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(bad))
    _expect_error(bad, "not a SpecKV trace")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 10) + b"not json!!")
    _expect_error(junk, "not valid JSON")


def test_sparse_page_not_yet_written_is_rejected(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    bits = tensors["access.sparse"].copy()
    bits[0, 0, 0, 0] |= 1 << (meta["n_pages"] - 1)  # the last page is not full at step 0
    tensors["access.sparse"] = bits
    bad = tmp_path / "future.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "not yet written")


def test_dense_not_every_page_is_rejected(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    bits = tensors["access.dense"].copy()
    bits[3, 10, 1, 0] &= 0xFE
    tensors["access.dense"] = bits
    bad = tmp_path / "dense.safetensors"
    _write_raw(bad, meta, tensors)
    _expect_error(bad, "access.dense")


def test_writer_refuses_inconsistent_tensors(tmp_path, bundled_trace_path):
    meta, tensors = _parts(bundled_trace_path)
    tensors["tokens"] = tensors["tokens"][:-1]
    with pytest.raises(ValueError, match="tokens"):
        write_trace(tmp_path / "x.safetensors", meta, tensors)
    assert not (tmp_path / "x.safetensors").exists()


def test_page_geometry(bundled_trace_path):
    t = load_trace(bundled_trace_path)
    m = t.meta
    assert m["n_pages"] == m["total_tokens"] // PAGE_TOKENS
    assert t.kv_tail.shape[3] == m["total_tokens"] % PAGE_TOKENS
    # a page is offloaded after the step that writes its 16th token, or at prefill (-1)
    for p, s in enumerate(t.page_offload_step):
        last = PAGE_TOKENS * p + PAGE_TOKENS - 1
        assert s == (-1 if last < m["prompt_tokens"] else last - m["prompt_tokens"])
