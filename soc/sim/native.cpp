// ---------------------------------------------------------------------------------------
// SpecKV native simulation loop, appended to pyverilator's wrapper and compiled into the
// same shared library as the Verilator model. Python calls these through ctypes; the loop
// runs clock cycles natively and returns only when something happens (a stop reason), so
// the cost of Python is paid per event, not per clock.
//
// Pads it touches (see soc/platform.py): sys_clk, sys_rst, serial_* (stream UART),
// host_bus_* (Wishbone master), sim_ctrl_finish / sim_ctrl_code.
// ---------------------------------------------------------------------------------------
#include <cstdint>
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
};

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
};

static inline void spk_drive_inputs(SpkState *s) {
    SPK_TOP *t = s->top;
    t->serial_source_ready = 1;
    if (!s->rx.empty()) {
        t->serial_sink_valid = 1;
        t->serial_sink_data  = s->rx.front();
    } else {
        t->serial_sink_valid = 0;
    }
    t->host_bus_cyc   = s->bus_active;
    t->host_bus_stb   = s->bus_active;
    t->host_bus_we    = s->bus_we;
    t->host_bus_adr   = s->bus_adr;
    t->host_bus_dat_w = s->bus_dat_w;
    t->host_bus_sel   = s->bus_sel;
}

// One clock cycle. Inputs were set after the previous rising edge; the falling-edge eval
// settles combinational outputs, which are sampled before the rising edge.
static inline uint32_t spk_cycle(SpkState *s) {
    SPK_TOP *t = s->top;
    uint32_t ev = 0;
    const bool tr = s->tfp && s->cycle >= s->trace_from && s->cycle < s->trace_to;
    t->sys_clk = 0;
    t->eval();
    if (tr) s->tfp->dump((uint64_t)(2 * s->cycle + 1));
    const bool tx_fire = t->serial_source_valid;           // ready is held high
    const uint8_t tx_data = t->serial_source_data;
    const bool rx_fire = t->serial_sink_valid && t->serial_sink_ready;
    const bool bus_done = s->bus_active && (t->host_bus_ack || t->host_bus_err);
    const uint32_t bus_dat_r = t->host_bus_dat_r;
    const bool bus_err = t->host_bus_err;
    const bool finish = t->sim_ctrl_finish;
    const uint32_t code = t->sim_ctrl_code;
    t->sys_clk = 1;
    t->eval();
    s->cycle++;
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
    if (finish) {
        s->finished = true;
        s->finish_code = code;
        ev |= SPK_STOP_FINISH;
    }
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
