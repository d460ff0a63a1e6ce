"""Host -> firmware hint messages and prefetch configuration: packing and checking.

The wire format (configuration words, hint chunk words, status codes, step record) is the
contract in ``soc/mailbox.py``, which the firmware's generated ``firmware/mailbox.h``
mirrors; the firmware side is ``firmware/speculate.c``. :class:`SpecConfig` packs the
``MBOX_CMD_SPEC_CONFIG`` command words, :func:`encode_step` splits a decode step's hint into
chunks, and :func:`parse_chunk` validates a chunk exactly as the firmware does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateware.common import LINE_BYTES, PAGE_BYTES
from soc.mailbox import (CFG_FLAGS_SHIFT, CFG_HEADS_SHIFT, CFG_K_SHIFT, CFG_KIND_SHIFT,
                         CFG_L1_SHIFT, CFG_LAYERS_SHIFT, CFG_SLOTS_SHIFT, HERR_CONFIG,
                         HERR_LENGTH, HERR_MAGIC, HERR_PAGES, HERR_REQUEST, HERR_STEP,
                         HERR_STREAM, HINT_DENSE, HINT_ERRORS, HINT_FLAG_LAST, HINT_MAGIC,
                         MBOX_HINT_UNITS, SPEC_FLAG_THROTTLE, SPEC_FLAG_UCB, SPEC_MAX_K,
                         SPEC_MAX_KIND, SPEC_MAX_L1, SPEC_MAX_PAGES, SPEC_MAX_SLOTS,
                         SPEC_MAX_STREAMS)


@dataclass(frozen=True)
class SpecConfig:
    request: int
    kind: int
    k: int
    ucb: bool
    throttle: bool
    heads: int
    layers: int
    l2_base: int
    l2_slots: int
    l1_pages: int

    def __post_init__(self):
        if not 0 <= self.kind <= SPEC_MAX_KIND:
            raise ValueError(f"predictor kind {self.kind} out of range 0..{SPEC_MAX_KIND}")
        if not 1 <= self.k <= SPEC_MAX_K:
            raise ValueError(f"k = {self.k}: must be 1..{SPEC_MAX_K}")
        if not 1 <= self.l2_slots <= SPEC_MAX_SLOTS:
            raise ValueError(f"L2 slots = {self.l2_slots}: must be 1..{SPEC_MAX_SLOTS}")
        if not 0 <= self.l1_pages <= SPEC_MAX_L1:
            raise ValueError(f"L1 pages = {self.l1_pages}: must be 0..{SPEC_MAX_L1}")
        if not (1 <= self.heads and 1 <= self.layers
                and self.heads * self.layers <= SPEC_MAX_STREAMS):
            raise ValueError(f"{self.layers} layers x {self.heads} heads: "
                             f"at most {SPEC_MAX_STREAMS} streams")
        if self.l2_base % PAGE_BYTES:
            raise ValueError(f"L2 base 0x{self.l2_base:x} is not 4 KiB aligned")

    @property
    def streams(self):
        return self.layers * self.heads

    def words(self):
        """Command words 3..7 (MBOX_CFG_REQUEST .. MBOX_CFG_SHAPE)."""
        flags = (SPEC_FLAG_UCB if self.ucb else 0) | (SPEC_FLAG_THROTTLE if self.throttle else 0)
        return [self.request & 0xFFFFFFFF,
                (self.kind << CFG_KIND_SHIFT | self.k << CFG_K_SHIFT | flags << CFG_FLAGS_SHIFT
                 | self.heads << CFG_HEADS_SHIFT),
                self.l2_base & 0xFFFFFFFF, self.l2_base >> 32,
                (self.l2_slots << CFG_SLOTS_SHIFT | self.l1_pages << CFG_L1_SHIFT
                 | self.layers << CFG_LAYERS_SHIFT)]

    def dir_addr(self, slot):
        return self.l2_base + PAGE_BYTES * self.l2_slots + LINE_BYTES * slot

    def slot_addr(self, slot):
        return self.l2_base + PAGE_BYTES * slot

    @property
    def host_bytes(self):
        """Host memory the L2 buffer and its directory take."""
        return self.l2_slots * (PAGE_BYTES + LINE_BYTES)


@dataclass
class Chunk:
    step: int
    first: int
    count: int
    payload: list          # 16-bit units
    last: bool
    request: int

    def words(self, magic=HINT_MAGIC):
        """Mailbox words 17.. (everything but the sequence number), payload padded to words."""
        units = list(self.payload) + [0] * (len(self.payload) & 1)
        body = [units[i] | units[i + 1] << 16 for i in range(0, len(units), 2)]
        return [magic, self.request & 0xFFFFFFFF, self.step, self.first | self.count << 16,
                len(self.payload), HINT_FLAG_LAST if self.last else 0, 0] + body


def stream_units(n_pages, acc, dense):
    if dense:
        return [n_pages, HINT_DENSE]
    return [n_pages, len(acc)] + [int(p) for p in acc]


def encode_streams(request, step, first, streams, last, dense=False, max_units=MBOX_HINT_UNITS):
    """Chunks for the consecutive streams ``first``, ``first + 1``, ... of a step's hint:
    ``streams`` is a list of (n_pages, accessed page indices ascending); ``last``: they end
    the step (the last chunk carries HINT_FLAG_LAST)."""
    chunks, cur, start = [], [], first
    for i, (n_pages, acc) in enumerate(streams):
        s = first + i
        u = stream_units(n_pages, acc, dense)
        if len(u) > max_units:
            raise ValueError(f"stream {s}: {len(acc)} pages do not fit one hint chunk")
        if cur and len(cur) + len(u) > max_units:
            chunks.append(Chunk(step, start, s - start, cur, False, request))
            cur, start = [], s
        cur = cur + u
    chunks.append(Chunk(step, start, first + len(streams) - start, cur, last, request))
    return chunks


def encode_step(request, step, streams, dense=False, max_units=MBOX_HINT_UNITS, group=None):
    """Split one decode step's hint into chunks.

    ``streams``: list over s = 0..S-1 of (n_pages, accessed page indices ascending).
    ``group``: streams per layer; a chunk then never spans two layers (the host posts a
    layer's chunks as soon as it has read the layer, and the device issues them at once).
    """
    group = group or len(streams)
    out = []
    for g in range(0, len(streams), group):
        part = streams[g:g + group]
        out += encode_streams(request, step, g, part, g + len(part) == len(streams), dense,
                              max_units)
    return out


class HintError(ValueError):
    def __init__(self, code):
        super().__init__(HINT_ERRORS[code])
        self.code = code


def parse_chunk(words, cfg: SpecConfig | None, expect_stream, expect_step):
    """Validate and decode one chunk (mailbox words 17.. as the firmware reads them) exactly as
    the firmware does. Returns (step, first, [(stream, n_pages, acc array)], last) or raises
    :class:`HintError` with the firmware's status code.

    ``expect_stream``: the next stream of the step in progress (0 between steps);
    ``expect_step``: the step in progress, or the earliest next step when between steps.
    """
    if cfg is None:
        raise HintError(HERR_CONFIG)
    magic, req, step, streams, n_units, flags = (int(w) for w in words[:6])
    if magic != HINT_MAGIC:
        raise HintError(HERR_MAGIC)
    if req != cfg.request:
        raise HintError(HERR_REQUEST)
    first, count = streams & 0xFFFF, streams >> 16
    if count == 0 or first + count > cfg.streams:
        raise HintError(HERR_STREAM)
    if n_units > MBOX_HINT_UNITS or flags & ~HINT_FLAG_LAST or words[6] != 0:
        raise HintError(HERR_LENGTH)
    # a step may follow a later one than expected (the host skipped the hints of steps the
    # device was too busy for), never an earlier one; the chunks of a step come in order
    if first != expect_stream or (step != expect_step if first else step < expect_step):
        raise HintError(HERR_STEP)
    body = words[7:7 + (n_units + 1) // 2]
    if len(body) < (n_units + 1) // 2:
        raise HintError(HERR_LENGTH)
    units = []
    for w in body:
        units += [int(w) & 0xFFFF, int(w) >> 16]
    units = units[:n_units]
    out, i = [], 0
    for s in range(first, first + count):
        if i + 2 > n_units:
            raise HintError(HERR_LENGTH)
        n_pages, n_acc = units[i], units[i + 1]
        i += 2
        if n_pages > SPEC_MAX_PAGES:
            raise HintError(HERR_PAGES)
        if n_acc == HINT_DENSE:
            acc = np.arange(n_pages, dtype=np.int64)
        else:
            if i + n_acc > n_units:
                raise HintError(HERR_LENGTH)
            acc = np.asarray(units[i:i + n_acc], dtype=np.int64)
            i += n_acc
            if n_acc and (acc[-1] >= n_pages or np.any(np.diff(acc) <= 0)):
                raise HintError(HERR_PAGES)
        out.append((s, n_pages, acc))
    if i != n_units:
        raise HintError(HERR_LENGTH)
    last = bool(flags & HINT_FLAG_LAST)
    if last != (first + count == cfg.streams):
        raise HintError(HERR_STREAM)
    return step, first, out, last
