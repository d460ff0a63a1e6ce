#ifndef SPECKV_ENGINE_H
#define SPECKV_ENGINE_H

#include <stdint.h>

/* Control plane of the cache engine: DRAM layout, page pool, page table, host commands. */

/* DRAM layout (byte offsets on the LiteDRAM native ports; the CPU adds MAIN_RAM_BASE). */
#define DRAM_TAGS         0x00080000u  /* L2 directory lines staged for DMA copy, 64 B a slot */
#define DRAM_SPEC         0x00090000u  /* speculation engine tables (CPU only, 24 KiB) */
#define DRAM_STAGING      0x00100000u  /* raw pages from the host, 4 KiB slots */
#define DRAM_STAGING_SIZE 0x00100000u
#define DRAM_POOL         0x00200000u  /* compressed pages, 64 B aligned extents */
#define DRAM_POOL_END     0x01000000u
#define DRAM_PT           0x01000000u  /* page table: 8 B per vpn */
#define PT_ENTRIES        (1u << 20)
#define PAGE_BYTES        4096u
#define SLOT_MAX          (PAGE_BYTES + 64u) /* worst-case compressed page (raw mode) */

void engine_init(void);
/* Serve one pending mailbox command, if any. */
void engine_poll(void);
/* Write the L2 lines of [p, p + n) (CPU address in main RAM) back to DRAM, where the gateware
 * (ATU walker, DMA) reads. */
void l2_writeback(volatile void *p, unsigned n);
/* Page table lookups for the speculation engine. */
int engine_pte_valid(uint32_t vpn);
void engine_pte_extent(uint32_t vpn, uint32_t *src, uint32_t *length);

#endif
