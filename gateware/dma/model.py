"""DMA engine reference model: the specification of ``core.DMA``.

A job is a chain of descriptors (the last one has ``last=1``); each descriptor moves
``length`` bytes from DRAM ``src`` either unchanged (copy) or through a codec transform
(compress / decompress) to a destination: device DRAM, or the host (64-byte lines). Every
job returns one completion ``(tag, status, bytes)``, in job order.

The model executes jobs on byte arrays and returns completions plus every memory effect:
the DRAM bytes after the run and the exact sequence of host lines. The gateware matches it
byte for byte, except inside the destination range of a failed descriptor (status corrupt,
overflow or timeout), which the model reports as ``dirty`` (unspecified) ranges.

All addresses are DRAM byte offsets as seen by a LiteDRAM native port (byte 0 = first byte
of the SDRAM) or host byte addresses.
"""

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

# Operations and completion statuses (OP_*, ST_*): shared with the page engine, the firmware and
# the host, so they live in gateware/common.py; this model is their specification.
from gateware.common import (LINE_BYTES, OP_COMPRESS, OP_COPY, OP_DECOMPRESS, OP_NAMES,
                             ST_CORRUPT, ST_FAULT, ST_INVALID, ST_OK, ST_OVERFLOW, ST_TIMEOUT)

HOST_LINE = LINE_BYTES  # bytes per host line (one CXL cache line)


@dataclass(frozen=True)
class Descriptor:
    op:     int          # OP_*
    src:    int          # DRAM byte address of the source
    dst:    int          # DRAM byte address, or host byte address if ``host``
    length: int          # source bytes (1 .. 2**len_width - 1)
    tag:    int = 0      # the job's tag is the tag of its first descriptor
    cap:    int = 0      # codec ops: destination capacity in bytes (copy: ignored, = length)
    host:   bool = False # destination is the host (64-byte aligned address)
    last:   bool = True  # last descriptor of its job


class Completion(NamedTuple):
    tag:    int
    status: int          # ST_*
    bytes:  int          # destination bytes written by the job's completed descriptors


class HostLine(NamedTuple):
    addr:   int          # host byte address (64-byte aligned)
    data:   bytes        # 64 bytes; bytes at or beyond ``nbytes`` are zero
    nbytes: int          # 1..64 valid bytes from the line start
    tag:    int          # tag of the job


# A codec transform: input bytes -> (output bytes, error). ``error`` is only meaningful for the
# decompressor (corrupt page); its output is then ignored.
Transform = Callable[[bytes], tuple]


@dataclass
class DMAConfig:
    dram_base: int = 0
    dram_size: int = 0
    host_base: int = 0
    host_size: int = 0
    len_width: int = 24
    depth:     int = 16   # descriptor queue depth = longest chain
    compress:   Transform | None = None
    decompress: Transform | None = None


@dataclass
class Result:
    completions: list = field(default_factory=list)   # Completion, in job order
    host_lines:  list = field(default_factory=list)   # HostLine, in emission order
    dirty:       list = field(default_factory=list)   # (kind, start, end): "dram" | "host"


def _inside(addr, n, base, size):
    return base <= addr and addr + n <= base + size


def check(d, cfg):
    """Status of one descriptor at queue time: ST_OK, ST_INVALID or ST_FAULT."""
    codec = {OP_COMPRESS: cfg.compress, OP_DECOMPRESS: cfg.decompress}
    if d.op not in OP_NAMES or (d.op != OP_COPY and codec[d.op] is None):
        return ST_INVALID
    if not 0 < d.length < (1 << cfg.len_width):
        return ST_INVALID
    if d.op != OP_COPY and not 0 < d.cap < (1 << cfg.len_width):
        return ST_INVALID
    if d.host and d.dst % HOST_LINE:
        return ST_INVALID
    span = d.length if d.op == OP_COPY else d.cap
    if not _inside(d.src, d.length, cfg.dram_base, cfg.dram_size):
        return ST_FAULT
    if d.host:
        if not _inside(d.dst, span, cfg.host_base, cfg.host_size):
            return ST_FAULT
    elif not _inside(d.dst, span, cfg.dram_base, cfg.dram_size):
        return ST_FAULT
    return ST_OK


def split_jobs(descs):
    """Group descriptors into jobs (lists ending with a ``last`` descriptor)."""
    jobs, cur = [], []
    for d in descs:
        cur.append(d)
        if d.last:
            jobs.append(cur)
            cur = []
    if cur:
        raise ValueError("descriptor list ends inside a chain (no last=1)")
    return jobs


class DMAModel:
    """Executes jobs on ``dram`` (a bytearray indexed by DRAM byte address) in place."""

    def __init__(self, dram, cfg):
        self.dram = dram
        self.cfg = cfg

    def job_status(self, chain):
        """Queue-time status of a job: that of its first bad descriptor, else ST_OK. A chain
        longer than ``depth`` is ST_INVALID (unless an earlier-queued descriptor is bad): its
        first ``depth`` descriptors are queued and skipped, the rest dropped at the input."""
        if len(chain) > self.cfg.depth:
            for d in chain[:self.cfg.depth]:
                st = check(d, self.cfg)
                if st != ST_OK:
                    return st
            return ST_INVALID
        for d in chain:
            st = check(d, self.cfg)
            if st != ST_OK:
                return st
        return ST_OK

    def run(self, descs, timeouts=None):
        """Execute every job of ``descs``; returns a ``Result``.

        ``timeouts``: {job index: descriptor index} of jobs the environment stalls (a dead
        port in a test): that descriptor is abandoned with ST_TIMEOUT and its destination
        range reported dirty.
        """
        timeouts = timeouts or {}
        res = Result()
        for j, chain in enumerate(split_jobs(descs)):
            tag = chain[0].tag
            st = self.job_status(chain)
            if st != ST_OK:
                res.completions.append(Completion(tag, st, 0))
                continue
            done = 0
            for i, d in enumerate(chain):
                span = d.length if d.op == OP_COPY else d.cap
                kind = "host" if d.host else "dram"
                if timeouts.get(j) == i:
                    st = ST_TIMEOUT
                    res.dirty.append((kind, d.dst, d.dst + span))
                    break
                data = bytes(self.dram[d.src:d.src + d.length])
                if d.op != OP_COPY:
                    fn = self.cfg.compress if d.op == OP_COMPRESS else self.cfg.decompress
                    out, err = fn(data)
                    if err and d.op == OP_DECOMPRESS:
                        st = ST_CORRUPT
                    elif len(out) > d.cap:
                        st = ST_OVERFLOW
                    if st != ST_OK:
                        res.dirty.append((kind, d.dst, d.dst + span))
                        break
                    data = bytes(out)
                if d.host:
                    for k in range(0, len(data), HOST_LINE):
                        chunk = data[k:k + HOST_LINE]
                        res.host_lines.append(HostLine(d.dst + k, chunk.ljust(HOST_LINE, b"\0"),
                                                       len(chunk), tag))
                else:
                    self.dram[d.dst:d.dst + len(data)] = data
                done += len(data)
            res.completions.append(Completion(tag, st, done))
        return res


def codec_transforms(mode="kivi_k4v3", T=16, D=64):
    """(compress, decompress) transforms of the KV codec reference (gateware/codec) for one
    configured mode and geometry, as the codec cores behind ``codec.PackedCodec`` behave:
    the compressor takes exactly one FP16 page; the decompressor fails (corrupt) on any
    page the reference rejects and on a valid page of another mode or geometry."""
    import numpy as np
    from gateware.codec import reference as R
    m = R.MODES[mode] if isinstance(mode, str) else mode

    def compress(data):
        page = np.frombuffer(bytes(data), dtype="<u2")
        if page.size != 2 * T * D:
            raise ValueError("compress source must be one page of {} bytes".format(4 * T * D))
        return R.compress(page.reshape(2, T, D), m), False

    def decompress(blob):
        try:
            if R.parse_header(bytes(blob)).mode != m:
                return b"", True
            page = R.decompress(bytes(blob), expect_geometry=(T, D))
        except R.CodecError:
            return b"", True
        return R.as_bits(page).astype("<u2").tobytes(), False

    return compress, decompress
