"""The host <-> firmware contract: the mailbox words, command and status codes, the hint
chunks and step records of the speculation engine, and the device DRAM the commands name.

This module is the one source. The host side (host/driver/device.py, host/driver/hints.py, host/driver/link.py,
host/prefetch/speculation.py, host/replayer/backends.py) imports it; the firmware includes firmware/mailbox.h
and firmware/common.h, generated from this module and gateware/common.py:

    python -m soc.mailbox            # write firmware/mailbox.h and firmware/common.h
    python -m soc.mailbox --check    # exit 1 if either is stale (tests/test_contracts.py)

Each integer constant below becomes a ``#define`` of the same name with its comment
(soc/cheader.py gives the rules).

The mailbox is the ``mbox`` RAM (MBOX_WORDS 32-bit words), reached by the host with
CfgRd/CfgWr. Its words:

 word     who       meaning
 0        firmware  MBOX_READY once DRAM is initialised and the engine may be used
 1        host      command sequence number: the host writes words 2..7 first, then this
 2        host      command code (MBOX_CMD_*)
 3-7      host      command arguments (per command, below)
 8        firmware  sequence number of the last completed command (written last)
 9        firmware  its status: 0 ok, else MBOX_ERR_* or 0x100 | DMA status (ST_*)
 10, 11   firmware  results (per command, below)
 12       firmware  commands rejected (count)
 13-15    firmware  hint chunk done sequence, its status (HERR_*), hint chunks rejected
 16-1007  host      hint chunk (below)
 1007-    firmware  step record, written after each step's last chunk (REC_*)

Commands: 1-7 control plane and speculation, 8-11 predictor tests, 12-15 datapath tests.
 OFFLOAD      args: vpn, staging DRAM offset of the raw page. Results: compressed length,
              DRAM offset of the page's slot.
 PREFETCH     args: vpn, host destination address (low, high word).
 SPEC_CONFIG  args: see "Speculation configuration" below. Resets every predictor, the UCB
              statistics, the throttle and the L2 directory.
 PRED_RUN     args: kind | flags << 8, input records, record count, output records
              (firmware/predict.h). Results: timer cycles in pred_step (sum), records run.

Speculation configuration (MBOX_CMD_SPEC_CONFIG, words 3..7):
 3       request id the hints will carry
 4       predictor kind (7:0, enum pred_kind), k (15:8, 1..SPEC_MAX_K; the largest arm
         with UCB), flags (23:16: SPEC_FLAG_*), KV heads per layer (31:24)
 5, 6    host address of the L2 buffer (low, high word), PAGE_BYTES aligned
 7       L2 slots (15:0, 1..SPEC_MAX_SLOTS: slot i holds a page at l2 + PAGE_BYTES i, its
         directory line at l2 + PAGE_BYTES slots + LINE_BYTES i), L1 pages per stream
         (23:16, never prefetched), layers (31:24; streams = layers * heads)

Hint chunks (words 16..1007). A decode step's hint is one or more chunks, each covering
consecutive streams; the host writes words 17.. and then word 16 (the chunk sequence
number). Payload: 16-bit little-endian units, per stream ``n_pages``, ``n_acc``, then
``n_acc`` page indices ascending (``n_acc`` = HINT_DENSE: every page 0..n_pages-1). A chunk
that breaks any rule is rejected whole (nothing of it applied), counted and answered with
its HERR_* code; streams of a step arrive in order without gaps, the last chunk (flag
HINT_FLAG_LAST) ending at the last stream. The host posts a layer's chunks once it has read
the layer; the firmware predicts and issues each chunk's prefetches before it answers.

A stream's pages have vpn = stream << VPN_PAGE_BITS | page. The directory line of an L2
slot (LINE_BYTES) holds the words TAG_MAGIC, vpn, step, slot, the page's position in the
step's DMA order, then zeros.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateware import common
from gateware.common import LINE_BYTES, PAGE_BYTES, PTE_BYTES
from soc.cheader import ROOT, constants, descriptions, header_text

# Mailbox words -------------------------------------------------------------------------------

MBOX_WORDS         = 1024        # 32-bit words of the mbox RAM
MBOX_READY         = 0x31594452  # word 0 once the device is up: "RDY1"

MBOX_STATUS        = 0     # firmware: MBOX_READY
MBOX_CMD_SEQ       = 1     # host: command sequence number, written after words 2..7
MBOX_CMD           = 2     # host: command code
MBOX_CMD_ARG       = 3     # host: first of the command's argument words 3..7
MBOX_CMD_VPN       = 3     # OFFLOAD, PREFETCH: vpn
MBOX_CMD_SRC       = 4     # OFFLOAD: staging DRAM offset of the raw page
MBOX_CMD_HOST_LO   = 5     # PREFETCH: host destination address, low word
MBOX_CMD_HOST_HI   = 6     # PREFETCH: host destination address, high word
MBOX_CMD_FLAGS     = 7     # OFFLOAD: PTE flags of the page (PTE_FLAG_RAW: stored as is)
MBOX_PRED_ARG      = 3     # PRED_RUN: predictor kind (7:0) | flags << 8 (predict.h: pred_run)
MBOX_PRED_IN       = 4     # PRED_RUN: DRAM offset of the input records
MBOX_PRED_COUNT    = 5     # PRED_RUN: number of records
MBOX_PRED_OUT      = 6     # PRED_RUN: DRAM offset of the output records
MBOX_DONE_SEQ      = 8     # firmware: sequence number of the last completed command
MBOX_DONE_STATUS   = 9     # firmware: its status
MBOX_DONE_LEN      = 10    # OFFLOAD: compressed length; PRED_RUN: pred_step timer cycles
MBOX_DONE_SLOT     = 11    # OFFLOAD: DRAM offset of the slot; PRED_RUN: records run
MBOX_REJECTED      = 12    # firmware: commands rejected (count)
MBOX_HINT_DONE_SEQ = 13    # firmware: sequence number of the last hint chunk served
MBOX_HINT_STATUS   = 14    # firmware: its status (HERR_*)
MBOX_HINT_REJECTED = 15    # firmware: hint chunks rejected (count)
MBOX_HINT_SEQ      = 16    # host: hint chunk sequence number, written after words 17..
MBOX_HINT_MAGIC    = 17    # HINT_MAGIC
MBOX_HINT_REQ      = 18    # request id (as configured)
MBOX_HINT_STEP     = 19    # decode step: the step in progress, or the one after the last
MBOX_HINT_STREAMS  = 20    # first stream (15:0), number of streams (31:16)
MBOX_HINT_LEN      = 21    # payload length in 16-bit units
MBOX_HINT_FLAGS    = 22    # HINT_FLAG_*
MBOX_HINT_RSVD     = 23    # 0
MBOX_HINT_PAYLOAD  = 24    # first payload word
MBOX_STEP_RECORD   = 1007  # first word of the step record
MBOX_HINT_UNITS    = 2 * (MBOX_STEP_RECORD - MBOX_HINT_PAYLOAD)  # payload capacity (units)
MAILBOX_SIZE       = 4 * MBOX_WORDS  # bytes of the mbox RAM in the SoC

# Command codes (word 2) ----------------------------------------------------------------------

MBOX_CMD_OFFLOAD     = 1  # compress (or, PTE_FLAG_RAW, copy) a staged page into the pool, map it
MBOX_CMD_PREFETCH    = 2  # decompress a pooled page into host memory
MBOX_CMD_SPEC_CONFIG = 3  # configure the speculation engine for a request
MBOX_CMD_PRED_RUN    = 8  # predictor test channel (codes 8-11: predictors)

# Command statuses (word 9; a DMA failure is 0x100 | its ST_* status) -------------------------

MBOX_ERR_UNKNOWN  = 1  # unknown command
MBOX_ERR_VPN      = 2  # vpn outside the page table
MBOX_ERR_SRC      = 3  # staging offset outside the staging area or not aligned
MBOX_ERR_POOL     = 4  # page pool full
MBOX_ERR_UNMAPPED = 5  # page not in the pool
MBOX_ERR_CONFIG   = 6  # speculation configuration out of range
MBOX_DMA_FAILED   = 0x100  # | DMA status (ST_*): the DMA job failed

# Speculation configuration (SPEC_CONFIG argument words) -------------------------------------

MBOX_CFG_REQUEST    = 3   # request id
MBOX_CFG_PREDICT    = 4   # kind, k, flags, heads
MBOX_CFG_L2_LO      = 5   # L2 buffer host address, low word
MBOX_CFG_L2_HI      = 6   # L2 buffer host address, high word
MBOX_CFG_SHAPE      = 7   # L2 slots, L1 pages, layers
CFG_KIND_SHIFT      = 0   # word 4, 8 bits: predictor kind
CFG_K_SHIFT         = 8   # word 4, 8 bits: prediction depth
CFG_FLAGS_SHIFT     = 16  # word 4, 8 bits: SPEC_FLAG_*
CFG_HEADS_SHIFT     = 24  # word 4, 8 bits: KV heads per layer
CFG_SLOTS_SHIFT     = 0   # word 7, 16 bits: L2 slots
CFG_SLOTS_MASK      = 0xFFFF
CFG_L1_SHIFT        = 16  # word 7, 8 bits: L1 pages per stream
CFG_LAYERS_SHIFT    = 24  # word 7, 8 bits: layers
SPEC_FLAG_UCB       = 1   # adaptive k (UCB over the arms SPEC_UCB_ARMS up to k)
SPEC_FLAG_THROTTLE  = 2   # bandwidth throttling (precision-driven page budget)
SPEC_MAX_KIND       = 5   # predictor kinds 0..5 (enum pred_kind: none .. lstm)
SPEC_MAX_K          = 16  # largest prediction depth
SPEC_MAX_SLOTS      = 1024  # largest L2 slot count
SPEC_MAX_L1         = 255  # largest L1 window (pages per stream)
SPEC_MAX_STREAMS    = 96  # layers * heads
VPN_PAGE_BITS       = 12  # vpn = stream << VPN_PAGE_BITS | page
SPEC_MAX_PAGES      = 1 << VPN_PAGE_BITS  # full pages per stream

# Hint chunks ---------------------------------------------------------------------------------

HINT_MAGIC     = 0x31544E48  # word 17: "HNT1"
HINT_FLAG_LAST = 1           # word 22: last chunk of the step
HINT_DENSE     = 0xFFFF      # n_acc: every page 0 .. n_pages - 1 was read

# Hint statuses (word 14) ---------------------------------------------------------------------

HERR_MAGIC   = 1  # bad magic (garbled chunk)
HERR_REQUEST = 2  # unknown request
HERR_STREAM  = 3  # stream or layer out of range
HERR_LENGTH  = 4  # garbled length
HERR_PAGES   = 5  # page count or page index out of range, or pages not ascending
HERR_STEP    = 6  # decode step out of order
HERR_CONFIG  = 7  # prefetching not configured

# Step record (words MBOX_STEP_RECORD + REC_*) ------------------------------------------------

REC_STEP           = 0   # decode step
REC_K              = 1   # prediction depth of the step (the arm's, with UCB)
REC_BUDGET         = 2   # page budget of the step
REC_ISSUED         = 3   # pages issued (prefetched into L2)
REC_SKIP_L1        = 4   # predictions skipped: in the host's L1 window
REC_SKIP_UNMAPPED  = 5   # predictions skipped: not in the pool
REC_SKIP_RESIDENT  = 6   # predictions skipped: in L2 already, or issued this step
REC_THROTTLED      = 7   # predictions dropped by the budget
REC_L2_HITS        = 8   # accessed pages outside L1 found in L2
REC_USED_PREV      = 9   # of those, pages issued at the previous step
REC_ISSUED_PREV    = 10  # pages issued at the previous step
REC_PREDICT_CYCLES = 11  # firmware timer cycles in the predictors
REC_ISSUE_CYCLES   = 12  # firmware timer cycles filtering and issuing
REC_DMA_ERRORS     = 13  # prefetch DMA jobs that failed
REC_ARM            = 14  # UCB arm of the step
REC_DMA_WAIT_CYCLES = 15  # firmware timer cycles of the issue waiting for DMA completions
REC_EPOCH          = 16  # = step
STEP_RECORD_WORDS  = 17

# Speculation engine parameters (firmware/speculate.c; reference host/prefetch/speculation.py) ---------

SPEC_UCB_ARMS    = (1, 2, 4, 8, 16)    # prediction depths of the UCB arms
SPEC_N_ARMS      = len(SPEC_UCB_ARMS)
SPEC_LAMBDA_Q16  = 8192  # a wasted prefetch costs 1/8 of a hit (Q16)
SPEC_C_Q8        = 128   # UCB exploration constant 0.5 (Q8)
SPEC_BUDGET_MIN  = 8     # throttle: smallest page budget
SPEC_P_LOW       = 64    # throttle: precision (Q8) below which the budget halves (25 %)
SPEC_P_HIGH      = 154   # throttle: precision (Q8) above which the budget grows (60 %)
TAG_MAGIC        = 0x31474154  # directory line word 0: "TAG1"

# Device DRAM (byte offsets on the LiteDRAM native ports; the CPU adds MAIN_RAM_BASE) ---------

DRAM_TAGS         = 0x00080000  # L2 directory lines staged for DMA copy, LINE_BYTES a slot
DRAM_SPEC         = 0x00090000  # speculation engine tables (CPU only; 24 KiB reserved)
DRAM_ZERO_LINES   = 0x00096000  # ZERO_LINES x LINE_BYTES of zeros: copied over reused slots' directory lines
ZERO_LINES        = 16          # directory lines one zeroing DMA job clears at most
DRAM_STAGING      = 0x00100000  # raw pages from the host, PAGE_BYTES slots
DRAM_STAGING_SIZE = 0x00100000
DRAM_POOL         = 0x00200000  # compressed pages, LINE_BYTES-aligned extents
DRAM_POOL_END     = 0x01000000
DRAM_PT           = 0x01000000  # page table: PTE_BYTES per vpn
VPN_WIDTH         = 20          # vpn bits: the page table's size and the ATU's vpn width
PT_ENTRIES        = 1 << VPN_WIDTH
PRED_DRAM_BASE    = 0x01800000  # PRED_RUN inputs and outputs
PRED_DRAM_END     = 0x01C00000
PRED_OUT_STRIDE   = 72          # bytes per PRED_RUN output record
DRAM_SCRATCH      = 0x01C00000  # free: the datapath tests' scratch area
DRAM_SCRATCH_END  = 0x02000000

# Host-side names of the codes and records (the comments above) ------------------------------

_THIS = sys.modules[__name__]
MBOX_ERRORS = descriptions(_THIS, "MBOX_ERR_")  # command status -> description
HINT_ERRORS = descriptions(_THIS, "HERR_")      # hint status -> description
STEP_RECORD = tuple(name[4:].lower() for name, _, _, _ in constants(_THIS)
                    if name.startswith("REC_"))  # step record fields, in word order

assert ([v for n, v, _, _ in constants(_THIS) if n.startswith("REC_")]
        == list(range(STEP_RECORD_WORDS)))
assert MBOX_STEP_RECORD + STEP_RECORD_WORDS == MBOX_WORDS
assert MBOX_HINT_PAYLOAD == MBOX_HINT_RSVD + 1
assert DRAM_SPEC + 24 * 1024 <= DRAM_ZERO_LINES < DRAM_ZERO_LINES + ZERO_LINES * LINE_BYTES <= DRAM_STAGING
assert DRAM_TAGS + LINE_BYTES * SPEC_MAX_SLOTS <= DRAM_SPEC
assert DRAM_STAGING + DRAM_STAGING_SIZE <= DRAM_POOL and DRAM_POOL_END <= DRAM_PT
assert DRAM_PT + PTE_BYTES * PT_ENTRIES <= PRED_DRAM_BASE <= PRED_DRAM_END <= DRAM_SCRATCH
assert DRAM_STAGING % PAGE_BYTES == 0 and DRAM_POOL % LINE_BYTES == 0


_ACCESSORS = """
/* Mailbox word `word` (generated/mem.h: MBOX_BASE). */
static inline volatile uint32_t *mbox(unsigned word)
{
	return (volatile uint32_t *)(MBOX_BASE + 4 * word);
}

static inline void mailbox_set_ready(void)
{
	*mbox(MBOX_STATUS) = MBOX_READY;
}
"""


def headers():
    """{path: text} of every header generated from the contract modules."""
    return {
        ROOT / "firmware" / "common.h": header_text(common, "SPECKV_COMMON_H"),
        ROOT / "firmware" / "mailbox.h": header_text(
            _THIS, "SPECKV_MAILBOX_H",
            includes=("<stdint.h>", "<generated/mem.h>"), tail=_ACCESSORS),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m soc.mailbox",
        description="Write the firmware headers generated from the contract modules "
                    "(soc/mailbox.py -> firmware/mailbox.h, gateware/common.py -> "
                    "firmware/common.h).")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="write (or check) the headers in this directory instead of firmware/")
    args = ap.parse_args(argv)
    stale = 0
    for path, text in headers().items():
        if args.out_dir is not None:
            path = args.out_dir / path.name
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"{path}: {'up to date' if same else 'STALE (run python -m soc.mailbox)'}")
            stale += not same
        else:
            path.write_text(text)
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
