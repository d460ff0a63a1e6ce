"""Round-robin arbiter for streams of single-beat messages."""

from migen import Array, If, Module, Mux, Signal

from litex.soc.interconnect import stream


class RoundRobin(Module):
    """``n`` sinks -> one source. Each beat is a whole message; the grant moves round-robin
    after every accepted beat, and a beat presented but not accepted keeps the grant (the
    source stays stable under back-pressure).

    The grant is a register: each sink's ``ready`` is the source's ``ready`` and a compare
    of that register, and the source's ``valid`` is the granted sink's. No path runs from a
    sink's ``valid`` to any sink's ``ready`` (arbiters in series, as the SoC's host lines
    into the bridge's output, would chain them). The price: a message arriving while the
    grant rests on an idle sink waits one cycle for the grant to move to it; a busy sink
    keeps the grant, and after an accepted beat the grant moves straight to the next sink
    already waiting, so throughput is one message a cycle.
    """

    def __init__(self, layout, n):
        if n < 2:
            raise ValueError(f"an arbiter needs at least 2 inputs, got {n}")
        self.sinks = [stream.Endpoint(layout) for _ in range(n)]
        self.source = source = stream.Endpoint(layout)
        valid = [s.valid for s in self.sinks]
        sel = Signal(max=n)
        # prio[g]: the first sink after g (round robin) that is valid, else g itself.
        prio = []
        for start in range(n):
            order = [(start + 1 + k) % n for k in range(n)]
            expr = order[-1]
            for idx in reversed(order[:-1]):
                expr = Mux(valid[idx], idx, expr)
            prio.append(expr)
        nxt = Signal(max=n)
        self.comb += nxt.eq(Array(prio)[sel])
        cases = None
        for i, s in enumerate(self.sinks):
            stmt = s.connect(source)
            cases = If(sel == i, *stmt) if cases is None else cases.Elif(sel == i, *stmt)
        self.comb += cases
        self.sync += If((source.valid & source.ready) | ~Array(valid)[sel], sel.eq(nxt))

