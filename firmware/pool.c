/* The device's page store (pool.h): page pool, page table and their DMA jobs.
 *  - at boot: configure the ATU (page table, DRAM window) and the DMA windows;
 *  - offload: compress a raw page from staging into the pool with the DMA engine, write its
 *    PTE, make it visible to the ATU walker (cache write-back), invalidate its TLB entry;
 *  - prefetch: decompress a pooled page into host memory with the DMA engine.
 * The demand-read path never comes here: it is all gateware (PageEngine). */

#include <stdint.h>

#include <system.h>
#include <generated/csr.h>
#include <generated/mem.h>

#include "common.h"
#include "mailbox.h"
#include "pool.h"

#ifdef CSR_DMA_BASE

static uint32_t pool_next;   /* bump pointer, LINE_BYTES aligned */

static volatile uint64_t *pte_ptr(uint32_t vpn)
{
	return (volatile uint64_t *)(MAIN_RAM_BASE + DRAM_PT + PTE_BYTES * vpn);
}

/* PTE fields (common.h; gateware/atu/README.md): valid, flags, length, slot >> 6. */
static uint64_t pte_pack(uint32_t slot, uint32_t length, uint32_t flags)
{
	return (1ull << PTE_VALID_BIT) | ((uint64_t)flags << PTE_FLAGS_SHIFT) |
	       ((uint64_t)length << PTE_LEN_SHIFT) |
	       ((uint64_t)(slot >> SLOT_ALIGN_BITS) << PTE_SLOT_SHIFT);
}

static uint32_t pte_flags(uint64_t pte)
{
	return (pte >> PTE_FLAGS_SHIFT) & ((1u << PTE_FLAGS_WIDTH) - 1);
}

/* How a pooled page is read back: a raw page (PTE_FLAG_RAW) by a copy. */
static uint32_t pte_read_op(uint64_t pte)
{
	return (pte_flags(pte) & PTE_FLAG_RAW) ? OP_COPY : OP_DECOMPRESS;
}

static int pte_is_valid(uint64_t pte)
{
	return (pte >> PTE_VALID_BIT) & 1;
}

static uint32_t pte_slot(uint64_t pte)
{
	return (uint32_t)((pte >> PTE_SLOT_SHIFT) << SLOT_ALIGN_BITS);
}

static uint32_t pte_length(uint64_t pte)
{
	return (uint32_t)((pte >> PTE_LEN_SHIFT) & ((1u << PTE_LEN_WIDTH) - 1));
}

void l2_writeback(volatile void *p, unsigned n)
{
#ifdef CONFIG_L2_SIZE
	/* The L2 is direct-mapped: reading the address with the L2-size bit flipped maps to the
	 * same set with another tag, so it evicts (writes back) the line holding p. Much cheaper
	 * than flush_l2_cache(), which reads 2 x L2 size. The CPU's L1 is write-through:
	 * invalidate it first so the reads reach the L2. */
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)(L2_LINE_BYTES - 1), end = (uintptr_t)p + n;
	flush_cpu_dcache();
	for (; a < end; a += L2_LINE_BYTES)
		(void)*(volatile uint32_t *)(MAIN_RAM_BASE + ((a - MAIN_RAM_BASE) ^ CONFIG_L2_SIZE));
	flush_cpu_dcache();
#else
	(void)p;
	(void)n;
#endif
}

void pool_init(void)
{
	atu_pt_base_write(DRAM_PT);
	atu_pt_entries_write(PT_ENTRIES);
	atu_dram_base_write(0);
	atu_dram_size_write(MAIN_RAM_SIZE);
	engine_dram_base_write(0);
	engine_dram_size_write(MAIN_RAM_SIZE);
	dma_dram_base_write(0);
	dma_dram_size_write(MAIN_RAM_SIZE);
	pool_next = DRAM_POOL;
}

/* Queue one single-descriptor DMA job and wait for its completion; returns the DMA status,
 * and the bytes written through *bytes. */
static uint32_t dma_run(uint32_t op, int host, uint32_t src, uint64_t dst, uint32_t length,
                        uint32_t cap, uint32_t *bytes)
{
	uint32_t c;
	dma_src_write(src);
	dma_dst_write(dst);
	dma_length_write(length);
	dma_cap_write(cap);
	dma_push_write((op << CSR_DMA_PUSH_OP_OFFSET) | ((host ? 1 : 0) << CSR_DMA_PUSH_HOST_OFFSET) |
	               (1 << CSR_DMA_PUSH_LAST_OFFSET));
	do {
		c = dma_completion_read();
	} while (!(c & (1 << CSR_DMA_COMPLETION_VALID_OFFSET)));
	*bytes = dma_completion_bytes_read();
	dma_pop_write(1);
	return (c >> CSR_DMA_COMPLETION_STATUS_OFFSET) & ((1 << CSR_DMA_COMPLETION_STATUS_SIZE) - 1);
}

uint32_t pool_offload(uint32_t vpn, uint32_t src, uint32_t flags, uint32_t *len, uint32_t *slot)
{
	uint32_t bytes, st;
	if (vpn >= PT_ENTRIES)
		return MBOX_ERR_VPN;
	if (src < DRAM_STAGING || src + PAGE_BYTES > DRAM_STAGING + DRAM_STAGING_SIZE ||
	    (src & (LINE_BYTES - 1)))
		return MBOX_ERR_SRC;
	if (flags & ~(uint32_t)PTE_FLAG_RAW)
		return MBOX_ERR_SRC;
	if (pool_next + SLOT_MAX_BYTES > DRAM_POOL_END)
		return MBOX_ERR_POOL;
	*slot = pool_next;
	st = dma_run((flags & PTE_FLAG_RAW) ? OP_COPY : OP_COMPRESS, 0, src, *slot, PAGE_BYTES,
	             SLOT_MAX_BYTES, &bytes);
	if (st)
		return MBOX_DMA_FAILED | st;
	*len = bytes;
	/* pages pack at their compressed size */
	pool_next = (*slot + bytes + LINE_BYTES - 1) & ~(LINE_BYTES - 1u);
	*pte_ptr(vpn) = pte_pack(*slot, bytes, flags);
	/* The ATU walker reads DRAM, not the CPU caches: write the PTE back, then drop any
	 * cached translation. */
	l2_writeback(pte_ptr(vpn), PTE_BYTES);
	atu_inval_write(vpn);
	return 0;
}

int pool_pte_valid(uint32_t vpn)
{
	return vpn < PT_ENTRIES && pte_is_valid(*pte_ptr(vpn));
}

void pool_pte_extent(uint32_t vpn, uint32_t *src, uint32_t *length, uint32_t *op)
{
	uint64_t pte = *pte_ptr(vpn);
	*src = pte_slot(pte);
	*length = pte_length(pte);
	*op = pte_read_op(pte);
}

uint32_t pool_prefetch(uint32_t vpn, uint64_t host)
{
	uint64_t pte;
	uint32_t bytes, st;
	if (vpn >= PT_ENTRIES)
		return MBOX_ERR_VPN;
	flush_cpu_dcache();
	pte = *pte_ptr(vpn);
	if (!pte_is_valid(pte))
		return MBOX_ERR_UNMAPPED;
	st = dma_run(pte_read_op(pte), 1, pte_slot(pte), host, pte_length(pte), PAGE_BYTES, &bytes);
	return st ? (MBOX_DMA_FAILED | st) : 0;
}

#endif  /* CSR_DMA_BASE: no cache engine, no page store */
