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
        self._storage()
        self._commands()
        self._run_front()
        self._row_pipeline()
        self._cell_and_writeback()
        self._score_and_list()

    def _storage(self):
        """Block RAMs, their ports and the unit's registers."""
        self.bus = bus = Record(CFU_LAYOUT)
        self.cmd, self.rsp = bus.cmd, bus.rsp
        self.funct3 = self.cmd.payload.function_id[:3]
        self.rs1, self.rs2 = self.cmd.payload.inputs_0, self.cmd.payload.inputs_1

        # ---- storage ----
        wx = Memory(64, NX_ROWS * NG // 8, name="lstm_wx")           # row * 8 + group: 8 int8
        wr = Memory(128, 128, name="lstm_wr")                   # W_h rows 0..63, W_o 64..95
        bias = Memory(32, NG + NF, name="lstm_bias")            # b then b_o
        lut = Memory(16, 2 * LUT_N, name="lstm_lut")            # sigmoid then tanh
        axm = Memory(8 * 12, NG // 8, name="lstm_ax")           # input sums, 8 x 12 bits
        actm = Memory(4 * 16, H, name="lstm_act")               # per unit: i, f, g, o
        state = Memory(H * 8 + H * 16, STREAMS, name="lstm_state")  # per stream: h, c
        self.specials += wx, wr, bias, lut, axm, actm, state
        self.wx_w = wx.get_port(write_capable=True, we_granularity=32)
        self.wr_w = wr.get_port(write_capable=True, we_granularity=32)
        self.bias_w = bias.get_port(write_capable=True)
        self.lut_w = lut.get_port(write_capable=True)
        self.wx_r, self.wr_r = wx.get_port(), wr.get_port()
        self.bias_r, self.lut_r = bias.get_port(), lut.get_port()
        self.ax_w, self.ax_r = axm.get_port(write_capable=True), axm.get_port()
        self.act_w, self.act_r = actm.get_port(write_capable=True, we_granularity=16), actm.get_port()
        self.st_w, self.st_r = state.get_port(write_capable=True), state.get_port()
        self.specials += (self.wx_w, self.wr_w, self.bias_w, self.lut_w, self.wx_r, self.wr_r,
                          self.bias_r, self.lut_r, self.ax_w, self.ax_r, self.act_w, self.act_r,
                          self.st_w, self.st_r)

        self.valid = Signal(STREAMS)                   # stream state written since the last RESET
        self.sx, self.sh, self.so = (Signal((6, True), name=n) for n in ("sx", "sh", "so"))
        self.hreg = Array(Signal((8, True), name=f"h{i}") for i in range(H))
        self.creg = Array(Signal((16, True), name=f"c{i}") for i in range(H))
        self.wreg = Array(Signal((32, True), name=f"w{i}") for i in range(NF))
        self.tv = [Signal((32, True), name=f"tv{i}") for i in range(K_MAX)]   # list: scores
        self.tp = [Signal(16, name=f"tp{i}") for i in range(K_MAX)]           # list: pages
        self.tn = Signal(max=K_MAX + 1)                                       # list: entries
        self.last_seq = Signal(9, reset=0x100)         # 0x100: no RUN since reset
        self.stream = Signal(max=STREAMS)
        self.xin = Array(Signal(6, name=f"x{i}") for i in range(N_X))

        self.fsm = FSM(reset_state="IDLE")
        self.submodules.fsm = self.fsm
        self.in_ = self.fsm.ongoing

    def _commands(self):
        """Command intake, the response register, OP_LOAD and the decode."""
        # ---- command / response ----
        self.rsp_data = Signal(32)
        take, self.done = Signal(), Signal()
        self.comb += [
            self.cmd.ready.eq(self.in_("IDLE") & ~self.rsp.valid),
            take.eq(self.cmd.valid & self.cmd.ready),
            self.rsp.payload.outputs_0.eq(self.rsp_data),
        ]
        self.sync += If(self.done, self.rsp.valid.eq(1)).Elif(self.rsp.ready, self.rsp.valid.eq(0))

        # ---- OP_LOAD: written in the cycle the command is taken ----
        region, index = self.rs1[16:19], self.rs1[:16]
        load = Signal()
        self.comb += [
            load.eq(take & (self.funct3 == OP_LOAD)),
            self.wx_w.adr.eq(index[1:]), self.wx_w.dat_w.eq(Replicate(self.rs2, 2)),
            self.wx_w.we.eq(Mux(load & (region == R_WX) & (index < NX_ROWS * NG // 4),
                           Mux(index[0], 0b10, 0b01), 0)),
            self.wr_w.adr.eq(index[2:]), self.wr_w.dat_w.eq(Replicate(self.rs2, 4)),
            self.wr_w.we.eq(Mux(load & (region == R_WR) & (index < (NG + NF) * H // 4),
                           1 << index[:2], 0)),
            self.bias_w.adr.eq(index), self.bias_w.dat_w.eq(self.rs2),
            self.bias_w.we.eq(load & (region == R_BIAS) & (index < NG + NF)),
            self.lut_w.adr.eq(index), self.lut_w.dat_w.eq(self.rs2[:16]),
            self.lut_w.we.eq(load & (region == R_LUT) & (index < 2 * LUT_N)),
        ]
        self.sync += If(load & (region == R_CFG) & (index == 0),
                        self.sx.eq(self.rs2[0:6]), self.sh.eq(self.rs2[8:14]), self.so.eq(self.rs2[16:22]))

        # ---- decode ----
        self.s_page, self.s_hb, self.s_lim, self.s_v = Signal(16), Signal(8), Signal((32, True)), Signal((32, True))
        self.sel = Signal(16)
        self.fsm.act("IDLE", If(take, Case(self.funct3, {
            OP_RUN: If(Cat(self.rs2[16:24], 0) != self.last_seq, NextState("STATE")).Else(self.done.eq(1)),
            OP_SCORE: NextState("SCORE"),
            OP_GET: NextState("GET"),
            OP_READ: NextState("READ"),
            "default": self.done.eq(1),
        })))
        self.sync += If(take,
            self.rsp_data.eq(Mux(self.funct3 == OP_INFO, INFO, 0)),
            self.s_page.eq(self.rs1[:16]), self.s_hb.eq(self.rs1[16:24]), self.s_lim.eq(self.rs2), self.sel.eq(self.rs1[:16]),
            If(self.funct3 == OP_RESET, self.valid.eq(0), self.tn.eq(0), self.last_seq.eq(0x100)),
            If(self.funct3 == OP_RUN,
                self.stream.eq(self.rs2[8:15]), self.last_seq.eq(self.rs2[16:24]),
                *[self.xin[i].eq(self.rs1[6 * i:6 * i + 6]) for i in range(5)], self.xin[5].eq(self.rs2[:6])))

    def _run_front(self):
        """RUN's first steps: the stream's state, then the input sums."""
        # ---- RUN 1: the stream's state (zero unless written since RESET) ----
        self.cnt = Signal(8)
        live = Signal()
        self.comb += [self.st_r.adr.eq(self.stream), live.eq((self.valid >> self.stream)[0])]
        self.fsm.act("STATE", NextState("STATE2"))
        self.fsm.act("STATE2", NextState("AX"))
        self.sync += If(self.in_("STATE2"),
            self.tn.eq(0),
            *[self.hreg[i].eq(Mux(live, self.st_r.dat_r[8 * i:8 * i + 8], 0)) for i in range(H)],
            *[self.creg[i].eq(Mux(live, self.st_r.dat_r[8 * H + 16 * i:8 * H + 16 * i + 16], 0))
              for i in range(H)])

        # ---- RUN 2: input sums, 8 lanes; wx word = xin[i] * 8 + group ----
        grp, inp = Signal(3), Signal(3)
        acc = [Signal((12, True), name=f"acc{i}") for i in range(8)]
        lane = [Signal((8, True), name=f"wxl{i}") for i in range(8)]
        a_v, a_first, a_last, a_grp = Signal(), Signal(), Signal(), Signal(3)
        self.comb += [self.wx_r.adr.eq(Cat(grp, self.xin[inp]))]
        self.comb += [lane[i].eq(self.wx_r.dat_r[8 * i:8 * i + 8]) for i in range(8)]
        self.sync += [
            a_v.eq(self.in_("AX")), a_first.eq(inp == 0), a_last.eq(inp == N_X - 1), a_grp.eq(grp),
            If(a_v, *[acc[i].eq(Mux(a_first, 0, acc[i]) + lane[i]) for i in range(8)]),
        ]
        self.comb += [self.ax_w.adr.eq(a_grp), self.ax_w.we.eq(a_v & a_last),
                      self.ax_w.dat_w.eq(Cat(*[(acc[i] + lane[i])[:12] for i in range(8)]))]
        self.fsm.act("AX",
            If(inp == N_X - 1,
                NextValue(inp, 0), NextValue(grp, grp + 1),
                If(grp == NG // 8 - 1, NextState("AXDRAIN"))
            ).Else(NextValue(inp, inp + 1)))
        self.fsm.act("AXDRAIN", NextValue(self.cnt, 0), NextState("GATES"))

    def _row_pipeline(self):
        """The row pipeline shared by the gates and the outputs."""
        # ---- shared row pipeline (gates and outputs): stage 0 issues row j (W row, bias,
        # input sum); 1: 16 products; 2: dot, round-shifts, bias -> z or w; 3: activation
        # address; 4: activation -> RAM ----
        gates, outs, self.cell = self.in_("GATES"), self.in_("OUTS"), self.in_("CELL")
        issue = Signal()
        p1_v, p2_v, p3_v, p4_v = Signal(), Signal(), Signal(), Signal()
        p1_j, p2_j, p3_j, p4_j = Signal(8), Signal(8), Signal(8), Signal(8)
        self.comb += [
            issue.eq((gates & (self.cnt < NG)) | (outs & (self.cnt < NF))),
            self.wr_r.adr.eq(Mux(outs, NG + self.cnt, self.cnt)),
            self.bias_r.adr.eq(Mux(outs, NG + self.cnt, self.cnt)),
            self.ax_r.adr.eq(self.cnt[3:6]),
        ]
        self.sync += [p1_v.eq(issue), p1_j.eq(self.cnt), p2_v.eq(p1_v), p2_j.eq(p1_j),
                      p3_v.eq(p2_v), p3_j.eq(p2_j), p4_v.eq(p3_v), p4_j.eq(p3_j)]
        wrow = [Signal((8, True), name=f"wrow{i}") for i in range(H)]
        prods = [Signal((16, True), name=f"prod{i}") for i in range(H)]
        self.comb += [wrow[i].eq(self.wr_r.dat_r[8 * i:8 * i + 8]) for i in range(H)]
        ax_lane, ax1, b1 = Signal((12, True)), Signal((12, True)), Signal((32, True))
        self.comb += ax_lane.eq(Array(self.ax_r.dat_r[12 * i:12 * i + 12] for i in range(8))[p1_j[:3]])
        self.sync += If(p1_v, *[prods[i].eq(wrow[i] * self.hreg[i]) for i in range(H)],
                        ax1.eq(ax_lane), b1.eq(self.bias_r.dat_r))
        dot = Signal((22, True))
        self.comb += dot.eq(sum(prods))
        z_ax, z_ah, w_o = (_rsr_var(self, v, n) for v, n in ((ax1, self.sx), (dot, self.sh), (dot, self.so)))
        z2 = Signal((32, True))
        zsum, wsum = Signal((40, True)), Signal((40, True))
        self.comb += [zsum.eq(z_ax + z_ah + b1), wsum.eq(w_o + b1)]
        self.sync += [If(p2_v & gates, z2.eq(zsum[:32])),
                      If(p2_v & outs, self.wreg[p2_j[:5]].eq(wsum[:32]))]
        self.c_new = Signal((16, True))
        tanh_gate = Signal()
        self.comb += [
            tanh_gate.eq(p3_j[4:6] == 2),
            If(self.cell, self.lut_r.adr.eq(LUT_N + _lut_index(self, self.c_new))).Else(
                self.lut_r.adr.eq(Cat(_lut_index(self, z2), tanh_gate))),
            self.act_w.adr.eq(p4_j[:4]), self.act_w.dat_w.eq(Replicate(self.lut_r.dat_r, 4)),
            self.act_w.we.eq(Mux(p4_v & gates, 1 << p4_j[4:6], 0)),
        ]
        self.fsm.act("GATES", NextValue(self.cnt, self.cnt + 1),
                If(self.cnt == NG + 4, NextValue(self.cnt, 0), NextState("CELL")))

    def _cell_and_writeback(self):
        """The cell, the outputs' sequencing and the state write-back."""
        # ---- RUN 4: the cell, one unit a cycle: 0 activations read; 1 c'; 2 tanh(c')
        # address; 3 h' ----
        c1_v, c2_v, c3_v = Signal(), Signal(), Signal()
        c1_j, c2_j, c3_j = Signal(4), Signal(4), Signal(4)
        ig, fg, gg, og = (Signal((16, True), name=n) for n in ("ig", "fg", "gg", "og"))
        og1, og2, tanh_c = Signal((16, True)), Signal((16, True)), Signal((16, True))
        self.comb += [self.act_r.adr.eq(self.cnt[:4]),
                      ig.eq(self.act_r.dat_r[0:16]), fg.eq(self.act_r.dat_r[16:32]),
                      gg.eq(self.act_r.dat_r[32:48]), og.eq(self.act_r.dat_r[48:64]),
                      tanh_c.eq(self.lut_r.dat_r)]
        csum = Signal((34, True))
        self.comb += csum.eq(_rsr_const(self, fg * self.creg[c1_j], 12) + _rsr_const(self, ig * gg, 12))
        hsh = _rsr_const(self, og2 * tanh_c, 17)
        self.sync += [
            c1_v.eq(self.cell & (self.cnt < H)), c1_j.eq(self.cnt[:4]),
            c2_v.eq(c1_v), c2_j.eq(c1_j), c3_v.eq(c2_v), c3_j.eq(c2_j),
            og1.eq(og), og2.eq(og1),
            If(c1_v, self.c_new.eq(_clamp(csum, 32767)), self.creg[c1_j].eq(_clamp(csum, 32767))),
            If(c3_v, self.hreg[c3_j].eq(_clamp(hsh, 127))),
        ]
        self.fsm.act("CELL", NextValue(self.cnt, self.cnt + 1),
                If(self.cnt == H + 3, NextValue(self.cnt, 0), NextState("OUTS")))

        # ---- RUN 5: outputs (the row pipeline again), then write-back ----
        self.fsm.act("OUTS", NextValue(self.cnt, self.cnt + 1), If(self.cnt == NF + 3, NextState("WB")))
        self.comb += [self.st_w.adr.eq(self.stream), self.st_w.dat_w.eq(Cat(*self.hreg, *self.creg)),
                      self.st_w.we.eq(self.in_("WB"))]
        self.fsm.act("WB", self.done.eq(1), NextState("IDLE"))
        self.sync += If(self.in_("WB"), self.valid.eq(self.valid | (1 << self.stream)))

    def _score_and_list(self):
        """SCORE and the sorted list; GET and READ."""
        # ---- SCORE: v from the w registers (cycle 1), insertion (cycle 2) ----
        pop, dbk = Signal(4), Signal(3)
        dist, vsum = Signal((34, True)), Signal((36, True))
        self.comb += [
            pop.eq(sum(self.s_hb[i] for i in range(8))),
            dist.eq(self.s_lim - 1 - self.s_page),
            dbk.eq(sum(dist >= e for e in DIST_EDGES)),
            vsum.eq(self.wreg[self.s_hb[:4]] + self.wreg[(F_POP - 1 + pop)[:5]] + self.wreg[F_DIST + dbk]
                    + Mux(self.s_page == 0, self.wreg[F_SINK], 0)),
        ]
        self.fsm.act("SCORE", NextValue(self.s_v, vsum[:32]), NextState("INSERT"))
        beats = [Signal(name=f"beat{i}") for i in range(K_MAX)]   # entry i ranks above
        dup = Signal()
        self.comb += [beats[i].eq((i < self.tn) & ((self.tv[i] > self.s_v) | ((self.tv[i] == self.s_v) & (self.tp[i] < self.s_page))))
                      for i in range(K_MAX)]
        self.comb += dup.eq(Cat(*[(i < self.tn) & (self.tp[i] == self.s_page) for i in range(K_MAX)]) != 0)
        shift = []
        for i in range(K_MAX):
            first = ~beats[i] & (beats[i - 1] if i else 1)   # the new entry's place
            shift.append(If(first, self.tv[i].eq(self.s_v), self.tp[i].eq(self.s_page)).Elif(
                ~beats[i], self.tv[i].eq(self.tv[i - 1] if i else self.s_v), self.tp[i].eq(self.tp[i - 1] if i else self.s_page)))
        self.fsm.act("INSERT", self.done.eq(1), NextState("IDLE"))
        self.sync += If(self.in_("INSERT"), self.rsp_data.eq(self.s_v),
                        If(~dup, *shift, If(self.tn < K_MAX, self.tn.eq(self.tn + 1))))

        # ---- GET / READ ----
        self.fsm.act("GET", self.done.eq(1), NextState("IDLE"))
        self.sync += If(self.in_("GET"),
                        self.rsp_data.eq(Mux(self.sel < self.tn, Array(self.tp)[self.sel[:5]], 0xFFFFFFFF)))
        self.fsm.act("READ", self.done.eq(1), NextState("IDLE"))
        self.sync += If(self.in_("READ"),
                        If(self.sel[:6] < READ_H, self.rsp_data.eq(self.wreg[self.sel[:5]])).Elif(
                           self.sel[:6] < READ_C, self.rsp_data.eq(self.hreg[self.sel[:4]])).Else(
                           self.rsp_data.eq(self.creg[self.sel[:4]])))

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
