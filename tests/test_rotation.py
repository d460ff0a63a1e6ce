"""host/traces/rotation.py: the V rotation folded into v_proj/o_proj leaves the model's output
unchanged and rotates exactly the cached V; host.codec_eval.perplexity --rotate-v runs end to end."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from host.traces.capture import main as capture_main  # before torch: OMP policy
import torch  # noqa: E402
from transformers import DynamicCache  # noqa: E402
from host.codec_eval import perplexity as codec_eval
from host.traces.rotation import fold_value_rotation, hadamard, rotation_matrix
from host.traces.format import load_trace
from tests.trace_fixtures import TEXT, TINY, need_text, smol, tiny  # noqa: F401  (fixtures)


def test_rotation_matrix_orthogonal():
    for d in (1, 2, 64, 128):
        m = rotation_matrix(d)
        assert np.allclose(m @ m.T, np.eye(d), atol=1e-12)
        assert np.allclose(rotation_matrix(d, seed=1) @ rotation_matrix(d, seed=1).T, np.eye(d))
    assert np.array_equal(rotation_matrix(64), hadamard(64) / 8)
    assert not np.allclose(rotation_matrix(64, seed=1), rotation_matrix(64))  # signs randomized
    assert np.array_equal(rotation_matrix(64, seed=1), rotation_matrix(64, seed=1))  # and fixed
    with pytest.raises(ValueError, match="power of two"):
        hadamard(48)


def _run(model, ids):

    cache = DynamicCache()
    with torch.no_grad():
        out = model(ids, past_key_values=cache, use_cache=True)
    k = torch.stack([lay.keys[0] for lay in cache.layers]).double().numpy()
    v = torch.stack([lay.values[0] for lay in cache.layers]).double().numpy()
    return out.logits[0].double().numpy(), k, v


def test_fold_keeps_output_and_rotates_cached_v(smol):  # noqa: F811
    need_text()
    model, tok = smol
    rot = copy.deepcopy(model)
    m = fold_value_rotation(rot)
    ids = tok(TEXT.read_text(), return_tensors="pt").input_ids[:, :96]
    lo, ko, vo = _run(model, ids)
    lr, kr, vr = _run(rot, ids)
    assert np.array_equal(kr[0], ko[0])                 # layer 0's keys untouched; later ones
    assert np.allclose(kr, ko, rtol=0, atol=1e-4 * np.abs(ko).max())  # see float rounding only
    assert np.allclose(vr, vo @ m, rtol=0, atol=1e-4 * np.abs(vo).max())
    assert not np.allclose(vr, vo, atol=1e-2 * np.abs(vo).max())     # V really is rotated
    # same next-token distribution: logits agree to float32 rounding
    assert np.abs(lr - lo).max() < 1e-3 * np.abs(lo).max()
    assert np.array_equal(lr.argmax(-1), lo.argmax(-1))
    # the rotation spreads V's outlier channels: smaller per-token max/RMS ratio
    def crest(v):
        return float(np.mean(np.abs(v).max(-1) / np.sqrt((v ** 2).mean(-1) + 1e-30)))
    assert crest(vr) < 0.9 * crest(vo)       # measured: 2.99 -> 2.59


def test_codec_eval_rotate_v(tmp_path, capsys):
    need_text()
    out = tmp_path / "r.json"
    assert codec_eval.main(["--text", str(TEXT), "--tokens", "64", "--modes", "raw,kivi_z10v9",
                            "--skip-fp32", "--rotate-v", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["meta"]["rotate_v"] is True
    assert set(res["results"]) == {"raw", "kivi_z10v9"}
    # 4 pages per (layer, head), the first one a SINK page (1,152 bytes)
    assert res["results"]["kivi_z10v9"]["ratio"] == pytest.approx(4 * 4096 / (3 * 1024 + 1152))
    assert "V rotated" in capsys.readouterr().out


def test_capture_rotate_v(tiny, tmp_path):
    """`host/traces/capture.py --rotate-v`: same tokens as the tiny capture, V rotated, recorded."""
    path, _, meta, _ = tiny
    out = tmp_path / "rot.safetensors"
    assert capture_main(["--text", str(TEXT), "--out", str(out),
                         "--prompt-tokens", str(TINY["prompt_tokens"]),
                         "--gen-tokens", str(TINY["gen_tokens"]), "--k", str(TINY["k"]),
                         "--window", str(TINY["window"]), "--instruction", TINY["instruction"],
                         "--no-progress", "--rotate-v"]) == 0
    a, b = load_trace(path), load_trace(out)
    assert b.meta["v_rotation"].startswith("hadamard") and "v_rotation" not in a.meta
    assert np.array_equal(a.tokens, b.tokens)
    ka, kb = a.kv[:, :, :, 0].astype(np.float64), b.kv[:, :, :, 0].astype(np.float64)
    va, vb = a.kv[:, :, :, 1].astype(np.float64), b.kv[:, :, :, 1].astype(np.float64)
    scale = np.abs(va).max()
    assert np.abs(kb - ka).max() < 1e-2 * np.abs(ka).max()
    assert np.abs(vb - va @ rotation_matrix(va.shape[-1])).max() < 1e-2 * scale
    assert np.abs(vb - va).max() > 0.1 * scale
