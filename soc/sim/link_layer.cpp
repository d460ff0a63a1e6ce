// ---------------------------------------------------------------------------------------
// The emulated link's wires and its link layer, appended to pyverilator's wrapper before
// native.cpp (soc/sim/model.py), which drives them cycle by cycle.
//
// A wire carries flits one way: each is serialised at the link bandwidth after the one
// before it, travels a one-way latency drawn from a seeded range, and arrives in order.
//
// The link layer (off unless spk_link_faults() turned it on) is what a CXL link layer does
// for its 68 B flits, in the go-back-N form PCIe's data link layer also uses:
//  - every flit carries a sequence number and a CRC-32 over header, line, sequence and
//    kind; the sender keeps each data flit in a retry buffer until it is acknowledged;
//  - the receiver accepts a data flit only with a good CRC and the next expected sequence
//    number: a bad CRC or a gap (a lost flit) is answered by one NAK naming the expected
//    number, a number already accepted (a duplicate, a flit that arrived late) is dropped
//    and re-acknowledged; accepted flits are acknowledged in groups (ACK = next expected);
//  - the sender replays its whole retry buffer on a NAK or when no acknowledgement has
//    come for the replay timeout; after SPK_LL_MAX_REPLAYS replays without progress the
//    link is declared down (the host's transactions then time out and say so).
// So the transaction layer above (the bridge's pads, the host's inbox) sees every message
// exactly once, in order, never a corrupted one. Faults are injected per flit, seeded: a
// flit is dropped, duplicated, delayed beyond the replay timeout, or has 1-3 bits flipped.
// ---------------------------------------------------------------------------------------
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <deque>
#include <vector>

struct SpkMsg {
    uint32_t hdr[4];      // 128-bit header, little-endian words
    uint32_t data[16];    // 64 B line
    uint64_t t;           // cycle it reaches the other side (or was sent, for the log)
    uint64_t sent;        // cycle it entered the link
    uint32_t seq;         // link layer: sequence number, or the value of an ACK / NAK
    uint32_t crc;         // link layer: CRC-32 of the flit as its sender made it
    uint32_t ctl;         // link layer: SPK_FLIT_*
};

enum { SPK_FLIT_DATA = 0, SPK_FLIT_ACK = 1, SPK_FLIT_NAK = 2 };
enum { SPK_FAULT_DROP, SPK_FAULT_DUP, SPK_FAULT_DELAY, SPK_FAULT_CORRUPT, SPK_NFAULTS };

#define SPK_SEQ_MASK 0xffffu            // 16-bit sequence numbers
#define SPK_LL_ACK_EVERY 8              // acknowledge at least every 8 accepted flits
#define SPK_LL_ACK_DELAY 16             // ... or 16 cycles after the first unacknowledged one
#define SPK_LL_RETRY_MAX 256            // retry buffer, flits (the sender stalls when full)
#define SPK_LL_MAX_REPLAYS 64           // replays without progress before the link is down
#define SPK_LL_BYTES 6                  // sequence number (2 B) and CRC (4 B) per data flit
#define SPK_LL_CTL_BYTES 8              // an ACK / NAK flit

struct SpkWire {
    double free;                  // cycle the wire is next free
    std::deque<SpkMsg> q;         // in flight, arrival order
    std::vector<SpkMsg> late;     // delayed beyond the replay timeout (faults)
    uint64_t bytes, msgs;
    uint64_t injected[SPK_NFAULTS];
};

// One end's link layer: its sender (retry buffer) and its receiver.
struct SpkPort {
    SpkWire *out;                 // the wire this end sends on
    uint32_t tx_seq;              // next sequence number to send
    std::deque<SpkMsg> retry;     // sent, not yet acknowledged, in sequence order
    uint64_t replay_at;           // cycle the replay timer fires (retry not empty)
    uint32_t no_progress;         // replays since the last acknowledgement that freed a flit
    uint32_t rx_expected;         // next sequence number to accept
    bool nak_pending;             // a NAK for rx_expected was sent and not yet answered
    uint32_t rx_unacked;          // accepted since the last ACK
    uint64_t ack_at;              // cycle to send an ACK (0: none due)
    // counters of what this end's receiver detected and its sender did
    uint64_t crc_errors, seq_gaps, duplicates, naks, acks, replays, timer_replays, replayed;
};

static uint32_t spk_crc_table[256];

static uint32_t spk_crc32(const uint8_t *p, size_t n, uint32_t crc) {
    if (!spk_crc_table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            spk_crc_table[i] = c;
        }
    }
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = spk_crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// CRC-32 (zlib's) of header, line, sequence number (2 bytes) and kind (1 byte).
static uint32_t spk_flit_crc(const SpkMsg &m) {
    uint8_t tail[3] = {(uint8_t)m.seq, (uint8_t)(m.seq >> 8), (uint8_t)m.ctl};
    uint32_t c = spk_crc32((const uint8_t *)m.hdr, 16, 0);
    c = spk_crc32((const uint8_t *)m.data, 64, c);
    return spk_crc32(tail, 3, c);
}

// Flip 1-3 random bits of the flit as it travels (header, line, sequence, kind or CRC).
static void spk_corrupt(SpkMsg &m, uint64_t r) {
    const int nbits = 1 + (int)(r % 3);
    for (int i = 0; i < nbits; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        const uint32_t bit = (uint32_t)((r >> 33) % ((16 + 64 + 3 + 4) * 8));
        if (bit < 128) m.hdr[bit / 32] ^= 1u << (bit % 32);
        else if (bit < 640) m.data[(bit - 128) / 32] ^= 1u << (bit % 32);
        else if (bit < 656) m.seq ^= 1u << (bit - 640);
        else if (bit < 664) m.ctl ^= 1u << (bit - 656);
        else m.crc ^= 1u << (bit - 664);
    }
}

struct SpkLink {
    double bytes_per_cycle;   // link bandwidth
    uint64_t lat_min, lat_max; // one-way latency range, cycles (uniform, seeded)
    uint64_t rng;
    uint32_t credits, credits_max;
    std::deque<SpkMsg> waiting;   // host messages waiting for a credit
    SpkWire h2d, d2h;             // host -> device, device -> host
    std::deque<SpkMsg> inbox;     // arrived at the host, not yet read
    std::deque<SpkMsg> dev_in;    // link layer on: accepted by the device's end, for the pads
    // Random stalls at the device pads (tests): per cycle, a host message that has arrived
    // is withheld (h2d_valid low) with probability h2d_stall / 2^16, and the host refuses a
    // device message (d2h_ready low) with probability d2h_stall / 2^16; own seeded stream.
    uint32_t h2d_stall, d2h_stall;
    uint64_t stall_rng;
    bool hold_h2d, hold_d2h;  // this cycle's draws
    // Host memory the device writes into (HostWr), registered by Python: a well-formed
    // HostWr inside it is applied here at its arrival cycle instead of going to the inbox
    // (no Python round trip per line); anything else still goes to the inbox.
    uint8_t *hmem;
    uint64_t hmem_base, hmem_size, host_writes;
    // The link layer and its faults.
    bool ll_on, down;
    uint32_t fault_q16[SPK_NFAULTS];  // per-flit probability of each fault, in 1/65536
    uint64_t fault_rng;
    uint64_t replay_timeout;          // cycles without an acknowledgement before a replay
    SpkPort host, dev;                // the host's end, the device's end
};

// xorshift64*: the link's seeded random streams (latency, faults, stalls), each its own state.
static inline uint64_t spk_xorshift(uint64_t *x) {
    *x ^= *x >> 12; *x ^= *x << 25; *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

static inline uint64_t spk_latency(SpkLink *l) {
    if (l->lat_max <= l->lat_min) return l->lat_min;
    return l->lat_min + spk_xorshift(&l->rng) % (l->lat_max - l->lat_min + 1);
}

// Bytes a flit occupies on the wire: the 16 B header, plus the line if it carries one, plus
// the link layer's sequence number and CRC when it is on; an ACK / NAK is 8 B.
static inline uint32_t spk_wire_bytes(const SpkLink *l, const SpkMsg &m) {
    if (l->ll_on && m.ctl != SPK_FLIT_DATA) return SPK_LL_CTL_BYTES;
    const uint32_t op = m.hdr[0] & 0xff;
    const bool with_data = (op == 0x02) || (op == 0x82) || (op == 0x90);  // MemWr, MemData, HostWr
    return 16 + (with_data ? 64 : 0) + (l->ll_on ? SPK_LL_BYTES : 0);
}

static inline bool spk_is_response(const SpkMsg &m) {
    const uint32_t op = m.hdr[0] & 0xff;
    return op == 0x81 || op == 0x82 || op == 0x83;
}

// Put a flit on a wire at time `now`: serialised after the one before, latency drawn, kept
// in order; with the link layer on, a fault may strike it.
static void spk_wire_put(SpkLink *l, SpkWire *w, SpkMsg m, double now) {
    const uint32_t bytes = spk_wire_bytes(l, m);
    const double depart = std::max(now, w->free);
    const double ser = bytes / l->bytes_per_cycle;
    w->free = depart + ser;
    m.t = (uint64_t)std::ceil(depart + ser) + spk_latency(l);
    if (!w->q.empty() && m.t < w->q.back().t) m.t = w->q.back().t;  // in order
    w->bytes += bytes;
    w->msgs++;
    if (l->ll_on) {
        const uint64_t r = spk_xorshift(&l->fault_rng);
        uint32_t draw = (uint32_t)(r >> 48), edge = 0;
        for (int k = 0; k < SPK_NFAULTS; k++) {
            edge += l->fault_q16[k];
            if (draw >= edge) continue;
            w->injected[k]++;
            if (k == SPK_FAULT_DROP) return;
            if (k == SPK_FAULT_DUP) w->q.push_back(m);
            if (k == SPK_FAULT_CORRUPT) spk_corrupt(m, r);
            if (k == SPK_FAULT_DELAY) {
                m.t += 2 * l->replay_timeout + (r & 0xffff) % (l->replay_timeout + 1);
                w->late.push_back(m);
                return;
            }
            break;
        }
    }
    w->q.push_back(m);
}

// Call fn(flit) for every flit that has arrived by `cycle` (in order, then late ones).
template <typename F>
static inline void spk_wire_arrivals(SpkWire *w, uint64_t cycle, F fn) {
    while (!w->q.empty() && w->q.front().t <= cycle) {
        SpkMsg m = w->q.front();
        w->q.pop_front();
        fn(m);
    }
    for (size_t i = 0; i < w->late.size();) {
        if (w->late[i].t <= cycle) {
            SpkMsg m = w->late[i];
            w->late.erase(w->late.begin() + i);
            fn(m);
        } else {
            i++;
        }
    }
}

static void spk_port_ctl(SpkLink *l, SpkPort *p, uint32_t kind, uint32_t value, double now) {
    SpkMsg m;
    std::memset(&m, 0, sizeof m);
    m.ctl = kind;
    m.seq = value & SPK_SEQ_MASK;
    m.sent = (uint64_t)now;
    m.crc = spk_flit_crc(m);
    if (kind == SPK_FLIT_ACK) { p->acks++; p->rx_unacked = 0; p->ack_at = 0; }
    else p->naks++;
    spk_wire_put(l, p->out, m, now);
}

static void spk_port_send(SpkLink *l, SpkPort *p, SpkMsg m, double now) {
    m.ctl = SPK_FLIT_DATA;
    m.seq = p->tx_seq;
    p->tx_seq = (p->tx_seq + 1) & SPK_SEQ_MASK;
    m.crc = spk_flit_crc(m);
    if (p->retry.empty()) p->replay_at = (uint64_t)now + l->replay_timeout;
    p->retry.push_back(m);
    spk_wire_put(l, p->out, m, now);
}

static void spk_port_replay(SpkLink *l, SpkPort *p, double now, bool timer) {
    if (p->retry.empty() || l->down) return;
    if (++p->no_progress > SPK_LL_MAX_REPLAYS) { l->down = true; return; }
    p->replays++;
    if (timer) p->timer_replays++;
    for (const SpkMsg &m : p->retry) spk_wire_put(l, p->out, m, now);
    p->replayed += p->retry.size();
    p->replay_at = (uint64_t)now + l->replay_timeout;
}

// An ACK / NAK value v: every flit before v has arrived. True if it names a flit in the
// retry buffer or the next one to send (it may be stale: a late or duplicated ACK).
static bool spk_port_acked(SpkLink *l, SpkPort *p, uint32_t v, double now) {
    const uint32_t outstanding = (uint32_t)p->retry.size();
    const uint32_t ahead = (p->tx_seq - v) & SPK_SEQ_MASK;   // flits from v to the next
    if (ahead > outstanding) return false;
    if (outstanding - ahead) {
        p->retry.erase(p->retry.begin(), p->retry.begin() + (outstanding - ahead));
        p->no_progress = 0;
        p->replay_at = (uint64_t)now + l->replay_timeout;
    }
    return true;
}

// A flit arriving at end p. True if it is a data flit to deliver upward (exactly once, in
// order); everything else is the link layer's business.
static bool spk_port_receive(SpkLink *l, SpkPort *p, const SpkMsg &m, double now) {
    if (spk_flit_crc(m) != m.crc || m.ctl > SPK_FLIT_NAK) {
        p->crc_errors++;
        if (!p->nak_pending) { p->nak_pending = true; spk_port_ctl(l, p, SPK_FLIT_NAK, p->rx_expected, now); }
        return false;
    }
    if (m.ctl == SPK_FLIT_ACK) { spk_port_acked(l, p, m.seq, now); return false; }
    if (m.ctl == SPK_FLIT_NAK) {
        if (spk_port_acked(l, p, m.seq, now)) spk_port_replay(l, p, now, false);
        return false;
    }
    const uint32_t d = (m.seq - p->rx_expected) & SPK_SEQ_MASK;
    if (d == 0) {
        p->rx_expected = (p->rx_expected + 1) & SPK_SEQ_MASK;
        p->nak_pending = false;
        if (++p->rx_unacked >= SPK_LL_ACK_EVERY) spk_port_ctl(l, p, SPK_FLIT_ACK, p->rx_expected, now);
        else if (!p->ack_at) p->ack_at = (uint64_t)now + SPK_LL_ACK_DELAY;
        return true;
    }
    if (d > SPK_SEQ_MASK / 2) {           // already accepted: a duplicate or a late flit
        p->duplicates++;
        if (!p->ack_at) p->ack_at = (uint64_t)now + 1;
        return false;
    }
    p->seq_gaps++;                        // a flit before it was lost
    if (!p->nak_pending) { p->nak_pending = true; spk_port_ctl(l, p, SPK_FLIT_NAK, p->rx_expected, now); }
    return false;
}

// Timers of end p at cycle `now`: a due ACK, a replay nothing acknowledged.
static inline void spk_port_tick(SpkLink *l, SpkPort *p, uint64_t now) {
    if (p->ack_at && now >= p->ack_at) spk_port_ctl(l, p, SPK_FLIT_ACK, p->rx_expected, (double)now);
    if (!p->retry.empty() && now >= p->replay_at) spk_port_replay(l, p, (double)now, true);
}

// Both ends start over from sequence number 0 (a link that retrains); counters kept.
static void spk_port_resync(SpkPort *p) {
    std::deque<SpkMsg>().swap(p->retry);
    p->tx_seq = p->rx_expected = p->no_progress = p->rx_unacked = 0;
    p->replay_at = p->ack_at = 0;
    p->nak_pending = false;
}

static void spk_port_reset(SpkPort *p, SpkWire *out) {
    spk_port_resync(p);
    p->out = out;
    p->crc_errors = p->seq_gaps = p->duplicates = p->naks = p->acks = 0;
    p->replays = p->timer_replays = p->replayed = 0;
}
