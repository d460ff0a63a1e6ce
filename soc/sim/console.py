"""The firmware's UART console on the simulated SoC: boot, send commands at its prompt, or
forward stdin (``python soc/build.py --sim --script ... [--interactive]``)."""

import select
import sys
import time

from soc.sim.driver import SimDriver, SimTimeout, Stop


def run_console(b, max_cycles, script, interactive, trace=None, quiet=False):
    """Boot the SoC under Verilator and print its UART; returns the firmware's exit code."""
    with SimDriver(b.model, csr_json=b.csr_json) as drv:
        t0 = time.time()
        drv.reset()
        if trace:
            drv.trace_start(trace[0], trace[1], trace[2])
        out = sys.stdout.buffer

        def pump(pattern, budget):
            try:
                text = drv.uart_read_until(pattern, budget)
            except SimTimeout:
                text = drv.uart_read()
                out.write(text)
                out.flush()
                raise
            out.write(text)
            out.flush()
            return text

        try:
            pump(b"speckv> ", max_cycles)
            for cmd in script:
                drv.uart_write(cmd + "\r")
                if drv.finished:
                    break
                pump(b"speckv> ", max_cycles - drv.cycle)
            if interactive:
                _interactive(drv, out, max_cycles)
        except SimTimeout as e:
            print(f"\n[sim] stopped: {e}", file=sys.stderr)
        finally:
            if trace:
                drv.trace_stop()
        dt = time.time() - t0
        code = drv.exit_code
        if not quiet:
            print(f"\n[sim] {drv.cycle} cycles in {dt:.2f} s "
                  f"({drv.cycle / dt / 1e6:.2f} M cycles/s), "
                  f"exit code {code if code is not None else '-'}")
            if trace:
                last = min(trace[2], drv.cycle)
                print(f"[sim] waveform of cycles {trace[1]}..{last} -> {trace[0]}")
        return code


def _interactive(drv, out, max_cycles):
    while not drv.finished and drv.cycle < max_cycles:
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r:
            line = sys.stdin.readline()
            if not line:
                break
            drv.uart_write(line.rstrip("\n") + "\r")
        drv.run(min(200_000, max_cycles - drv.cycle), Stop.FINISH)
        out.write(drv.uart_read())
        out.flush()
