#ifndef SPECKV_MAILBOX_H
#define SPECKV_MAILBOX_H

/* Host <-> firmware mailbox: the `mbox` RAM, which the host reaches with CfgRd/CfgWr.
 * The layout is mirrored in host/device.py; keep the two in step.
 *
 * word  who       meaning
 *  0    firmware  MBOX_READY once DRAM is initialised and the engine may be used
 *  1    host      command sequence number: the host writes words 2..7 first, then this
 *  2    host      command: MBOX_CMD_OFFLOAD or MBOX_CMD_PREFETCH
 *  3    host      vpn
 *  4    host      OFFLOAD: staging DRAM offset of the raw page
 *  5    host      PREFETCH: host destination address, low word
 *  6    host      PREFETCH: host destination address, high word
 *  8    firmware  sequence number of the last completed command (written last)
 *  9    firmware  its status: 0 ok, else MBOX_ERR_* or 0x100 | DMA status
 * 10    firmware  OFFLOAD: compressed length in bytes
 * 11    firmware  OFFLOAD: DRAM offset of the page's slot
 * 12    firmware  commands rejected (count)
 * 13-15 firmware  hint chunk done sequence, its status, hint chunks rejected (count)
 * 16-1007         hint chunk (host): see host/hints.py for the format
 * 1008-1023       step record (firmware), written after each step's last chunk
 *
 * Command codes: 1-7 control plane and speculation (this file), 8-11 predictor tests,
 * 12-15 datapath tests.
 *
 * MBOX_CMD_PRED_RUN (predictor test channel, firmware/predict.h): word 3 = kind | flags << 8,
 * word 4 = input records (DRAM offset), word 5 = record count, word 6 = output records;
 * completion: word 10 = timer cycles spent in pred_step (sum), word 11 = records run.
 */

#include <stdint.h>
#include <generated/mem.h>

#define MBOX_READY 0x31594452u /* "RDY1" */

#define MBOX_STATUS     0
#define MBOX_CMD_SEQ    1
#define MBOX_CMD        2
#define MBOX_CMD_VPN    3
#define MBOX_CMD_SRC    4
#define MBOX_CMD_HOST_LO 5
#define MBOX_CMD_HOST_HI 6
#define MBOX_DONE_SEQ   8
#define MBOX_DONE_STATUS 9
#define MBOX_DONE_LEN   10
#define MBOX_DONE_SLOT  11
#define MBOX_REJECTED   12

#define MBOX_CMD_OFFLOAD  1
#define MBOX_CMD_PREFETCH 2
#define MBOX_CMD_SPEC_CONFIG 3  /* words 3..7: speculation configuration (host/hints.py) */

#define MBOX_HINT_DONE_SEQ 13
#define MBOX_HINT_STATUS   14
#define MBOX_HINT_REJECTED 15
#define MBOX_HINT_SEQ      16
#define MBOX_HINT_MAGIC    17
#define MBOX_HINT_REQ      18
#define MBOX_HINT_STEP     19
#define MBOX_HINT_STREAMS  20
#define MBOX_HINT_LEN      21
#define MBOX_HINT_FLAGS    22
#define MBOX_HINT_RSVD     23
#define MBOX_HINT_PAYLOAD  24
#define MBOX_STEP_RECORD   1008
#define MBOX_HINT_UNITS    (2 * (MBOX_STEP_RECORD - MBOX_HINT_PAYLOAD))
#define HINT_MAGIC 0x31544E48u /* "HNT1" */
#define MBOX_CMD_PRED_RUN 8  /* codes 8-11: predictors (issue 6) */

#define MBOX_ERR_UNKNOWN  1  /* unknown command */
#define MBOX_ERR_VPN      2  /* vpn outside the page table */
#define MBOX_ERR_SRC      3  /* staging offset outside the staging area or not aligned */
#define MBOX_ERR_POOL     4  /* page pool full */
#define MBOX_ERR_UNMAPPED 5  /* PREFETCH of a page that is not in the pool */
#define MBOX_ERR_CONFIG   6  /* SPEC_CONFIG with a field out of range */

static inline volatile uint32_t *mbox(unsigned word)
{
	return (volatile uint32_t *)(MBOX_BASE + 4 * word);
}

static inline void mailbox_set_ready(void)
{
	*mbox(MBOX_STATUS) = MBOX_READY;
}

#endif
