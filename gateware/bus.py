"""Wishbone helpers shared by the cores and the SoC."""

from migen import If, Module, Signal


class WishboneSlice(Module):
    """A registered Wishbone stage: ``master``'s cycle is re-issued on ``slave`` from
    registers one cycle later, and the slave's ack/err and read data come back registered
    one cycle after they arrive. Single cycles only (no bursts, no pipelining): the
    master holds ``cyc``/``stb`` until it sees ``ack`` or ``err``, as the bridge does."""

    def __init__(self, master, slave):
        busy = Signal()
        self.sync += [
            master.ack.eq(0),
            master.err.eq(0),
            If(~busy,
                # ``~ack & ~err``: the cycle the master sees its answer, it still requests.
                If(master.cyc & master.stb & ~master.ack & ~master.err,
                    busy.eq(1),
                    slave.cyc.eq(1), slave.stb.eq(1),
                    slave.adr.eq(master.adr), slave.we.eq(master.we),
                    slave.sel.eq(master.sel), slave.dat_w.eq(master.dat_w),
                )
            ).Elif(slave.ack | slave.err,
                busy.eq(0),
                slave.cyc.eq(0), slave.stb.eq(0),
                master.ack.eq(slave.ack), master.err.eq(slave.err),
                master.dat_r.eq(slave.dat_r),
            ),
        ]
