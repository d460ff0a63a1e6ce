#ifndef SPECKV_PREDICT_H
#define SPECKV_PREDICT_H

/* KV-page prefetch predictors (issue 6). host/prefetch/core.py is the specification: every
 * kind returns exactly what its Python reference returns, bit for bit
 * (tests/test_prefetch_firmware.py checks it in the simulated SoC). */

#include <stdint.h>

enum pred_kind { PRED_NONE = 0, PRED_LAST = 1, PRED_STRIDE = 2, PRED_MARKOV = 3, PRED_LAYER_AHEAD = 4, PRED_LSTM = 5 };
#define PRED_N_KINDS 6
#define PRED_MAX_STREAMS 96            /* (layer, KV head) streams of one request: s = layer*3 + head */
#define PRED_MAX_PAGES 4096
#define PRED_MAX_K 32                  /* k is clamped to this */

/* Forget all history/state and make `kind` the active predictor (new request), for a host
 * L1 window of `l1` pages (0..255: pages >= n_pages - l1 are never tracked or predicted).
 * The kinds share one state area: calling pred_step with another kind than the active one
 * resets first (keeping l1), so one request is served by one kind at a time. */
void pred_reset(enum pred_kind kind, unsigned l1);
/* Observe stream s's step: the full pages it read, acc[0..n_acc) ascending, each < n_pages
 * (n_pages = full pages of the stream at this step, at most 4096), and write up to k
 * predictions for the stream's next step into out[], best first; returns how many.
 * Pages >= n_pages - l1 (the host's L1 window, pred_reset) are never predicted. */
unsigned pred_step(enum pred_kind kind, unsigned s, unsigned layer, unsigned n_pages,
                   const uint16_t *acc, unsigned n_acc, unsigned k, uint16_t *out);

/* The LSTM's engine from the next pred_reset on: 1 = the custom function unit when the SoC
 * has one (LSTM_CFU; its weights are written into it on first use), 0 = plain C. Both give
 * the same predictions; returns the engine in use. The default is the CFU (main.c). */
int pred_lstm_engine(int cfu);

/* Mailbox test channel (MBOX_CMD_PRED_RUN): run `count` records from device DRAM. Input
 * records at `in` (DRAM offset): uint16 s, layer, n_pages, k, n_acc, acc[n_acc]. Output
 * records at `out`, PRED_OUT_STRIDE bytes each: uint16 n, pred[32] (only the first n written),
 * then (at byte 66) the uint32 timer cycles pred_step took. `flags` bit 0: pred_reset(kind,
 * l1) first, with l1 = flags bits 15:8, and the LSTM on the CFU unless bit 1 is set
 * (pred_lstm_engine). Inputs and outputs lie in [PRED_DRAM_BASE, PRED_DRAM_END)
 * (PRED_OUT_STRIDE and the region: mailbox.h, from soc/mailbox.py). Returns 0 or
 * MBOX_ERR_SRC. */
uint32_t pred_run(uint32_t kind, uint32_t flags, uint32_t in, uint32_t count, uint32_t out,
                  uint32_t *cycles);

#endif
