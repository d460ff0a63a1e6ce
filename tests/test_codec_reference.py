"""Reference KV codec (gateware/codec/reference.py): format, arithmetic, round trips, errors."""
import zlib

import numpy as np
import pytest

from gateware.codec import reference as R
from gateware.codec import ref_arith as RA
from gateware.codec import ref_format as RF
from gateware.codec import ref_packing as RP
from gateware.codec import ref_quant as RQ
from tests.codec_fixtures import corrupt, extreme_page, random_pages, shifted_v_page, v_zero_params

LOSSY = [m for m in R.MODES if m != "raw"]


# ---- arithmetic ----------------------------------------------------------------------------
def test_fp16_int_roundtrip_exhaustive():
    b = np.arange(65536, dtype=np.uint16)
    b = b[(b & 0x7C00) != 0x7C00]
    x = RA.fp16_to_int(b)
    assert np.array_equal(x.astype(np.float64) * 2.0 ** -24, b.view(np.float16).astype(np.float64))
    back = RA.int_to_fp16(x)
    assert np.array_equal(back, np.where(b == 0x8000, 0, b))


def test_int_to_fp16_is_round_nearest_even_saturating():
    rng = np.random.default_rng(1)
    v = rng.integers(-(2 ** 41), 2 ** 41, 100000) >> rng.integers(0, 41, 100000)
    v = np.concatenate([v, [0, 1, -1, RA.FP16_MAX_UNITS, RA.FP16_MAX_UNITS + (1 << 19),
                            -(1 << 42), 3 << 27]])
    with np.errstate(over="ignore"):
        ref = (v.astype(np.float64) * 2.0 ** -24).astype(np.float16)
    ref = np.clip(ref.astype(np.float64), -65504, 65504).astype(np.float16).view(np.uint16)
    ref = np.where(ref == 0x8000, 0, ref)
    assert np.array_equal(RA.int_to_fp16(v), ref)
    assert np.array_equal(RA.int_to_fp16_spec(v), ref)      # the integer (gateware) algorithm


def test_fp16_to_int_fast_equals_spec():
    b = np.arange(65536, dtype=np.uint16)
    b = b[(b & 0x7C00) != 0x7C00]
    assert np.array_equal(RA.fp16_to_int(b), RA.fp16_to_int_spec(b))


def test_choose_scale_is_minimal():
    rng = np.random.default_rng(2)
    r = np.concatenate([[0, 1, 7, 8], rng.integers(0, 2 ** 41, 5000)])
    for qmax in (1, 3, 7, 15, 127, 255):
        c = RA.choose_scale(r, qmax).astype(np.int64)
        ok = RA.SCALE_VAL[c] * qmax >= r
        assert (ok | (c == 255)).all()
        prev = np.maximum(c - 1, 0)
        assert ((c == 0) | (RA.SCALE_VAL[prev] * qmax < r)).all()


def test_quantize_close_to_exact_rounding():
    rng = np.random.default_rng(3)
    code = rng.integers(0, 256, 20000)
    qmax = 255
    d = (rng.random(20000) * RA.SCALE_VAL[code] * qmax).astype(np.int64)
    q = RA.quantize(d, code, qmax)
    exact = d / RA.SCALE_VAL[code]
    assert (np.abs(q - exact) <= 0.52).all()
    assert (q <= qmax).all() and (q >= 0).all()


def test_pack_unpack_bits():
    rng = np.random.default_rng(4)
    for bits in (2, 3, 4, 5, 8):
        q = rng.integers(0, 1 << bits, (3, 1024)).astype(np.uint8)
        p = RP.pack_bits(q, bits)
        assert p.shape == (3, (1024 * bits + 7) // 8)
        assert np.array_equal(RP.unpack_bits(p, bits, 1024), q)
    # LSB-first: value i sits at bit i*bits
    p = RP.pack_bits(np.array([[1, 2, 3]], np.uint8), 3)
    assert int.from_bytes(p[0].tobytes(), "little") == 1 | (2 << 3) | (3 << 6)


@pytest.mark.parametrize("seed", range(4))
def test_rle_roundtrip(seed):
    rng = np.random.default_rng(seed)
    n = 2048
    data = rng.integers(0, 256, n).astype(np.uint8)
    data[rng.random(n) < [0.02, 0.5, 0.9, 1.0][seed]] = 0
    enc = RP.rle_encode(data)
    dec, used = RP.rle_decode(np.concatenate([enc, [0, 0, 0]]), n)
    assert used == enc.size
    assert np.array_equal(dec, data)


def test_rle_long_runs_and_errors():
    data = np.zeros(700, np.uint8)
    data[300] = 9
    enc = RP.rle_encode(data)
    assert enc.tolist() == [0, 255, 0, 43, 9, 0, 255, 0, 142]
    assert np.array_equal(RP.rle_decode(enc, 700)[0], data)
    with pytest.raises(R.CodecError) as e:
        RP.rle_decode(enc[:-2], 700)
    assert e.value.kind == "format"
    with pytest.raises(R.CodecError):
        RP.rle_decode(np.array([0, 255], np.uint8), 100)      # run overshoots the page


def test_level_groups_and_packing():
    assert {lev: RP.level_group(lev) for lev in (4, 6, 8, 11, 12, 13, 16)} == {
        4: (1, 2), 6: (8, 21), 8: (1, 3), 11: (2, 7), 12: (8, 29), 13: (4, 15), 16: (1, 4)}
    rng = np.random.default_rng(5)
    for lev in RF.ZP_LEVELS:
        g, w = RP.level_group(lev)
        assert lev ** g <= 1 << w < lev ** g * 2 and w <= 32
        q = rng.integers(0, lev, (3, 1024)).astype(np.uint8)
        q[0, :16] = lev - 1                                  # largest fields
        p = RP.pack_levels(q, lev)
        assert p.shape == (3, (1024 // g * w + 7) // 8)
        assert np.array_equal(RP.unpack_levels(p, lev, 1024), q)
    # digit k of a field has weight lev**k; fields LSB first
    p = RP.pack_levels(np.array([[1, 2, 3, 4, 5, 0, 0, 0, 5, 4, 3, 2, 1, 0, 0, 0]], np.uint8), 6)
    f = int.from_bytes(p[0].tobytes(), "little")
    assert f & (2 ** 21 - 1) == 1 + 2 * 6 + 3 * 36 + 4 * 216 + 5 * 1296
    assert f >> 21 == 5 + 4 * 6 + 3 * 36 + 2 * 216 + 1 * 1296
    # a field above lev**g - 1 (only in a corrupt page): the last digit saturates
    top = np.frombuffer(((1 << 21) - 1).to_bytes(3, "little"), np.uint8)[None]
    d = RP.unpack_levels(top, 6, 8)[0]
    c = (1 << 21) - 1
    assert d[:7].tolist() == [(c // 6 ** k) % 6 for k in range(7)] and d[7] == 5


@pytest.mark.parametrize("zrange", [(-127, 127), RF.ZN_V_ZERO])
def test_zero_points_fit_and_round(zrange):
    """kivi_z groups (zero points -127..127) and kivi_n's V groups (-8..7): the zero fits
    its range and |zero * S - min| <= 0.52 S for every group, also for groups far from zero
    relative to their range (the scale grows until the zero fits)."""
    rng = np.random.default_rng(6)
    lo = rng.normal(0, 1000, 4000)
    span = np.abs(rng.normal(0, 1, 4000)) * 10.0 ** rng.integers(-6, 3, 4000)
    x = np.stack([lo, lo + span * rng.random(4000), lo + span], axis=1).astype(np.float16)
    xi = RA.fp16_to_int(x.view(np.uint16))
    for qmax in (3, 5, 11, 15):
        code, n, off = RQ.group_params(xi, 1, qmax + 1, zrange)
        S = RA.scale_value(code)
        q = RA.quantize(np.maximum(xi - off[:, None], 0), code[:, None], qmax)
        assert (zrange[0] <= n).all() and (n <= zrange[1]).all() and (q <= qmax).all()
        assert (np.abs(n * S - xi.min(axis=1)) <= 0.52 * S).all()
        err = np.abs((n.astype(np.int64)[:, None] + q) * S[:, None] - xi)
        assert (err <= 0.52 * S[:, None]).all()


# ---- page round trips ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(R.MODES))
def test_length_is_fixed_and_counted(mode):
    pages = random_pages(8, seed=5)
    blobs = R.compress_batch(pages, mode)
    m = R.MODES[mode]
    for b in blobs:
        assert len(b) % 8 == 0
        assert int.from_bytes(b[6:8], "little") == len(b)
        if m.kind != R.MODE_INT8_DELTA_RLE:
            assert len(b) == R.page_length(m)


def test_expected_page_lengths():
    # default page 2 x 16 x 64 FP16 = 4096 bytes; every header/scale/pad/CRC byte counted
    assert {m: R.page_length(R.MODES[m]) for m in R.MODES if m != "int8_delta_rle"} == {
        "raw": 4112, "int8": 2096, "int8_delta": 2096, "kivi_k4v4": 1280, "kivi_k4v3": 1152,
        "kivi_k3v3": 1024, "kivi_k3v2": 896, "kivi_k2v2": 768,
        "kivi_z16v6": 1024, "kivi_z16v8": 1072, "kivi_z12v8": 1024, "kivi_z10v9": 1024, "kivi_z9v10": 1024,
        "kivi_n10v9": 1016, "kivi_l16v14": 1264, "kivi_l16v13": 1248, "kivi_l16v12": 1232}


def test_kivi_l_with_power_of_two_levels_is_kivi():
    """kivi_l is kivi with level packing: at 16 / 8 levels its pages are kivi_k4v3's but for
    the header's mode and bits bytes (and so the CRC), and decode to the same values."""
    pages = np.concatenate([random_pages(4, seed=21), extreme_page()[None]])
    sink = np.array([1, 0, 0, 1, 0], bool)
    lm = R.Mode("kivi_l16v8", RF.MODE_KIVI_L, klev=16, vlev=8)
    a = R.compress_batch(pages, "kivi_k4v3", sink=sink)
    b = R.compress_batch(pages, lm, sink=sink)
    for x, y in zip(a, b):
        assert len(x) == len(y) and x[4:-4] == y[4:-4] and x[:2] == y[:2]
        assert (y[2], y[3]) == (RF.MODE_KIVI_L, 0xF7)
        assert R.parse_header(y).mode == lm
    assert np.array_equal(R.decompress_batch(a).view(np.uint16), R.decompress_batch(b).view(np.uint16))


def test_raw_is_bit_exact_including_nan_inf():
    rng = np.random.default_rng(6)
    bits = rng.integers(0, 65536, (16, 2, 16, 64)).astype(np.uint16)
    bits[0, 0, 0, :4] = [0x7C00, 0xFC00, 0x7E01, 0x8000]
    out = R.decompress_batch(R.compress_batch(bits, "raw"))
    assert np.array_equal(out.view(np.uint16), bits)


@pytest.mark.parametrize("mode", LOSSY)
def test_lossy_within_bound(mode):
    pages = np.concatenate([random_pages(24, seed=7), extreme_page()[None]])
    blobs = R.compress_batch(pages, mode)
    out = R.decompress_batch(blobs)
    x, _ = RA.sanitize(pages.view(np.uint16))
    x = x.view(np.float16).astype(np.float64)
    err = np.abs(out.astype(np.float64) - x)
    for i in range(len(pages)):
        assert (err[i] <= R.error_bound(pages[i], mode)).all(), i
    assert not np.isnan(out.astype(np.float64)).any()
    assert not np.isinf(out.astype(np.float64)).any()


@pytest.mark.parametrize("mode", LOSSY)
def test_nonfinite_policy(mode):
    page = random_pages(1, seed=8)[0].copy()
    page[0, 3, 5] = np.inf
    page[1, 2, 7] = -np.inf
    page[1, 9, 1] = np.nan
    blob = R.compress(page, mode)
    assert blob[1] & R.FLAG_NONFINITE
    out = R.decompress(blob).astype(np.float64)
    assert np.isfinite(out).all()
    bound = R.error_bound(page, mode)
    assert abs(out[0, 3, 5] - 65504) <= bound[0, 3, 5]
    assert abs(out[1, 2, 7] + 65504) <= bound[1, 2, 7]
    assert abs(out[1, 9, 1]) <= bound[1, 9, 1]
    assert not R.compress(random_pages(1, seed=8)[0], mode)[1] & R.FLAG_NONFINITE


def test_zero_page_and_negative_zero():
    z = np.zeros((2, 16, 64), np.float16)
    z[0, 0, 0] = -0.0
    for mode in R.MODES:
        out = R.decompress(R.compress(z, mode))
        assert (out.astype(np.float64) == 0).all()


@pytest.mark.parametrize("mode", ["int8_delta", "int8_delta_rle"])
def test_delta_and_rle_stages_are_lossless(mode):
    pages = np.concatenate([random_pages(16, seed=9), extreme_page()[None]])
    a = R.decompress_batch(R.compress_batch(pages, "int8"))
    b = R.decompress_batch(R.compress_batch(pages, mode))
    assert np.array_equal(a.view(np.uint16), b.view(np.uint16))


# (T, D) other than the default 16 x 64: one token, odd and prime sizes, D not a multiple of 8
# (refused by the level-packed modes), the largest T the header holds.
OTHER_GEOMETRIES = [(8, 32), (1, 8), (2, 24), (3, 40), (5, 7), (17, 3), (255, 8), (32, 128)]


@pytest.mark.parametrize("T, D", OTHER_GEOMETRIES, ids=[f"{t}x{d}" for t, d in OTHER_GEOMETRIES])
def test_other_geometry(T, D):
    """Every mode that accepts the geometry round-trips it: the header records T and D and the
    mode, fixed-size modes have their computed length, raw is bit-exact and every lossy value
    is within R.error_bound of the input (per page, also for SINK pages of the kivi modes);
    the level-packed modes refuse D % 8 != 0; a decoder expecting another geometry refuses."""
    pages = np.concatenate([random_pages(5, seed=10 + T + D, T=T, D=D),
                            extreme_page(T=max(T, 9), D=max(D, 9))[None, :, :T, :D]])
    accepted = []
    for name, mode in R.MODES.items():
        if mode.level_packed and D % 8:
            with pytest.raises(ValueError, match="multiple of 8"):
                R.compress_batch(pages, mode)
            continue
        accepted.append(name)
        for sink in ([False, True] if mode.kivi_like and T >= 2 else [False]):
            blobs = R.compress_batch(pages, mode, sink=sink)
            for blob in blobs:
                h = R.parse_header(blob)
                assert (h.T, h.D, h.mode) == (T, D, mode), (name, h)
                assert bool(h.flags & R.FLAG_SINK) == sink
                fixed = R.page_length(mode, T, D, sink)
                assert len(blob) == (fixed if fixed is not None else h.length), name
            out = R.decompress_batch(blobs, expect_geometry=(T, D))
            assert out.shape == pages.shape and out.dtype == np.float16
            assert np.array_equal(out[0], R.decompress(blobs[0], expect_geometry=(T, D)))
            if mode.lossless:
                assert np.array_equal(out.view(np.uint16), pages.view(np.uint16))
                continue
            x = RA.sanitize(pages.view(np.uint16))[0].view(np.float16).astype(np.float64)
            err = np.abs(out.astype(np.float64) - x)
            for i in range(len(pages)):
                bound = R.error_bound(pages[i], mode, sink=sink)
                worst = np.unravel_index(np.argmax(err[i] - bound), err[i].shape)
                assert (err[i] <= bound).all(), \
                    f"{name} sink={sink} page {i} at {worst}: " \
                    f"|{out[i][worst]} - {x[i][worst]}| > {bound[worst]}"
        with pytest.raises(R.CodecError, match="geometry") as e:
            R.decompress(blobs[0], expect_geometry=(T + 1, D))
        assert e.value.kind == "header"
    level_packed = {n for n, m in R.MODES.items() if m.level_packed}
    assert set(accepted) == set(R.MODES) - (level_packed if D % 8 else set())


def test_batch_equals_single():
    pages = random_pages(5, seed=11)
    for mode in R.MODES:
        assert R.compress_batch(pages, mode) == [R.compress(p, mode) for p in pages]


# ---- corrupt pages -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(R.MODES))
@pytest.mark.parametrize("case", ["magic", "version", "mode", "length", "geometry", "truncated",
                                  "overlong", "crc", "payload"])
def test_corrupt_pages_raise(mode, case):
    blob = R.compress(random_pages(1, seed=12)[0], mode)
    bad, kind = corrupt(blob, case)
    with pytest.raises(R.CodecError) as e:
        R.decompress(bad, expect_geometry=(16, 64))
    assert e.value.kind == kind


def test_rle_format_error_with_valid_crc():
    blob = bytearray(R.compress(random_pages(1, seed=13)[0], "int8_delta_rle"))
    n = len(blob) - 4
    blob[n - 12: n] = b"\x00" * 12            # zero run markers with zero counts at the end
    blob[n:] = zlib.crc32(bytes(blob[:n])).to_bytes(4, "little")
    with pytest.raises(R.CodecError) as e:
        R.decompress(bytes(blob))
    assert e.value.kind == "format"


# ---- SINK pages (kivi) ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["kivi_k4v3", "kivi_k3v2", "kivi_z16v6", "kivi_z12v8"])
def test_sink_page(mode):
    pages = np.concatenate([random_pages(6, seed=14), extreme_page()[None]])
    sink = np.array([1, 0, 1, 0, 0, 1, 1], bool)
    blobs = R.compress_batch(pages, mode, sink=sink)
    m = R.MODES[mode]
    for b, s in zip(blobs, sink):
        assert bool(b[1] & R.FLAG_SINK) == s
        assert len(b) == R.page_length(m, sink=bool(s))
    assert blobs[1] == R.compress(pages[1], mode)
    assert R.page_length(m, sink=True) == R.page_length(m) + 128
    out = np.stack([R.decompress(b) for b in blobs])
    x, _ = RA.sanitize(pages.view(np.uint16))
    x = x.view(np.float16).astype(np.float64)
    for i in range(len(pages)):
        err = np.abs(out[i].astype(np.float64) - x[i])
        assert (err <= R.error_bound(pages[i], mode, sink=bool(sink[i]))).all()
        if sink[i]:
            assert np.array_equal(out[i, 0, 0], x[i, 0, 0])      # token 0's K exact


def test_kivi_n_is_kivi_z_with_nibble_v_zero_points():
    """kivi_n10v9 = kivi_z10v9 with 4-bit V zero points (-8..7, two a byte, even token low):
    8 bytes less a page; where no V zero point leaves -8..7 the decoded values are
    kivi_z10v9's; where one would, the scale widens and the error bound still holds; the
    nibbles sign-extend."""
    shifted = [shifted_v_page(s)[None] for s in (31, 32, 33)]
    pages = np.concatenate([random_pages(3, seed=30)] + shifted + [extreme_page()[None]])
    sink = np.array([1, 0, 0, 1, 0, 0, 1], bool)
    n, z = R.MODES["kivi_n10v9"], R.MODES["kivi_z10v9"]
    assert R.page_length(n) == R.page_length(z) - 8 == 1016
    assert R.page_length(n, sink=True) == 1016 + 128
    bn = R.compress_batch(pages, n, sink=sink)
    bz = R.compress_batch(pages, z, sink=sink)
    code4, zero4 = v_zero_params(pages, RF.ZN_V_ZERO)
    code8, _ = v_zero_params(pages, (-127, 127))
    wide = (code4 != code8).any(axis=1)
    assert wide[3:].all() and not wide[:3].any()      # shifted V tokens widen, plain ones not
    assert zero4.min() == -8 and zero4.max() == 7
    on, oz = R.decompress_batch(bn), R.decompress_batch(bz)
    for i in range(7):
        assert len(bn[i]) == len(bz[i]) - 8
        assert np.array_equal(on[i].view(np.uint16), oz[i].view(np.uint16)) == (not wide[i])
        err = np.abs(on[i].astype(np.float64) - RA.sanitize(pages[i].view(np.uint16))[0]
                     .view(np.float16).astype(np.float64))
        assert (err <= R.error_bound(pages[i], n, sink=bool(sink[i]))).all()
    # the V zero section: token 2i's zero point in the low nibble of byte i
    b = np.frombuffer(bn[1], np.uint8)             # no SINK: k_code 64, k_zero 64, v_code 16
    nib = b[8 + 64 + 64 + 16: 8 + 64 + 64 + 16 + 8]
    z4 = np.stack([nib & 15, nib >> 4], 1).reshape(-1).astype(int)
    assert np.array_equal(np.where(z4 > 7, z4 - 16, z4), zero4[1])


def test_kivi_z_header_levels_checked():
    blob = bytearray(R.compress(random_pages(1)[0], "kivi_z16v6"))
    from tests.codec_fixtures import reseal
    for bad in (0x26, 0x52, 0xF2):            # 3 levels for K, 3 for V: below the minimum 4
        blob[3] = bad
        with pytest.raises(R.CodecError) as e:
            R.decompress(reseal(blob))
        assert e.value.kind == "header"


def test_sink_flag_rejected_outside_kivi():
    with pytest.raises(ValueError):
        R.compress_batch(random_pages(1), "int8", sink=True)
    blob = bytearray(R.compress(random_pages(1)[0], "int8"))
    blob[1] |= R.FLAG_SINK
    from tests.codec_fixtures import reseal
    with pytest.raises(R.CodecError) as e:
        R.decompress(reseal(blob))
    assert e.value.kind == "header"


# ---- real KV pages --------------------------------------------------------------------------
from tests.codec_fixtures import trace_pages  # noqa: E402,F401 (pytest fixture)


@pytest.mark.parametrize("mode", LOSSY)
def test_real_pages_within_bound_and_fixed_length(trace_pages, mode):
    pages = trace_pages[::9]
    blobs = R.compress_batch(pages, mode)
    out = R.decompress_batch(blobs).astype(np.float64)
    x = pages.astype(np.float64)
    for i in range(len(pages)):
        assert (np.abs(out[i] - x[i]) <= R.error_bound(pages[i], mode)).all()
    if mode != "int8_delta_rle":
        assert {len(b) for b in blobs} == {R.page_length(R.MODES[mode])}
