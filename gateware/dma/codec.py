"""Adapter from the KV codec cores (gateware/codec) to the DMA's codec hook."""

from migen import ClockDomainsRenamer, If, Module, Mux, ResetInserter, Signal
from migen.genlib.cdc import MultiReg
from litex.soc.interconnect import stream

from gateware.codec.ref_format import ERROR_KINDS

from .layouts import packed_layout


class PackedCodec(Module):
    """Wraps a ``KVCompressor`` or ``KVDecompressor`` (``[("data", dw)]`` streams) into the
    DMA's ``packed_layout(dw)`` hook: input ``nbytes`` does not reach the core (it counts
    whole beats), output beats are full. A decompressor's ``done`` and ``error`` follow the
    core's a cycle later; ``error`` is the core's, else truncated / overlong when the job's
    bytes differ from the page's header length (``_length_check``: the byte-exact check the
    core's beat count cannot make).
    The codec's ``dw`` must equal the DMA port width (32, 64 or 128 bits).

    Both codec ports sit behind a register slice (``stream.Buffer`` with valid and ready
    piped), so no path runs combinationally between the DMA and a codec core: the cores are
    timed out of context with registered ports (``bench/codec_ecp5.py``) and see the same
    here. Each slice adds one cycle of latency and none of throughput. ``done`` may pulse
    while the last output beat is still in the output slice; the DMA completes a descriptor
    only when both its output and the verdict are in.
    """

    def __init__(self, core):
        dw = core.dw
        self.dw = dw
        self.submodules.core = core
        self.sink = stream.Endpoint(packed_layout(dw))
        self.source = stream.Endpoint(packed_layout(dw))
        self.submodules.ibuf = ibuf = stream.Buffer(core.sink.description,
                                                    pipe_valid=True, pipe_ready=True)
        self.submodules.obuf = obuf = stream.Buffer(core.source.description,
                                                    pipe_valid=True, pipe_ready=True)
        self.comb += [
            self.sink.connect(ibuf.sink, omit={"nbytes"}),
            ibuf.source.connect(core.sink),
            core.source.connect(obuf.sink),
            obuf.source.connect(self.source, omit={"nbytes"}),
            self.source.nbytes.eq(dw // 8),
        ]
        if hasattr(core, "error"):
            # like the core's, ``done`` and ``error`` are registers that change together
            # (one cycle after the core's), so ``error`` only changes with ``done`` (CodecCDC)
            self.done = Signal()
            self.error = Signal.like(core.error)
            short, long_ = self._length_check(dw)
            verdict = Mux(core.error != 0, core.error,
                          Mux(short, ERROR_KINDS["truncated"],
                              Mux(long_, ERROR_KINDS["overlong"], 0)))
            self.sync += [self.done.eq(core.done), If(core.done, self.error.eq(verdict))]

    def _length_check(self, dw):
        """The page's length to the byte: the core counts whole beats, so a job a few bytes
        short of its page's header length, or a few long, that ends inside the same last
        beat would pass it (the rest of that beat is whatever DRAM holds next). Counts the
        input's bytes (``nbytes``) against the header's length field (bytes 6-7); ``short``
        / ``long`` hold from the page's last input beat (before the core's ``done``) until
        the codec's per-descriptor reset."""
        s = self.sink
        count = Signal(26)
        new_count = Signal(26)
        length = Signal(16)
        have_len = Signal()
        second = Signal()                  # the beat being accepted is a page's second
        short, long_ = Signal(), Signal()
        fire = s.valid & s.ready
        # the length's bytes 6-7: in the first beat from 64 bits on, in the second at 32
        at, lo = (s.first, 48) if dw >= 64 else (second, 16)
        new_len = Mux(at, s.data[lo:lo + 16], length)
        new_have = Mux(s.first, at, have_len | at)
        self.comb += new_count.eq(Mux(s.first, 0, count) + s.nbytes)
        self.sync += If(fire,
            count.eq(new_count),
            length.eq(new_len),
            have_len.eq(new_have),
            second.eq(s.first),
            If(s.last,
                short.eq(~new_have | (new_count < new_len)),
                long_.eq(new_have & (new_count > new_len)),
            ),
        )
        return short, long_


class CodecCDC(Module):
    """Runs a codec (a ``PackedCodec``) in its own clock domain ``cd``, behind two
    asynchronous FIFOs, with the ``PackedCodec`` interface in ``sys`` plus ``reset``.

    Boards whose DRAM fixes a fast ``sys_clk`` (DDR3 on the ECPIX-5) run the codec cores,
    the SoC's longest paths, on a slower clock. The DMA's per-descriptor codec reset crosses
    as a four-phase handshake: ``reset`` (sys, one cycle is enough) raises ``req``; the codec
    domain holds the codec and its FIFO sides in reset while it sees ``req`` and returns it as
    ``ack``; ``sys`` drops ``req`` on ``ack`` and reopens when ``ack`` falls. While the
    handshake runs (``busy``), ``sink.ready`` and ``source.valid`` are low and the ``sys``
    FIFO sides are held in reset, so nothing crosses half-reset FIFOs, and a ``reset`` during
    ``busy`` has nothing left to clear. A decompressor's ``done`` crosses as a toggle (edges
    seen while ``busy`` are absorbed) and is delayed one cycle after ``error``'s two-flop
    synchronizer, so ``error`` is settled when ``done`` pulses (``error`` is a register that
    only changes with ``done`` or reset in the codec domain).
    """

    def __init__(self, codec, cd="codec", depth=8):
        if cd == "sys":
            raise ValueError("the codec clock domain must not be sys")
        dw = codec.dw
        self.dw = dw
        self.reset = Signal()
        self.busy = busy = Signal(reset=1)
        self.sink = stream.Endpoint(packed_layout(dw))
        self.source = stream.Endpoint(packed_layout(dw))
        self.submodules.codec = ResetInserter()(ClockDomainsRenamer(cd)(codec))

        # Reset handshake.
        req = Signal(reset=1)
        req_c = Signal()            # req seen in the codec domain = the codec-side reset
        ack = Signal()              # req_c seen back in sys
        self.specials += [MultiReg(req, req_c, odomain=cd), MultiReg(req_c, ack, odomain="sys")]
        self.comb += self.codec.reset.eq(req_c)
        self.sync += If(~busy,
            If(self.reset, busy.eq(1), req.eq(1)),
        ).Elif(req,
            If(ack, req.eq(0)),
        ).Elif(~ack,
            busy.eq(0),
        )

        # Data: sys -> codec -> sys.
        def fifo(wd, rd):
            f = stream.AsyncFIFO(packed_layout(dw), depth)
            f = ResetInserter(["write", "read"])(f)
            return ClockDomainsRenamer({"write": wd, "read": rd})(f)
        self.submodules.fin = fin = fifo("sys", cd)
        self.submodules.fout = fout = fifo(cd, "sys")
        self.comb += [
            fin.reset_write.eq(busy), fin.reset_read.eq(req_c),
            fout.reset_write.eq(req_c), fout.reset_read.eq(busy),
            self.sink.connect(fin.sink),
            fin.sink.valid.eq(self.sink.valid & ~busy),
            self.sink.ready.eq(fin.sink.ready & ~busy),
            fin.source.connect(self.codec.sink),
            self.codec.source.connect(fout.sink),
            fout.source.connect(self.source),
            self.source.valid.eq(fout.source.valid & ~busy),
            fout.source.ready.eq(self.source.ready & ~busy),
        ]

        if hasattr(codec, "done"):
            self.done = Signal()
            self.error = Signal(len(codec.error))
            toggle = Signal()
            sd = getattr(self.sync, cd)
            sd += If(req_c, toggle.eq(0)).Elif(codec.done, toggle.eq(~toggle))
            t_s, t_prev, err_s = Signal(), Signal(), Signal(len(codec.error))
            self.specials += [MultiReg(toggle, t_s, odomain="sys"),
                              MultiReg(codec.error, err_s, odomain="sys")]
            self.sync += [t_prev.eq(t_s), self.done.eq(~busy & (t_s != t_prev))]
            self.comb += self.error.eq(err_s)
