#ifndef SPECKV_SPECULATE_H
#define SPECKV_SPECULATE_H

#include <stdint.h>

/* Speculation engine: hint chunks from the mailbox -> predictions -> prefetch DMA jobs into
 * the host's L2 (specification: host/prefetch/speculation.py; wire format and parameters:
 * soc/mailbox.py, generated into mailbox.h). It serves the hint channel of the mailbox
 * itself and uses the page store (pool.h) for page-table lookups and DRAM write-backs. */

/* One request's configuration (MBOX_CMD_SPEC_CONFIG, decoded by dispatch.c). */
struct spec_config {
	uint32_t request;  /* request id the hints carry */
	uint32_t kind;     /* predictor, enum pred_kind */
	uint32_t k;        /* prediction depth 1..SPEC_MAX_K (the largest arm with UCB) */
	uint32_t flags;    /* SPEC_FLAG_* */
	uint32_t heads;    /* KV heads per layer */
	uint32_t layers;   /* streams = layers * heads */
	uint32_t slots;    /* L2 slots 1..SPEC_MAX_SLOTS */
	uint32_t l1;       /* L1 pages per stream (never prefetched) */
	uint64_t l2;       /* host address of the L2 buffer, PAGE_BYTES aligned */
};

void spec_init(void);
/* Serve one pending hint chunk, if any. */
void spec_poll(void);
/* Configure a request: resets the predictors, the UCB statistics, the throttle and the L2
 * directory. Returns 0, or MBOX_ERR_CONFIG with a field out of range (nothing changed). */
uint32_t spec_config(const struct spec_config *c);
/* Wait for the prefetch DMA jobs still queued (their completions count into the step in
 * progress). The DMA has one completion queue: the page store's synchronous jobs (mailbox
 * commands) pop the oldest completion as theirs, so they may only run after this. */
void spec_dma_drain(void);

#endif
