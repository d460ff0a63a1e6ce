"""The replay's data check (host/replayer/page_check.py) can fail: its value bound holds for every
mode's reference decode but not for a broken decoder, a swapped or stale L2 slot or a wrong
offload length, each of which makes a model-backend replay report mismatches."""

from pathlib import Path

import numpy as np
import pytest

from gateware.codec import reference as R
from host.replayer.backends import ModelBackend
from host.replayer.page_check import PageCheck, value_bound
from host.replayer.engine import ReplayOptions, replay
from host.traces.format import load_trace

ROOT = Path(__file__).resolve().parent.parent
MINI = str(ROOT / "traces" / "mini-replay.safetensors")
SHORT = dict(trace=MINI, backend="model", prefetcher="last", k=2, steps=6, layers=3)


@pytest.fixture(scope="module")
def trace():
    return load_trace(MINI)


def _random_pages(rng, n):
    shapes = [lambda: rng.standard_normal((2, 16, 64)),
              lambda: rng.standard_normal((2, 16, 64)) * 10 ** rng.uniform(-6, 4),
              lambda: np.abs(rng.standard_normal((2, 16, 64))) * 40 + rng.uniform(-50, 50),
              lambda: rng.uniform(-65504, 65504, (2, 16, 64))]
    return [shapes[i % len(shapes)]().astype(np.float16) for i in range(n)]


@pytest.mark.parametrize("mode", list(R.MODES))
def test_bound_holds_for_the_reference_decode_and_is_tight(trace, mode):
    """On trace and random pages (SINK pages too) the reference decode is within the
    independent bound, which is never looser than 1.2x the codec's own documented bound
    (computed from the scales it chose)."""
    rng = np.random.default_rng(7)
    pages = [trace.page(trace.vpn(rng.integers(trace.n_layers), rng.integers(trace.n_kv_heads),
                                  rng.integers(trace.n_pages))) for _ in range(40)]
    pages = [p for p in pages if np.any(p)] + _random_pages(rng, 20)
    m = R.MODES[mode]
    for sink in ([False, True] if m.kivi_like else [False]):
        blobs = R.compress_batch(np.stack(pages), m, sink=sink)
        for page, blob in zip(pages, blobs):
            got = R.decompress(blob).astype(np.float64)
            bound = value_bound(page, m, sink=sink)
            err = np.abs(got - page.astype(np.float64))
            assert (err <= bound).all(), f"{mode}: error beyond the bound"
            own = R.error_bound(page, m, sink=sink)
            assert (bound >= own).all() and (bound <= 1.2 * own + 1e-12).all()


def test_bound_rejects_a_page_off_by_one_token(trace):
    """A decode that returns the neighbouring token's values fails the bound in every mode."""
    page = trace.page(trace.vpn(5, 1, 3))
    for m in R.MODES.values():
        got = R.decompress(R.compress(page, m)).astype(np.float64)
        shifted = np.roll(got, 1, axis=1)
        err = np.abs(shifted - page.astype(np.float64))
        assert (err > value_bound(page, m)).any(), m.name


def test_raw_is_checked_bit_for_bit(trace):
    c = PageCheck(trace, "raw")
    v = trace.vpn(2, 0, 1)
    good = np.asarray(trace.page(v), np.float16)
    assert c.read(v, good.tobytes())
    bad = good.copy().view(np.uint16)
    bad[1, 7, 9] ^= 1                          # one LSB of one value
    assert not c.read(v, bad.tobytes())
    assert c.summary()["value_bound_failures"] == 1


def _check(r):
    return r["check"]


def test_clean_short_replay_passes():
    c = _check(replay(ReplayOptions(**SHORT), progress=False))
    assert c["mismatches"] == 0 and c["pages_checked"] > 50
    assert 0 < c["max_error_over_bound"] <= 1


@pytest.mark.parametrize("broken", ["zeros", "token_shift"])
def test_a_corrupted_decoder_fails_the_check(monkeypatch, broken):
    """The decoder is replaced everywhere, the reference decode the identity check compares
    with included: only the bound against the trace's original KV can catch it."""
    real = R.decompress

    def bad(blob, expect_geometry=None):
        out = real(blob, expect_geometry)
        return np.zeros_like(out) if broken == "zeros" else np.roll(out, 1, axis=1)
    monkeypatch.setattr(R, "decompress", bad)
    c = _check(replay(ReplayOptions(**SHORT), progress=False))
    assert c["reference_mismatches"] == 0           # the tautology it replaced
    assert c["value_bound_failures"] > 0 and c["mismatches"] > 0


class SwappedSlots(ModelBackend):
    """Each hint's first two slots hold each other's page when its prefetches land."""

    def _land(self, res, step):
        super()._land(res, step)
        if len(res.issues) >= 2:
            a, b = res.issues[0].slot, res.issues[1].slot
            self.l2[a], self.l2[b] = self.l2[b], self.l2[a]


class StaleSlots(ModelBackend):
    """A refilled slot keeps its previous page's bytes (the directory line is rewritten)."""

    def _land(self, res, step):
        old = dict(self.l2)
        super()._land(res, step)
        for i in res.issues:
            if i.slot in old:
                self.l2[i.slot] = old[i.slot]


class WrongLength(ModelBackend):
    """Reports every third offload one 8-byte word longer than it stored."""

    def offload(self, vpn, page):
        n = super().offload(vpn, page)
        return n + 8 if vpn % 3 == 0 else n


@pytest.mark.parametrize("backend,counter", [(SwappedSlots, "reference_mismatches"),
                                             (StaleSlots, "reference_mismatches"),
                                             (WrongLength, "length_mismatches")])
@pytest.mark.parametrize("timing", ["on", "off"])
def test_a_faulty_device_fails_the_check(backend, counter, timing):
    o = ReplayOptions(**{**SHORT, "l2_slots": 24, "timing": timing, "step_ns": 1e8})
    b = backend(o.codec, o.link)
    c = _check(replay(o, backend=b, progress=False))
    assert c[counter] > 0 and c["mismatches"] > 0
