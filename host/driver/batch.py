"""Many requests to a device in one go: config and memory accesses and any other message,
pipelined within the link's credits, each answer checked (tests, the fuzzers).

    b = Batch(link)
    b.csr_write("atu_inval", 5)                  # CfgWr per CSR word
    b.csr_read("atu_hits", lambda v: ...)        # CfgRd, value to a callback
    b.add(Message(Op.XLATE, 0, 0, value=vpn), lambda m: ...)   # any request, answer checked
    b.send()                                     # all of it, in order; checks run in order

Requests are served in order by the bridge (one at a time), so a batch behaves like the same
requests sent one by one, except for page-engine requests (PageRd, XLATE), which are answered
by the engine while the bridge goes on with the next request.
"""

import dataclasses

from gateware.bridge.protocol import LINE, Message, Op, Status
from gateware.dma.model import OP_COPY

MAX_BATCH = 256  # tags are 8 bits: at most this many requests per transact()


class Batch:
    def __init__(self, link):
        self.link = link
        self.csr = link.target.csr
        self.items = []
        self.sent = 0

    def __len__(self):
        return len(self.items)

    def add(self, msg, check=None):
        """Queue ``msg`` (its tag is replaced); ``check(response)`` runs on its answer, or the
        answer must be OK when ``check`` is None."""
        self.items.append((msg, check))

    def csr_write(self, name, value):
        reg = self.csr[name]
        n = reg["size"]
        for i in range(n):
            word = (value >> (32 * (n - 1 - i))) & 0xFFFFFFFF
            self.add(Message(Op.CFG_WR, 0, reg["addr"] + 4 * i, value=word))

    def csr_read(self, name, fn):
        reg = self.csr[name]
        if reg["size"] != 1:
            raise ValueError(f"{name}: only one-word CSRs are read in batches")

        def check(m):
            assert m.status == Status.OK, f"CfgRd {name}: {m}"
            fn(m.value)
        self.add(Message(Op.CFG_RD, 0, reg["addr"]), check)

    def mem_write(self, addr, data):
        assert addr % LINE == 0 and len(data) % LINE == 0
        for o in range(0, len(data), LINE):
            self.add(Message(Op.MEM_WR, 0, addr + o, data=bytes(data[o:o + LINE])))

    def mem_read(self, addr, nbytes, fn):
        """MemRd of [addr, addr + nbytes) (line aligned); ``fn(bytes)`` once all arrived."""
        assert addr % LINE == 0 and nbytes % LINE == 0
        parts = []
        n = nbytes // LINE
        for o in range(0, nbytes, LINE):
            def check(m, parts=parts):
                assert m.status == Status.OK, f"MemRd: {m}"
                parts.append(m.data)
                if len(parts) == n:
                    fn(b"".join(parts))
            self.add(Message(Op.MEM_RD, 0, addr + o), check)

    def send(self, max_cycles=20_000_000):
        items, self.items = self.items, []
        for i in range(0, len(items), MAX_BATCH):
            chunk = items[i:i + MAX_BATCH]
            msgs = [dataclasses.replace(m, tag=k) for k, (m, _) in enumerate(chunk)]
            answers = self.link.transact(msgs, max_cycles=max_cycles, check=False)
            for (m, check), a in zip(chunk, answers):
                if check is None:
                    assert a.msg.status == Status.OK, f"{m}: {a.msg}"
                else:
                    check(a.msg)
            self.sent += len(chunk)


def dma_jobs(b, descs, budget=2_000_000, poll=500):
    """Push ``descs`` (``gateware.dma.model.Descriptor``, single-descriptor jobs, at most 16)
    through the DMA CSRs of batch ``b``'s device, wait until all completed, pop their
    completions: (tag, status, bytes) of each, in order. None when they are not all done
    within ``budget`` cycles (a hang: the caller decides whether that is a failure)."""
    if len(descs) > 16:
        raise ValueError(f"{len(descs)} descriptors: the DMA queue holds 16")
    for d in descs:
        b.csr_write("dma_src", d.src)
        b.csr_write("dma_dst", d.dst)
        b.csr_write("dma_length", d.length)
        b.csr_write("dma_cap", d.cap if d.op != OP_COPY else (d.cap or d.length))
        b.csr_write("dma_push", d.op | int(d.host) << 2 | int(d.last) << 3 | d.tag << 8)
    b.send()
    start = b.link.cycle
    while True:
        st = []
        b.csr_read("dma_status", st.append)
        b.send()
        if (st[0] >> 16) & 0xFF == len(descs) and not (st[0] >> 24) & 1:
            break
        if b.link.cycle - start > budget:
            return None
        b.link.run(poll)
    if (st[0] >> 25) & 1:
        raise RuntimeError(f"DMA status 0x{st[0]:x}: a push was dropped")
    out = []
    for _ in descs:
        c = {}
        b.csr_read("dma_completion", lambda v: c.update(word=v))
        b.csr_read("dma_completion_bytes", lambda v: c.update(bytes=v))
        b.csr_write("dma_pop", 1)
        b.send()
        if not c["word"] & 1:
            raise RuntimeError("DMA completion queue empty while completions were counted")
        out.append(((c["word"] >> 8) & 0xFF, (c["word"] >> 4) & 0xF, c["bytes"]))
    return out
