/* Control plane of the cache engine (see docs/datapath.md):
 *  - at boot: configure the ATU (page table, DRAM window) and the DMA windows;
 *  - OFFLOAD: compress a raw page from staging into the pool with the DMA engine, write its
 *    PTE, make it visible to the ATU walker (cache flush), invalidate its TLB entry;
 *  - PREFETCH: decompress a pooled page into host memory with the DMA engine.
 * The demand-read path never comes here: it is all gateware (PageEngine). */

#include <stdint.h>
#include <stdio.h>

#include <system.h>
#include <generated/csr.h>
#include <generated/mem.h>

#include "engine.h"
#include "mailbox.h"
#include "speculate.h"
#include "predict.h"

#ifdef CSR_DMA_BASE

static uint32_t pool_next;   /* bump pointer, 64 B aligned */
static uint32_t last_seq;
static uint32_t rejected;

static volatile uint64_t *pte_ptr(uint32_t vpn)
{
	return (volatile uint64_t *)(MAIN_RAM_BASE + DRAM_PT + 8u * vpn);
}

/* PTE: bit 0 valid, 7:1 flags, 23:8 length, 63:24 slot >> 6 (gateware/atu/README.md). */
static uint64_t pte_pack(uint32_t slot, uint32_t length)
{
	return 1ull | ((uint64_t)length << 8) | ((uint64_t)(slot >> 6) << 24);
}

void l2_writeback(volatile void *p, unsigned n)
{
#ifdef CONFIG_L2_SIZE
	/* The L2 is direct-mapped: reading the address with the L2-size bit flipped maps to the
	 * same set with another tag, so it evicts (writes back) the line holding p. Much cheaper
	 * than flush_l2_cache(), which reads 2 x L2 size. The CPU's L1 is write-through:
	 * invalidate it first so the reads reach the L2. */
	uintptr_t a = (uintptr_t)p & ~3u, end = (uintptr_t)p + n;
	flush_cpu_dcache();
	for (; a < end; a += 4)
		(void)*(volatile uint32_t *)(MAIN_RAM_BASE + ((a - MAIN_RAM_BASE) ^ CONFIG_L2_SIZE));
	flush_cpu_dcache();
#else
	(void)p;
	(void)n;
#endif
}

void engine_init(void)
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
	last_seq = *mbox(MBOX_CMD_SEQ);
	rejected = 0;
	*mbox(MBOX_REJECTED) = 0;
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

static uint32_t do_offload(uint32_t vpn, uint32_t src, uint32_t *len, uint32_t *slot)
{
	uint32_t bytes, st;
	if (vpn >= PT_ENTRIES)
		return MBOX_ERR_VPN;
	if (src < DRAM_STAGING || src + PAGE_BYTES > DRAM_STAGING + DRAM_STAGING_SIZE || (src & 63))
		return MBOX_ERR_SRC;
	if (pool_next + SLOT_MAX > DRAM_POOL_END)
		return MBOX_ERR_POOL;
	*slot = pool_next;
	st = dma_run(1 /* compress */, 0, src, *slot, PAGE_BYTES, SLOT_MAX, &bytes);
	if (st)
		return 0x100 | st;
	*len = bytes;
	pool_next = (*slot + bytes + 63) & ~63u;  /* pages pack at their compressed size */
	*pte_ptr(vpn) = pte_pack(*slot, bytes);
	/* The ATU walker reads DRAM, not the CPU caches: write the PTE back, then drop any
	 * cached translation. */
	l2_writeback(pte_ptr(vpn), 8);
	atu_inval_write(vpn);
	return 0;
}

int engine_pte_valid(uint32_t vpn)
{
	return vpn < PT_ENTRIES && (*pte_ptr(vpn) & 1);
}

void engine_pte_extent(uint32_t vpn, uint32_t *src, uint32_t *length)
{
	uint64_t pte = *pte_ptr(vpn);
	*src = (uint32_t)((pte >> 24) << 6);
	*length = (uint32_t)((pte >> 8) & 0xffff);
}

static uint32_t do_prefetch(uint32_t vpn, uint64_t host)
{
	uint64_t pte;
	uint32_t bytes, st;
	if (vpn >= PT_ENTRIES)
		return MBOX_ERR_VPN;
	flush_cpu_dcache();
	pte = *pte_ptr(vpn);
	if (!(pte & 1))
		return MBOX_ERR_UNMAPPED;
	st = dma_run(2 /* decompress */, 1, (uint32_t)((pte >> 24) << 6), host,
	             (uint32_t)((pte >> 8) & 0xffff), PAGE_BYTES, &bytes);
	return st ? (0x100 | st) : 0;
}

void engine_poll(void)
{
	uint32_t seq, cmd, status, len = 0, slot = 0;
	flush_cpu_dcache();  /* the host writes the mailbox behind the CPU's data cache */
	seq = *mbox(MBOX_CMD_SEQ);
	if (seq == last_seq)
		return;
	cmd = *mbox(MBOX_CMD);
	if (cmd == MBOX_CMD_OFFLOAD)
		status = do_offload(*mbox(MBOX_CMD_VPN), *mbox(MBOX_CMD_SRC), &len, &slot);
	else if (cmd == MBOX_CMD_PREFETCH)
		status = do_prefetch(*mbox(MBOX_CMD_VPN),
		                     ((uint64_t)*mbox(MBOX_CMD_HOST_HI) << 32) | *mbox(MBOX_CMD_HOST_LO));
	else if (cmd == MBOX_CMD_SPEC_CONFIG)
		status = spec_config(*mbox(3), *mbox(4), *mbox(5), *mbox(6), *mbox(7));
	else if (cmd == MBOX_CMD_PRED_RUN) {
		uint32_t arg = *mbox(MBOX_CMD_VPN);
		status = pred_run(arg & 0xff, arg >> 8, *mbox(MBOX_CMD_SRC), *mbox(MBOX_CMD_HOST_LO),
		                  *mbox(MBOX_CMD_HOST_HI), &len);
		slot = status ? 0 : *mbox(MBOX_CMD_HOST_LO);
	} else
		status = MBOX_ERR_UNKNOWN;
	if (status && status < 0x100)
		*mbox(MBOX_REJECTED) = ++rejected;
	*mbox(MBOX_DONE_STATUS) = status;
	*mbox(MBOX_DONE_LEN) = len;
	*mbox(MBOX_DONE_SLOT) = slot;
	*mbox(MBOX_DONE_SEQ) = seq;
	last_seq = seq;
}

#else  /* no cache engine in this SoC */

void engine_init(void) {}
void engine_poll(void) {}
int engine_pte_valid(uint32_t vpn) { (void)vpn; return 0; }
void engine_pte_extent(uint32_t vpn, uint32_t *src, uint32_t *length)
{
	(void)vpn;
	*src = *length = 0;
}

#endif
