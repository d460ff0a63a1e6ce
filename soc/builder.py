"""Shared build helpers of every SoC target (simulation, boards, board-link simulation).

LiteX targets with custom ROM firmware build in two passes: pass 1 generates the headers
(csr.h, mem.h, soc.h) and the LiteX libraries the firmware links against; the firmware is
compiled; pass 2 regenerates the SoC with the firmware image in its ROM (the CPU boots
straight into it, no BIOS). :func:`firmware_pass` does the first pass and the firmware;
the targets (``soc/targets/``, ``soc/board.py``, ``soc/board_link.py``) do the second.
"""

import hashlib
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
VERILATOR_CACHE = ROOT / "build" / "verilator"   # Verilator models, cached by content

# LiteX software libraries the firmware links against (the BIOS is not built).
SOFTWARE_LIBS = ["libc", "libcompiler_rt", "libbase", "liblitedram"]


@dataclass
class SimBuild:
    """Paths of one simulation build."""
    build_dir: Path
    verilog: Path
    cpu_sources: list
    csr_json: Path
    csr_csv: Path
    csr_h: Path
    firmware_bin: Path
    model: Path = None


def say(quiet, msg):
    if not quiet:
        print(msg, flush=True)


def quiet_litex(log, fn):
    """Run ``fn`` with stdout (fd level: child processes too) appended to ``log``; show the
    log's tail if it fails. LiteX and the make/meson runs it starts print a lot."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("SoC", "SoCBusHandler", "SoCCSRHandler", "SoCIRQHandler", "SoCLocHandler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(log, "a") as f:
            os.dup2(f.fileno(), 1)
            try:
                return fn()
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
    except Exception:
        print("\n".join(Path(log).read_text().splitlines()[-25:]), file=sys.stderr)
        raise
    finally:
        os.close(saved)


def venv_tools_on_path():
    """Tools installed in the venv (meson, ninja) must be found by the makefiles LiteX and
    the firmware build run, also when the venv is not activated."""
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")


def make_builder(soc, build_dir, compile_software):
    """LiteX's Builder for ``soc``: gateware is generated, never compiled here; the software
    packages are the firmware's libraries only."""
    from litex.soc.integration.builder import Builder
    builder = Builder(soc, output_dir=str(build_dir), compile_software=compile_software,
                      compile_gateware=False)
    builder.software_packages = []
    builder.software_libraries = []
    for lib in SOFTWARE_LIBS:
        builder.add_software_package(lib)
        builder.add_software_library(lib)
    return builder


def firmware_build_id():
    """Short hash of the firmware sources plus the git revision, when there is one."""
    h = hashlib.sha256()
    for p in sorted(FIRMWARE_DIR.iterdir()):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "nogit"
    return f"{rev}-{h.hexdigest()[:8]}"


def build_firmware(build_dir, log):
    """Compile firmware/ against the generated headers/libraries of ``build_dir``."""
    venv_tools_on_path()
    obj_dir = Path(build_dir) / "firmware"
    obj_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "-C", str(obj_dir), "-f", str(FIRMWARE_DIR / "Makefile"),
           f"BUILD_DIR={build_dir}", f"FW_BUILD_ID={firmware_build_id()}"]
    with open(log, "a") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = Path(log).read_text().splitlines()[-30:]
        raise RuntimeError("firmware build failed:\n" + "\n".join(tail))
    return obj_dir / "firmware.bin"


def firmware_pass(make_soc, build_dir, log, tag, quiet=True, **build_kw):
    """Pass 1 and the firmware: ``make_soc(rom_init)`` with a placeholder ROM, its headers
    and libraries, then the firmware compiled against them. Returns (firmware.bin, ROM
    words) for pass 2."""
    from litex.soc.integration.common import get_mem_data
    venv_tools_on_path()
    t0 = time.time()
    say(quiet, f"[{tag}] pass 1: SoC headers and LiteX libraries ...")
    soc = make_soc([0])
    quiet_litex(log, lambda: make_builder(soc, build_dir, compile_software=True).build(**build_kw))
    say(quiet, f"[{tag}] firmware ({time.time() - t0:.1f} s) ...")
    fw = build_firmware(build_dir, log)
    return fw, get_mem_data(str(fw), endianness="little", data_width=32)


def absolute_readmem(verilog, gateware_dir):
    """$readmemh paths in the Verilog become absolute, so the model runs from any cwd."""
    text = verilog.read_text()
    new = []
    for line in text.splitlines(keepends=True):
        if "$readmemh(\"" in line and "$readmemh(\"/" not in line:
            line = line.replace("$readmemh(\"", f"$readmemh(\"{gateware_dir}/")
        new.append(line)
    verilog.write_text("".join(new))
