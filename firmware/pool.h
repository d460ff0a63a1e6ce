#ifndef SPECKV_POOL_H
#define SPECKV_POOL_H

#include <stdint.h>

/* The device's page store: compressed pages in the DRAM pool, the page table the ATU walks
 * (PTE layout: common.h), and the DMA jobs that fill the pool (offload) and drain it into
 * host memory (prefetch). DRAM layout: mailbox.h (DRAM_*). It knows nothing of the mailbox
 * protocol or of speculation: the mailbox dispatch (dispatch.c) and the speculation engine
 * (speculate.c) call it. Statuses are 0, MBOX_ERR_* or MBOX_DMA_FAILED | DMA status. */

/* Configure the ATU (page table, DRAM window) and the DMA windows; empty the pool. */
void pool_init(void);
/* Compress the raw page at staging offset src into the pool (flags PTE_FLAG_RAW: copy it as
 * is) and map it at vpn with those PTE flags: its PTE is written back to DRAM and the vpn's
 * cached translation dropped. Returns the status, and the stored length and the slot's DRAM
 * offset through *len and *slot. */
uint32_t pool_offload(uint32_t vpn, uint32_t src, uint32_t flags, uint32_t *len, uint32_t *slot);
/* Decompress (a raw page: copy) the page mapped at vpn into host memory at host. */
uint32_t pool_prefetch(uint32_t vpn, uint64_t host);
/* Page table lookups: is vpn mapped; the DRAM extent of a mapped page and the DMA op that
 * reads it back (OP_DECOMPRESS, or OP_COPY for a raw page). */
int pool_pte_valid(uint32_t vpn);
void pool_pte_extent(uint32_t vpn, uint32_t *src, uint32_t *length, uint32_t *op);
/* Write the L2 lines of [p, p + n) (CPU address in main RAM) back to DRAM, where the gateware
 * (ATU walker, DMA) reads. */
void l2_writeback(volatile void *p, unsigned n);

#endif
