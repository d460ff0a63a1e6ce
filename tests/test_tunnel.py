"""The Wishbone message tunnel (gateware/bridge/tunnel.py) in Migen simulation: messages a
Wishbone master pushes come out on the h2d side whole, d2h messages are read back whole and
popped, a write to the staging area waits while a pushed message has not been taken."""

import random

from migen import Module, Record
from migen.sim import run_simulation

from gateware.bridge import tunnel as T


class Harness(Module):
    def __init__(self):
        self.pads = Record(T.BRIDGE_PADS_LAYOUT)
        self.submodules.dut = T.MessageTunnel(self.pads)


def _words(value, n):
    return [(value >> (32 * i)) & 0xFFFFFFFF for i in range(n)]


def test_messages_both_ways_with_stalls():
    rng = random.Random(7)
    h = Harness()
    bus, pads = h.dut.bus, h.pads
    sent = [(rng.getrandbits(128), rng.getrandbits(512)) for _ in range(6)]
    replies = [(rng.getrandbits(128), rng.getrandbits(512)) for _ in range(6)]
    got_h2d, got_d2h, log = [], [], {}

    def master():
        assert (yield from bus.read(T.ID)) == T.TUNNEL_ID
        for hdr, data in sent:
            for i, w in enumerate(_words(hdr, 4) + _words(data, 16)):
                yield from bus.write(T.H2D_HDR + i, w)
            yield from bus.write(T.H2D_PUSH, 1)
        # Drain the device's messages: STATUS, then the head, then POP.
        while len(got_d2h) < len(replies):
            st = yield from bus.read(T.D2H_STATUS)
            if not st & 1:
                continue
            words = []
            for i in range(20):
                words.append((yield from bus.read(T.D2H_HDR + i)))
            got_d2h.append((sum(w << (32 * i) for i, w in enumerate(words[:4])),
                            sum(w << (32 * i) for i, w in enumerate(words[4:]))))
            yield from bus.write(T.D2H_POP, 1)
        log["master_done"] = True

    def endpoint():
        # h2d: accept with random stalls; record how long a pushed message waited.
        held = 0
        while len(got_h2d) < len(sent):
            ready = rng.random() < 0.2
            yield pads.h2d_ready.eq(ready)
            yield
            if (yield pads.h2d_valid):
                if ready:
                    got_h2d.append(((yield pads.h2d_hdr), (yield pads.h2d_data)))
                else:
                    held += 1
        yield pads.h2d_ready.eq(0)
        log["held"] = held

    def device():
        # d2h: offer messages when it pleases; keep each until taken.
        for hdr, data in replies:
            for _ in range(rng.randrange(0, 30)):
                yield
            yield pads.d2h_hdr.eq(hdr)
            yield pads.d2h_data.eq(data)
            yield pads.d2h_valid.eq(1)
            yield
            while not (yield pads.d2h_ready):
                yield
            yield pads.d2h_valid.eq(0)

    def watchdog():
        for _ in range(200_000):
            if log.get("master_done"):
                return
            yield
        raise AssertionError("tunnel simulation did not finish")

    run_simulation(h, [master(), endpoint(), device(), watchdog()])
    assert got_h2d == sent
    assert got_d2h == replies
    assert log["held"] > 0  # the endpoint did stall pushed messages, and nothing was lost


def test_status_reports_pending_push():
    h = Harness()
    bus, pads = h.dut.bus, h.pads
    seen = {}

    def master():
        yield from bus.write(T.H2D_HDR, 0x1234)
        yield from bus.write(T.H2D_PUSH, 1)
        seen["pending"] = (yield from bus.read(T.H2D_PUSH))
        seen["status"] = (yield from bus.read(T.D2H_STATUS))
        yield pads.h2d_ready.eq(1)
        yield
        yield
        yield pads.h2d_ready.eq(0)
        seen["after"] = (yield from bus.read(T.H2D_PUSH))
        seen["unmapped"] = (yield from bus.read(0x3c))

    run_simulation(h, master())
    assert seen == {"pending": 1, "status": 0b10, "after": 0, "unmapped": 0}
