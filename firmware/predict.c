/* KV-page prefetch predictors: none, last, stride, Markov table, dense layer-ahead schedule
 * and the INT8 LSTM. A line-by-line port of host/prefetch/core.py (the specification); any
 * change there must be made here too, and tests/test_prefetch_firmware.py compares both on
 * held-out traces in the simulated SoC. */

#pragma GCC optimize("O2")

#include <stdint.h>
#include <string.h>

#include "predict.h"
#include "lstm_weights.h"

#include <generated/soc.h>   /* LSTM_CFU and its instruction codes (gateware/lstm_cfu/model.py) */

#define L1_DEFAULT 4                  /* host/prefetch/core.py L1_PAGES */
#define TRACK 32

/* ---- tracker: per stream up to TRACK (page, 8-step read history) entries ---- */
static uint16_t tr_page[PRED_MAX_STREAMS][TRACK];
static uint8_t tr_hist[PRED_MAX_STREAMS][TRACK];
static uint8_t tr_n[PRED_MAX_STREAMS];
static unsigned l1_pages = L1_DEFAULT;  /* the host's L1 window (pred_reset) */
static unsigned obs_read, obs_new, obs_drop;

#define MARKOV_ENTRIES 512
#define MARKOV_SUCC 4

/* Per-kind state, one kind at a time. */
static union {
	struct { int16_t prev_hi[PRED_MAX_STREAMS]; int16_t prev_d[PRED_MAX_STREAMS]; } stride;
	struct mk_entry { uint32_t key; uint16_t succ[MARKOV_SUCC]; uint8_t cnt[MARKOV_SUCC]; }
		markov[MARKOV_ENTRIES];       /* 16 B: one cache line holds whole entries */
	struct { int8_t h[PRED_MAX_STREAMS][LSTM_H]; int16_t c[PRED_MAX_STREAMS][LSTM_H]; } lstm;
} st;
static int active = -1;
static int lstm_on_cfu;              /* pred_reset's engine choice: the CFU or plain C */

/* 1 + the tracker index of each page of the stream being observed (0: not tracked); all
 * zero between calls. Turns the tracker lookup of every page read into one load. */
static uint8_t where[PRED_MAX_PAGES];

static void observe(unsigned s, const uint16_t *acc, unsigned n_acc, int lim)
{
	uint16_t *pg = tr_page[s];
	uint8_t *hs = tr_hist[s];
	unsigned n = 0, i, j, a;
	for (i = 0; i < tr_n[s]; i++) {
		unsigned h = (hs[i] << 1) & 0xff;
		if (h && (int)pg[i] < lim) {
			pg[n] = pg[i];
			hs[n] = h;
			where[pg[i]] = ++n;
		}
	}
	obs_read = obs_new = 0;
	for (a = 0; a < n_acc; a++) {
		int p = acc[a];
		int v;
		unsigned best;
		if (p >= lim)
			break;  /* lim <= PRED_MAX_PAGES: p indexes where[] */
		obs_read++;
		j = where[p];
		if (j) {
			hs[j - 1] |= 1;
			continue;
		}
		obs_new++;
		if (n < TRACK) {
			pg[n] = p;
			hs[n] = 1;
			where[p] = ++n;
			continue;
		}
		v = -1;
		best = 256;
		for (j = 0; j < n; j++)
			if (!(hs[j] & 1) && hs[j] < best) {
				v = j;
				best = hs[j];
			}
		if (v >= 0) {
			where[pg[v]] = 0;
			pg[v] = p;
			hs[v] = 1;
			where[p] = v + 1;
		}
	}
	tr_n[s] = n;
	obs_drop = 0;
	for (j = 0; j < n; j++) {
		if ((hs[j] & 3) == 2)
			obs_drop++;
		where[pg[j]] = 0;
	}
}

/* Top k of n (score, page) pairs: highest score first, lower page first on ties. */
static unsigned top_k(int32_t *sc, uint16_t *pg, unsigned n, unsigned k, uint16_t *out)
{
	unsigned r, i;
	if (k > n)
		k = n;
	for (r = 0; r < k; r++) {
		unsigned b = r;
		for (i = r + 1; i < n; i++)
			if (sc[i] > sc[b] || (sc[i] == sc[b] && pg[i] < pg[b]))
				b = i;
		if (b != r) {
			int32_t ts = sc[r];
			uint16_t tp = pg[r];
			sc[r] = sc[b];
			pg[r] = pg[b];
			sc[b] = ts;
			pg[b] = tp;
		}
		out[r] = pg[r];
	}
	return k;
}

/* ---- baselines ---- */
static unsigned pred_last(int lim, const uint16_t *acc, unsigned n_acc, unsigned k, uint16_t *out)
{
	unsigned n = 0, a;
	for (a = 0; a < n_acc && n < k; a++)
		if ((int)acc[a] < lim)
			out[n++] = acc[a];
	return n;
}

static unsigned pred_stride(unsigned s, int lim, const uint16_t *acc, unsigned n_acc, unsigned k,
                            uint16_t *out)
{
	int d = 1, hi = -1, a;
	unsigned n = 0, i;
	for (a = 0; a < (int)n_acc; a++)
		if ((int)acc[a] < lim)
			hi = acc[a];
	if (hi >= 0) {
		int nd = st.stride.prev_hi[s] >= 0 ? hi - st.stride.prev_hi[s] : 0;
		if (nd != 0 && nd == st.stride.prev_d[s])
			d = nd;
		if (nd != 0)
			st.stride.prev_d[s] = nd;
		st.stride.prev_hi[s] = hi;
	}
	for (a = (int)n_acc - 1; a >= 0 && n < k; a--) {
		int q;
		if ((int)acc[a] >= lim)
			continue;
		q = acc[a] + d;
		if (q < 0 || q >= lim)
			continue;
		for (i = 0; i < n; i++)
			if (out[i] == q)
				break;
		if (i == n)
			out[n++] = q;
	}
	return n;
}

static unsigned markov_slot(unsigned s, unsigned p, uint32_t *key)
{
	*key = s * PRED_MAX_PAGES + p + 1;
	return (uint32_t)(*key * 2654435761u) >> 23;
}

static unsigned pred_markov(unsigned s, int lim, unsigned k, uint16_t *out)
{
	const uint16_t *pg = tr_page[s];
	const uint8_t *hs = tr_hist[s];
	unsigned n = tr_n[s], i, j, t, nc = 0;
	static int32_t csc[TRACK * MARKOV_SUCC];
	static uint16_t cpg[TRACK * MARKOV_SUCC];
	for (i = 0; i < n; i++) {
		uint32_t key;
		unsigned e;
		uint16_t *su;
		uint8_t *cn;
		if (!(hs[i] & 2))
			continue;
		e = markov_slot(s, pg[i], &key);
		su = st.markov[e].succ;
		cn = st.markov[e].cnt;
		if (st.markov[e].key != key) {
			st.markov[e].key = key;
			memset(su, 0, sizeof(st.markov[e].succ));
			memset(cn, 0, sizeof(st.markov[e].cnt));
		}
		for (j = 0; j < n; j++) {
			unsigned b = pg[j], m, best;
			if (!(hs[j] & 1))
				continue;
			for (t = 0; t < MARKOV_SUCC; t++)
				if (cn[t] && su[t] == b)
					break;
			if (t < MARKOV_SUCC) {
				if (cn[t] < 255)
					cn[t]++;
				continue;
			}
			m = 0;
			best = 256;
			for (t = 0; t < MARKOV_SUCC; t++)
				if (cn[t] < best) {
					m = t;
					best = cn[t];
				}
			su[m] = b;
			cn[m] = 1;
		}
	}
	for (i = 0; i < n; i++) {
		uint32_t key;
		unsigned e;
		if (!(hs[i] & 1))
			continue;
		e = markov_slot(s, pg[i], &key);
		if (st.markov[e].key != key)
			continue;
		for (t = 0; t < MARKOV_SUCC; t++) {
			unsigned b = st.markov[e].succ[t], c = st.markov[e].cnt[t];
			if (!c || (int)b >= lim)
				continue;
			for (j = 0; j < nc; j++)
				if (cpg[j] == b)
					break;
			if (j == nc) {
				cpg[nc] = b;
				csc[nc++] = 0;
			}
			csc[j] += c;
		}
	}
	return top_k(csc, cpg, nc, k, out);
}

/* ---- LSTM ---- */
static inline int32_t rshift_round(int32_t v, int n)
{
	return n <= 0 ? v * (1 << -n) : (v + (1 << (n - 1))) >> n;
}

static inline unsigned lut_index(int32_t z)
{
	int32_t i = (z >> 7) + LSTM_LUT_N / 2;
	return i < 0 ? 0 : i > LSTM_LUT_N - 1 ? LSTM_LUT_N - 1 : (unsigned)i;
}

static inline unsigned popcount8(unsigned h)
{
	h = (h & 0x55) + ((h >> 1) & 0x55);
	h = (h & 0x33) + ((h >> 2) & 0x33);
	return (h & 0x0f) + (h >> 4);
}

static unsigned bucket(unsigned v, const uint8_t *edges, unsigned n)
{
	unsigned i;
	for (i = 0; i < n; i++)
		if (v < edges[i])
			return i;
	return n;
}

static const uint8_t count_edges[5] = {1, 2, 4, 8, 16};
static const uint8_t len_edges[5] = {8, 16, 32, 64, 128};
static const uint8_t dist_edges[6] = {1, 2, 4, 8, 16, 32};
#define X_HEAD 30
#define X_READ 33
#define X_NEW 39
#define X_DROP 45
#define X_LEN 51
#define F_POP 16
#define F_SINK 24
#define F_DIST 25

static unsigned pred_lstm(unsigned s, unsigned layer, unsigned n_pages, int lim, unsigned k,
                          uint16_t *out)
{
	int8_t *h = st.lstm.h[s];
	int16_t *c = st.lstm.c[s];
	int32_t z[4 * LSTM_H], w[LSTM_NF], hv[LSTM_H];
	const int8_t *xr[6];
	static int32_t sc[TRACK];
	static uint16_t pgs[TRACK];
	unsigned xin[6], i, j, n = tr_n[s];
	int head = (int)s - 3 * (int)layer;
	xin[0] = layer > 29 ? 29 : layer;
	xin[1] = X_HEAD + (head < 0 ? 0 : head > 2 ? 2 : head);
	xin[2] = X_READ + bucket(obs_read, count_edges, 5);
	xin[3] = X_NEW + bucket(obs_new, count_edges, 5);
	xin[4] = X_DROP + bucket(obs_drop, count_edges, 5);
	xin[5] = X_LEN + bucket(n_pages, len_edges, 5);
	/* h as 32-bit values (kept in registers by the unrolled loops), the 6 active input
	 * rows as pointers: W_x x is 6 column sums, W_h h 16 MACs per gate row. */
	for (i = 0; i < LSTM_H; i++)
		hv[i] = h[i];
	for (i = 0; i < 6; i++)
		xr[i] = lstm_wx_t[xin[i]];
	for (j = 0; j < 4 * LSTM_H; j++) {
		const int8_t *wr = lstm_wh[j];
		int32_t ax = xr[0][j] + xr[1][j] + xr[2][j] + xr[3][j] + xr[4][j] + xr[5][j], ah = 0;
#pragma GCC unroll 16
		for (i = 0; i < LSTM_H; i++)
			ah += wr[i] * hv[i];
		z[j] = rshift_round(ax, LSTM_EX - 12) + rshift_round(ah, LSTM_EH + 7 - 12) + lstm_b[j];
	}
	for (j = 0; j < LSTM_H; j++) {
		int32_t ig = lstm_sig[lut_index(z[j])];
		int32_t fg = lstm_sig[lut_index(z[LSTM_H + j])];
		int32_t gg = lstm_tanh[lut_index(z[2 * LSTM_H + j])];
		int32_t og = lstm_sig[lut_index(z[3 * LSTM_H + j])];
		int32_t cj = rshift_round(fg * c[j], 12) + rshift_round(ig * gg, 12);
		int32_t hj;
		cj = cj < -32767 ? -32767 : cj > 32767 ? 32767 : cj;
		hj = rshift_round(og * lstm_tanh[lut_index(cj)], 17);
		hj = hj < -127 ? -127 : hj > 127 ? 127 : hj;
		h[j] = hj;
		hv[j] = hj;
		c[j] = cj;
	}
	for (j = 0; j < LSTM_NF; j++) {
		const int8_t *wr = lstm_wo[j];
		int32_t a = 0;
#pragma GCC unroll 16
		for (i = 0; i < LSTM_H; i++)
			a += wr[i] * hv[i];
		w[j] = rshift_round(a, LSTM_EO + 7 - 12) + lstm_bo[j];
	}
	for (i = 0; i < n; i++) {
		unsigned p = tr_page[s][i], hb = tr_hist[s][i];
		int32_t v = w[hb & 15] + w[F_POP + popcount8(hb) - 1];
		if (p == 0)
			v += w[F_SINK];
		v += w[F_DIST + bucket(lim - 1 - (int)p, dist_edges, 6)];
		sc[i] = v;
		pgs[i] = p;
	}
	return top_k(sc, pgs, n, k, out);
}

/* ---- the LSTM on the custom function unit (gateware/lstm_cfu): the unit holds the
 * weights, every stream's h and c and a sorted top-k list; the tracker stays here. ---- */
#ifdef LSTM_CFU
#define CFU_STR_(x) #x
#define CFU_STR(x) CFU_STR_(x)
#define CFU(op, a, b) ({                                                               \
	uint32_t r_;                                                                        \
	__asm__ volatile(".insn r 0x0B, " CFU_STR(op) ", 0, %0, %1, %2"                     \
	                 : "=r"(r_) : "r"((uint32_t)(a)), "r"((uint32_t)(b)));               \
	r_; })

static int cfu_ready;
static uint8_t cfu_seq;

static uint32_t word4(const int8_t *v)
{
	return (uint8_t)v[0] | (uint8_t)v[1] << 8 | (uint8_t)v[2] << 16 | (uint32_t)(uint8_t)v[3] << 24;
}

/* Write the weights, biases, tables and shifts into the unit (once after boot). */
static int cfu_program(void)
{
	unsigned r, j;
	/* VexRiscv decodes CFU instructions only while bit 31 of CSR 0xBC0 is set (CfuPlugin);
	 * the same CSR holds LiteX's interrupt mask in its low bits, so set the bit alone. */
	__asm__ volatile("csrs 0xBC0, %0" : : "r"(1u << 31));
	if (CFU(LSTM_CFU_OP_INFO, 0, 0) != LSTM_CFU_INFO)
		return 0;
	for (r = 0; r < LSTM_NX; r++)
		for (j = 0; j < 4 * LSTM_H; j += 4)
			CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_WX << 16 | (r * 16 + j / 4), word4(&lstm_wx_t[r][j]));
	for (r = 0; r < 4 * LSTM_H; r++)
		for (j = 0; j < LSTM_H; j += 4)
			CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_WR << 16 | (r * 4 + j / 4), word4(&lstm_wh[r][j]));
	for (r = 0; r < LSTM_NF; r++)
		for (j = 0; j < LSTM_H; j += 4)
			CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_WR << 16 | ((4 * LSTM_H + r) * 4 + j / 4),
			    word4(&lstm_wo[r][j]));
	for (j = 0; j < 4 * LSTM_H; j++)
		CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_BIAS << 16 | j, lstm_b[j]);
	for (j = 0; j < LSTM_NF; j++)
		CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_BIAS << 16 | (4 * LSTM_H + j), lstm_bo[j]);
	for (j = 0; j < LSTM_LUT_N; j++) {
		CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_LUT << 16 | j, (uint16_t)lstm_sig[j]);
		CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_LUT << 16 | (LSTM_LUT_N + j), (uint16_t)lstm_tanh[j]);
	}
	CFU(LSTM_CFU_OP_LOAD, LSTM_CFU_R_CFG << 16,
	    ((LSTM_EX - 12) & 0xff) | ((LSTM_EH + 7 - 12) & 0xff) << 8 | ((LSTM_EO + 7 - 12) & 0xff) << 16);
	return 1;
}

static unsigned pred_lstm_cfu(unsigned s, unsigned layer, unsigned n_pages, int lim, unsigned k,
                              uint16_t *out)
{
	const uint16_t *pg = tr_page[s];
	const uint8_t *hs = tr_hist[s];
	unsigned n = tr_n[s], i, head;
	uint32_t x0, x1;
	head = s - 3 * layer;
	x0 = (layer > 29 ? 29 : layer) | (X_HEAD + ((int)head < 0 ? 0 : head > 2 ? 2 : head)) << 6 |
	     (X_READ + bucket(obs_read, count_edges, 5)) << 12 |
	     (X_NEW + bucket(obs_new, count_edges, 5)) << 18 |
	     (X_DROP + bucket(obs_drop, count_edges, 5)) << 24;
	x1 = (X_LEN + bucket(n_pages, len_edges, 5)) | s << 8 | (uint32_t)++cfu_seq << 16;
	CFU(LSTM_CFU_OP_RUN, x0, x1);          /* h, c, w of stream s; clears the top-k list */
	for (i = 0; i < n; i++)
		CFU(LSTM_CFU_OP_SCORE, pg[i] | (uint32_t)hs[i] << 16, lim);
	if (k > n)
		k = n;
	for (i = 0; i < k; i++)
		out[i] = CFU(LSTM_CFU_OP_GET, i, 0);
	return k;
}
#endif

int pred_lstm_engine(int cfu)
{
#ifdef LSTM_CFU
	if (cfu && !cfu_ready)
		cfu_ready = cfu_program();
	lstm_on_cfu = cfu && cfu_ready;
#else
	(void)cfu;
	lstm_on_cfu = 0;
#endif
	return lstm_on_cfu;
}

void pred_reset(enum pred_kind kind, unsigned l1)
{
	l1_pages = l1 & 0xff;
	memset(tr_n, 0, sizeof(tr_n));
	memset(&st, 0, sizeof(st));
#ifdef LSTM_CFU
	if (lstm_on_cfu)
		CFU(LSTM_CFU_OP_RESET, 0, 0);
#endif
	if (kind == PRED_STRIDE) {
		unsigned s;
		for (s = 0; s < PRED_MAX_STREAMS; s++)
			st.stride.prev_hi[s] = -1;
	}
	active = kind;
}

unsigned pred_step(enum pred_kind kind, unsigned s, unsigned layer, unsigned n_pages,
                   const uint16_t *acc, unsigned n_acc, unsigned k, uint16_t *out)
{
	int lim = (int)n_pages - (int)l1_pages;
	if ((unsigned)kind >= PRED_N_KINDS || s >= PRED_MAX_STREAMS || n_pages > PRED_MAX_PAGES)
		return 0;
	if ((int)kind != active)
		pred_reset(kind, l1_pages);
	if (k > PRED_MAX_K)
		k = PRED_MAX_K;
	switch (kind) {
	case PRED_LAST:
		return pred_last(lim, acc, n_acc, k, out);
	case PRED_STRIDE:
		return pred_stride(s, lim, acc, n_acc, k, out);
	case PRED_MARKOV:
		observe(s, acc, n_acc, lim);
		return pred_markov(s, lim, k, out);
	case PRED_LAYER_AHEAD: {
		unsigned n = lim > 0 ? (unsigned)lim : 0, i;
		if (n > k)
			n = k;
		for (i = 0; i < n; i++)
			out[i] = i;
		return n;
	}
	case PRED_LSTM:
		observe(s, acc, n_acc, lim);
#ifdef LSTM_CFU
		if (lstm_on_cfu)
			return pred_lstm_cfu(s, layer, n_pages, lim, k, out);
#endif
		return pred_lstm(s, layer, n_pages, lim, k, out);
	default:
		return 0;
	}
}

/* ---- mailbox test channel ---- */
#include <system.h>
#include <generated/csr.h>
#include <generated/mem.h>

#include "mailbox.h"

/* an output record: uint16 n, pred[PRED_MAX_K], then the uint32 cycles at byte 66 */
_Static_assert(PRED_OUT_STRIDE >= 66 + 4 && 2 + 2 * PRED_MAX_K <= 66, "PRED_RUN record layout");

uint32_t pred_run(uint32_t kind, uint32_t flags, uint32_t in, uint32_t count, uint32_t out,
                  uint32_t *cycles)
{
	static uint16_t obuf[PRED_MAX_K];
	const uint16_t *ip;
	uint32_t r, total = 0;
	if (kind >= PRED_N_KINDS || in < PRED_DRAM_BASE || in >= PRED_DRAM_END || out < PRED_DRAM_BASE ||
	    count > (PRED_DRAM_END - PRED_DRAM_BASE) / PRED_OUT_STRIDE ||
	    out + count * PRED_OUT_STRIDE > PRED_DRAM_END || (in & 1) || (out & 3))
		return MBOX_ERR_SRC;
	/* The host wrote the inputs into DRAM around the CPU caches. */
	flush_cpu_dcache();
	flush_l2_cache();
	if (flags & 1) {
		pred_lstm_engine(!(flags & 2));
		pred_reset((enum pred_kind)kind, (flags >> 8) & 0xff);
	}
	ip = (const uint16_t *)(MAIN_RAM_BASE + in);
#ifdef CSR_TIMER0_BASE
	timer0_en_write(0);
	timer0_reload_write(0);
	timer0_load_write(0xffffffffu);
	timer0_en_write(1);
#endif
	for (r = 0; r < count; r++) {
		uint16_t *op = (uint16_t *)(MAIN_RAM_BASE + out + r * PRED_OUT_STRIDE);
		uint32_t t0 = 0, t1 = 0, i, n, n_acc = ip[4];
		/* the record, its acc list included, must lie inside the test region */
		if ((uint32_t)((const uint8_t *)ip - (const uint8_t *)MAIN_RAM_BASE) + 10u + 2u * n_acc >
		    PRED_DRAM_END)
			return MBOX_ERR_SRC;
#ifdef CSR_TIMER0_BASE
		timer0_update_value_write(1);
		t0 = timer0_value_read();
#endif
		/* acc is read in place, from DRAM through the caches */
		n = pred_step((enum pred_kind)kind, ip[0], ip[1], ip[2], ip + 5, n_acc, ip[3], obuf);
#ifdef CSR_TIMER0_BASE
		timer0_update_value_write(1);
		t1 = timer0_value_read();
#endif
		ip += 5 + n_acc;
		op[0] = n;              /* slots n+1..32 are left as they were */
		for (i = 0; i < n; i++)
			op[1 + i] = obuf[i];
		op[33] = (t0 - t1) & 0xffff;
		op[34] = (t0 - t1) >> 16;
		total += t0 - t1;
	}
	/* Write the results back to DRAM, where the host reads them. */
	flush_cpu_dcache();
	flush_l2_cache();
	*cycles = total;
	return 0;
}
