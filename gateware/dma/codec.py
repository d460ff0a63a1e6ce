"""Adapter from the KV codec cores (gateware/codec) to the DMA's codec hook."""

from migen import Module
from litex.soc.interconnect import stream

from .core import packed_layout


class PackedCodec(Module):
    """Wraps a ``KVCompressor`` or ``KVDecompressor`` (``[("data", dw)]`` streams) into the
    DMA's ``packed_layout(dw)`` hook: input ``nbytes`` is dropped (codec pages are whole
    beats; a partial last beat reaches the decompressor as a malformed page and fails its
    checks), output beats are full. ``done`` / ``error`` pass through from a decompressor.
    The codec's ``dw`` must equal the DMA port width (32, 64 or 128 bits).
    """

    def __init__(self, core):
        dw = core.dw
        self.dw = dw
        self.submodules.core = core
        self.sink = stream.Endpoint(packed_layout(dw))
        self.source = stream.Endpoint(packed_layout(dw))
        self.comb += [
            self.sink.connect(core.sink, omit={"nbytes"}),
            core.source.connect(self.source, omit={"nbytes"}),
            self.source.nbytes.eq(dw // 8),
        ]
        if hasattr(core, "error"):
            self.error = core.error
            self.done = core.done
