"""Live generation on the rtl backend (the Verilator SoC): the device's gateware codec,
DMA, page engine and firmware prefetcher serve a real generation. With codec raw (pages
stored as is: PTE_FLAG_RAW, copied, not compressed) it equals the plain cache token for
token; with the SoC's kivi_k4v3 it equals the model backend's (the reference codec) token
for token, with every page read bit exact (the same digest of the bytes read)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from host.generate.cache import SpecKVCache
from host.generate.run import GenOptions, generate
from tests.generate_kit import PROMPT, smol16, tiny_llama


def test_rtl_raw_dense_generation_equals_the_plain_cache(sim_build):
    model, tok = smol16()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    opts = GenOptions(max_new_tokens=12, codec="raw", l1_pages=0, stop_at_eos=False,
                      backend="rtl")
    plain = generate(model, ids, opts, device=False, progress=False)
    rtl = generate(model, ids, opts, build=sim_build, progress=False)
    assert rtl["tokens"] == plain["tokens"]
    st = rtl["device"]
    assert st["compression_ratio"] == 1.0 and st["check"]["mismatches"] == 0
    assert st["l2"] > 0 and st["late"] + st["miss"] > 0, st     # prefetch copies, demand copies


@pytest.mark.parametrize("which", ["smollm2", "tiny-llama-hd128"])
def test_rtl_generation_equals_the_model_backend(sim_build, which):
    model, tok = smol16() if which == "smollm2" else tiny_llama()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    opts = GenOptions(max_new_tokens=12, codec="kivi_k4v3", l1_pages=0, stop_at_eos=False,
                      backend="rtl")
    rtl = generate(model, ids, opts, build=sim_build, progress=False)
    ref = generate(model, ids, replace(opts, backend="model"), progress=False)
    assert rtl["tokens"] == ref["tokens"]
    a, b = rtl["device"], ref["device"]
    assert a["check"]["reference_mismatches"] == 0 and a["check"]["mismatches"] == 0
    assert a["check"]["pages_checked"] == b["check"]["pages_checked"] > 0
    assert a["check"]["digest"] == b["check"]["digest"]
    assert a["pages_offloaded"] == b["pages_offloaded"] and a["prefetch_issued"] > 0
    assert a["l2"] > 0


def test_rtl_refuses_a_codec_the_soc_was_not_built_with(sim_build):
    model, _ = smol16()
    with pytest.raises(ValueError, match="compresses with"):
        SpecKVCache(model, backend="rtl", codec="kivi_n10v9", build=sim_build)
