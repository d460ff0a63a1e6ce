#ifndef SPECKV_SPECULATE_H
#define SPECKV_SPECULATE_H

#include <stdint.h>

/* Speculation engine: hint chunks from the mailbox -> predictions -> prefetch DMA jobs into
 * the host's L2 (specification: host/speculation.py, wire format: host/hints.py). */
void spec_init(void);
/* Serve one pending hint chunk, if any. */
void spec_poll(void);
/* MBOX_CMD_SPEC_CONFIG with command words 3..7; returns 0 or MBOX_ERR_CONFIG. */
uint32_t spec_config(uint32_t w3, uint32_t w4, uint32_t w5, uint32_t w6, uint32_t w7);

#endif
