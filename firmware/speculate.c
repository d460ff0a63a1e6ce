/* Speculation engine: decode-step hints in, prefetch DMA jobs into the host's L2 out.
 *
 * The specification is host/prefetch/speculation.py (reference model, integer for integer), the wire
 * format and the parameters soc/mailbox.py (generated into mailbox.h); the replay's `model`
 * backend runs the former in place of this code and the `rtl` backend must give the same
 * decisions. A step's hint arrives a layer at a time (a chunk per layer, as the host reads
 * them). Per chunk: feedback (L2 hits, use of the last step's prefetches), one prediction
 * per stream, then rank-major filtering and issue of the chunk's predictions: DMA
 * decompress of each page into its L2 slot, then the slots' directory lines (DMA copies of
 * tag lines); the next step's first layers are thus prefetched first. At a step's first
 * chunk the UCB arm (adaptive k); at its last the reward, the throttle budget of the next
 * step and the step record. Page-table lookups and DRAM write-backs go to the page store
 * (pool.h); dispatch.c decodes SPEC_CONFIG and calls spec_config(). */

#include <stdint.h>
#include <string.h>

#include <system.h>
#include <generated/csr.h>
#include <generated/mem.h>

#include "common.h"
#include "mailbox.h"
#include "pool.h"
#include "predict.h"
#include "speculate.h"

#ifdef CSR_DMA_BASE

#define NO_SLOT       0xFFFFu
#define HASH_SIZE     1024u
#define DMA_IN_FLIGHT 8u

_Static_assert(SPEC_MAX_STREAMS <= PRED_MAX_STREAMS, "a stream the predictors cannot hold");
_Static_assert(SPEC_MAX_PAGES <= PRED_MAX_PAGES, "a page the predictors cannot hold");
_Static_assert(SPEC_MAX_K <= PRED_MAX_K, "a depth the predictors cannot serve");
_Static_assert(SPEC_MAX_KIND == PRED_N_KINDS - 1, "predictor kinds out of step");
_Static_assert(SPEC_MAX_SLOTS <= NO_SLOT, "slot numbers are 16 bits");

static const uint8_t arm_depth[SPEC_N_ARMS] = SPEC_UCB_ARMS;

/* configuration */
static int configured;
static uint32_t cfg_request, cfg_kind, cfg_k, cfg_flags, cfg_heads, cfg_layers, cfg_streams;
static uint32_t cfg_slots, cfg_l1;
static uint64_t cfg_l2;

/* hint state */
static uint32_t hint_last_seq, hint_rejected, expect_step, expect_stream;

/* predictions of the step in progress */
static uint16_t preds[SPEC_MAX_STREAMS][SPEC_MAX_K];
static uint8_t pred_n[SPEC_MAX_STREAMS];
static uint16_t stream_pages[SPEC_MAX_STREAMS];
/* large tables live in DRAM (through the CPU caches): SRAM holds the predictors' state */
/* 0, 1, ... SPEC_MAX_PAGES - 1: a dense stream's accesses (filled once by spec_init) */
#define iota ((uint16_t *)(MAIN_RAM_BASE + DRAM_SPEC))

/* L2 directory mirror: slot -> vpn, vpn -> slot by chained hashing */
static uint32_t slot_vpn[SPEC_MAX_SLOTS];
static uint16_t slot_next[SPEC_MAX_SLOTS];
static uint16_t bucket[HASH_SIZE];
static uint16_t slot_serial[SPEC_MAX_SLOTS];  /* serial of the last hint that issued or
                                                * predicted again the slot's page */
static uint8_t slot_used[SPEC_MAX_SLOTS];    /* valid */
static uint32_t next_slot, issued_prev;
static uint16_t serial;                      /* hints begun */
static uint16_t issue_slot[SPEC_MAX_SLOTS];   /* the chunk's issues */
static uint32_t issue_vpn[SPEC_MAX_SLOTS];
static uint16_t issue_order[SPEC_MAX_SLOTS];  /* their positions in the step's DMA order */
static uint16_t reused_slot[SPEC_MAX_SLOTS];  /* the chunk's slots that held a page */
/* UCB and throttle */
static uint32_t arm_pulls[SPEC_N_ARMS], arm_n[SPEC_N_ARMS], n_arms, plays, last_arm;
static uint64_t arm_sum[SPEC_N_ARMS];
static int have_arm;
static uint32_t budget;

/* timing: timer0 counts down freely */
static void timer_start(void)
{
	timer0_en_write(0);
	timer0_reload_write(0xffffffff);
	timer0_load_write(0xffffffff);
	timer0_en_write(1);
}

static uint32_t timer_now(void)
{
	timer0_update_value_write(1);
	return timer0_value_read();
}

static unsigned hash(uint32_t vpn)
{
	return (vpn ^ (vpn >> 10)) & (HASH_SIZE - 1);
}

static unsigned dir_find(uint32_t vpn)
{
	unsigned s = bucket[hash(vpn)];
	while (s != NO_SLOT && slot_vpn[s] != vpn)
		s = slot_next[s];
	return s;
}

static void dir_remove(unsigned slot)
{
	uint16_t *p = &bucket[hash(slot_vpn[slot])];
	while (*p != slot)
		p = &slot_next[*p];
	*p = slot_next[slot];
	slot_used[slot] = 0;
}

static void dir_insert(unsigned slot, uint32_t vpn)
{
	unsigned h = hash(vpn);
	slot_vpn[slot] = vpn;
	slot_next[slot] = bucket[h];
	bucket[h] = slot;
	slot_used[slot] = 1;
}

static uint32_t log2q8(uint32_t n)
{
	uint32_t m = 31 - __builtin_clz(n);
	uint32_t frac = (uint32_t)((((uint64_t)(n - (1u << m))) << 8) >> m);
	return (m << 8) + frac;
}

static uint32_t isqrt64(uint64_t x)
{
	uint64_t r = 0, bit = 1ull << 62;
	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return (uint32_t)r;
}

static void reset_state(void)
{
	unsigned i;
	for (i = 0; i < HASH_SIZE; i++)
		bucket[i] = NO_SLOT;
	memset(slot_used, 0, sizeof(slot_used));
	memset(slot_serial, 0, sizeof(slot_serial));
	serial = 0;
	next_slot = 0;
	issued_prev = 0;
	memset(arm_n, 0, sizeof(arm_n));
	memset(arm_pulls, 0, sizeof(arm_pulls));
	memset(arm_sum, 0, sizeof(arm_sum));
	plays = 0;
	have_arm = 0;
	budget = cfg_slots;
	expect_step = 0;
	expect_stream = 0;
	n_arms = 0;
	if (cfg_flags & SPEC_FLAG_UCB) {
		for (i = 0; i < SPEC_N_ARMS; i++)
			if (arm_depth[i] <= cfg_k)
				n_arms = i + 1;
	} else {
		n_arms = 1;
	}
	pred_reset((enum pred_kind)cfg_kind, cfg_l1);
}

uint32_t spec_config(const struct spec_config *c)
{
	if (c->kind > SPEC_MAX_KIND || c->k < 1 || c->k > SPEC_MAX_K ||
	    (c->flags & ~(uint32_t)(SPEC_FLAG_UCB | SPEC_FLAG_THROTTLE)) || c->heads < 1 ||
	    c->layers < 1 || c->heads * c->layers > SPEC_MAX_STREAMS || c->slots < 1 ||
	    c->slots > SPEC_MAX_SLOTS || c->l1 > SPEC_MAX_L1 || (c->l2 & (PAGE_BYTES - 1)))
		return MBOX_ERR_CONFIG;
	cfg_request = c->request;
	cfg_kind = c->kind;
	cfg_k = c->k;
	cfg_flags = c->flags;
	cfg_heads = c->heads;
	cfg_layers = c->layers;
	cfg_streams = c->heads * c->layers;
	cfg_slots = c->slots;
	cfg_l1 = c->l1;
	cfg_l2 = c->l2;
	configured = 1;
	reset_state();
	timer_start();
	return 0;
}

void spec_init(void)
{
	unsigned i;
	for (i = 0; i < SPEC_MAX_PAGES; i++)
		iota[i] = (uint16_t)i;
	memset((void *)(MAIN_RAM_BASE + DRAM_ZERO_LINES), 0, ZERO_LINES * LINE_BYTES);
	l2_writeback((volatile void *)(MAIN_RAM_BASE + DRAM_ZERO_LINES), ZERO_LINES * LINE_BYTES);
	/* tag lines: issue_chunk writes their first five words only */
	memset((void *)(MAIN_RAM_BASE + DRAM_TAGS), 0, (size_t)LINE_BYTES * SPEC_MAX_SLOTS);
	l2_writeback((volatile void *)(MAIN_RAM_BASE + DRAM_TAGS), LINE_BYTES * SPEC_MAX_SLOTS);
	configured = 0;
	hint_rejected = 0;
	*mbox(MBOX_HINT_REJECTED) = 0;
	hint_last_seq = *mbox(MBOX_HINT_SEQ);
}

static uint32_t choose_arm(void)
{
	uint32_t i, best = 0, lg;
	uint64_t best_score = 0;
	int first = 1;
	if (n_arms == 1)
		return 0;
	for (i = 0; i < n_arms; i++)
		if (arm_pulls[i] == 0)
			return i;
	lg = log2q8(plays);
	for (i = 0; i < n_arms; i++) {
		uint64_t score;
		if (arm_n[i] == 0)
			continue;  /* its first reward is still pending */
		score = arm_sum[i] / arm_n[i] +
		                 (((uint64_t)SPEC_C_Q8 * isqrt64(((uint64_t)lg << 24) / arm_n[i])) >> 8);
		if (first || score > best_score) {
			best = i;
			best_score = score;
			first = 0;
		}
	}
	return best;
}

/* Queue a single-descriptor job; keep at most DMA_IN_FLIGHT outstanding. */
static uint32_t dma_outstanding, dma_errors, dma_wait;

/* Pop the oldest completion, waiting for it; the wait is timed (dma_wait). */
static void dma_reap(void)
{
	uint32_t c = dma_completion_read();
	if (!(c & (1 << CSR_DMA_COMPLETION_VALID_OFFSET))) {
		uint32_t t0 = timer_now();
		do {
			c = dma_completion_read();
		} while (!(c & (1 << CSR_DMA_COMPLETION_VALID_OFFSET)));
		dma_wait += t0 - timer_now();
	}
	if ((c >> CSR_DMA_COMPLETION_STATUS_OFFSET) & ((1 << CSR_DMA_COMPLETION_STATUS_SIZE) - 1))
		dma_errors++;
	dma_pop_write(1);
	dma_outstanding--;
}

static void dma_queue(uint32_t op, uint32_t src, uint64_t dst, uint32_t length, uint32_t cap)
{
	if (dma_outstanding == DMA_IN_FLIGHT)
		dma_reap();
	dma_src_write(src);
	dma_dst_write(dst);
	dma_length_write(length);
	dma_cap_write(cap);
	dma_push_write((op << CSR_DMA_PUSH_OP_OFFSET) | (1 << CSR_DMA_PUSH_HOST_OFFSET) |
	               (1 << CSR_DMA_PUSH_LAST_OFFSET));
	dma_outstanding++;
}

void spec_dma_drain(void)
{
	while (dma_outstanding)
		dma_reap();
}

static void record(uint32_t i, uint32_t v)
{
	*mbox(MBOX_STEP_RECORD + i) = v;
}

/* step in progress */
static uint32_t step_k, step_arm, st_hits, st_used, st_needed, t_predict, t_issue;
static uint32_t step_budget, n_issued, skip_l1, skip_unmapped, skip_resident, throttled;

/* First chunk of a step: the arm (k) from the rewards known so far. */
static void step_begin(void)
{
	step_arm = choose_arm();
	arm_pulls[step_arm]++;
	step_k = (cfg_flags & SPEC_FLAG_UCB) ? arm_depth[step_arm] : cfg_k;
	st_hits = st_used = st_needed = 0;
	t_predict = t_issue = 0;
	serial++;
	step_budget = budget < cfg_slots ? budget : cfg_slots;
	n_issued = skip_l1 = skip_unmapped = skip_resident = throttled = 0;
	dma_errors = dma_wait = 0;
}

/* The next slot from the hand that holds no page the host still needs: none stamped by this
 * hint, none stamped by the previous one for a stream the host has not read yet (`end` and
 * later). NO_SLOT after a whole turn. */
static unsigned victim(uint32_t end)
{
	uint16_t prev = (uint16_t)(serial - 1);
	uint32_t i;
	for (i = 0; i < cfg_slots; i++) {
		uint32_t slot = next_slot;
		next_slot = slot + 1 == cfg_slots ? 0 : slot + 1;
		if (!slot_used[slot])
			return slot;
		if (slot_serial[slot] != serial &&
		    (slot_serial[slot] != prev || (slot_vpn[slot] >> VPN_PAGE_BITS) < end))
			return slot;
	}
	return NO_SLOT;
}

/* Filter the predictions of streams first..end-1 rank-major and issue them, each into the
 * slot victim() gives: clear the reused slots' directory lines, decompress each page into
 * its slot, write its line. The jobs stay queued: the next chunk's predictions run while
 * the DMA works. */
static void issue_chunk(uint32_t first, uint32_t end, uint32_t step)
{
	uint32_t j, e, s, n_issue = 0, n_reused = 0, t0 = timer_now();
	int full = 0;    /* victim() found no slot: it finds none for the rest of the chunk */
	for (j = 0; j < step_k; j++) {
		for (s = first; s < end; s++) {
			uint32_t p, vpn;
			unsigned slot;
			if (j >= pred_n[s])
				continue;
			p = preds[s][j];
			vpn = (s << VPN_PAGE_BITS) | p;
			if ((int)p >= (int)stream_pages[s] - (int)cfg_l1) {
				skip_l1++;
				continue;
			}
			slot = dir_find(vpn);          /* SRAM first, the page table (DRAM) after */
			if (slot != NO_SLOT) {
				skip_resident++;
				slot_serial[slot] = serial;     /* predicted again: kept */
				continue;
			}
			if (!pool_pte_valid(vpn)) {
				skip_unmapped++;
				continue;
			}
			if (n_issued >= step_budget || full || (slot = victim(end)) == NO_SLOT) {
				full = n_issued < step_budget;
				throttled++;
				continue;
			}
			if (slot_used[slot]) {
				dir_remove(slot);
				reused_slot[n_reused++] = slot;
			}
			dir_insert(slot, vpn);
			slot_serial[slot] = serial;
			issue_slot[n_issue] = slot;
			issue_order[n_issue] = n_issued++;
			issue_vpn[n_issue++] = vpn;
		}
	}
	/* a reused slot's directory line goes before its new data lands: a host that reads the
	 * directory while the prefetches are in flight never sees a tag over a page being
	 * overwritten (the link keeps order). Reused slots follow each other (round robin): one
	 * zeroing job clears a run of up to ZERO_LINES of them. */
	for (j = 0; j < n_reused; j = e) {
		uint32_t first_slot = reused_slot[j];
		e = j + 1;
		while (e < n_reused && e - j < ZERO_LINES && reused_slot[e] == reused_slot[e - 1] + 1)
			e++;
		dma_queue(OP_COPY, DRAM_ZERO_LINES,
		          cfg_l2 + (uint64_t)PAGE_BYTES * cfg_slots + LINE_BYTES * first_slot,
		          LINE_BYTES * (e - j), LINE_BYTES * (e - j));
	}
	/* data: decompress (a raw page: copy) each page into its slot */
	for (j = 0; j < n_issue; j++) {
		uint32_t src, len, op;
		pool_pte_extent(issue_vpn[j], &src, &len, &op);
		dma_queue(op, src, cfg_l2 + (uint64_t)PAGE_BYTES * issue_slot[j], len, PAGE_BYTES);
	}
	/* directory lines: written to DRAM scratch, made visible, copied after the data (the
	 * link keeps order: a host that sees a tag has the page). The slots follow each other
	 * (round robin), so one write-back and one copy job serve each run of them. */
	for (j = 0; j < n_issue; j++) {
		volatile uint32_t *line =
			(volatile uint32_t *)(MAIN_RAM_BASE + DRAM_TAGS + LINE_BYTES * issue_slot[j]);
		line[0] = TAG_MAGIC;
		line[1] = issue_vpn[j];
		line[2] = step;
		line[3] = issue_slot[j];
		line[4] = issue_order[j];   /* words 5.. stay zero (spec_init) */
	}
	for (j = 0; j < n_issue; j = e) {
		uint32_t first_slot = issue_slot[j], bytes;
		e = j + 1;
		while (e < n_issue && issue_slot[e] == issue_slot[e - 1] + 1)
			e++;
		bytes = LINE_BYTES * (e - j);
		l2_writeback((volatile void *)(MAIN_RAM_BASE + DRAM_TAGS + LINE_BYTES * first_slot), bytes);
		dma_queue(OP_COPY, DRAM_TAGS + LINE_BYTES * first_slot,
		          cfg_l2 + (uint64_t)PAGE_BYTES * cfg_slots + LINE_BYTES * first_slot, bytes, bytes);
	}
	t_issue += t0 - timer_now();
}

/* Last chunk, after its issues: wait for the step's DMA, the previous arm's reward, the
 * throttle (the next step's budget), the record. */
static void step_finish(uint32_t step)
{
	uint32_t t0 = timer_now();
	spec_dma_drain();
	if (have_arm) {
		/* st_used counts the pages kept (predicted again) too: it can exceed issued_prev */
		uint32_t waste = issued_prev > st_used ? issued_prev - st_used : 0;
		uint64_t gain = 65536ull * st_used, loss = (uint64_t)SPEC_LAMBDA_Q16 * waste;
		arm_n[last_arm]++;
		arm_sum[last_arm] += gain > loss ? (gain - loss) / (st_needed ? st_needed : 1) : 0;
		plays++;
	}
	if ((cfg_flags & SPEC_FLAG_THROTTLE) && issued_prev > 0) {
		uint32_t prec = 256u * st_used / issued_prev;
		if (prec < SPEC_P_LOW)
			budget = budget / 2 > SPEC_BUDGET_MIN ? budget / 2 : SPEC_BUDGET_MIN;
		else if (prec > SPEC_P_HIGH)
			budget = budget + budget / 4 + 1 < cfg_slots ? budget + budget / 4 + 1 : cfg_slots;
	}
	t_issue += t0 - timer_now();
	record(REC_STEP, step);
	record(REC_K, step_k);
	record(REC_BUDGET, step_budget);
	record(REC_ISSUED, n_issued);
	record(REC_SKIP_L1, skip_l1);
	record(REC_SKIP_UNMAPPED, skip_unmapped);
	record(REC_SKIP_RESIDENT, skip_resident);
	record(REC_THROTTLED, throttled);
	record(REC_L2_HITS, st_hits);
	record(REC_USED_PREV, st_used);
	record(REC_ISSUED_PREV, issued_prev);
	record(REC_PREDICT_CYCLES, t_predict);
	record(REC_ISSUE_CYCLES, t_issue);
	record(REC_DMA_ERRORS, dma_errors);
	record(REC_ARM, step_arm);
	record(REC_DMA_WAIT_CYCLES, dma_wait);
	record(REC_EPOCH, step);
	issued_prev = n_issued;
	have_arm = (cfg_flags & SPEC_FLAG_UCB) != 0;
	last_arm = step_arm;
}

static uint16_t unit(uint32_t i)
{
	uint32_t w = *mbox(MBOX_HINT_PAYLOAD + i / 2);
	return (i & 1) ? (uint16_t)(w >> 16) : (uint16_t)w;
}

/* One chunk: validate it whole (nothing applied on error), then feedback and predictions
 * for its streams. */
static uint32_t chunk(uint32_t *last_out, uint32_t *step_out)
{
	uint32_t magic = *mbox(MBOX_HINT_MAGIC), req = *mbox(MBOX_HINT_REQ);
	uint32_t step = *mbox(MBOX_HINT_STEP), streams = *mbox(MBOX_HINT_STREAMS);
	uint32_t n_units = *mbox(MBOX_HINT_LEN), flags = *mbox(MBOX_HINT_FLAGS);
	uint32_t first = streams & 0xffff, count = streams >> 16, s, i = 0, last, t0;
	if (!configured)
		return HERR_CONFIG;
	if (magic != HINT_MAGIC)
		return HERR_MAGIC;
	if (req != cfg_request)
		return HERR_REQUEST;
	if (count == 0 || first + count > cfg_streams)
		return HERR_STREAM;
	if (n_units > MBOX_HINT_UNITS || (flags & ~(uint32_t)HINT_FLAG_LAST) || *mbox(MBOX_HINT_RSVD) != 0)
		return HERR_LENGTH;
	/* a step may follow a later one than expected (the host skipped the hints of steps the
	 * device was too busy for), never an earlier one; the chunks of a step come in order */
	if (first != expect_stream || (first ? step != expect_step : step < expect_step))
		return HERR_STEP;
	for (s = 0; s < count; s++) {
		uint32_t n_pages, n_acc, a, prev = 0;
		if (i + 2 > n_units)
			return HERR_LENGTH;
		n_pages = unit(i);
		n_acc = unit(i + 1);
		i += 2;
		if (n_pages > SPEC_MAX_PAGES)
			return HERR_PAGES;
		if (n_acc == HINT_DENSE)
			continue;
		if (i + n_acc > n_units)
			return HERR_LENGTH;
		for (a = 0; a < n_acc; a++) {
			uint32_t p = unit(i + a);
			if (p >= n_pages || (a && p <= prev))
				return HERR_PAGES;
			prev = p;
		}
		i += n_acc;
	}
	if (i != n_units)
		return HERR_LENGTH;
	last = flags & HINT_FLAG_LAST;
	if (last != (first + count == cfg_streams))
		return HERR_STREAM;

	if (first == 0)
		step_begin();
	t0 = timer_now();
	i = 0;
	for (s = first; s < first + count; s++) {
		uint32_t n_pages = unit(i), n_acc = unit(i + 1), a;
		int lim = (int)n_pages - (int)cfg_l1;
		const uint16_t *acc;
		i += 2;
		if (n_acc == HINT_DENSE) {
			n_acc = n_pages;
			acc = iota;
		} else {
			/* the payload's 16-bit units, little-endian, are the page list as it is */
			acc = (const uint16_t *)mbox(MBOX_HINT_PAYLOAD) + i;
			i += n_acc;
		}
		for (a = 0; a < n_acc; a++) {
			if ((int)acc[a] < lim) {
				unsigned slot = dir_find((s << VPN_PAGE_BITS) | acc[a]);
				st_needed++;
				if (slot != NO_SLOT) {
					st_hits++;
					st_used += slot_serial[slot] == (uint16_t)(serial - 1);
				}
			}
		}
		stream_pages[s] = (uint16_t)n_pages;
		pred_n[s] = (uint8_t)pred_step((enum pred_kind)cfg_kind, s, s / cfg_heads, n_pages,
		                               acc, n_acc, step_k, preds[s]);
	}
	t_predict += t0 - timer_now();
	issue_chunk(first, first + count, step);
	expect_step = step;
	expect_stream = first + count;
	*last_out = last;
	*step_out = step;
	return 0;
}

void spec_poll(void)
{
	uint32_t seq, status, last = 0, step = 0;
	seq = *mbox(MBOX_HINT_SEQ);
	if (seq == hint_last_seq)
		return;
	status = chunk(&last, &step);
	if (status) {
		*mbox(MBOX_HINT_REJECTED) = ++hint_rejected;
	} else if (last) {
		step_finish(step);
		expect_stream = 0;
		expect_step = step + 1;
	}
	*mbox(MBOX_HINT_STATUS) = status;
	*mbox(MBOX_HINT_DONE_SEQ) = seq;
	hint_last_seq = seq;
}

#endif  /* CSR_DMA_BASE: no cache engine, no speculation (dispatch.c serves nothing) */
