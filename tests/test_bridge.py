"""Bridge endpoint: Migen simulation against the reference model under random stalls."""

import random

import pytest
from migen import run_simulation
from migen.sim import passive
from migen.fhdl.verilog import convert

from gateware.bridge.core import BridgeEndpoint
from gateware.bridge.model import BridgeModel
from gateware.bridge.protocol import LINE, EndpointConfig, Message, Op, Status, Window
from tests.stream_kit import Collector, send

MEM = Window(0x1000, 0x400)        # 16 lines of device memory
CFG = Window(0x8000, 0x40)         # 16 config words
ERR_LINE = 0x1200                  # a line inside MEM whose bus access errors
ERR_CFG = 0x8020                   # a config word whose bus access errors


class BusMemory:
    """Word memory behind the endpoint's Wishbone master, with an error region."""
    def __init__(self, rng):
        self.words = {a: rng.getrandbits(32) for a in range(0, 0x10000, 4)}

    def is_err(self, addr):
        return ERR_LINE <= addr < ERR_LINE + LINE or addr == ERR_CFG

    def read(self, addr):
        return (0, True) if self.is_err(addr) else (self.words.get(addr, 0), False)

    def write(self, addr, value):
        if self.is_err(addr):
            return True
        self.words[addr] = value
        return False


def random_request(rng, tag):
    kind = rng.choice(["mem_rd", "mem_wr", "mem_rd", "mem_wr", "cfg_rd", "cfg_wr",
                       "mis_mem", "oor_mem", "mis_cfg", "oor_cfg", "err", "bad_op",
                       "page_rd", "page_rd", "page_mis", "xlate"])
    line = rng.randrange(MEM.base, MEM.base + MEM.size, LINE)
    data = bytes(rng.getrandbits(8) for _ in range(LINE))
    cfg = rng.randrange(CFG.base, CFG.base + CFG.size, 4)
    if kind == "mem_rd":
        return Message(Op.MEM_RD, tag, line)
    if kind == "mem_wr":
        return Message(Op.MEM_WR, tag, line, data=data)
    if kind == "cfg_rd":
        return Message(Op.CFG_RD, tag, cfg)
    if kind == "cfg_wr":
        return Message(Op.CFG_WR, tag, cfg, value=rng.getrandbits(32))
    if kind == "mis_mem":
        return Message(rng.choice([Op.MEM_RD, Op.MEM_WR]), tag, line + rng.choice([4, 32, 60]), data=data)
    if kind == "oor_mem":
        a = rng.choice([MEM.base - LINE, MEM.base + MEM.size, 0, 1 << 40])
        return Message(rng.choice([Op.MEM_RD, Op.MEM_WR]), tag, a, data=data)
    if kind == "mis_cfg":
        return Message(rng.choice([Op.CFG_RD, Op.CFG_WR]), tag, cfg + rng.choice([1, 2, 3]))
    if kind == "oor_cfg":
        return Message(rng.choice([Op.CFG_RD, Op.CFG_WR]), tag, rng.choice([CFG.base - 4, CFG.base + CFG.size]))
    if kind == "page_rd":
        return Message(Op.PAGE_RD, tag, LINE * rng.randrange(1 << 30), value=rng.getrandbits(32))
    if kind == "xlate":  # translate only: forwarded whatever its address
        return Message(Op.XLATE, tag, rng.getrandbits(64), value=rng.getrandbits(32))
    if kind == "page_mis":
        return Message(Op.PAGE_RD, tag, LINE * rng.randrange(1 << 30) + rng.choice([1, 8, 63]),
                       value=rng.getrandbits(32))
    if kind == "err":
        return rng.choice([Message(Op.MEM_RD, tag, ERR_LINE), Message(Op.MEM_WR, tag, ERR_LINE, data=data),
                           Message(Op.CFG_RD, tag, ERR_CFG), Message(Op.CFG_WR, tag, ERR_CFG, value=1)])
    return Message(rng.choice([0x00, 0x07, 0x7F, 0x81, 0xFF]), tag, line)


def engine_answer(vpn):
    """The test's stand-in page engine: a status, value and address that depend on the vpn."""
    return [(Status.OK, vpn >> 8, 64 * vpn), (Status.PAGE_FAULT, 1 + vpn % 4, 0),
            (Status.DMA_ERROR, 1 + vpn % 5, 0)][vpn % 3]


def first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"at {i}: got {g}, expected {w}"
    return f"{len(got)} messages, expected {len(want)}"


def check_response_order(requests, expected, got, forwarded_tags, answered):
    """Check ``got`` (responses in the order they left the endpoint) against the order the
    protocol defines, and return them in request order. gateware/bridge/README.md
    ("Behaviour") and model.py: requests are served in order, one response each, except a
    forwarded PageRd / XLATE, answered by a Cmp when the page engine answers (the engine may
    answer out of order: translations and faults overtake streaming pages). So:
    1. the responses the endpoint makes itself leave in request order;
    2. the Cmps of forwarded requests leave in the order the engine answered (``answered``:
       their tags in page_rsp handshake order);
    3. a forwarded request's Cmp leaves after the responses to every earlier request the
       endpoint answered itself (the request is forwarded only after those were sent).
    Requests' tags are unique, so a response is matched to its request by tag."""
    assert len({m.tag for m in requests}) == len(requests), "test requests need unique tags"
    own = [e for m, e in zip(requests, expected) if m.tag not in forwarded_tags]
    got_own = [g for g in got if g.tag not in forwarded_tags]
    assert got_own == own, "own responses not in request order: " + first_difference(got_own, own)
    by_tag = {m.tag: e for m, e in zip(requests, expected)}
    pages = [by_tag[t] for t in answered]
    got_pages = [g for g in got if g.tag in forwarded_tags]
    assert got_pages == pages, "page Cmps not in engine order: " + first_difference(got_pages, pages)
    pos = {g.tag: i for i, g in enumerate(got)}
    last_own = -1
    for m in requests:
        if m.tag in forwarded_tags:
            assert pos[m.tag] > last_own, f"Cmp of {m} overtook a response to an earlier request"
        else:
            last_own = pos[m.tag]
    return [got[pos[m.tag]] for m in requests]


def simulate(requests, seed, credits=4, stall=0.3, host_writes=(), with_pages=True):
    """Run the endpoint on ``requests`` (and device-initiated ``host_writes``, a list of
    (addr, data bytes, tag)); check the order of the responses (check_response_order) and
    return (responses in request order, model responses, memories); the host writes that
    came out are in ``simulate.host_writes``. The stand-in page engine answers its pending
    requests in random order."""
    rng = random.Random(seed)
    cfg = EndpointConfig(mem_windows=[MEM], cfg_windows=[CFG], credits=credits)
    dut = BridgeEndpoint(cfg, with_pages=with_pages)
    hw_mem, ref_mem = BusMemory(random.Random(seed)), BusMemory(random.Random(seed))
    model = BridgeModel(cfg, ref_mem.read, ref_mem.write, with_pages=with_pages)
    expected = []
    for m in requests:
        r = model.respond(m)
        if r is None:  # forwarded to the page engine, answered by it
            r = model.page_response(m.tag, *engine_answer(m.value))
        expected.append(r)
    forwarded = [m for m in requests if with_pages and (
                 (m.opcode == Op.PAGE_RD and m.addr % LINE == 0) or m.opcode == Op.XLATE)]
    got_preq = []
    simulate.page_requests = got_preq
    answered = []  # tags of the engine's answers, in page_rsp handshake order
    got = []
    got_hw = []
    simulate.host_writes = got_hw

    writes = [dict(addr=addr, data=int.from_bytes(data, "little"), tag=tag, nbytes=1 + tag % LINE)
              for addr, data, tag in host_writes]
    msgs = [dict(opcode=m.opcode, tag=m.tag, addr=m.addr, value=m.value, data=m.data_int(),
                 status=0) for m in requests]
    out = Collector(dut.source, rng, ready_prob=1 - stall)

    def until_all_out():
        limit = 200 * len(requests) + 50 * len(host_writes) + 1000
        for _ in range(limit):
            if len(out.items) >= len(requests) + len(host_writes):
                return
            yield
        raise AssertionError(f"{len(out.items)} of {len(requests) + len(host_writes)} "
                             f"messages out after {limit} cycles")

    @passive
    def bus_gen(bus, kind):
        while True:
            yield bus.ack.eq(0)
            yield bus.err.eq(0)
            yield
            if (yield bus.cyc) and (yield bus.stb):
                for _ in range(rng.choice([0, 0, 1, 3])):
                    yield
                addr = (yield bus.adr) * 4
                assert (kind == "mem") == (MEM.base <= addr < MEM.base + MEM.size), \
                    f"0x{addr:x} on the {kind} bus"
                if (yield bus.we):
                    err = hw_mem.write(addr, (yield bus.dat_w))
                else:
                    v, err = hw_mem.read(addr)
                    yield bus.dat_r.eq(v)
                yield (bus.err if err else bus.ack).eq(1)
                yield

    def engine_gen():
        """Takes page requests (random ready), answers each after a random delay, in random
        order."""
        pending = []
        while len(got_preq) < len(forwarded) or pending:
            if pending and rng.random() < 0.3:
                yield dut.page_req.ready.eq(0)  # not taking requests while answering
                tag, vpn = pending.pop(rng.randrange(len(pending)))
                st, val, addr = engine_answer(vpn)
                yield dut.page_rsp.valid.eq(1)
                yield dut.page_rsp.tag.eq(tag)
                yield dut.page_rsp.status.eq(st)
                yield dut.page_rsp.value.eq(val)
                yield dut.page_rsp.addr.eq(addr)
                yield
                while not (yield dut.page_rsp.ready):
                    yield
                yield dut.page_rsp.valid.eq(0)
                answered.append(tag)
                continue
            ready = rng.random() >= stall
            yield dut.page_req.ready.eq(ready)
            yield
            if ready and (yield dut.page_req.valid):
                t, v, a = (yield dut.page_req.tag), (yield dut.page_req.vpn), (yield dut.page_req.addr)
                got_preq.append((t, v, a, (yield dut.page_req.xlate)))
                pending.append((t, v))
        yield dut.page_req.ready.eq(0)

    run_simulation(dut, [send(dut.sink, msgs, rng, 1 - stall), out.generator(), until_all_out(),
                         bus_gen(dut.bus, "cfg"), bus_gen(dut.mem_bus, "mem"),
                         send(dut.host_write, writes, rng, 1 - stall), engine_gen()])
    for hdr in out.items:
        m = Message(hdr["opcode"], hdr["tag"], hdr["addr"], hdr["value"],
                    hdr["data"].to_bytes(LINE, "little"), hdr["status"])
        (got_hw if m.opcode == Op.HOST_WR else got).append(m)
    assert got_preq == [(m.tag, m.value, m.addr, int(m.opcode == Op.XLATE)) for m in forwarded], \
        "page requests forwarded wrongly"
    got = check_response_order(requests, expected, got, {m.tag for m in forwarded}, answered)
    return got, expected, hw_mem, ref_mem


@pytest.mark.parametrize("seed,credits,stall", [(1, 1, 0.0), (2, 4, 0.3), (3, 8, 0.6)])
def test_endpoint_matches_model_under_stalls(seed, credits, stall):
    rng = random.Random(seed)
    requests = [random_request(rng, i % 256) for i in range(150)]
    got, expected, hw_mem, ref_mem = simulate(requests, seed, credits, stall)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"response {i} to {requests[i]}: got {g}, expected {e}"
    assert hw_mem.words == ref_mem.words, "device memory differs from the model's"


def test_every_status_is_provoked():
    rng = random.Random(7)
    requests = [random_request(rng, i % 256) for i in range(150)]
    got, expected, _, _ = simulate(requests, 7, 2, 0.2)
    assert got == expected
    assert simulate.page_requests, "no PageRd forwarded"
    seen = {m.status for m in got}
    assert seen == set(Status), f"statuses never produced: {set(Status) - seen}"
    ops = {m.opcode for m in got}
    assert ops == {Op.CMP, Op.MEM_DATA, Op.CFG_DATA}


def test_host_writes_share_the_output_with_responses():
    rng = random.Random(21)
    requests = [random_request(rng, i % 256) for i in range(60)]
    writes = [(LINE * rng.randrange(1 << 20), bytes(rng.getrandbits(8) for _ in range(LINE)), i)
              for i in range(60)]
    got, expected, _, _ = simulate(requests, 21, 4, 0.3, host_writes=writes)
    assert got == expected
    hw = simulate.host_writes
    assert [(m.addr, m.data, m.tag) for m in hw] == writes, "host writes lost, reordered or altered"
    assert [m.value for m in hw] == [1 + t % LINE for _, _, t in writes], "byte counts"
    assert all(m.opcode == Op.HOST_WR and m.status == 0 for m in hw)


def test_page_reads_unsupported_without_an_engine():
    reqs = [Message(Op.PAGE_RD, 1, 0x1000, value=5), Message(Op.CFG_RD, 2, CFG.base),
            Message(Op.XLATE, 3, 0, value=5)]
    got, expected, _, _ = simulate(reqs, 5, 2, 0.0, with_pages=False)
    assert got == expected
    assert [m.status for m in got] == [Status.UNSUPPORTED, Status.OK, Status.UNSUPPORTED]


def test_write_then_read_back_line():
    data = bytes(range(64))
    requests = [Message(Op.MEM_WR, 1, 0x1040, data=data), Message(Op.MEM_RD, 2, 0x1040)]
    got, expected, _, _ = simulate(requests, 11, 2, 0.0)
    assert got == expected
    assert got[0].opcode == Op.CMP and got[0].status == Status.OK
    assert got[1].opcode == Op.MEM_DATA and got[1].data == data and got[1].tag == 2


def test_protocol_checks():
    with pytest.raises(ValueError, match="exactly 64 data bytes"):
        Message(Op.MEM_WR, 0, 0, data=b"short")
    with pytest.raises(ValueError, match="tag must fit 8 bits"):
        Message(Op.MEM_RD, 300, 0)
    with pytest.raises(ValueError, match="credits must be >= 1"):
        EndpointConfig(credits=0)
    with pytest.raises(ValueError, match="not 64 B aligned"):
        EndpointConfig(mem_windows=[Window(0x10, 0x40)])
    m = Message(Op.CFG_WR, 9, 0xF0001000, value=0xCAFEF00D, status=3)
    assert Message.from_header(m.header()) == m


def test_endpoint_converts_to_verilog():
    e = BridgeEndpoint(EndpointConfig([MEM], [CFG], credits=8))
    e.add_csr()
    v = str(convert(e, ios={e.sink.valid, e.sink.ready, e.source.valid, e.source.ready,
                            e.bus.cyc, e.bus.ack}))
    assert "module top" in v
