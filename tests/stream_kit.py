"""Shared Migen simulation toolkit: stream drivers/collectors with seeded random valid/ready
throttling, a stream-protocol checker, a LiteDRAM native-port memory model and a watchdog.

Conventions (Migen simulator): a generator behaves like synchronous logic. Between two
``yield``s it reads the values of the current cycle and its writes take effect at the next
clock edge. A handshake happens in a cycle where ``valid`` and ``ready`` read 1.

Every random choice comes from a ``random.Random`` passed in, so a failing seed reproduces.
"""

import random

from migen.sim import passive


class SimTimeout(AssertionError):
    pass


class StreamProtocolError(AssertionError):
    pass


def payload_fields(ep):
    """Names of an endpoint's payload fields (its layout, without first/last/params)."""
    return [name for name, _ in ep.description.payload_layout]


def send(ep, items, rng=None, valid_prob=1.0):
    """Drive ``items`` (dicts field -> value) into a stream endpoint (DUT sink).

    Before each item, ``valid`` stays low for a random number of cycles (each cycle it goes up
    with probability ``valid_prob``); once up it holds, payload stable, until accepted.
    Returns after the last item's handshake cycle, with ``valid`` falling at that edge.
    """
    rng = rng or random.Random(0)
    for item in items:
        while valid_prob < 1.0 and rng.random() >= valid_prob:
            yield ep.valid.eq(0)
            yield
        yield ep.valid.eq(1)
        for k, v in item.items():
            yield getattr(ep, k).eq(v)
        yield
        while not (yield ep.ready):
            yield
    yield ep.valid.eq(0)


class Collector:
    """Passive consumer of a stream (DUT source) with random ``ready`` and a protocol check.

    ``items`` receives one dict per handshake (payload fields plus ``cycle``). The checker
    raises ``StreamProtocolError`` if ``valid`` drops, or the payload changes, while a beat
    waits for ``ready``.
    """

    def __init__(self, ep, rng=None, ready_prob=1.0):
        self.ep = ep
        self.rng = rng or random.Random(0)
        self.ready_prob = ready_prob
        self.items = []
        self.fields = payload_fields(ep)
        self.cycle = 0

    @passive
    def generator(self):
        ep = self.ep
        pending = None  # payload of a beat shown but not accepted in the previous cycle
        ready = self.rng.random() < self.ready_prob
        yield ep.ready.eq(ready)
        yield
        while True:
            self.cycle += 1
            valid = yield ep.valid
            if valid:
                payload = {}
                for k in self.fields:
                    payload[k] = yield getattr(ep, k)
            if pending is not None:
                if not valid:
                    raise StreamProtocolError(
                        "valid dropped before ready at cycle {}".format(self.cycle))
                if payload != pending:
                    raise StreamProtocolError("payload changed while stalled at cycle {}: {} -> {}"
                                              .format(self.cycle, pending, payload))
            if valid and ready:
                payload["cycle"] = self.cycle
                self.items.append(payload)
                pending = None
            elif valid:
                pending = payload
            else:
                pending = None
            ready = self.rng.random() < self.ready_prob
            yield ep.ready.eq(ready)
            yield


def send_frames(ep, frames, rng, p_valid=1.0, params=None):
    """Drive ``frames`` (lists of ``data`` beats) on ``ep``, ``last`` on each frame's final
    beat, ``valid`` asserted with probability ``p_valid`` per cycle (seeded). ``params``: one
    dict of endpoint params per frame (held for the whole frame)."""
    for f, beats in enumerate(frames):
        for k, v in (params[f] if params else {}).items():
            yield getattr(ep, k).eq(v)
        for i, d in enumerate(beats):
            while rng.random() >= p_valid:
                yield ep.valid.eq(0)
                yield
            yield ep.valid.eq(1)
            yield ep.data.eq(d)
            yield ep.last.eq(i == len(beats) - 1)
            yield
            while not (yield ep.ready):
                yield
    yield ep.valid.eq(0)
    yield ep.last.eq(0)


def collect_frames(ep, out, rng, p_ready=1.0):
    """Collect ``data`` beats from ``ep`` into ``out`` (a list of frames; a frame ends on
    ``last``), ``ready`` asserted with probability ``p_ready`` per cycle (seeded). Runs forever:
    wrap it in ``passive``."""
    cur = []
    while True:
        yield ep.ready.eq(int(rng.random() < p_ready))
        yield
        if (yield ep.valid) and (yield ep.ready):
            cur.append((yield ep.data))
            if (yield ep.last):
                out.append(cur)
                cur = []


class NativePortModel:
    """Passive LiteDRAM native-port memory model, seeded and randomly slow.

    ``read(addr, nbytes) -> bytes`` backs it (byte address = word address * dw/8, little
    endian). Per command: ``cmd.ready`` is high with probability ``cmd_ready_prob``; read data
    returns in order, ``latency`` = (min, max) cycles after the command, and each cycle a due
    beat is shown with probability ``rdata_prob`` (``rdata.ready`` is not waited for, like the
    LiteDRAM crossbar; with ``strict`` the model raises if the master is not ready). A read
    takes its data from memory when its command is accepted.
    ``extra_delay(word_addr) -> int or None`` adds cycles to one read (None = never answer:
    the port is dead from then on).
    Write commands are recorded in ``writes`` (word addresses). With ``write(addr, data)``
    given, their data beats are taken in order from ``wdata`` (``wdata.ready`` high with
    probability ``wdata_prob`` while a write waits for data) and stored under the byte
    enables ``wdata.we``; without it nothing is stored (a read-only master checks ``writes``
    stays empty).
    """

    def __init__(self, port, read, rng=None, latency=(1, 8), cmd_ready_prob=1.0,
                 rdata_prob=1.0, extra_delay=None, strict=True, write=None, wdata_prob=1.0):
        self.port = port
        self.read = read
        self.write = write
        self.wdata_prob = wdata_prob
        self.rng = rng or random.Random(0)
        self.latency = latency
        self.cmd_ready_prob = cmd_ready_prob
        self.rdata_prob = rdata_prob
        self.extra_delay = extra_delay
        self.strict = strict
        self.reads = []     # word addresses, in command order
        self.writes = []    # word addresses of write commands (a read-only master must not)
        self.cycle = 0

    @passive
    def generator(self):
        port, rng = self.port, self.rng
        nbytes = port.data_width // 8
        queue = []          # [due_cycle or None, data]
        wqueue = []         # word addresses of writes waiting for their data beat
        last_due = 0
        wready = False
        cmd_ready = rng.random() < self.cmd_ready_prob
        yield port.cmd.ready.eq(cmd_ready)
        yield
        while True:
            self.cycle += 1
            now = self.cycle
            # Command accepted in this cycle?
            if cmd_ready and (yield port.cmd.valid):
                addr = yield port.cmd.addr
                if (yield port.cmd.we):
                    self.writes.append(addr)
                    if self.write is not None:
                        wqueue.append(addr)
                else:
                    self.reads.append(addr)
                    lat = rng.randint(*self.latency)
                    extra = self.extra_delay(addr) if self.extra_delay else 0
                    if extra is None or last_due is None:
                        due = None
                    else:
                        due = max(now + lat + extra, last_due + 1)
                    last_due = due
                    data = int.from_bytes(self.read(addr * nbytes, nbytes), "little")
                    queue.append([due, data])
            # Write data taken in this cycle?
            if wready and (yield port.wdata.valid):
                waddr = wqueue.pop(0)
                data = (yield port.wdata.data).to_bytes(nbytes, "little")
                we = yield port.wdata.we
                old = bytearray(self.read(waddr * nbytes, nbytes))
                for k in range(nbytes):
                    if (we >> k) & 1:
                        old[k] = data[k]
                self.write(waddr * nbytes, bytes(old))
            wready = bool(wqueue) and rng.random() < self.wdata_prob
            yield port.wdata.ready.eq(wready)
            # Read data for the next cycle.
            show = (queue and queue[0][0] is not None and queue[0][0] <= now + 1
                    and rng.random() < self.rdata_prob)
            if show:
                _, data = queue.pop(0)
                yield port.rdata.data.eq(data)
            yield port.rdata.valid.eq(1 if show else 0)
            cmd_ready = rng.random() < self.cmd_ready_prob
            yield port.cmd.ready.eq(cmd_ready)
            yield
            if show and self.strict and not (yield port.rdata.ready):
                raise StreamProtocolError("native port rdata shown while master not ready")


@passive
def watchdog(cycles, what="simulation"):
    """Raise ``SimTimeout`` after ``cycles`` cycles (add to the generator list)."""
    for _ in range(cycles):
        yield
    raise SimTimeout("{} did not finish within {} cycles".format(what, cycles))


def wait_until(cond, limit=100000, what="condition"):
    """Yield cycles until the generator ``cond()`` yields True; SimTimeout after ``limit``."""
    for _ in range(limit):
        if (yield from cond()):
            return
        yield
    raise SimTimeout("{} not reached within {} cycles".format(what, limit))
