/* The mailbox dispatch (dispatch.h): the top of the firmware's control plane. It decodes
 * each host command from the mailbox words (mailbox.h, generated from soc/mailbox.py),
 * calls the layer that serves it and posts the completion:
 *  - OFFLOAD, PREFETCH: the page store (pool.c);
 *  - SPEC_CONFIG: the speculation engine (speculate.c), which also serves the hint chunks;
 *  - PRED_RUN: the predictor test channel (predict.c).
 * Nothing below calls back up here: pool.c <- speculate.c <- dispatch.c. */

#include <stdint.h>

#include <system.h>
#include <generated/csr.h>

#include "dispatch.h"
#include "mailbox.h"
#include "pool.h"
#include "predict.h"
#include "speculate.h"

#ifdef CSR_DMA_BASE

static uint32_t last_seq;
static uint32_t rejected;

void dispatch_init(void)
{
	pool_init();
	last_seq = *mbox(MBOX_CMD_SEQ);
	rejected = 0;
	*mbox(MBOX_REJECTED) = 0;
	spec_init();
}

/* MBOX_CMD_SPEC_CONFIG: the configuration fields from the argument words. */
static uint32_t do_spec_config(void)
{
	uint32_t predict = *mbox(MBOX_CFG_PREDICT), shape = *mbox(MBOX_CFG_SHAPE);
	struct spec_config c = {
		.request = *mbox(MBOX_CFG_REQUEST),
		.kind = (predict >> CFG_KIND_SHIFT) & 0xff,
		.k = (predict >> CFG_K_SHIFT) & 0xff,
		.flags = (predict >> CFG_FLAGS_SHIFT) & 0xff,
		.heads = (predict >> CFG_HEADS_SHIFT) & 0xff,
		.layers = (shape >> CFG_LAYERS_SHIFT) & 0xff,
		.slots = (shape >> CFG_SLOTS_SHIFT) & CFG_SLOTS_MASK,
		.l1 = (shape >> CFG_L1_SHIFT) & 0xff,
		.l2 = ((uint64_t)*mbox(MBOX_CFG_L2_HI) << 32) | *mbox(MBOX_CFG_L2_LO),
	};
	return spec_config(&c);
}

static void command_poll(void)
{
	uint32_t seq, cmd, status, len = 0, slot = 0;
	flush_cpu_dcache();  /* the host writes the mailbox behind the CPU's data cache */
	seq = *mbox(MBOX_CMD_SEQ);
	if (seq == last_seq)
		return;
	spec_dma_drain();    /* a command's DMA job must not pop a prefetch's completion */
	cmd = *mbox(MBOX_CMD);
	if (cmd == MBOX_CMD_OFFLOAD)
		status = pool_offload(*mbox(MBOX_CMD_VPN), *mbox(MBOX_CMD_SRC), *mbox(MBOX_CMD_FLAGS),
		                      &len, &slot);
	else if (cmd == MBOX_CMD_PREFETCH)
		status = pool_prefetch(*mbox(MBOX_CMD_VPN),
		                       ((uint64_t)*mbox(MBOX_CMD_HOST_HI) << 32) | *mbox(MBOX_CMD_HOST_LO));
	else if (cmd == MBOX_CMD_SPEC_CONFIG)
		status = do_spec_config();
	else if (cmd == MBOX_CMD_PRED_RUN) {
		uint32_t arg = *mbox(MBOX_PRED_ARG);
		status = pred_run(arg & 0xff, arg >> 8, *mbox(MBOX_PRED_IN), *mbox(MBOX_PRED_COUNT),
		                  *mbox(MBOX_PRED_OUT), &len);
		slot = status ? 0 : *mbox(MBOX_PRED_COUNT);
	} else
		status = MBOX_ERR_UNKNOWN;
	if (status && status < MBOX_DMA_FAILED)
		*mbox(MBOX_REJECTED) = ++rejected;
	*mbox(MBOX_DONE_STATUS) = status;
	*mbox(MBOX_DONE_LEN) = len;
	*mbox(MBOX_DONE_SLOT) = slot;
	*mbox(MBOX_DONE_SEQ) = seq;
	last_seq = seq;
}

void dispatch_poll(void)
{
	command_poll();
	spec_poll();
}

#else  /* no cache engine in this SoC: no commands, no hints */

void dispatch_init(void) {}
void dispatch_poll(void) {}

#endif
