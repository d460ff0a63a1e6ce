"""LSTM custom function unit (CFU): the specification, one instruction at a time.

The unit sits on VexRiscv's CFU port (LiteX ``full+cfu``): each custom instruction carries a
10-bit function id (funct3 in bits 2:0, funct7 in 9:3; only funct3 is decoded) and two
32-bit operands, and returns one 32-bit word. It holds the INT8 LSTM's weights, biases and
activation tables in its own RAM (written once by the firmware), the hidden and cell state
of every stream, and a sorted top-k list; the firmware keeps the control flow (tracker,
feature buckets, which pages to score) in C. ``core.py`` matches this model bit for bit,
and ``firmware/predict.c`` + this unit match ``host/prefetch/core.py``'s integer LSTM.

Arithmetic is two's-complement int32 wherever the C firmware uses int32, so the three agree
for every weight file the exporter can write, and the model says exactly what the
hardware does beyond that.

Every instruction may be executed twice back to back without effect (VexRiscv can re-issue
a CFU command after a pipeline flush: CFU-Playground issue 747): loads, reads and resets are
idempotent; ``RUN`` carries a sequence byte and a repeat of the last one is ignored;
``SCORE`` ignores a page already in the list (the tracker never scores a page twice).
"""
from __future__ import annotations

# ---- geometry (the firmware's LSTM: host/prefetch, firmware/lstm_weights.h) ----
H = 16                 # hidden units
NG = 4 * H             # gate rows (i, f, g, o)
NX_ROWS = 64           # input rows the unit holds (the LSTM uses 57)
NF = 32                # page-feature weights w_t
STREAMS = 128          # per-stream state slots (the firmware uses 96)
K_MAX = 32             # top-k list depth (= PRED_MAX_K)
LUT_N = 512            # entries per activation table
N_X = 6                # active step inputs per run

# ---- page-feature layout (host/prefetch/core.py) ----
F_POP, F_SINK, F_DIST = 16, 24, 25
DIST_EDGES = (1, 2, 4, 8, 16, 32)

# ---- instructions (funct3) ----
OP_LOAD, OP_RESET, OP_RUN, OP_SCORE, OP_GET, OP_READ, OP_INFO = 0, 1, 2, 3, 5, 6, 7
OPS = {"load": OP_LOAD, "reset": OP_RESET, "run": OP_RUN, "score": OP_SCORE, "get": OP_GET,
       "read": OP_READ, "info": OP_INFO}

# OP_LOAD regions (rs1 = region << 16 | index; rs2 = data word)
R_WX, R_WR, R_BIAS, R_LUT, R_CFG = 0, 1, 2, 3, 4
REGION_WORDS = {R_WX: NX_ROWS * NG // 4,     # row-major W_x^T: 16 words (64 int8) a row
                R_WR: (NG + NF) * H // 4,    # W_h rows 0..63 then W_o rows 64..95, 4 words a row
                R_BIAS: NG + NF,             # b (Q12) then b_o
                R_LUT: 2 * LUT_N,            # sigmoid then tanh, Q12, low 16 bits
                R_CFG: 1}                    # the three rounding shifts, signed bytes
# OP_READ selectors (rs1): w[j]; h'[j], c'[j] of the last RUN that ran (kept over RESET)
READ_W, READ_H, READ_C = 0, 32, 48

INFO_MAGIC = 0x4C53  # "LS"
INFO = (INFO_MAGIC << 16) | (H << 8) | K_MAX
NO_PAGE = 0xFFFFFFFF  # OP_GET past the end of the list


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def rshift_round(v: int, n: int) -> int:
    """Round-half-up arithmetic right shift for n >= 1, left shift for n <= 0 (as the
    reference and the firmware)."""
    return v << -n if n <= 0 else (v + (1 << (n - 1))) >> n


def lut_index(z: int) -> int:
    return min(max((z >> 7) + LUT_N // 2, 0), LUT_N - 1)


def bucket(v: int, edges) -> int:
    for i, e in enumerate(edges):
        if v < e:
            return i
    return len(edges)


def pack_run(xin, s: int, seq: int) -> tuple[int, int]:
    """Operands of OP_RUN: six 6-bit input rows, the stream and a sequence byte."""
    if len(xin) != N_X or not all(0 <= x < NX_ROWS for x in xin):
        raise ValueError(f"RUN needs {N_X} input rows in 0..{NX_ROWS - 1}, got {list(xin)}")
    if not 0 <= s < STREAMS:
        raise ValueError(f"stream {s} outside 0..{STREAMS - 1}")
    rs1 = sum(x << (6 * i) for i, x in enumerate(xin[:5]))
    return rs1, xin[5] | (s << 8) | ((seq & 0xFF) << 16)


class LstmCfuModel:
    """Instruction-level model: ``op(funct3, rs1, rs2) -> int`` (an unsigned 32-bit word)."""

    def __init__(self):
        self.wx = [[0] * NG for _ in range(NX_ROWS)]          # int8
        self.wr = [[0] * H for _ in range(NG + NF)]           # int8
        self.bias = [0] * (NG + NF)                           # int32
        self.lut = [0] * (2 * LUT_N)                          # int16
        self.sx = self.sh = self.so = 0                       # signed shifts
        self.h = [[0] * H for _ in range(STREAMS)]
        self.c = [[0] * H for _ in range(STREAMS)]
        self.w = [0] * NF
        self.reg_h, self.reg_c = [0] * H, [0] * H             # the last RUN's h', c'
        self.seq = None                                       # sequence byte of the last RUN
        self.top: list[tuple[int, int]] = []                  # (score, page), best first

    # ---- the instructions ----
    def op(self, funct3: int, rs1: int, rs2: int) -> int:
        rs1 &= 0xFFFFFFFF
        rs2 &= 0xFFFFFFFF
        f = funct3 & 7
        if f == OP_LOAD:
            self._load(rs1 >> 16, rs1 & 0xFFFF, rs2)
            return 0
        if f == OP_RESET:
            self.h = [[0] * H for _ in range(STREAMS)]
            self.c = [[0] * H for _ in range(STREAMS)]
            self.top = []
            self.seq = None
            return 0
        if f == OP_RUN:
            seq = (rs2 >> 16) & 0xFF
            if seq != self.seq:
                self.seq = seq
                xin = [(rs1 >> (6 * i)) & 63 for i in range(5)] + [rs2 & 63]
                self._run(xin, (rs2 >> 8) & (STREAMS - 1))
            return 0
        if f == OP_SCORE:
            return self._score(rs1 & 0xFFFF, (rs1 >> 16) & 0xFF, s32(rs2)) & 0xFFFFFFFF
        if f == OP_GET:
            r = rs1 & 0xFFFF
            return self.top[r][1] if r < len(self.top) else NO_PAGE
        if f == OP_READ:
            sel = rs1 & 63
            if sel < READ_H:
                return self.w[sel] & 0xFFFFFFFF
            if sel < READ_C:
                return self.reg_h[sel - READ_H] & 0xFFFFFFFF
            return self.reg_c[sel - READ_C] & 0xFFFFFFFF
        if f == OP_INFO:
            return INFO
        return 0  # funct3 4: reserved, no effect

    def _load(self, region: int, index: int, data: int) -> None:
        if region not in REGION_WORDS or index >= REGION_WORDS[region]:
            return  # outside every table: ignored, as the core ignores it
        b = [sext(data >> (8 * i), 8) for i in range(4)]
        if region == R_WX:
            row, col = divmod(index, NG // 4)
            self.wx[row][4 * col:4 * col + 4] = b
        elif region == R_WR:
            row, col = divmod(index, H // 4)
            self.wr[row][4 * col:4 * col + 4] = b
        elif region == R_BIAS:
            self.bias[index] = s32(data)
        elif region == R_LUT:
            self.lut[index] = sext(data, 16)
        else:
            self.sx, self.sh, self.so = b[0], b[1], b[2]

    def _run(self, xin, s: int) -> None:
        h, c = self.h[s], self.c[s]
        act = []
        for j in range(NG):
            ax = sum(self.wx[x][j] for x in xin)
            ah = sum(a * b for a, b in zip(self.wr[j], h))
            z = s32(s32(rshift_round(ax, self.sx)) + s32(rshift_round(ah, self.sh)) + self.bias[j])
            act.append(self.lut[lut_index(z) + (LUT_N if j // H == 2 else 0)])
        hn, cn = [], []
        for j in range(H):
            ig, fg, gg, og = act[j], act[H + j], act[2 * H + j], act[3 * H + j]
            cj = rshift_round(fg * c[j], 12) + rshift_round(ig * gg, 12)
            cj = min(max(cj, -32767), 32767)
            hj = rshift_round(og * self.lut[LUT_N + lut_index(cj)], 17)
            hn.append(min(max(hj, -127), 127))
            cn.append(cj)
        self.h[s], self.c[s] = hn, cn
        self.reg_h, self.reg_c = list(hn), list(cn)
        self.w = [s32(s32(rshift_round(sum(a * b for a, b in zip(self.wr[NG + j], hn)), self.so))
                      + self.bias[NG + j]) for j in range(NF)]
        self.top = []

    def _score(self, p: int, hb: int, lim: int) -> int:
        w = self.w
        pop = bin(hb).count("1")
        v = w[hb & 15] + w[(F_POP + pop - 1) & (NF - 1)] + w[F_DIST + bucket(lim - 1 - p, DIST_EDGES)]
        if p == 0:
            v += w[F_SINK]
        v = s32(v)
        if all(q != p for _, q in self.top):
            pos = sum(1 for u, q in self.top if u > v or (u == v and q < p))
            if pos < K_MAX:
                self.top.insert(pos, (v, p))
                del self.top[K_MAX:]
        return v


def load_words(wx_t, wr, bias, lut, shifts):
    """The (rs1, rs2) OP_LOAD operands that program the unit: ``wx_t`` [rows][NG] int8,
    ``wr`` [NG + NF][H] int8 (W_h then W_o), ``bias`` [NG + NF] int32, ``lut`` [2 * LUT_N]
    int16 (sigmoid then tanh), ``shifts`` (sx, sh, so)."""
    def words(rows):
        for row in rows:
            for i in range(0, len(row), 4):
                yield sum((int(v) & 0xFF) << (8 * k) for k, v in enumerate(row[i:i + 4]))
    ops = [((R_WX << 16) | i, d) for i, d in enumerate(words(wx_t))]
    ops += [((R_WR << 16) | i, d) for i, d in enumerate(words(wr))]
    ops += [((R_BIAS << 16) | i, int(v) & 0xFFFFFFFF) for i, v in enumerate(bias)]
    ops += [((R_LUT << 16) | i, int(v) & 0xFFFF) for i, v in enumerate(lut)]
    ops.append(((R_CFG << 16), sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(shifts))))
    return ops
