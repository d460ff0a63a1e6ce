"""The decompressor fuzzer (host/reliability/fuzz.py) in the Verilator SoC: a short seeded run
of corrupt pages behind the DMA finds no hang, no out-of-bounds write, no verdict that differs
from the reference decoder's and no data mismatch; every corruption kind ran. The full count
is ``speckv-fuzz --pages 10000`` (docs/reliability.md)."""

import random
from collections import Counter

import pytest

from gateware.codec import reference as R
from gateware.dma.model import codec_transforms
from host.reliability.fuzz import KINDS, base_pages, fuzz, mutate


def test_corruptions_are_what_they_say():
    """Against the reference: the controls and random payloads (valid CRC) decode, bit flips,
    truncations and extensions never do, forged headers and random blobs almost never."""
    _, dec = codec_transforms("kivi_k4v3")
    blobs = R.compress_batch(base_pages(0), "kivi_k4v3")
    rng = random.Random(5)
    ok = Counter()
    n = Counter()
    for _ in range(1400):
        k = rng.choice(KINDS)
        blob, _after = mutate(rng, rng.choice(blobs), k)
        n[k] += 1
        ok[k] += not dec(blob)[1]
    assert ok["valid"] == n["valid"] and ok["random_payload"] == n["random_payload"]
    assert ok["bitflip"] == ok["truncate"] == ok["extend"] == 0
    assert ok["forged_header"] < n["forged_header"] / 10 and ok["random_blob"] < 5
    with pytest.raises(ValueError, match="unknown corruption"):
        mutate(rng, blobs[0], "melt")


def test_fuzz_short_run_in_the_soc(ready):
    rep = fuzz(ready, pages=192, seed=3, progress=False)
    assert rep.pages == 192 and all(v["pages"] for v in rep.by_kind.values())
    assert rep.by_kind["valid"]["ok"] and rep.by_kind["bitflip"]["corrupt"]
    assert sum(v["overflow"] for v in rep.by_kind.values())          # the random caps
    assert rep.problems() == 0, rep.examples[:3]
