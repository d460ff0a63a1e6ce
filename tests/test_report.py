"""The replay report's tables: the pooled rows are the sums and weighted means of the
per-workload results they pool, checked on the committed four-workload replays."""
import json
from pathlib import Path

import pytest

from host.replayer.report import POOLED_HEAD, WORKLOAD_HEAD, pooled_rows, workload_rows

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "docs" / "results" / "replay" / "timing" / f"{w}.json"
         for w in ("chatbot", "summarization", "codegen", "qa")]


@pytest.fixture(scope="module")
def results():
    out = []
    for f in FILES:
        out += json.loads(f.read_text())
    return out


def _pick(results, label, timing):
    return [r for r in results if r["config"]["label"] == label
            and r["config"]["timing"] == timing]


def test_pooled_rows_are_sums_and_weighted_means(results):
    rows = {(r[0], r[1]): dict(zip(POOLED_HEAD, r)) for r in pooled_rows(results)}
    for label, timing in (("lstm", "on"), ("last", "off"), ("cxl-nospec", "on")):
        rs = _pick(results, label, timing)
        assert len(rs) == 4
        row = rows[(label, timing)]
        out = sum(r["accesses"]["l2"] + r["accesses"]["l3"] for r in rs)
        assert int(row["reads outside L1"]) == out
        assert float(row["L2 hit rate"]) == pytest.approx(
            sum(r["accesses"]["l2"] for r in rs) / out, abs=5e-4)
        assert float(row["late rate"]) == pytest.approx(
            sum(r["accesses"]["late"] for r in rs) / out, abs=5e-4)
        steps = sum(r["config"]["steps"] for r in rs)
        stall = sum(r["latency_ns"]["stall_per_step_mean"] * r["config"]["steps"] for r in rs)
        assert float(row["stall µs / step"]) == pytest.approx(stall / steps / 1e3, abs=0.5)
        if timing == "on":
            assert row["overran"] == (f"{sum(r['timing']['steps_overran'] for r in rs)} / "
                                      f"{steps}")
        else:
            assert row["overran"] == "-" and row["step µs (timed)"] == "-"


def test_workload_rows_split_the_reads_outside_l1(results):
    for row in workload_rows(results):
        cells = dict(zip(WORKLOAD_HEAD, row))
        if cells["L2 hit rate (outside L1)"] == "-":
            continue
        total = sum(float(cells[k]) for k in ("L2 hit rate (outside L1)", "late rate",
                                               "miss rate"))
        assert total == pytest.approx(1.0, abs=2e-3), row
