"""bench/ecp5_paths.py: the path-depth estimate on small hand-made ECP5 netlists."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import ecp5_paths  # noqa: E402


def _ff(d, q, ce=None):
    conn = {"DI": [d], "Q": [q], "CLK": ["0"]}
    if ce is not None:
        conn["CE"] = [ce]
    return {"type": "TRELLIS_FF", "connections": conn,
            "port_directions": {"DI": "input", "CE": "input", "CLK": "input", "Q": "output"}}


def _lut(a, z, b="0"):
    return {"type": "LUT4", "connections": {"A": [a], "B": [b], "C": ["0"], "D": ["0"], "Z": [z]},
            "port_directions": {"A": "input", "B": "input", "C": "input", "D": "input",
                                "Z": "output"}}


def _netlist(cells, names):
    return {"modules": {"top": {"attributes": {"top": 1}, "cells": cells,
                                "netnames": {n: {"bits": [b]} for n, b in names.items()}}}}


def test_a_chain_of_luts_is_counted_hop_by_hop():
    # src (FF, net 1) -> 3 LUTs (nets 2, 3, 4) -> dst (FF); a short path src -> 1 LUT -> other
    cells = {"src": _ff(9, 1), "l1": _lut(1, 2), "l2": _lut(2, 3), "l3": _lut(3, 4),
             "dst": _ff(4, 5), "s1": _lut(1, 6), "other": _ff(6, 7)}
    net = ecp5_paths.Netlist(_netlist(cells, {"src_q": 1, "a": 2, "b": 3, "c": 4, "d": 5,
                                              "e": 6, "f": 7, "x": 9}), route=1.0)
    paths = net.paths()
    assert paths[0].sink == "dst.DI" and paths[0].source == "src_q"
    assert paths[0].cells == 4                        # src_q, a, b, c
    assert paths[0].ns == pytest.approx(ecp5_paths.CLK_TO_Q + 3 * (1.0 + ecp5_paths.LUT) + 1.0)
    assert paths[1].sink == "other.DI"
    assert paths[1].ns == pytest.approx(ecp5_paths.CLK_TO_Q + (1.0 + ecp5_paths.LUT) + 1.0)
    # routing scales every hop
    slow = ecp5_paths.Netlist(_netlist(cells, {"src_q": 1}), route=2.0).paths()[0]
    assert slow.ns > paths[0].ns + 3


def test_the_worst_input_of_a_lut_wins_and_families_fold_indices():
    # two sources into one LUT: the deeper one is the path; two sinks of one register family
    cells = {"q0": _ff(9, 1), "q1": _ff(9, 2), "deep": _lut(2, 3), "join": _lut(1, 4, b=3),
             "r_TRELLIS_FF_Q": _ff(4, 5), "r_TRELLIS_FF_Q_1": _ff(4, 6, ce=4)}
    names = {"shallow": 1, "far": 2, "mid": 3, "out": 4, "r[0]": 5, "r[1]": 6, "x": 9}
    net = ecp5_paths.Netlist(_netlist(cells, names), route=1.0)
    paths = net.paths()
    assert paths[0].source == "far" and paths[0].nets == ["far", "mid", "out"]
    fams = ecp5_paths.families(paths, above=2, limit=10)     # (q0, q1 from an undriven net)
    assert len(fams) == 1 and fams[0]["endpoints"] == 3      # two DI and one CE, one family
    assert ecp5_paths.families(paths, above=100, limit=10) == []


def test_the_command_reports_a_bad_netlist_and_writes_json(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert ecp5_paths.main([str(bad)]) == 2
    assert "cannot read the netlist" in capsys.readouterr().err
    cells = {"src": _ff(9, 1), "l1": _lut(1, 2), "dst": _ff(2, 3)}
    good = tmp_path / "top.json"
    good.write_text(json.dumps(_netlist(cells, {"s": 1, "t": 2, "x": 9})))
    out = tmp_path / "paths.json"
    assert ecp5_paths.main([str(good), "--above", "0", "--json", str(out)]) == 0
    fams = json.loads(out.read_text())["families"]
    assert fams[0]["source"] == "s" and fams[0]["sink"] == "dst.DI"


def test_a_net_with_many_loads_costs_more_routing():
    # src -> LUT -> net 2, which feeds dst and 63 other flip-flops (64 loads: 2 doublings
    # beyond 16)
    cells = {"src": _ff(9, 1), "l1": _lut(1, 2), "dst": _ff(2, 3)}
    cells.update({f"load{i}": _ff(2, 100 + i) for i in range(63)})
    few = ecp5_paths.Netlist(_netlist(cells, {"s": 1, "t": 2}), route=1.0, fanout_ns=0.0)
    many = ecp5_paths.Netlist(_netlist(cells, {"s": 1, "t": 2}), route=1.0, fanout_ns=1.5)
    assert many.paths()[0].ns == pytest.approx(few.paths()[0].ns + 2 * 1.5)
