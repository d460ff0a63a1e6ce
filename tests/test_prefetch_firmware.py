"""The firmware predictors (firmware/predict.c) in the Verilator SoC against the Python
integer reference (host/prefetch/core.py), on held-out inputs (traces/prefetch-heldout.npz:
chatbot and codegen, documents the LSTM never saw) and on random stress inputs."""

import random

import pytest

from host.driver.device import Device, DeviceError
from host.driver.link import SimLink
from host.prefetch import KIND_CODE
from host.prefetch.fixture import records_for, reference
from host.prefetch.fixture import load as load_fixture
from soc.mailbox import DRAM_POOL


@pytest.fixture(scope="module")
def dev(sim_build):
    """One booted SoC for the module: every run resets the predictor (pred_run flag)."""
    from soc.sim import SimDriver
    drv = SimDriver(sim_build.model, csr_json=sim_build.csr_json)
    drv.reset()
    link = SimLink(drv, "ideal")
    link.wait_ready(2_000_000)
    yield Device(link)
    drv.close()


def _check(dev, kind, recs, l1=4, cfu=True):
    preds, cycles = dev.pred_run(KIND_CODE[kind], recs, l1=l1, cfu=cfu)
    ref = reference(kind, recs, l1)
    bad = [(i, recs[i][:4], a, b) for i, (a, b) in enumerate(zip(preds, ref)) if a != b]
    assert not bad, f"{len(bad)} of {len(recs)} differ; first: {bad[:3]}"
    assert sum(map(len, ref)) > 0 or kind == "none"
    return cycles


@pytest.mark.parametrize("cfu", [True, False], ids=["cfu", "c"])
def test_lstm_firmware_equals_integer_reference_on_1080_heldout_inputs(dev, cfu):
    """Both engines of the firmware's LSTM: the custom function unit (gateware/lstm_cfu)
    and plain C; the unit must also be the faster one, or it is not in use."""
    recs = records_for(load_fixture("chatbot", steps=12), 12)
    assert len(recs) >= 1000
    cycles = _check(dev, "lstm", recs, cfu=cfu)
    assert all(c > 0 for c in cycles)
    mean = sum(cycles) / len(cycles)
    assert mean < 4000 if cfu else mean > 8000, mean


@pytest.mark.parametrize("kind", ["none", "last", "stride", "markov", "layer_ahead"])
def test_baseline_firmware_equals_reference_on_1080_heldout_inputs(dev, kind):
    _check(dev, kind, records_for(load_fixture("codegen", steps=12), 12))


def _random_records(seed, n_steps, streams=(0, 1, 2, 45, 89, 95)):
    """Dense-like steps (> 32 pages: full tracker, eviction), churn, empty steps, k up to 40
    (clamped to 32), and a last step at the 4096-page limit."""
    rng = random.Random(seed)
    recs, n = [], rng.randrange(0, 40)
    sets = {s: set() for s in streams}
    for step in range(n_steps):
        n = 4096 if step == n_steps - 1 else n + rng.choice([0, 0, 1, 7, 40])
        for s in streams:
            lim = max(0, n - 4)
            if rng.random() < 0.15 and n <= 300:
                acc = list(range(n))                                  # dense
            else:
                keep = {p for p in sets[s] if p < lim and rng.random() < 0.7}
                new = {rng.randrange(lim) for _ in range(rng.randrange(0, 12))} if lim else set()
                acc = sorted(keep | new | set(range(max(0, n - 4), n)))
            sets[s] = set(acc)
            recs.append((s, s // 3, n, rng.choice([0, 1, 3, 8, 16, 32, 40]), acc))
    return recs


@pytest.mark.parametrize("kind,cfu", [("lstm", True), ("lstm", False), ("markov", True),
                                      ("stride", True)])
def test_firmware_equals_reference_on_random_stress_inputs(dev, kind, cfu):
    _check(dev, kind, _random_records(7, 12), cfu=cfu)


@pytest.mark.parametrize("kind,l1", [("lstm", 0), ("markov", 9), ("layer_ahead", 9)])
def test_firmware_takes_the_l1_window_of_the_request(dev, kind, l1):
    """The L1 window is the request's (SpecConfig.l1_pages), not a constant: other windows
    than the default 4 pages give the reference's predictions too."""
    _check(dev, kind, _random_records(3, 8), l1)


def test_pred_run_rejects_buffers_outside_its_region(dev):
    done = dev.command(8, KIND_CODE["lstm"] | (1 << 8), src=DRAM_POOL, host=(0x1900000 << 32) | 1)
    assert done.status == 3
    with pytest.raises(DeviceError):
        dev.check(done, "pred_run")
    done = dev.command(8, 9, src=0x1800000, host=(0x1900000 << 32) | 1)   # unknown kind
    assert done.status == 3
