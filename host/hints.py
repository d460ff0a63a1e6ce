"""Host -> firmware hint messages and prefetch configuration: the wire format.

The firmware side is ``firmware/speculate.c``; the layout is mirrored in
``firmware/mailbox.h``. Keep the three in step. Specification:

**Configuration** (mailbox command ``CMD_SPEC_CONFIG`` = 3, words 3..7 of the command area):

| word | bits | field |
| --- | --- | --- |
| 3 | 31:0 | request id the hints will carry |
| 4 | 7:0 | predictor kind (``host.prefetch.KINDS`` index: none, last, stride, markov, layer_ahead, lstm) |
| 4 | 15:8 | prediction depth k (1..16); the largest arm when UCB is on |
| 4 | 23:16 | flags: bit 0 UCB adaptive k, bit 1 bandwidth throttling |
| 4 | 31:24 | KV heads per layer (stream s = layer * heads + head) |
| 5, 6 | | host address of the L2 buffer (low, high word) |
| 7 | 15:0 | L2 slots (1..1024): slot i holds 4 KiB at ``l2 + 4096 i``; its directory line is at ``l2 + 4096 slots + 64 i`` |
| 7 | 23:16 | L1 pages per stream (the host keeps the last ``l1`` full pages: never prefetched) |
| 7 | 31:24 | layers (streams = layers * heads <= 96) |

The command resets every predictor, the UCB statistics, the throttle and the L2 directory.

**Hint chunks** (mailbox words 16..1007). A decode step's hint is one or more chunks, each
covering consecutive streams; the host writes words 17..(24 + payload) and then word 16 (the
chunk sequence number); the firmware answers in words 13 (sequence done), 14 (status) and
15 (hints rejected so far), and after the step's last chunk, the step record at 1008..1023.

| word | field |
| --- | --- |
| 16 | chunk sequence number (written last) |
| 17 | magic ``HNT1`` (0x31544E48) |
| 18 | request id |
| 19 | decode step (the same step as the previous chunk, or the one after the last complete step) |
| 20 | first stream (15:0), number of streams (31:16) |
| 21 | payload length in 16-bit units |
| 22 | flags: bit 0 last chunk of the step |
| 23 | 0 |
| 24.. | payload, 16-bit little-endian units, per stream: ``n_pages``, ``n_acc``, then ``n_acc`` page indices ascending (``n_acc`` = 0xFFFF: dense, every page ``0 .. n_pages-1``) |

A chunk that breaks any rule is rejected whole (nothing of it is applied), counted, and
answered with its error; the firmware keeps serving. Streams of a step must arrive in
order without gaps, the last chunk ending at the last stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CMD_SPEC_CONFIG = 3

W_HINT_DONE_SEQ, W_HINT_STATUS, W_HINT_REJECTED = 13, 14, 15
W_HINT_SEQ, W_HINT_MAGIC, W_HINT_REQ, W_HINT_STEP = 16, 17, 18, 19
W_HINT_STREAMS, W_HINT_LEN, W_HINT_FLAGS = 20, 21, 22
W_HINT_PAYLOAD = 24
W_STEP_RECORD = 1008
HINT_MAGIC = 0x31544E48  # "HNT1"
PAYLOAD_UNITS = 2 * (W_STEP_RECORD - W_HINT_PAYLOAD)  # 1968 16-bit units
DENSE = 0xFFFF
FLAG_LAST = 1
FLAG_UCB, FLAG_THROTTLE = 1, 2

MAX_STREAMS = 96
MAX_PAGES = 4096      # per stream (vpn page field)
MAX_L2_SLOTS = 1024
MAX_K = 16
UCB_ARMS = (1, 2, 4, 8, 16)

# Hint statuses (word 14).
HINT_OK = 0
HINT_ERRORS = {
    1: "bad magic (garbled chunk)",
    2: "unknown request",
    3: "stream or layer out of range",
    4: "garbled length",
    5: "page count or page index out of range, or pages not ascending",
    6: "decode step out of order",
    7: "prefetching not configured",
}

# Step record (words 1008..1023), written after a step's last chunk.
STEP_RECORD = ("step", "k", "budget", "issued", "skip_l1", "skip_unmapped", "skip_resident",
               "throttled", "l2_hits", "used_prev", "issued_prev", "predict_cycles",
               "issue_cycles", "dma_errors", "arm", "epoch")


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
        if not 0 <= self.kind <= 5:
            raise ValueError(f"predictor kind {self.kind} out of range 0..5")
        if not 1 <= self.k <= MAX_K:
            raise ValueError(f"k = {self.k}: must be 1..{MAX_K}")
        if not 1 <= self.l2_slots <= MAX_L2_SLOTS:
            raise ValueError(f"L2 slots = {self.l2_slots}: must be 1..{MAX_L2_SLOTS}")
        if not 0 <= self.l1_pages <= 255:
            raise ValueError(f"L1 pages = {self.l1_pages}: must be 0..255")
        if not (1 <= self.heads and 1 <= self.layers and self.heads * self.layers <= MAX_STREAMS):
            raise ValueError(f"{self.layers} layers x {self.heads} heads: at most {MAX_STREAMS} streams")
        if self.l2_base % 4096:
            raise ValueError(f"L2 base 0x{self.l2_base:x} is not 4 KiB aligned")

    @property
    def streams(self):
        return self.layers * self.heads

    def words(self):
        """Command words 3..7."""
        flags = (FLAG_UCB if self.ucb else 0) | (FLAG_THROTTLE if self.throttle else 0)
        return [self.request & 0xFFFFFFFF,
                self.kind | self.k << 8 | flags << 16 | self.heads << 24,
                self.l2_base & 0xFFFFFFFF, self.l2_base >> 32,
                self.l2_slots | self.l1_pages << 16 | self.layers << 24]

    def dir_addr(self, slot):
        return self.l2_base + 4096 * self.l2_slots + 64 * slot

    def slot_addr(self, slot):
        return self.l2_base + 4096 * slot

    @property
    def host_bytes(self):
        """Host memory the L2 buffer and its directory take."""
        return self.l2_slots * (4096 + 64)


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
                len(self.payload), FLAG_LAST if self.last else 0, 0] + body


def stream_units(n_pages, acc, dense):
    if dense:
        return [n_pages, DENSE]
    return [n_pages, len(acc)] + [int(p) for p in acc]


def encode_step(request, step, streams, dense=False, max_units=PAYLOAD_UNITS):
    """Split one decode step's hint into chunks.

    ``streams``: list over s = 0..S-1 of (n_pages, accessed page indices ascending).
    """
    chunks, cur, first = [], [], 0
    for s, (n_pages, acc) in enumerate(streams):
        u = stream_units(n_pages, acc, dense)
        if len(u) > max_units:
            raise ValueError(f"stream {s}: {len(acc)} pages do not fit one hint chunk")
        if len(cur) + len(u) > max_units:
            chunks.append(Chunk(step, first, s - first, cur, False, request))
            cur, first = [], s
        cur = cur + u
    chunks.append(Chunk(step, first, len(streams) - first, cur, True, request))
    return chunks


class HintError(ValueError):
    def __init__(self, code):
        super().__init__(HINT_ERRORS[code])
        self.code = code


def parse_chunk(words, cfg: SpecConfig | None, expect_stream, expect_step):
    """Validate and decode one chunk (mailbox words 17.. as the firmware reads them) exactly as
    the firmware does. Returns (step, first, [(stream, n_pages, acc array)], last) or raises
    :class:`HintError` with the firmware's status code.

    ``expect_stream``: the next stream of the step in progress (0 between steps);
    ``expect_step``: the step in progress, or the next step when between steps.
    """
    if cfg is None:
        raise HintError(7)
    magic, req, step, streams, n_units, flags = (int(w) for w in words[:6])
    if magic != HINT_MAGIC:
        raise HintError(1)
    if req != cfg.request:
        raise HintError(2)
    first, count = streams & 0xFFFF, streams >> 16
    if count == 0 or first + count > cfg.streams:
        raise HintError(3)
    if n_units > PAYLOAD_UNITS or flags & ~FLAG_LAST or words[6] != 0:
        raise HintError(4)
    if step != expect_step or first != expect_stream:
        raise HintError(6)
    body = words[7:7 + (n_units + 1) // 2]
    if len(body) < (n_units + 1) // 2:
        raise HintError(4)
    units = []
    for w in body:
        units += [int(w) & 0xFFFF, int(w) >> 16]
    units = units[:n_units]
    out, i = [], 0
    for s in range(first, first + count):
        if i + 2 > n_units:
            raise HintError(4)
        n_pages, n_acc = units[i], units[i + 1]
        i += 2
        if n_pages > MAX_PAGES:
            raise HintError(5)
        if n_acc == DENSE:
            acc = np.arange(n_pages, dtype=np.int64)
        else:
            if i + n_acc > n_units:
                raise HintError(4)
            acc = np.asarray(units[i:i + n_acc], dtype=np.int64)
            i += n_acc
            if n_acc and (acc[-1] >= n_pages or np.any(np.diff(acc) <= 0)):
                raise HintError(5)
        out.append((s, n_pages, acc))
    if i != n_units:
        raise HintError(4)
    last = bool(flags & FLAG_LAST)
    if last != (first + count == cfg.streams):
        raise HintError(3)
    return step, first, out, last
