"""Foundation: the SoC converts to Verilog, the firmware boots in the Verilator model, the
host reads CSRs through the driver, and the driver's native loop stops on the right cycle."""

import json
import re
import subprocess
import sys

import pytest

from soc.sim import SimDriver, SimTimeout, Stop
from soc.soc import IDENT_MAGIC, IDENT_VERSION

from conftest import BOOT_CYCLES, ROOT


# Verilog and exported register map ---------------------------------------------------------

def test_soc_converts_to_verilog(sim_build):
    v = sim_build.verilog.read_text()
    assert re.search(r"^module sim\s*\(", v, re.M), "top module 'sim' missing"
    assert "VexRiscv VexRiscv(" in v, "the CPU is not instantiated"
    for port in ("serial_source_valid", "host_bus_adr", "sim_ctrl_finish", "sys_clk"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", v), f"port {port} missing"
    # Firmware is in the ROM image the Verilog loads.
    rom = (sim_build.verilog.parent / "sim_rom.init").read_text().split()
    fw = sim_build.firmware_bin.read_bytes()
    first = int.from_bytes(fw[:4], "little")
    assert int(rom[0], 16) == first


def test_register_map_exported(sim_build):
    m = json.loads(sim_build.csr_json.read_text())
    regs = m["csr_registers"]
    for name in ("identifier_regs_magic", "identifier_regs_version", "sim_ctrl_ctrl",
                 "uart_rxtx", "sdram_dfii_control"):
        assert name in regs, f"{name} not in csr.json"
    assert "identifier_regs_magic" in sim_build.csr_csv.read_text()
    # csr.h (firmware) and csr.json (host) agree: both come from the builder.
    h = sim_build.csr_h.read_text()
    base = int(re.search(r"#define CSR_BASE (0x[0-9a-f]+)L", h).group(1), 16)
    off = int(re.search(r"#define CSR_IDENTIFIER_REGS_MAGIC_ADDR \(CSR_BASE \+ (0x[0-9a-f]+)L\)", h).group(1), 16)
    assert base + off == regs["identifier_regs_magic"]["addr"]


# Firmware boot -------------------------------------------------------------------------------

def test_firmware_boots_and_prints_banner(booted):
    drv, text = booted
    assert "SpecKV-FPGA firmware " in text
    kib = drv.memories["main_ram"]["size"] // 1024
    assert re.search(rf"dram: {kib} KiB at 0x40000000, check ok \(0 errors\)", text), text
    assert text.endswith("speckv> ")
    assert drv.cycle < BOOT_CYCLES


def test_firmware_command_loop(booted):
    drv, _ = booted
    drv.uart_write("echo hello speckv\r")
    out = drv.uart_read_until(b"speckv> ", 500_000).decode()
    assert "hello speckv\n" in out
    drv.uart_write("frobnicate\r")
    out = drv.uart_read_until(b"speckv> ", 500_000).decode()
    assert "unknown command 'frobnicate'" in out
    drv.uart_write("ident\r")
    out = drv.uart_read_until(b"speckv> ", 500_000).decode()
    assert f"magic 0x{IDENT_MAGIC:08x} version 0x{IDENT_VERSION:08x}" in out
    assert "ident SpecKV-FPGA SoC" in out


def test_firmware_exit_code(booted):
    drv, _ = booted
    drv.uart_write("exit 7\r")
    ev = drv.run(500_000, Stop.FINISH)
    assert ev & Stop.FINISH
    assert drv.finished and drv.exit_code == 7
    assert b"exit 7" in drv.uart_read()


# Host CSR access through the driver ---------------------------------------------------------

def test_host_reads_identifier_register(sim):
    # No firmware involvement needed: the host bus is a Wishbone master of its own.
    assert sim.csr_read("identifier_regs_magic") == IDENT_MAGIC
    assert sim.csr_read("identifier_regs_version") == IDENT_VERSION
    assert sim.csr_read("identifier_regs_sys_clk_freq") == int(sim.constants["config_clock_frequency"])


def test_host_writes_and_reads_back(sim):
    sim.csr_write("ctrl_scratch", 0xDEADBEEF)
    assert sim.csr_read("ctrl_scratch") == 0xDEADBEEF
    sim.csr_write("ctrl_scratch", 0x12345678)
    assert sim.csr_read("ctrl_scratch") == 0x12345678


def test_host_reads_identifier_string(sim):
    base = sim.csr_bases["identifier_mem"]
    s = bytes(sim.bus_read(base + 4 * i) & 0xFF for i in range(15))
    assert s == b"SpecKV-FPGA SoC"




def test_host_sees_firmware_dram_pattern(booted):
    # The firmware's boot check leaves 0x9e3779b9 * (i + 1) in the first words of main RAM.
    drv, _ = booted
    base = drv.memories["main_ram"]["base"]
    for i in (0, 1, 100, 1023):
        assert drv.bus_read(base + 4 * i) == (0x9E3779B9 * (i + 1)) & 0xFFFFFFFF


def test_bus_errors_are_named(sim):
    with pytest.raises(ValueError, match="not 32-bit aligned"):
        sim.bus_read(0x2)
    with pytest.raises(KeyError, match="no CSR named 'nope'"):
        sim.csr_read("nope")


# Native loop: stops on the right cycle --------------------------------------------------------

def _first_tx_cycle_by_stepping(model, csr_json, limit):
    """Reference: one cycle per call, checking the UART after every cycle."""
    drv = SimDriver(model, csr_json=csr_json)
    try:
        drv.reset()
        while drv.cycle < limit:
            drv.run(1)
            if drv.uart_read():
                return drv.cycle
        raise AssertionError("no UART byte within the limit")
    finally:
        drv.close()


def test_run_until_event_stops_on_the_right_cycle(sim_build, sim):
    ev = sim.run(BOOT_CYCLES, Stop.UART_TX)
    assert ev == Stop.UART_TX
    native_cycle = sim.cycle
    assert len(sim.uart_read()) == 1, "exactly one byte when stopping on the first one"
    ref_cycle = _first_tx_cycle_by_stepping(sim_build.model, sim_build.csr_json,
                                            native_cycle + 10)
    assert native_cycle == ref_cycle


def test_run_budget_is_exact(sim):
    start = sim.cycle
    assert sim.run(12_345) == Stop.MAX_CYCLES
    assert sim.cycle == start + 12_345
    assert sim.run(0) == Stop.MAX_CYCLES and sim.cycle == start + 12_345


def test_pattern_stop_and_timeout(sim):
    with pytest.raises(SimTimeout, match="no b'never-printed'"):
        sim.uart_read_until(b"never-printed", 50_000)
    text = sim.uart_read_until(b"ready\n", BOOT_CYCLES)
    assert text.endswith(b"ready\n"), "stopped past the end of the pattern"


def test_same_input_same_cycles(sim_build):
    # Deterministic model: two boots take the same number of cycles.
    cycles = []
    for _ in range(2):
        with SimDriver(sim_build.model, csr_json=sim_build.csr_json) as d:
            d.reset()
            d.uart_read_until(b"speckv> ", BOOT_CYCLES)
            cycles.append(d.cycle)
    assert cycles[0] == cycles[1]


# Waveforms and the command line ---------------------------------------------------------------

def test_waveform_window(sim, tmp_path):
    sizes = {}
    for name, (start, end) in {"short": (100, 300), "long": (100, 2100),
                               "future": (10**9, 10**9 + 1)}.items():
        path = tmp_path / f"{name}.fst"
        begin = sim.cycle
        sim.trace_start(path, begin + start, begin + end)
        sim.run(2500)
        sim.trace_stop()
        data = path.read_bytes()
        assert data[0] == 0, "not an FST file (header block type 0)"
        sizes[name] = len(data)
    # Only the window is dumped: a longer window is a bigger file, an unreached one is empty.
    assert sizes["future"] < sizes["short"] < sizes["long"], sizes
    with pytest.raises(ValueError, match="window is empty"):
        sim.trace_start(tmp_path / "x.fst", 10, 10)


def test_cli_help_documents_every_option():
    out = subprocess.run([sys.executable, str(ROOT / "soc" / "build.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for opt in ("--sim", "--build", "--build-dir", "--sys-clk-freq", "--cpu-variant", "--dram",
                "--no-sdram", "--sim-cycles", "--script", "--interactive", "--trace",
                "--trace-start", "--trace-end", "--trace-file"):
        assert opt in out


def test_cli_sim_runs_script_and_exits(sim_build, tmp_path):
    wave = tmp_path / "cli.fst"
    r = subprocess.run([sys.executable, str(ROOT / "soc" / "build.py"), "--sim",
                        "--build-dir", str(sim_build.build_dir), "--script", "echo from-cli;exit 3",
                        "--trace", "--trace-start", "1000", "--trace-end", "1500",
                        "--trace-file", str(wave)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "SpecKV-FPGA firmware" in r.stdout
    assert "from-cli" in r.stdout
    assert wave.exists() and wave.stat().st_size > 0


def test_cli_rejects_bad_options():
    r = subprocess.run([sys.executable, str(ROOT / "soc" / "build.py"), "--sim", "--trace",
                        "--trace-start", "10", "--trace-end", "5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--trace-end (5) must be after --trace-start (10)" in r.stderr


def test_dram_models_and_their_peaks(sim):
    from soc.targets.sim import (DEFAULT_DRAM, default_build_dir, dma_port_bytes,
                                 dram_peak_bytes_per_cycle, sim_soc)
    assert DEFAULT_DRAM == "ddr3"
    # DDR3-800 x16 at 4:1: a 128-bit native port; SDR x16: 16 bits
    assert dram_peak_bytes_per_cycle("ddr3") == 16 and dma_port_bytes("ddr3") == 16
    assert dram_peak_bytes_per_cycle("sdr") == 2 and dma_port_bytes("sdr") == 8
    assert default_build_dir("sdr").name == "sim-sdr" and default_build_dir().name == "sim"
    # the default build is the DDR3 part's 128 MiB
    assert sim.memories["main_ram"]["size"] == 128 << 20
    with pytest.raises(ValueError, match="unknown simulated DRAM 'ddr9'; valid: ddr3, sdr"):
        sim_soc(100e6, "full", True, None, dram="ddr9")
