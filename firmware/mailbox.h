#ifndef SPECKV_MAILBOX_H
#define SPECKV_MAILBOX_H

/* Host <-> firmware mailbox (the `mbox` RAM, reachable by the host with CfgRd/CfgWr).
 * Word 0: device status, written by firmware: MBOX_READY once DRAM is initialised and the
 * cache engine may be used; anything else means "not yet" (the host polls it).
 * The layout is mirrored in host/link.py (MAILBOX_READY). */

#include <stdint.h>
#include <generated/mem.h>

#define MBOX_READY 0x31594452u /* "RDY1" */

static inline void mailbox_set_ready(void)
{
	*(volatile uint32_t *)(MBOX_BASE + 0) = MBOX_READY;
}

#endif
