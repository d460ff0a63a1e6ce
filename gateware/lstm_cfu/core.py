"""LSTM custom function unit for VexRiscv (LiteX ``full+cfu``): the Migen core.

``model.py`` is the specification (instructions, operands, arithmetic); this core matches it
bit for bit. ``LstmCfu.bus`` is VexRiscv's CFU bus (``cmd``: valid/ready, function id, two
operands; ``rsp``: valid/ready, one result). A command is taken only while no response is
pending, and every response is registered (one cycle or more after its command).

``RUN`` is a multi-cycle sequence over block RAMs with one 16-lane INT8 dot product:

1. state: read the stream's h (16 x int8) and c (16 x int16);
2. input sums: per group of 8 gate rows, add the 6 active rows of W_x^T (8 lanes a cycle);
3. gates: per gate row, W_h row . h, round-shift, bias, activation lookup (pipelined, one
   row a cycle);
4. cell: per unit, c' = f c + i g and h' = o tanh(c') (one unit a cycle);
5. outputs: per feature, W_o row . h' + b_o into the 32 w registers; h', c' written back.

That is 2 + 48 + 1 + 69 + 20 + 36 + 1 = 177 cycles from command to response. ``SCORE``
scores a page from the w registers and inserts it into a 32-deep sorted list (32 compares in
one cycle); ``GET`` reads the list.
"""
from migen import (Array, Case, Cat, Constant, FSM, If, Memory, Module, Mux, NextState,
                   NextValue, Replicate, Signal)
from migen.genlib.record import Record

from gateware.lstm_cfu.model import (DIST_EDGES, F_DIST, F_POP, F_SINK, H, INFO, K_MAX, LUT_N,
                                     N_X, NF, NG, NX_ROWS, OP_GET, OP_INFO, OP_LOAD, OP_READ,
                                     OP_RESET, OP_RUN, OP_SCORE, R_BIAS, R_CFG, R_LUT, R_WR,
                                     R_WX, READ_C, READ_H, STREAMS)

CFU_LAYOUT = [
    ("cmd", [("valid", 1), ("ready", 1),
             ("payload", [("function_id", 10), ("inputs_0", 32), ("inputs_1", 32)])]),
    ("rsp", [("valid", 1), ("ready", 1), ("payload", [("outputs_0", 32)])]),
]
RUN_CYCLES = 177  # command taken -> response valid (the sequence above; checked by the tests)


class LstmCfu(Module):
    """The unit; ``bus`` is a ``CFU_LAYOUT`` record (LiteX's VexRiscv ``cfu_bus``)."""

    def __init__(self):
        self.bus = bus = Record(CFU_LAYOUT)
        cmd, rsp = bus.cmd, bus.rsp
        funct3 = cmd.payload.function_id[:3]
        rs1, rs2 = cmd.payload.inputs_0, cmd.payload.inputs_1

        # ---- storage ----
        wx = Memory(64, NX_ROWS * NG // 8, name="lstm_wx")      # row * 8 + group: 8 int8
        wr = Memory(128, 128, name="lstm_wr")                   # W_h rows 0..63, W_o 64..95
        bias = Memory(32, NG + NF, name="lstm_bias")            # b then b_o
        lut = Memory(16, 2 * LUT_N, name="lstm_lut")            # sigmoid then tanh
        axm = Memory(8 * 12, NG // 8, name="lstm_ax")           # input sums, 8 x 12 bits
        actm = Memory(4 * 16, H, name="lstm_act")               # per unit: i, f, g, o
        state = Memory(H * 8 + H * 16, STREAMS, name="lstm_state")  # per stream: h, c
        self.specials += wx, wr, bias, lut, axm, actm, state
        wx_w = wx.get_port(write_capable=True, we_granularity=32)
        wr_w = wr.get_port(write_capable=True, we_granularity=32)
        bias_w, lut_w = bias.get_port(write_capable=True), lut.get_port(write_capable=True)
        wx_r, wr_r, bias_r, lut_r = wx.get_port(), wr.get_port(), bias.get_port(), lut.get_port()
        ax_w, ax_r = axm.get_port(write_capable=True), axm.get_port()
        act_w, act_r = actm.get_port(write_capable=True, we_granularity=16), actm.get_port()
        st_w, st_r = state.get_port(write_capable=True), state.get_port()
        self.specials += wx_w, wr_w, bias_w, lut_w, wx_r, wr_r, bias_r, lut_r
        self.specials += ax_w, ax_r, act_w, act_r, st_w, st_r

        valid = Signal(STREAMS)                   # stream state written since the last RESET
        sx, sh, so = (Signal((6, True), name=n) for n in ("sx", "sh", "so"))
        hreg = Array(Signal((8, True), name=f"h{i}") for i in range(H))
        creg = Array(Signal((16, True), name=f"c{i}") for i in range(H))
        wreg = Array(Signal((32, True), name=f"w{i}") for i in range(NF))
        tv = [Signal((32, True), name=f"tv{i}") for i in range(K_MAX)]   # list: scores
        tp = [Signal(16, name=f"tp{i}") for i in range(K_MAX)]           # list: pages
        tn = Signal(max=K_MAX + 1)                                       # list: entries
        last_seq = Signal(9, reset=0x100)         # 0x100: no RUN since reset
        stream = Signal(max=STREAMS)
        xin = Array(Signal(6, name=f"x{i}") for i in range(N_X))

        fsm = FSM(reset_state="IDLE")
        self.submodules.fsm = fsm
        in_ = fsm.ongoing

        # ---- command / response ----
        rsp_data = Signal(32)
        take, done = Signal(), Signal()
        self.comb += [
            cmd.ready.eq(in_("IDLE") & ~rsp.valid),
            take.eq(cmd.valid & cmd.ready),
            rsp.payload.outputs_0.eq(rsp_data),
        ]
        self.sync += If(done, rsp.valid.eq(1)).Elif(rsp.ready, rsp.valid.eq(0))

        # ---- OP_LOAD: written in the cycle the command is taken ----
        region, index = rs1[16:19], rs1[:16]
        load = Signal()
        self.comb += [
            load.eq(take & (funct3 == OP_LOAD)),
            wx_w.adr.eq(index[1:]), wx_w.dat_w.eq(Replicate(rs2, 2)),
            wx_w.we.eq(Mux(load & (region == R_WX) & (index < NX_ROWS * NG // 4),
                           Mux(index[0], 0b10, 0b01), 0)),
            wr_w.adr.eq(index[2:]), wr_w.dat_w.eq(Replicate(rs2, 4)),
            wr_w.we.eq(Mux(load & (region == R_WR) & (index < (NG + NF) * H // 4),
                           1 << index[:2], 0)),
            bias_w.adr.eq(index), bias_w.dat_w.eq(rs2),
            bias_w.we.eq(load & (region == R_BIAS) & (index < NG + NF)),
            lut_w.adr.eq(index), lut_w.dat_w.eq(rs2[:16]),
            lut_w.we.eq(load & (region == R_LUT) & (index < 2 * LUT_N)),
        ]
        self.sync += If(load & (region == R_CFG) & (index == 0),
                        sx.eq(rs2[0:6]), sh.eq(rs2[8:14]), so.eq(rs2[16:22]))

        # ---- decode ----
        s_page, s_hb, s_lim, s_v = Signal(16), Signal(8), Signal((32, True)), Signal((32, True))
        sel = Signal(16)
        fsm.act("IDLE", If(take, Case(funct3, {
            OP_RUN: If(Cat(rs2[16:24], 0) != last_seq, NextState("STATE")).Else(done.eq(1)),
            OP_SCORE: NextState("SCORE"),
            OP_GET: NextState("GET"),
            OP_READ: NextState("READ"),
            "default": done.eq(1),
        })))
        self.sync += If(take,
            rsp_data.eq(Mux(funct3 == OP_INFO, INFO, 0)),
            s_page.eq(rs1[:16]), s_hb.eq(rs1[16:24]), s_lim.eq(rs2), sel.eq(rs1[:16]),
            If(funct3 == OP_RESET, valid.eq(0), tn.eq(0), last_seq.eq(0x100)),
            If(funct3 == OP_RUN,
                stream.eq(rs2[8:15]), last_seq.eq(rs2[16:24]),
                *[xin[i].eq(rs1[6 * i:6 * i + 6]) for i in range(5)], xin[5].eq(rs2[:6])))

        # ---- RUN 1: the stream's state (zero unless written since RESET) ----
        cnt = Signal(8)
        live = Signal()
        self.comb += [st_r.adr.eq(stream), live.eq((valid >> stream)[0])]
        fsm.act("STATE", NextState("STATE2"))
        fsm.act("STATE2", NextState("AX"))
        self.sync += If(in_("STATE2"),
            tn.eq(0),
            *[hreg[i].eq(Mux(live, st_r.dat_r[8 * i:8 * i + 8], 0)) for i in range(H)],
            *[creg[i].eq(Mux(live, st_r.dat_r[8 * H + 16 * i:8 * H + 16 * i + 16], 0))
              for i in range(H)])

        # ---- RUN 2: input sums, 8 lanes; wx word = xin[i] * 8 + group ----
        grp, inp = Signal(3), Signal(3)
        acc = [Signal((12, True), name=f"acc{i}") for i in range(8)]
        lane = [Signal((8, True), name=f"wxl{i}") for i in range(8)]
        a_v, a_first, a_last, a_grp = Signal(), Signal(), Signal(), Signal(3)
        self.comb += [wx_r.adr.eq(Cat(grp, xin[inp]))]
        self.comb += [lane[i].eq(wx_r.dat_r[8 * i:8 * i + 8]) for i in range(8)]
        self.sync += [
            a_v.eq(in_("AX")), a_first.eq(inp == 0), a_last.eq(inp == N_X - 1), a_grp.eq(grp),
            If(a_v, *[acc[i].eq(Mux(a_first, 0, acc[i]) + lane[i]) for i in range(8)]),
        ]
        self.comb += [ax_w.adr.eq(a_grp), ax_w.we.eq(a_v & a_last),
                      ax_w.dat_w.eq(Cat(*[(acc[i] + lane[i])[:12] for i in range(8)]))]
        fsm.act("AX",
            If(inp == N_X - 1,
                NextValue(inp, 0), NextValue(grp, grp + 1),
                If(grp == NG // 8 - 1, NextState("AXDRAIN"))
            ).Else(NextValue(inp, inp + 1)))
        fsm.act("AXDRAIN", NextValue(cnt, 0), NextState("GATES"))

        # ---- shared row pipeline (gates and outputs): stage 0 issues row j (W row, bias,
        # input sum); 1: 16 products; 2: dot, round-shifts, bias -> z or w; 3: activation
        # address; 4: activation -> RAM ----
        gates, outs, cell = in_("GATES"), in_("OUTS"), in_("CELL")
        issue = Signal()
        p1_v, p2_v, p3_v, p4_v = Signal(), Signal(), Signal(), Signal()
        p1_j, p2_j, p3_j, p4_j = Signal(8), Signal(8), Signal(8), Signal(8)
        self.comb += [
            issue.eq((gates & (cnt < NG)) | (outs & (cnt < NF))),
            wr_r.adr.eq(Mux(outs, NG + cnt, cnt)),
            bias_r.adr.eq(Mux(outs, NG + cnt, cnt)),
            ax_r.adr.eq(cnt[3:6]),
        ]
        self.sync += [p1_v.eq(issue), p1_j.eq(cnt), p2_v.eq(p1_v), p2_j.eq(p1_j),
                      p3_v.eq(p2_v), p3_j.eq(p2_j), p4_v.eq(p3_v), p4_j.eq(p3_j)]
        wrow = [Signal((8, True), name=f"wrow{i}") for i in range(H)]
        prods = [Signal((16, True), name=f"prod{i}") for i in range(H)]
        self.comb += [wrow[i].eq(wr_r.dat_r[8 * i:8 * i + 8]) for i in range(H)]
        ax_lane, ax1, b1 = Signal((12, True)), Signal((12, True)), Signal((32, True))
        self.comb += ax_lane.eq(Array(ax_r.dat_r[12 * i:12 * i + 12] for i in range(8))[p1_j[:3]])
        self.sync += If(p1_v, *[prods[i].eq(wrow[i] * hreg[i]) for i in range(H)],
                        ax1.eq(ax_lane), b1.eq(bias_r.dat_r))
        dot = Signal((22, True))
        self.comb += dot.eq(sum(prods))
        z_ax, z_ah, w_o = (_rsr_var(self, v, n) for v, n in ((ax1, sx), (dot, sh), (dot, so)))
        z2 = Signal((32, True))
        zsum, wsum = Signal((40, True)), Signal((40, True))
        self.comb += [zsum.eq(z_ax + z_ah + b1), wsum.eq(w_o + b1)]
        self.sync += [If(p2_v & gates, z2.eq(zsum[:32])),
                      If(p2_v & outs, wreg[p2_j[:5]].eq(wsum[:32]))]
        c_new = Signal((16, True))
        tanh_gate = Signal()
        self.comb += [
            tanh_gate.eq(p3_j[4:6] == 2),
            If(cell, lut_r.adr.eq(LUT_N + _lut_index(self, c_new))).Else(
                lut_r.adr.eq(Cat(_lut_index(self, z2), tanh_gate))),
            act_w.adr.eq(p4_j[:4]), act_w.dat_w.eq(Replicate(lut_r.dat_r, 4)),
            act_w.we.eq(Mux(p4_v & gates, 1 << p4_j[4:6], 0)),
        ]
        fsm.act("GATES", NextValue(cnt, cnt + 1),
                If(cnt == NG + 4, NextValue(cnt, 0), NextState("CELL")))

        # ---- RUN 4: the cell, one unit a cycle: 0 activations read; 1 c'; 2 tanh(c')
        # address; 3 h' ----
        c1_v, c2_v, c3_v = Signal(), Signal(), Signal()
        c1_j, c2_j, c3_j = Signal(4), Signal(4), Signal(4)
        ig, fg, gg, og = (Signal((16, True), name=n) for n in ("ig", "fg", "gg", "og"))
        og1, og2, tanh_c = Signal((16, True)), Signal((16, True)), Signal((16, True))
        self.comb += [act_r.adr.eq(cnt[:4]),
                      ig.eq(act_r.dat_r[0:16]), fg.eq(act_r.dat_r[16:32]),
                      gg.eq(act_r.dat_r[32:48]), og.eq(act_r.dat_r[48:64]),
                      tanh_c.eq(lut_r.dat_r)]
        csum = Signal((34, True))
        self.comb += csum.eq(_rsr_const(self, fg * creg[c1_j], 12) + _rsr_const(self, ig * gg, 12))
        hsh = _rsr_const(self, og2 * tanh_c, 17)
        self.sync += [
            c1_v.eq(cell & (cnt < H)), c1_j.eq(cnt[:4]),
            c2_v.eq(c1_v), c2_j.eq(c1_j), c3_v.eq(c2_v), c3_j.eq(c2_j),
            og1.eq(og), og2.eq(og1),
            If(c1_v, c_new.eq(_clamp(csum, 32767)), creg[c1_j].eq(_clamp(csum, 32767))),
            If(c3_v, hreg[c3_j].eq(_clamp(hsh, 127))),
        ]
        fsm.act("CELL", NextValue(cnt, cnt + 1),
                If(cnt == H + 3, NextValue(cnt, 0), NextState("OUTS")))

        # ---- RUN 5: outputs (the row pipeline again), then write-back ----
        fsm.act("OUTS", NextValue(cnt, cnt + 1), If(cnt == NF + 3, NextState("WB")))
        self.comb += [st_w.adr.eq(stream), st_w.dat_w.eq(Cat(*hreg, *creg)),
                      st_w.we.eq(in_("WB"))]
        fsm.act("WB", done.eq(1), NextState("IDLE"))
        self.sync += If(in_("WB"), valid.eq(valid | (1 << stream)))

        # ---- SCORE: v from the w registers (cycle 1), insertion (cycle 2) ----
        pop, dbk = Signal(4), Signal(3)
        dist, vsum = Signal((34, True)), Signal((36, True))
        self.comb += [
            pop.eq(sum(s_hb[i] for i in range(8))),
            dist.eq(s_lim - 1 - s_page),
            dbk.eq(sum(dist >= e for e in DIST_EDGES)),
            vsum.eq(wreg[s_hb[:4]] + wreg[(F_POP - 1 + pop)[:5]] + wreg[F_DIST + dbk]
                    + Mux(s_page == 0, wreg[F_SINK], 0)),
        ]
        fsm.act("SCORE", NextValue(s_v, vsum[:32]), NextState("INSERT"))
        beats = [Signal(name=f"beat{i}") for i in range(K_MAX)]   # entry i ranks above
        dup = Signal()
        self.comb += [beats[i].eq((i < tn) & ((tv[i] > s_v) | ((tv[i] == s_v) & (tp[i] < s_page))))
                      for i in range(K_MAX)]
        self.comb += dup.eq(Cat(*[(i < tn) & (tp[i] == s_page) for i in range(K_MAX)]) != 0)
        shift = []
        for i in range(K_MAX):
            first = ~beats[i] & (beats[i - 1] if i else 1)   # the new entry's place
            shift.append(If(first, tv[i].eq(s_v), tp[i].eq(s_page)).Elif(
                ~beats[i], tv[i].eq(tv[i - 1] if i else s_v), tp[i].eq(tp[i - 1] if i else s_page)))
        fsm.act("INSERT", done.eq(1), NextState("IDLE"))
        self.sync += If(in_("INSERT"), rsp_data.eq(s_v),
                        If(~dup, *shift, If(tn < K_MAX, tn.eq(tn + 1))))

        # ---- GET / READ ----
        fsm.act("GET", done.eq(1), NextState("IDLE"))
        self.sync += If(in_("GET"),
                        rsp_data.eq(Mux(sel < tn, Array(tp)[sel[:5]], 0xFFFFFFFF)))
        fsm.act("READ", done.eq(1), NextState("IDLE"))
        self.sync += If(in_("READ"),
                        If(sel[:6] < READ_H, rsp_data.eq(wreg[sel[:5]])).Elif(
                           sel[:6] < READ_C, rsp_data.eq(hreg[sel[:4]])).Else(
                           rsp_data.eq(creg[sel[:4]])))

    def ios(self):
        """The CFU bus signals, named as VexRiscv's ``Cfu`` module names its ports."""
        c, r = self.bus.cmd, self.bus.rsp
        sigs = [c.valid, c.ready, c.payload.function_id, c.payload.inputs_0, c.payload.inputs_1,
                r.valid, r.ready, r.payload.outputs_0]
        for s in sigs:
            s.name_override = s.backtrace[-1][0].removeprefix("bus_")
        return set(sigs)


def verilog(module_name="Cfu"):
    """The unit as a stand-alone Verilog module with LiteX ``add_cfu``'s ports (``clk``,
    ``reset``, ``cmd_*``, ``rsp_*``)."""
    from migen import ClockDomain
    from migen.fhdl.verilog import convert
    m = LstmCfu()
    m.clock_domains.cd_sys = cd = ClockDomain("sys")
    cd.clk.name_override, cd.rst.name_override = "clk", "reset"
    return str(convert(m, ios=m.ios() | {cd.clk, cd.rst}, name=module_name,
                       create_clock_domains=False))


def write_verilog(folder):
    """Write ``Cfu.v`` into ``folder/<content hash>/`` (atomically: parallel builds may
    write the same file) and return its path."""
    import hashlib
    import os
    from pathlib import Path
    text = "\n".join(line for line in verilog().splitlines()
                     if not line.startswith("// Auto-generated by Migen")) + "\n"
    out = Path(folder) / hashlib.sha256(text.encode()).hexdigest()[:12] / "Cfu.v"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return out


def _clamp(v, m):
    return Mux(v < -m, -m, Mux(v > m, m, v))


def _lut_index(mod, z):
    """clamp((z >> 7) + LUT_N / 2, 0, LUT_N - 1): 9 bits."""
    t, r = Signal((len(z) + 2, True)), Signal(9)
    mod.comb += [t.eq((z >> 7) + LUT_N // 2),
                 r.eq(Mux(t < 0, 0, Mux(t > LUT_N - 1, LUT_N - 1, t)))]
    return r


def _rsr_const(mod, v, n):
    r = Signal((36, True))
    mod.comb += r.eq((v + (1 << (n - 1))) >> n)
    return r


def _rsr_var(mod, v, n):
    """rshift_round(v, n) for a signed 6-bit run-time shift n, wrapped to 32 bits as the
    firmware's int32."""
    amt, wide, r = Signal(6), Signal((72, True)), Signal((32, True))
    one = Constant(1, (72, True))
    mod.comb += [
        amt.eq(Mux(n < 0, -n, n)),
        wide.eq(Mux(n <= 0, v << amt, (v + ((one << amt) >> 1)) >> amt)),
        r.eq(wide[:32]),
    ]
    return r
