"""Migen simulation of KVCompressor / KVDecompressor against the reference, byte for byte,
under seeded random valid/ready stalls; corrupt pages; throughput; Verilog conversion; the
modes the gateware refuses.

These cases use small page geometries (T=8 or 16, D=16) to keep Migen simulation fast; every
gateware mode at the full 16 x 64 geometry on real trace pages runs in the Verilator co-sim
(tests/test_codec_verilator.py)."""
import random
import zlib

import numpy as np
import pytest
from migen import Cat, Module, Signal, passive, run_simulation
from migen.fhdl.verilog import convert

from gateware.codec import arith as A
from gateware.codec import reference as R
from gateware.codec import ref_arith as RA
from gateware.codec import ref_format as RF
from gateware.codec import ref_packing as RP
from gateware.codec.compressor import KVCompressor
from gateware.codec.core import GATEWARE_MODES
from gateware.codec.decompressor import KVDecompressor
from tests.codec_fixtures import (CORRUPT_CASES, beats_bytes, bytes_beats, corrupt,
                                  extreme_page, page_beats, random_pages, shifted_v_page,
                                  v_zero_params)
from tests.stream_kit import collect_frames, send_frames

SMALL = dict(T=8, D=16)
# the gateware modes at 8 x 16; kivi_n10v9 (its 4-bit V zero points need T % 16 == 0) runs
# at 16 x 16 in test_kivi_n_nibble_zero_points
HW = [m for m in GATEWARE_MODES if m != "kivi_n10v9"]


def run_compressor(mode, pages, dw=64, T=16, D=64, seed=0, p_valid=0.7, p_ready=0.7,
                   sink=None):
    dut = KVCompressor(mode, dw=dw, T=T, D=D)
    out, stalls = [], [0]
    rng = random.Random(seed)
    params = [{"attn_sink": int(s)} for s in sink] if sink is not None else None

    def src():
        yield from send_frames(dut.sink, [page_beats(p, dw) for p in pages], rng, p_valid,
                                 params)
        for _ in range(20 * len(pages) * len(page_beats(pages[0], dw))):
            if len(out) == len(pages):
                break
            yield

    @passive
    def mon():
        while True:
            if (yield dut.sink.valid) and not (yield dut.sink.ready):
                stalls[0] += 1
            yield

    run_simulation(dut, [src(), mon(), passive(collect_frames)(dut.source, out,
                                                             random.Random(seed + 1), p_ready)])
    return [beats_bytes(f, dw) for f in out], stalls[0]


def run_decompressor(mode, blobs, dw=64, T=16, D=64, seed=0, p_valid=0.7, p_ready=0.7):
    """Returns [(error, output bytes of that page, output cycles span)] per input page."""
    dut = KVDecompressor(mode, dw=dw, T=T, D=D)
    flat, status, t = [], [], [0]
    rng = random.Random(seed)
    rng_r = random.Random(seed + 1)

    def src():
        yield from send_frames(dut.sink, [bytes_beats(b, dw) for b in blobs], rng, p_valid)
        for _ in range(4000):
            if len(status) == len(blobs):
                break
            yield

    @passive
    def snk():
        while True:
            yield dut.source.ready.eq(int(rng_r.random() < p_ready))
            yield
            t[0] += 1
            if (yield dut.source.valid) and (yield dut.source.ready):
                flat.append((t[0], (yield dut.source.data), (yield dut.source.last)))
            if (yield dut.done):
                status.append(((yield dut.error), len(flat)))

    run_simulation(dut, [src(), snk()])
    res, start = [], 0
    for err, end in status:
        beats = flat[start:end]
        span = beats[-1][0] - beats[0][0] + 1 if beats else 0
        res.append((err, beats_bytes([b for _, b, _ in beats], dw), span,
                    [last for _, _, last in beats]))
        start = end
    return res


def small_pages(seed):
    return np.concatenate([random_pages(2, seed=seed, **SMALL), extreme_page(**SMALL)[None]])


# ---- arithmetic blocks ----------------------------------------------------------------------
def test_arith_blocks_match_reference():
    rng = np.random.default_rng(0)
    m = Module()
    bits = Signal(16)
    x = A.fp16_to_int(m, bits)
    v = Signal((A.VW, True))
    f16 = A.int_to_fp16(m, v)
    r = Signal(43)
    code = A.choose_scale(m, r, 7)
    d = Signal(43)
    c = Signal(8)
    q = A.quantize(m, d, c, 255)
    b_in = rng.integers(0, 65536, 300)
    b_in = b_in[(b_in & 0x7C00) != 0x7C00]
    v_in = rng.integers(-(2 ** 44), 2 ** 44, 300) >> rng.integers(0, 44, 300)
    r_in = rng.integers(0, 2 ** 42, 300) >> rng.integers(0, 42, 300)
    c_in = rng.integers(0, 256, 300)
    d_in = np.minimum((rng.random(300) * RA.SCALE_VAL[c_in] * 255).astype(np.int64), 2 ** 42 - 1)
    got = {"x": [], "f": [], "c": [], "q": []}

    def gen():
        for i in range(300):
            yield bits.eq(int(b_in[i % len(b_in)]))
            yield v.eq(int(v_in[i]))
            yield r.eq(int(r_in[i]))
            yield d.eq(int(d_in[i]))
            yield c.eq(int(c_in[i]))
            yield
            got["x"].append((yield x))
            got["f"].append((yield f16))
            got["c"].append((yield code))
            got["q"].append((yield q))

    run_simulation(m, gen())
    n = len(b_in)
    assert got["x"][:n] == RA.fp16_to_int(b_in.astype(np.uint16)).tolist()
    assert got["f"] == RA.int_to_fp16(v_in).tolist()
    assert got["c"] == RA.choose_scale(r_in, 7).tolist()
    assert got["q"] == RA.quantize(d_in, c_in, 255).tolist()


def _stream(m, inp, outs, vals, lat):
    """Simulate `m` with one of `vals` on `inp` a cycle; the `outs` of each value, read
    `lat` cycles after it went in."""
    got = []

    def gen():
        for i in range(len(vals) + lat):
            if i < len(vals):
                yield inp.eq(int(vals[i]))
            yield
            if i >= lat:
                row = []
                for o in outs:
                    row.append((yield o))
                got.append(row)

    run_simulation(m, gen())
    return got


def _rounding_edges(rng):
    """Integers (units 2**-24) at int_to_fp16's rounding edges: a mantissa at each shift,
    plus and minus one unit, half a unit (ties both ways), just either side; saturation."""
    vals = []
    for s in range(1, A.VW - 12):
        half = 1 << (s - 1)
        for mant in (1024, 1025, 2046, 2047, int(rng.integers(1024, 2048))):
            for d in (0, 1, half - 1, half, half + 1, (1 << s) - 1):
                vals += [(mant << s) + d, -((mant << s) + d)]
    top = 65504 << 24                       # FP16_MAX; 65520 rounds to inf: saturates
    vals += [top, top + (8 << 24), (65520 << 24) - 1, 65520 << 24, -(65520 << 24), 1, 0, -1]
    lim = 1 << (A.VW - 1)
    return np.array([v for v in vals if -lim <= v < lim], dtype=np.int64)


@pytest.mark.parametrize("pipelined", [False, True])
def test_int_to_fp16_rounding_edges(pipelined):
    """Round to nearest even at every shift (ties to even both ways, carries into the next
    binade, saturation), combinational and with its INT_TO_FP16_STAGES registers."""
    v_in = _rounding_edges(np.random.default_rng(1))
    m = Module()
    v = Signal((A.VW, True))
    ce = Signal(reset=1) if pipelined else None
    f16 = A.int_to_fp16(m, v, ce=ce)
    lat = A.INT_TO_FP16_STAGES if pipelined else 0
    got = [row[0] for row in _stream(m, v, [f16], v_in, lat)]
    want = RA.int_to_fp16(v_in).tolist()
    bad = [(int(x), g, w) for x, g, w in zip(v_in, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(v_in)} wrong, first (v, got, want): {bad[:3]}"


@pytest.mark.parametrize("qmax", [7, 15, 255])
def test_choose_scale_and_quantize_pipelined_edges(qmax):
    """choose_scale and quantize with their registers (CHOOSE_SCALE_STAGES,
    QUANTIZE_STAGES) on every scale threshold S(code) * qmax, one either side and with a
    single dropped bit set (the highest, and one at random), zero and the top of the range, and quantize at every code's rounding edges (half a step and one
    unit either side of it) and at its pre-shift's saturation: the exponent's dropped-bits mask and the one-hot final shift
    are exact there."""
    rng = np.random.default_rng(2)
    thr = (RA.SCALE_VAL.astype(np.int64) * qmax)
    E = (np.arange(256) >> 3) + RA.SCALE_SHIFT        # thr = ((8 + m) qmax) << E
    one_bit = [thr + (1 << (E - 1)), thr + (1 << rng.integers(0, E))]   # a dropped bit
    r_in = np.concatenate([thr - 1, thr, thr + 1, *one_bit, [0, 1, 2 ** 42 - 1],
                           rng.integers(0, 2 ** 42, 200) >> rng.integers(0, 42, 200)])
    r_in = r_in[(r_in >= 0) & (r_in < 2 ** 43)]
    m = Module()
    ce = Signal(reset=1)
    r = Signal(43)
    code = A.choose_scale(m, r, qmax, ce=ce)
    got = [row[0] for row in _stream(m, r, [code], r_in, A.CHOOSE_SCALE_STAGES)]
    assert got == RA.choose_scale(r_in, qmax).tolist()

    c_in = np.repeat(np.arange(256), 6)
    half = RA.SCALE_VAL[c_in].astype(np.int64)
    k = rng.integers(0, qmax + 1, len(c_in))
    d_in = np.clip(k * half + half // 2 + np.tile([-1, 0, 1, 2, -2, 0], 256), 0, 2 ** 42 - 1)
    # and at the pre-shift's saturation, d >> (e + 5 - g) = 2**DSH_BITS, and one below
    E = (np.arange(256) >> 3) + RA.SCALE_SHIFT
    edge = 1 << (RA.DSH_BITS + E - np.minimum(E, RA.GUARD))
    c_in = np.concatenate([c_in, np.arange(256), np.arange(256)])
    d_in = np.minimum(np.concatenate([d_in, edge, edge - 1]), 2 ** 42 - 1)
    m = Module()
    d, c = Signal(43), Signal(8)
    q = A.quantize(m, d, c, qmax, ce=ce)
    both = Signal(51)
    m.comb += Cat(d, c).eq(both)
    got = [row[0] for row in _stream(m, both, [q], d_in | (c_in << 43), A.QUANTIZE_STAGES)]
    assert got == RA.quantize(d_in, c_in, qmax).tolist()


@pytest.mark.parametrize("lev,g", [(10, 8), (9, 4), (6, 8), (11, 2), (16, 1)])
def test_level_code_and_digits_match_reference(lev, g):
    """The compressor's field (a tree of constant multiply-adds) and the decompressor's
    digits (parallel reciprocal multiplies) against reference.pack_levels / unpack_levels, on
    random codes, the all-zero and all-top fields, and any w-bit field (above lev**g - 1:
    the top digit saturates)."""
    w = (lev ** g - 1).bit_length()
    m = Module()
    qs = [Signal(4) for _ in range(g)]
    f = Signal(w)
    m.comb += f.eq(A.level_code(m, qs, lev))
    digits = A.level_digits(m, f, lev, g, w)
    raw = Signal(w)                       # any w-bit field, also above lev**g - 1
    raw_digits = A.level_digits(m, raw, lev, g, w)
    rng = np.random.default_rng(lev * 10 + g)
    cases = np.concatenate([np.zeros((1, g), int), np.full((1, g), lev - 1),
                            rng.integers(0, lev, (60, g))])
    packed = RP.pack_levels(cases.reshape(1, -1), lev)
    bits = np.unpackbits(packed[0], bitorder="little")
    fields = [int("".join(map(str, bits[i * w:(i + 1) * w][::-1])), 2) for i in range(len(cases))]

    def gen():
        for c, exp_f in zip(cases, fields):
            for s_, v in zip(qs, c):
                yield s_.eq(int(v))
            yield
            assert (yield f) == exp_f
            got = []
            for d in digits:
                got.append((yield d))
            assert got == c.tolist()
        for v in [(1 << w) - 1, lev ** g, lev ** g - 1] + rng.integers(0, 1 << w, 40).tolist():
            yield raw.eq(int(v))
            yield
            got = []
            for d in raw_digits:
                got.append((yield d))
            b = np.frombuffer(int(v).to_bytes(8, "little"), np.uint8)[None]
            assert got == RP.unpack_levels(b, lev, g)[0].tolist(), v
    run_simulation(m, gen())


def _digits_algorithm(c, lev, g, w, saturate=True):
    """A.level_digits' arithmetic in numpy, step for step (its constants, the estimate and
    correction of split_const modulo 2**rb, the quotients' low bits, the 4-bit subtracts)."""
    if g >= A.SPLIT_G:
        h, d = g // 2, lev ** (g // 2)
        M, rb = A.recip_low(d, w), (2 * d - 1).bit_length()
        qe = (c * M) >> w
        r0 = ((c & ((1 << rb) - 1)) - (qe & ((1 << rb) - 1)) * d) & ((1 << rb) - 1)
        hi, lo = np.where(r0 >= d, qe + 1, qe), np.where(r0 >= d, r0 - d, r0)
        return (_digits_algorithm(lo, lev, h, (d - 1).bit_length(), saturate=False) +
                _digits_algorithm(hi, lev, g - h, max(w - d.bit_length() + 1, 1), saturate))
    qb = (lev - 1).bit_length()
    quots = [c] + [(c * M) >> s for s, M in (A.recip_exact(lev ** k, w) for k in range(1, g))]
    out = [(quots[k] - (quots[k + 1] & (2 ** qb - 1)) * lev) & (2 ** qb - 1)
           for k in range(g - 1)]
    return out + [np.minimum(quots[-1], lev - 1) if saturate else quots[-1] & (2 ** qb - 1)]


@pytest.mark.parametrize("lev,g", [(10, 8), (9, 4)])
def test_level_digits_algorithm_exhaustive(lev, g):
    """The proof of the reciprocal constants for the shipped level-packed fields (kivi_n10v9:
    K 8 digits base 10 in 27 bits, V 4 base 9 in 13): every w-bit field, in and above
    lev**g - 1, against successive division (ref_packing.unpack_levels)."""
    w = (lev ** g - 1).bit_length()
    step = 1 << 22
    for start in range(0, 1 << w, step):
        c = np.arange(start, min(start + step, 1 << w), dtype=np.int64)
        got = _digits_algorithm(c, lev, g, w)
        for k in range(g):
            want = c // lev ** k % lev if k < g - 1 else np.minimum(c // lev ** k, lev - 1)
            bad = np.flatnonzero(got[k] != want)
            assert bad.size == 0, f"digit {k} of field {int(c[bad[0]])}"


@pytest.mark.parametrize("lev,g", [(10, 8), (9, 4)])
def test_level_digits_pipelined(lev, g):
    """The pipelined digits (one field a cycle, A.level_digits_stages(g) registers) against
    unpack_levels on edge and random fields, in and above lev**g - 1."""
    w = (lev ** g - 1).bit_length()
    m = Module()
    f = Signal(w)
    ce = Signal(reset=1)
    digits = A.level_digits(m, f, lev, g, w, ce=ce)
    lat = A.level_digits_stages(g)
    rng = np.random.default_rng(lev + g)
    edges = [0, 1, lev - 1, lev, lev ** (g // 2) - 1, lev ** (g // 2), lev ** g - 1, lev ** g,
             (1 << w) - 1]
    vals = edges + [k * lev ** (g // 2) + d for k in (1, 2, 13) for d in (-1, 0, 1)] + \
        rng.integers(0, 1 << w, 200).tolist()
    got = _stream(m, f, digits, vals, lat)
    b = np.array([int(v).to_bytes(8, "little") for v in vals], dtype="S8")
    want = RP.unpack_levels(np.frombuffer(b.tobytes(), np.uint8).reshape(-1, 8), lev, g)
    assert got == want.tolist()


# ---- compressor -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", HW)
def test_compressor_matches_reference(mode):
    pages = small_pages(1)
    got, _ = run_compressor(mode, pages, seed=zlib.crc32(mode.encode()) % 1000, **SMALL)
    assert got == R.compress_batch(pages, mode)


@pytest.mark.parametrize("mode", ["kivi_k4v3"])
def test_compressor_sink_pages(mode):
    pages = small_pages(8)
    sink = [1, 0, 1]
    got, _ = run_compressor(mode, pages, seed=8, sink=sink, **SMALL)
    assert got == R.compress_batch(pages, mode, sink=np.array(sink, bool))


@pytest.mark.parametrize("mode", ["kivi_k4v3"])
def test_dw32(mode):
    """The board width: both cores at 32 bits (the one gateware mode that runs there)."""
    pages = small_pages(2)[:2]
    got, _ = run_compressor(mode, pages, dw=32, seed=5, **SMALL)
    blobs = R.compress_batch(pages, mode)
    assert got == blobs
    res = run_decompressor(mode, blobs, dw=32, seed=6, **SMALL)
    assert [(e, o) for e, o, _, _ in res] == [(0, R.decompress(b).tobytes()) for b in blobs]


@pytest.mark.parametrize("mode", ["kivi_k4v3"])
def test_compressor_tokens_longer_than_the_v_pipeline(mode):
    """At dw 32 and D 64 a V token takes 32 beats, more than the V statistics' pipeline:
    at the swap only the page's last token is on its way (in the lane tree), and the V
    files must still wait for it."""
    pages = random_pages(3, seed=3, T=8, D=64)
    got, _ = run_compressor(mode, pages, dw=32, T=8, D=64, seed=4)
    assert got == R.compress_batch(pages, mode)


@pytest.mark.parametrize("mode", ["kivi_k4v3"])
def test_compressor_one_beat_per_cycle(mode):
    """With no output back-pressure, input is never stalled across back-to-back pages."""
    pages = small_pages(3)
    got, stalls = run_compressor(mode, pages, p_valid=1.0, p_ready=1.0, **SMALL)
    assert got == R.compress_batch(pages, mode)
    assert stalls == 0


# ---- decompressor ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", HW)
def test_decompressor_matches_reference_and_flags_corruption(mode):
    pages = small_pages(4)
    blobs = R.compress_batch(pages, mode)
    cases = [(b, None) for b in blobs] + [corrupt(blobs[0], c) for c in CORRUPT_CASES]
    res = run_decompressor(mode, [b for b, _ in cases], seed=zlib.crc32(mode.encode()) % 997,
                           **SMALL)
    assert len(res) == len(cases)
    exp = R.decompress_batch(blobs).view(np.uint16)
    page_bytes = exp[0].nbytes
    for i, ((blob, kind), (err, out, _, lasts)) in enumerate(zip(cases, res)):
        assert len(out) <= page_bytes
        if kind is None:
            assert err == 0
            assert np.array_equal(np.frombuffer(out, np.uint16), exp[i].reshape(-1))
            assert lasts[-1] and not any(lasts[:-1])
        else:
            assert err == RF.ERROR_KINDS[kind], (CORRUPT_CASES[i - len(blobs)], err)
            if kind == "header":
                assert out == b""
            case = CORRUPT_CASES[i - len(blobs)]
            if case in ("crc", "overlong"):       # detected at the end: data was complete
                assert np.array_equal(np.frombuffer(out, np.uint16), exp[0].reshape(-1))


@pytest.mark.parametrize("mode", ["kivi_k4v3"])
def test_decompressor_sink_pages(mode):
    pages = small_pages(9)
    blobs = R.compress_batch(pages, mode, sink=np.array([1, 0, 1], bool))
    cases = blobs + [corrupt(blobs[0], c)[0] for c in ("truncated", "crc", "overlong")]
    res = run_decompressor(mode, cases, seed=4, **SMALL)
    exp = [R.decompress(b).tobytes() for b in blobs]
    assert [(e, o) for e, o, _, _ in res[:3]] == [(0, x) for x in exp]
    assert [e for e, _, _, _ in res[3:]] == [2, 4, 3]


def test_decompressor_garbage_and_empty_frames_never_hang():
    rng = np.random.default_rng(7)
    frames = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (8, 24, 200, 3000)]
    frames.insert(1, R.compress_batch(small_pages(5)[:1], "kivi_k4v3")[0][:8])  # header only
    res = run_decompressor("kivi_k4v3", frames, seed=9, **SMALL)
    assert len(res) == len(frames)
    page_bytes = 2 * 8 * 16 * 2
    for err, out, _, _ in res:
        assert err != 0 and len(out) <= page_bytes


def test_decompressor_output_one_beat_per_cycle():
    """One output beat per cycle at small geometries (16 x 64: the Verilator co-sim). At
    16 x 16 kivi_n10v9's K section (32 fields of 27 bits) ends mid-word, and taking the
    padding costs one cycle between the K and V beats (at 16 x 64 it ends on a word)."""
    for mode, geom, extra in (("kivi_k4v3", SMALL, 0), ("kivi_n10v9", dict(T=16, D=16), 1)):
        pages = random_pages(1, seed=6, **geom)
        blobs = R.compress_batch(pages, mode)
        (err, out, span, _), = run_decompressor(mode, blobs, p_valid=1.0, p_ready=1.0, **geom)
        assert err == 0 and out == R.decompress_batch(blobs).tobytes()
        assert span == 2 * geom["T"] * geom["D"] // 4 + extra, mode


def test_dw128():
    """dw = 128 (the simulated SoC's width with its DDR3 model; 16 values per compressor
    cycle), both cores, a random and the extreme page, one of them SINK, at 16 x 16 (pages
    of 336 and 368 bytes: whole 128-bit beats)."""
    mode, G = "kivi_k4v3", dict(T=16, D=16)
    pages = np.concatenate([random_pages(1, seed=10, **G), extreme_page(**G)[None]])
    sink = np.array([1, 0], bool)
    got, _ = run_compressor(mode, pages, dw=128, seed=6, sink=sink, **G)
    blobs = R.compress_batch(pages, mode, sink=sink)
    assert got == blobs
    res = run_decompressor(mode, blobs, dw=128, seed=7, **G)
    assert [(e, o) for e, o, _, _ in res] == [(0, R.decompress(b).tobytes()) for b in blobs]


def test_kivi_n_nibble_zero_points():
    """kivi_n10v9 (4-bit V zero points) at T = 16 (its zero section needs T % 16 == 0):
    compressor and decompressor against the reference on random, extreme and V-shifted pages
    under stalls, SINK and plain pages mixed, and corrupt pages; the V-shifted page reaches
    both ends of the zero range and widens scales (checked on the reference first)."""
    G = dict(T=16, D=16)
    pages = np.concatenate([random_pages(1, seed=1, **G), extreme_page(**G)[None],
                            shifted_v_page(5, **G)[None], shifted_v_page(6, **G)[None]])
    c4, n4 = v_zero_params(pages, RF.ZN_V_ZERO)
    c8, _ = v_zero_params(pages, (-127, 127))
    assert n4.min() == -8 and n4.max() == 7 and (c4 != c8).sum() >= 4
    sink = np.array([1, 0, 0, 1], bool)
    got, _ = run_compressor("kivi_n10v9", pages, seed=2, sink=sink, **G)
    blobs = R.compress_batch(pages, "kivi_n10v9", sink=sink)
    assert got == blobs
    cases = blobs + [corrupt(blobs[1], c)[0] for c in ("truncated", "crc", "overlong")]
    res = run_decompressor("kivi_n10v9", cases, seed=3, **G)
    assert [(e, o) for e, o, _, _ in res[:4]] == [(0, R.decompress(b).tobytes()) for b in blobs]
    assert [e for e, _, _, _ in res[4:]] == [2, 4, 3]


# ---- parameters and Verilog -----------------------------------------------------------------
def test_bad_parameters_raise():
    with pytest.raises(ValueError):
        KVCompressor("kivi_k4v3", dw=48)
    with pytest.raises(ValueError):
        KVDecompressor("kivi_k4v3", T=12)
    with pytest.raises(KeyError):
        KVDecompressor("nope")
    with pytest.raises(ValueError):       # 8 K codes per field, 4 values per cycle at dw=32
        KVDecompressor("kivi_n10v9", dw=32)
    with pytest.raises(ValueError):       # 4-bit V zero points: T a multiple of 16
        KVCompressor("kivi_n10v9", T=8)
    with pytest.raises(ValueError):
        KVDecompressor("kivi_n10v9", T=24)


@pytest.mark.parametrize("core", [KVCompressor, KVDecompressor])
def test_modes_outside_gateware_raise(core):
    """The reference keeps every mode; the cores build only GATEWARE_MODES and refuse the
    others (by name or as a Mode) with a ValueError naming the mode and the gateware modes."""
    assert set(GATEWARE_MODES) == {"kivi_k4v3", "kivi_n10v9"}
    others = [m for m in R.MODES if m not in GATEWARE_MODES]
    assert "int8_delta_rle" in others and "kivi_l16v12" in others and len(others) == 16
    for mode in others + [R.Mode("kivi_z11v9", RF.MODE_KIVI_ZP, klev=11, vlev=9)]:
        name = mode if isinstance(mode, str) else mode.name
        with pytest.raises(ValueError, match=f"'{name}' is not in gateware") as e:
            core(mode)
        assert ", ".join(GATEWARE_MODES) in str(e.value)


@pytest.mark.parametrize("core", [KVCompressor, KVDecompressor])
@pytest.mark.parametrize("mode,dw", [("kivi_k4v3", 32), ("kivi_k4v3", 128)])
def test_converts_to_verilog(core, mode, dw):
    dut = core(mode, dw=dw)
    v = str(convert(dut, ios={dut.sink.valid, dut.sink.ready, dut.sink.data, dut.sink.last,
                              dut.source.valid, dut.source.ready, dut.source.data,
                              dut.source.last}))
    assert "module top" in v and "endmodule" in v


@pytest.mark.parametrize("core", ["compressor", "decompressor"])
def test_ecp5_bench_harness_registers_every_port(core):
    """bench/codec_ecp5.py times the core between registers: every port of the top is a
    register's input or output, and the FF count it subtracts is the ports' width."""
    from bench.codec_ecp5 import verilog
    v, ff = verilog(core, "kivi_k4v3", 64)
    stream = 1 + 64 + 1 + 1 + 1 + 64 + 1 + 1 + 32          # both endpoints' ports, `pages`
    assert ff == stream + (1 if core == "compressor" else 1 + 3 + 32 + 1)
    assert "module codec_top" in v
    for k in range(4):                                      # inputs: registered first
        assert f"in{k}_r <= in{k};" in v
    assert "out2 <= " in v                                  # source data: registered
