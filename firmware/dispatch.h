#ifndef SPECKV_DISPATCH_H
#define SPECKV_DISPATCH_H

/* The mailbox dispatch: serves the host's commands (mailbox.h) with the page store (pool.h),
 * the speculation engine (speculate.h) and the predictor test channel (predict.h). */

/* Configure the page store and the speculation engine; forget any earlier command. */
void dispatch_init(void);
/* Serve one pending command, then one pending hint chunk, if any. */
void dispatch_poll(void);

#endif
