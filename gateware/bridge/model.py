"""Reference model of the bridge endpoint: the specification of its responses.

``respond(msg)`` gives the one response the endpoint sends for a request, given the device
bus behind it (``bus_read(addr) -> (value, err)``, ``bus_write(addr, value) -> err``, on
32-bit words). Requests are answered in order, one response each, except a well-formed
``PageRd`` or an ``XLATE``: it is forwarded to the page engine (``respond`` returns ``None``)
and answered when the engine's ``page_response(tag, status, value, addr)`` comes back.
"""

from gateware.bridge.protocol import LINE, Message, Op, Status


class BridgeModel:
    def __init__(self, config, bus_read, bus_write, with_pages=False):
        self.config = config
        self.with_pages = with_pages
        self.bus_read = bus_read
        self.bus_write = bus_write

    def _allowed(self, windows, addr, length):
        return any(w.contains(addr, length) for w in windows)

    def respond(self, m):
        op, tag = m.opcode, m.tag
        if op in (Op.MEM_RD, Op.MEM_WR):
            rsp_op = Op.MEM_DATA if op == Op.MEM_RD else Op.CMP
            if m.addr % LINE:
                return Message(rsp_op, tag, m.addr, status=Status.MISALIGNED)
            if not self._allowed(self.config.mem_windows, m.addr, LINE):
                return Message(rsp_op, tag, m.addr, status=Status.OUT_OF_RANGE)
            if op == Op.MEM_RD:
                words, err = [], False
                for i in range(LINE // 4):
                    v, e = self.bus_read(m.addr + 4 * i)
                    err |= e
                    words.append(v if not e else 0)
                data = b"".join(w.to_bytes(4, "little") for w in words)
                return Message(Op.MEM_DATA, tag, m.addr, data=data,
                               status=Status.BUS_ERROR if err else Status.OK)
            err = False
            for i in range(LINE // 4):
                err |= self.bus_write(m.addr + 4 * i, int.from_bytes(m.data[4*i:4*i+4], "little"))
            return Message(Op.CMP, tag, m.addr, status=Status.BUS_ERROR if err else Status.OK)
        if op in (Op.CFG_RD, Op.CFG_WR):
            rsp_op = Op.CFG_DATA if op == Op.CFG_RD else Op.CMP
            if m.addr % 4:
                return Message(rsp_op, tag, m.addr, status=Status.MISALIGNED)
            if not self._allowed(self.config.cfg_windows, m.addr, 4):
                return Message(rsp_op, tag, m.addr, status=Status.OUT_OF_RANGE)
            if op == Op.CFG_RD:
                v, e = self.bus_read(m.addr)
                return Message(Op.CFG_DATA, tag, m.addr, value=0 if e else v,
                               status=Status.BUS_ERROR if e else Status.OK)
            e = self.bus_write(m.addr, m.value)
            return Message(Op.CMP, tag, m.addr, status=Status.BUS_ERROR if e else Status.OK)
        if op == Op.PAGE_RD and self.with_pages:
            if m.addr % LINE:
                return Message(Op.CMP, tag, m.addr, status=Status.MISALIGNED)
            return None
        if op == Op.XLATE and self.with_pages:
            return None
        return Message(Op.CMP, tag, m.addr, status=Status.UNSUPPORTED)

    @staticmethod
    def page_response(tag, status, value=0, addr=0):
        """The Cmp the endpoint sends for an engine answer to a forwarded PageRd / XLATE."""
        return Message(Op.CMP, tag, addr, value=value, status=status)
