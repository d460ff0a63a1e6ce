"""Round-robin arbiter for streams of single-beat messages."""

from migen import Array, If, Module, Mux, Signal

from litex.soc.interconnect import stream


class RoundRobin(Module):
    """``n`` sinks -> one source. Each beat is a whole message; the grant moves round-robin
    after every accepted beat, and a beat presented but not accepted keeps the grant (the
    source stays stable under back-pressure)."""

    def __init__(self, layout, n):
        if n < 2:
            raise ValueError(f"an arbiter needs at least 2 inputs, got {n}")
        self.sinks = [stream.Endpoint(layout) for _ in range(n)]
        self.source = source = stream.Endpoint(layout)
        valid = [s.valid for s in self.sinks]
        last = Signal(max=n)
        held, held_sel, sel = Signal(), Signal(max=n), Signal(max=n)
        prio = []
        for start in range(n):
            order = [(start + 1 + k) % n for k in range(n)]
            expr = order[-1]
            for idx in reversed(order[:-1]):
                expr = Mux(valid[idx], idx, expr)
            prio.append(expr)
        self.comb += sel.eq(Mux(held, held_sel, Array(prio)[last]))
        cases = None
        for i, s in enumerate(self.sinks):
            stmt = s.connect(source)
            cases = If(sel == i, *stmt) if cases is None else cases.Elif(sel == i, *stmt)
        self.comb += cases
        self.sync += [
            held.eq(source.valid & ~source.ready),
            held_sel.eq(sel),
            If(source.valid & source.ready, last.eq(sel)),
        ]
