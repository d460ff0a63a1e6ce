"""Live generation on the rtl backend (the Verilator SoC): the device's gateware codec,
DMA, page engine and firmware prefetcher serve a real generation, and it equals the model
backend's (the reference codec) token for token, with every page read bit exact (the same
digest of the bytes read). The SoC compresses with kivi_k4v3, so this is the codec the rtl
generation runs; the lossless (raw) comparison with the plain cache is on the model backend
(test_generate.py)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from host.generate.cache import GenerateError, SpecKVCache
from host.generate.run import GenOptions, generate
from tests.generate_kit import PROMPT, smol16, tiny_llama


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
        SpecKVCache(model, backend="rtl", codec="raw", build=sim_build)
    assert issubclass(GenerateError, ValueError)
