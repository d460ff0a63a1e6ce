// ---------------------------------------------------------------------------------------
// SpecKV native simulation loop, appended to pyverilator's wrapper and compiled into the
// same shared library as the Verilator model. Python calls these through ctypes; the loop
// runs clock cycles natively and returns only when something happens (a stop reason), so
// the cost of Python is paid per event, not per clock.
//
// Pads it touches (see soc/platform.py): sys_clk, sys_rst, serial_* (stream UART),
// host_bus_* (Wishbone master), bridge_* (CXL.mem-style message link), sim_ctrl_*.
//
// The link: host messages wait for a credit, are serialised at the link bandwidth, travel
// the one-way latency, and are presented to the device pad in order. Device messages are
// serialised and delayed the same way and delivered to the host inbox at their arrival
// cycle; each response returns one credit when it arrives. The wires and the link layer
// (sequence numbers, CRC, retry; faults) are in link_layer.cpp, compiled before this file.
//
// Built with -DSPK_BOARD_LINK (soc/boards.py, the board host-link simulation): the SoC has a
// real serial line (serial_tx / serial_rx, 8N1 at spk_line_config() cycles per bit, LiteX's
// RS232 PHY + UARTBone) instead of the stream UART, and no bridge pads (the bridge is fed
// by the Wishbone message tunnel). The spk_uart_* calls then move the line's bytes.
// ---------------------------------------------------------------------------------------
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <chrono>
#include <deque>
#include <vector>

#define SPK_TOP Vsim

enum {
    SPK_STOP_MAX_CYCLES = 1u << 0,   // the cycle budget ran out
    SPK_STOP_UART_TX    = 1u << 1,   // the SoC sent a UART byte
    SPK_STOP_FINISH     = 1u << 2,   // firmware wrote sim_ctrl.finish
    SPK_STOP_BUS_DONE   = 1u << 3,   // the host bus transaction completed (ack or err)
    SPK_STOP_TX_MATCH   = 1u << 4,   // the UART output ended with the armed pattern
    SPK_STOP_D2H        = 1u << 5,   // a device message arrived at the host
};

static inline uint64_t spk_stall_draw(SpkLink *l) {  // 16 bits of the stall stream
    return spk_xorshift(&l->stall_rng) >> 48;
}

// Apply a HostWr line to the registered host memory; false if it is not one, or not a
// well-formed one inside the buffer (Python then sees it and reports the problem).
static inline bool spk_host_write(SpkLink *l, const SpkMsg &m) {
    if (!l->hmem || (m.hdr[0] & 0xff) != 0x90) return false;
    const uint64_t addr = (uint64_t)m.hdr[1] | ((uint64_t)m.hdr[2] << 32);
    const uint32_t n = m.hdr[3];
    if (n < 1 || n > 64 || (addr & 63) || addr < l->hmem_base
        || addr - l->hmem_base > l->hmem_size || l->hmem_size - (addr - l->hmem_base) < n)
        return false;
    std::memcpy(l->hmem + (addr - l->hmem_base), (const uint8_t *)m.data, n);
    l->host_writes++;
    return true;
}

struct SpkState {
    SPK_TOP *top;
    uint64_t cycle;
    std::deque<uint8_t> rx;            // host -> SoC UART bytes not yet accepted
    std::vector<uint8_t> tx;           // SoC -> host UART bytes not yet read by Python
    std::vector<uint8_t> pattern;      // SPK_STOP_TX_MATCH pattern
    size_t match;                      // bytes of pattern matched so far (KMP-free: restart)
    DUMP_TYPE *tfp;                    // waveform, or null
    uint64_t trace_from, trace_to;     // dump the cycles trace_from <= cycle < trace_to
    // host bus
    bool bus_active;
    uint32_t bus_we, bus_adr, bus_dat_w, bus_sel;
    uint32_t bus_dat_r, bus_err;
    // simulation end
    bool finished;
    uint32_t finish_code;
    SpkLink link;
#ifdef SPK_BOARD_LINK
    // 8N1 serial line model: host -> SoC bits on serial_rx, SoC -> host bits from serial_tx.
    uint32_t line_cpb;                 // cycles per bit
    int rx_bit;                        // -1 idle, 0 start, 1..8 data, 9 stop
    uint32_t rx_count;                 // cycles left in the current bit
    uint8_t rx_byte, rx_level;
    int tx_bit;                        // -1 idle, 0..7 data, 8 stop
    uint32_t tx_count;
    uint8_t tx_byte;
    // The codec clock domain (gateware/dma/codec.CodecCDC, as on the DDR3 boards): codec_clk
    // toggles every SPK_CODEC_HALF sys half-cycles, so its period is SPK_CODEC_HALF sys
    // cycles (default 3: its edges fall on sys rising and falling edges in turn).
    uint32_t half;
#endif
};

#ifdef SPK_BOARD_LINK
#ifndef SPK_CODEC_HALF
#define SPK_CODEC_HALF 3
#endif
static inline void spk_codec_clock(SpkState *s) {
    if (++s->half == SPK_CODEC_HALF) {
        s->half = 0;
        s->top->codec_clk = !s->top->codec_clk;
    }
}
#else
static inline void spk_codec_clock(SpkState *) {}
#endif

// Put waiting host messages on the wire while credits last (through the host's end of the
// link layer when it is on).
static void spk_link_pump(SpkState *s) {
    SpkLink *l = &s->link;
    while (l->credits > 0 && !l->waiting.empty()) {
        SpkMsg m = l->waiting.front();
        l->waiting.pop_front();
        l->credits--;
        if (l->ll_on) spk_port_send(l, &l->host, m, (double)s->cycle);
        else spk_wire_put(l, &l->h2d, m, (double)s->cycle);
    }
}

// The host message the device's pads see next: the wire's front (link layer off) or the
// oldest flit the device's end accepted; null if none has arrived.
static inline const SpkMsg *spk_h2d_head(SpkState *s) {
    SpkLink *l = &s->link;
    const std::deque<SpkMsg> &q = l->ll_on ? l->dev_in : l->h2d.q;
    return (!q.empty() && q.front().t <= s->cycle) ? &q.front() : nullptr;
}

// Deliver a device message that reached the host: a response returns its credit, a HostWr
// inside host memory is applied, anything else goes to the inbox.
static inline void spk_host_deliver(SpkLink *l, const SpkMsg &m, uint32_t *ev) {
    if (spk_is_response(m) && l->credits < l->credits_max) l->credits++;
    if (!spk_host_write(l, m)) {
        l->inbox.push_back(m);
        *ev |= SPK_STOP_D2H;
    }
}

static inline void spk_drive_inputs(SpkState *s) {
    SPK_TOP *t = s->top;
#ifdef SPK_BOARD_LINK
    t->serial_rx = s->rx_level;
#else
    t->serial_source_ready = 1;
    if (!s->rx.empty()) {
        t->serial_sink_valid = 1;
        t->serial_sink_data  = s->rx.front();
    } else {
        t->serial_sink_valid = 0;
    }
#endif
    t->host_bus_cyc   = s->bus_active;
    t->host_bus_stb   = s->bus_active;
    t->host_bus_we    = s->bus_we;
    t->host_bus_adr   = s->bus_adr;
    t->host_bus_dat_w = s->bus_dat_w;
    t->host_bus_sel   = s->bus_sel;
    SpkLink *l = &s->link;
#ifndef SPK_BOARD_LINK
    t->bridge_d2h_ready = !l->hold_d2h && !(l->ll_on && l->dev.retry.size() >= SPK_LL_RETRY_MAX);
    const SpkMsg *head = l->hold_h2d ? nullptr : spk_h2d_head(s);
    if (head) {
        const SpkMsg &m = *head;
        t->bridge_h2d_valid = 1;
        for (int i = 0; i < 4; i++) t->bridge_h2d_hdr[i] = m.hdr[i];
        for (int i = 0; i < 16; i++) t->bridge_h2d_data[i] = m.data[i];
    } else {
        t->bridge_h2d_valid = 0;
    }
#else
    (void)l;
#endif
}

#ifdef SPK_BOARD_LINK
// Advance the serial line by one cycle: shift host bytes out on serial_rx, decode serial_tx
// (sampled before the clock edge as `txd`). Returns true with `out` when a byte completed.
static inline bool spk_line_step(SpkState *s, uint8_t txd, uint8_t *out) {
    // host -> SoC
    if (s->rx_bit < 0) {
        if (!s->rx.empty()) {
            s->rx_byte = s->rx.front();
            s->rx.pop_front();
            s->rx_bit = 0;
            s->rx_count = s->line_cpb;
            s->rx_level = 0;                                   // start bit
        }
    } else if (--s->rx_count == 0) {
        s->rx_bit++;
        s->rx_count = s->line_cpb;
        if (s->rx_bit <= 8) s->rx_level = (s->rx_byte >> (s->rx_bit - 1)) & 1;
        else if (s->rx_bit == 9) s->rx_level = 1;             // stop bit
        else { s->rx_bit = -1; s->rx_level = 1; }
    }
    // SoC -> host: sample each data bit in its middle.
    bool done = false;
    if (s->tx_bit < 0) {
        if (!txd) { s->tx_bit = 0; s->tx_count = s->line_cpb + s->line_cpb / 2; s->tx_byte = 0; }
    } else if (--s->tx_count == 0) {
        if (s->tx_bit < 8) {
            s->tx_byte |= (txd & 1) << s->tx_bit;
            s->tx_bit++;
            s->tx_count = s->line_cpb;
        } else {                                               // stop bit
            if (txd) { *out = s->tx_byte; done = true; }
            s->tx_bit = -1;
        }
    }
    return done;
}
#endif

// One clock cycle. Inputs were set after the previous rising edge; the falling-edge eval
// settles combinational outputs, which are sampled before the rising edge.
static inline uint32_t spk_cycle(SpkState *s) {
    SPK_TOP *t = s->top;
    uint32_t ev = 0;
    const bool tr = s->tfp && s->cycle >= s->trace_from && s->cycle < s->trace_to;
    t->sys_clk = 0;
    spk_codec_clock(s);
    t->eval();
    if (tr) s->tfp->dump((uint64_t)(2 * s->cycle + 1));
#ifdef SPK_BOARD_LINK
    const uint8_t txd = t->serial_tx;
    bool tx_fire = false;
    uint8_t tx_data = 0;
    const bool rx_fire = false;
#else
    const bool tx_fire = t->serial_source_valid;           // ready is held high
    const uint8_t tx_data = t->serial_source_data;
    const bool rx_fire = t->serial_sink_valid && t->serial_sink_ready;
#endif
    const bool bus_done = s->bus_active && (t->host_bus_ack || t->host_bus_err);
    const uint32_t bus_dat_r = t->host_bus_dat_r;
    const bool bus_err = t->host_bus_err;
    const bool finish = t->sim_ctrl_finish;
    const uint32_t code = t->sim_ctrl_code;
#ifdef SPK_BOARD_LINK
    const bool h2d_fire = false, d2h_fire = false;
    SpkMsg d2h;
#else
    const bool h2d_fire = t->bridge_h2d_valid && t->bridge_h2d_ready;
    const bool d2h_fire = t->bridge_d2h_valid && t->bridge_d2h_ready;
    SpkMsg d2h;
    std::memset(&d2h, 0, sizeof d2h);
    if (d2h_fire) {
        for (int i = 0; i < 4; i++) d2h.hdr[i] = t->bridge_d2h_hdr[i];
        for (int i = 0; i < 16; i++) d2h.data[i] = t->bridge_d2h_data[i];
    }
#endif
    t->sys_clk = 1;
    spk_codec_clock(s);
    t->eval();
    s->cycle++;
#ifdef SPK_BOARD_LINK
    tx_fire = spk_line_step(s, txd, &tx_data);
#endif
    if (tr) s->tfp->dump((uint64_t)(2 * s->cycle));
    if (tx_fire) {
        s->tx.push_back(tx_data);
        ev |= SPK_STOP_UART_TX;
        if (!s->pattern.empty()) {
            if (tx_data == s->pattern[s->match]) s->match++;
            else s->match = (tx_data == s->pattern[0]) ? 1 : 0;
            if (s->match == s->pattern.size()) { ev |= SPK_STOP_TX_MATCH; s->match = 0; }
        }
    }
    if (rx_fire) s->rx.pop_front();
    if (bus_done) {
        s->bus_active = false;
        s->bus_dat_r = bus_dat_r;
        s->bus_err = bus_err;
        ev |= SPK_STOP_BUS_DONE;
    }
    SpkLink *l = &s->link;
    if (h2d_fire) (l->ll_on ? l->dev_in : l->h2d.q).pop_front();
    if (d2h_fire) {
        d2h.sent = s->cycle - 1;
        if (l->ll_on) spk_port_send(l, &l->dev, d2h, (double)(s->cycle - 1));
        else spk_wire_put(l, &l->d2h, d2h, (double)(s->cycle - 1));
    }
    if (l->ll_on) {
        const double now = (double)s->cycle;
        spk_wire_arrivals(&l->h2d, s->cycle, [&](SpkMsg &m) {
            if (spk_port_receive(l, &l->dev, m, now)) { m.t = s->cycle; l->dev_in.push_back(m); }
        });
        spk_wire_arrivals(&l->d2h, s->cycle, [&](SpkMsg &m) {
            if (spk_port_receive(l, &l->host, m, now)) { m.t = s->cycle; spk_host_deliver(l, m, &ev); }
        });
        spk_port_tick(l, &l->dev, s->cycle);
        spk_port_tick(l, &l->host, s->cycle);
    } else {
        spk_wire_arrivals(&l->d2h, s->cycle, [&](SpkMsg &m) { spk_host_deliver(l, m, &ev); });
    }
    if (ev & SPK_STOP_D2H) spk_link_pump(s);
    if (finish) {
        s->finished = true;
        s->finish_code = code;
        ev |= SPK_STOP_FINISH;
    }
#ifndef SPK_BOARD_LINK
    if (l->h2d_stall | l->d2h_stall) {
        // Once presented, a message stays valid until accepted (stream protocol).
        l->hold_h2d = l->h2d_stall && !(t->bridge_h2d_valid && !h2d_fire)
                      && spk_stall_draw(l) < l->h2d_stall;
        l->hold_d2h = l->d2h_stall && spk_stall_draw(l) < l->d2h_stall;
    }
#endif
    spk_drive_inputs(s);
    return ev;
}

extern "C" {

SpkState *spk_new(SPK_TOP *top) {
    SpkState *s = new SpkState();
    s->top = top;
    s->cycle = 0;
    s->match = 0;
    s->tfp = nullptr;
    s->bus_active = false;
    s->bus_we = s->bus_adr = s->bus_dat_w = s->bus_sel = 0;
    s->bus_dat_r = s->bus_err = 0;
    s->finished = false;
    s->finish_code = 0;
    s->link.bytes_per_cycle = 64.0;
    s->link.lat_min = s->link.lat_max = 0;
    s->link.rng = 0x9e3779b97f4a7c15ull;
    s->link.credits = s->link.credits_max = 1;
    s->link.h2d.free = s->link.d2h.free = 0;
    s->link.h2d.bytes = s->link.d2h.bytes = s->link.h2d.msgs = s->link.d2h.msgs = 0;
    std::memset(s->link.h2d.injected, 0, sizeof s->link.h2d.injected);
    std::memset(s->link.d2h.injected, 0, sizeof s->link.d2h.injected);
    s->link.ll_on = s->link.down = false;
    std::memset(s->link.fault_q16, 0, sizeof s->link.fault_q16);
    s->link.fault_rng = 1;
    s->link.replay_timeout = 0;
    spk_port_reset(&s->link.host, &s->link.h2d);
    spk_port_reset(&s->link.dev, &s->link.d2h);
    s->link.h2d_stall = s->link.d2h_stall = 0;
    s->link.stall_rng = 0x2545f4914f6cdd1dull;
    s->link.hold_h2d = s->link.hold_d2h = false;
    s->link.hmem = nullptr;
    s->link.hmem_base = s->link.hmem_size = s->link.host_writes = 0;
#ifdef SPK_BOARD_LINK
    s->line_cpb = 16;
    s->rx_bit = s->tx_bit = -1;
    s->rx_count = s->tx_count = 0;
    s->rx_byte = s->tx_byte = 0;
    s->rx_level = 1;
    s->half = 0;
    top->codec_clk = 0;
#endif
    top->sys_clk = 1;
    top->sys_rst = 0;
    spk_drive_inputs(s);
    top->eval();
    return s;
}

void spk_free(SpkState *s) { delete s; }

uint64_t spk_cycle_count(SpkState *s) { return s->cycle; }

// Run at most max_cycles; stop after the first cycle whose events intersect stop_mask.
// Returns the events of the last cycle (SPK_STOP_MAX_CYCLES if the budget ran out).
uint32_t spk_run(SpkState *s, uint64_t max_cycles, uint32_t stop_mask) {
    if (s->finished && (stop_mask & SPK_STOP_FINISH)) return SPK_STOP_FINISH;
    for (uint64_t i = 0; i < max_cycles; i++) {
        uint32_t ev = spk_cycle(s);
        if (ev & stop_mask) return ev & stop_mask;
    }
    return SPK_STOP_MAX_CYCLES;
}

void spk_set_reset(SpkState *s, uint32_t rst) { s->top->sys_rst = rst; }

void spk_uart_write(SpkState *s, const uint8_t *data, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) s->rx.push_back(data[i]);
    spk_drive_inputs(s);
}

uint32_t spk_uart_pending_rx(SpkState *s) { return (uint32_t)s->rx.size(); }

// Copy up to cap buffered TX bytes out; returns how many were copied.
uint32_t spk_uart_read(SpkState *s, uint8_t *out, uint32_t cap) {
    uint32_t n = (uint32_t)(s->tx.size() < cap ? s->tx.size() : cap);
    for (uint32_t i = 0; i < n; i++) out[i] = s->tx[i];
    s->tx.erase(s->tx.begin(), s->tx.begin() + n);
    return n;
}

void spk_set_tx_pattern(SpkState *s, const uint8_t *p, uint32_t n) {
    s->pattern.assign(p, p + n);
    s->match = 0;
}

// One Wishbone transaction on the host bus. Returns 0 ok, 1 bus error, 2 timeout,
// 3 the simulation finished first.
uint32_t spk_bus_xfer(SpkState *s, uint32_t we, uint32_t byte_adr, uint32_t dat_w,
                      uint32_t sel, uint64_t timeout, uint32_t *dat_r) {
    s->bus_active = true;
    s->bus_we = we;
    s->bus_adr = byte_adr >> 2;
    s->bus_dat_w = dat_w;
    s->bus_sel = sel;
    spk_drive_inputs(s);
    uint32_t ev = spk_run(s, timeout, SPK_STOP_BUS_DONE | SPK_STOP_FINISH);
    if (ev & SPK_STOP_BUS_DONE) {
        *dat_r = s->bus_dat_r;
        return s->bus_err ? 1 : 0;
    }
    s->bus_active = false;
    spk_drive_inputs(s);
    return (ev & SPK_STOP_FINISH) ? 3 : 2;
}

// Link parameters: bandwidth in bytes per cycle, one-way latency range in cycles, the
// device's credit count, and the seed of the latency draw.
void spk_link_config(SpkState *s, double bytes_per_cycle, uint64_t lat_min, uint64_t lat_max,
                     uint32_t credits, uint64_t seed) {
    SpkLink *l = &s->link;
    l->bytes_per_cycle = bytes_per_cycle;
    l->lat_min = lat_min;
    l->lat_max = lat_max;
    l->credits = l->credits_max = credits;
    l->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

// Random valid/ready stalls at the bridge pads: probabilities in units of 2^-16 per cycle
// (0 = none), and the seed of their own random stream.
void spk_link_stalls(SpkState *s, uint32_t h2d_stall, uint32_t d2h_stall, uint64_t seed) {
    SpkLink *l = &s->link;
    l->h2d_stall = h2d_stall;
    l->d2h_stall = d2h_stall;
    l->stall_rng = seed ? seed : 0x2545f4914f6cdd1dull;
    l->hold_h2d = l->hold_d2h = false;
    spk_drive_inputs(s);
}

// Host memory for HostWr lines (null: none; every HostWr goes to the inbox). The buffer
// stays owned by the caller and must outlive its registration.
void spk_link_host_memory(SpkState *s, uint8_t *buf, uint64_t base, uint64_t size) {
    s->link.hmem = buf;
    s->link.hmem_base = base;
    s->link.hmem_size = buf ? size : 0;
}

uint64_t spk_link_host_writes(SpkState *s) { return s->link.host_writes; }

// Queue a host message (4 header words, 16 data words); it leaves when a credit is free.
void spk_link_send(SpkState *s, const uint32_t *hdr, const uint32_t *data) {
    SpkMsg m;
    std::memset(&m, 0, sizeof m);
    for (int i = 0; i < 4; i++) m.hdr[i] = hdr[i];
    for (int i = 0; i < 16; i++) m.data[i] = data[i];
    m.sent = s->cycle;
    m.t = 0;
    s->link.waiting.push_back(m);
    spk_link_pump(s);
    spk_drive_inputs(s);
}

// Pop the oldest message that arrived at the host. Returns 0 if there is none.
uint32_t spk_link_recv(SpkState *s, uint32_t *hdr, uint32_t *data, uint64_t *times) {
    SpkLink *l = &s->link;
    if (l->inbox.empty()) return 0;
    const SpkMsg &m = l->inbox.front();
    for (int i = 0; i < 4; i++) hdr[i] = m.hdr[i];
    for (int i = 0; i < 16; i++) data[i] = m.data[i];
    times[0] = m.sent;   // cycle the device sent it
    times[1] = m.t;      // cycle it arrived at the host
    l->inbox.pop_front();
    return 1;
}

// Turn the link layer on (sequence numbers, CRC, acknowledgements, replay; see
// link_layer.cpp) with per-flit fault probabilities in 1/65536 (drop, duplicate, delay
// beyond the replay timeout, corrupt), drawn from their own seeded stream. Call it with no
// messages in flight (after spk_link_config): both ends start from sequence number 0.
void spk_link_faults(SpkState *s, uint32_t drop, uint32_t dup, uint32_t delay, uint32_t corrupt,
                     uint64_t seed) {
    SpkLink *l = &s->link;
    l->ll_on = true;
    l->down = false;
    l->fault_q16[SPK_FAULT_DROP] = drop;
    l->fault_q16[SPK_FAULT_DUP] = dup;
    l->fault_q16[SPK_FAULT_DELAY] = delay;
    l->fault_q16[SPK_FAULT_CORRUPT] = corrupt;
    l->fault_rng = seed ? seed : 1;
    const double flit = 16 + 64 + SPK_LL_BYTES;
    l->replay_timeout = 2 * l->lat_max + 2 * SPK_LL_ACK_DELAY + 64
                        + (uint64_t)std::ceil(SPK_LL_RETRY_MAX * flit / l->bytes_per_cycle);
    spk_port_reset(&l->host, &l->h2d);
    spk_port_reset(&l->dev, &l->d2h);
    std::memset(l->h2d.injected, 0, sizeof l->h2d.injected);
    std::memset(l->d2h.injected, 0, sizeof l->d2h.injected);
    spk_drive_inputs(s);
}

// The link goes down and up again (a device reset, a retrained link): every message waiting,
// in flight or unread is lost, the credits are the device's again, and the link layer's
// ends start over. Counters and configuration stay.
void spk_link_reset(SpkState *s) {
    SpkLink *l = &s->link;
    std::deque<SpkMsg>().swap(l->waiting);
    std::deque<SpkMsg>().swap(l->inbox);
    std::deque<SpkMsg>().swap(l->dev_in);
    SpkWire *wires[2] = {&l->h2d, &l->d2h};
    for (SpkWire *w : wires) {
        std::deque<SpkMsg>().swap(w->q);
        w->late.clear();
        w->free = (double)s->cycle;
    }
    l->credits = l->credits_max;
    l->down = false;
    spk_port_resync(&l->host);
    spk_port_resync(&l->dev);
    spk_drive_inputs(s);
}

// Counters (soc/sim/driver.py LINK_STATS names them, in this order).
void spk_link_stats(SpkState *s, uint64_t *out) {
    SpkLink *l = &s->link;
    out[0] = l->credits; out[1] = l->waiting.size(); out[2] = l->h2d.q.size() + l->h2d.late.size();
    out[3] = l->d2h.q.size() + l->d2h.late.size(); out[4] = l->inbox.size(); out[5] = l->h2d.msgs;
    out[6] = l->d2h.msgs; out[7] = l->h2d.bytes; out[8] = l->d2h.bytes;
    out[9] = l->ll_on; out[10] = l->down; out[11] = l->replay_timeout;
    uint64_t *o = out + 12;
    // per direction: faults injected on its wire, what its receiver detected, what its
    // sender replayed (h2d: sent by the host's end, received by the device's)
    const SpkWire *wires[2] = {&l->h2d, &l->d2h};
    const SpkPort *tx[2] = {&l->host, &l->dev}, *rx[2] = {&l->dev, &l->host};
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < SPK_NFAULTS; k++) *o++ = wires[d]->injected[k];
        *o++ = rx[d]->crc_errors; *o++ = rx[d]->seq_gaps; *o++ = rx[d]->duplicates;
        *o++ = rx[d]->naks; *o++ = rx[d]->acks;
        *o++ = tx[d]->replays; *o++ = tx[d]->timer_replays; *o++ = tx[d]->replayed;
        *o++ = tx[d]->retry.size();
    }
}

#ifdef SPK_BOARD_LINK
// Cycles per bit of the serial line (the SoC's UART runs at sys_clk / cycles_per_bit baud).
void spk_line_config(SpkState *s, uint32_t cycles_per_bit) {
    s->line_cpb = cycles_per_bit < 4 ? 4 : cycles_per_bit;
}
#endif

uint32_t spk_finished(SpkState *s) { return s->finished; }
uint32_t spk_finish_code(SpkState *s) { return s->finish_code; }

void spk_set_trace(SpkState *s, DUMP_TYPE *tfp, uint64_t from, uint64_t to) {
    s->tfp = tfp;
    s->trace_from = from;
    s->trace_to = to;
}

// Benchmark helper: the bare Verilator loop (clock toggle + eval, nothing else), timed in
// C++. Returns elapsed nanoseconds.
uint64_t spk_bare_loop(SpkState *s, uint64_t cycles) {
    SPK_TOP *t = s->top;
    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < cycles; i++) {
        t->sys_clk = 0;
        t->eval();
        t->sys_clk = 1;
        t->eval();
    }
    s->cycle += cycles;
    auto t1 = std::chrono::steady_clock::now();
    return (uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
}

// Benchmark helper: the driver's loop (event sampling, UART/bus handling) timed in C++.
uint64_t spk_timed_run(SpkState *s, uint64_t cycles) {
    auto t0 = std::chrono::steady_clock::now();
    spk_run(s, cycles, 0);
    auto t1 = std::chrono::steady_clock::now();
    return (uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
}

}  // extern "C"
