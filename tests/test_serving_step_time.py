"""The step-time source of the replay and the serving model: the measured table when it has
the row (interpolated in context), else a roofline estimate labelled as one; bad models and
batches that cannot fit are refused with a message naming them."""
import json

import pytest

from host.serving.shapes import shape_of
from host.serving.step_time import ROOFLINE_GPU, StepTimeError, roofline, step_time


def _table(tmp_path, model, rows):
    """A step-time table of (batch, context, ms) rows for ``model``, as the benchmark writes."""
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"gpu": "TestGPU", "date": "2026-12-05", "command": "x", "rows": [
        {"model": model, "dtype": "bf16", "batch": b, "context": c, "step_ms": ms}
        for b, c, ms in rows]}))
    return table


def test_roofline_is_weights_plus_kv_over_bandwidth():
    s = shape_of("llama2-7b")
    t = roofline("llama2-7b", 4, 2048)
    nbytes = 2 * s.params() + 4 * 2048 * 2 * 32 * 32 * 128 * 2
    assert t.step_ns == pytest.approx(nbytes / ROOFLINE_GPU["bandwidth_gbs"])
    assert t.layer_ns * 32 == pytest.approx(t.step_ns)
    assert t.source.startswith("roofline estimate")
    # the KV term grows with batch x context
    assert roofline("llama2-7b", 8, 2048).step_ns > t.step_ns > roofline("llama2-7b", 4, 1024).step_ns


def test_measured_rows_win_and_interpolate(tmp_path):
    table = _table(tmp_path, "smollm2-135m", [(2, 512, 1.0), (2, 1024, 2.0)])
    t = step_time("smollm2-135m", 2, 768, table=table)
    assert t.step_ns == pytest.approx(1.5e6) and t.source.startswith("measured: TestGPU")
    assert step_time("smollm2-135m", 2, 512, table=table).step_ns == pytest.approx(1e6)
    # no row for this batch, or outside the measured contexts: the roofline, labelled
    assert step_time("smollm2-135m", 4, 768, table=table).source.startswith("roofline")
    assert step_time("smollm2-135m", 2, 4096, table=table).source.startswith("roofline")


def test_bad_requests_name_the_problem():
    with pytest.raises(StepTimeError, match="unknown model 'llama3'"):
        step_time("llama3", 1, 512)
    with pytest.raises(StepTimeError, match="batch 512 and context 8192.*GiB"):
        step_time("llama2-13b", 512, 8192)
    with pytest.raises(StepTimeError, match="at least 1"):
        step_time("llama2-7b", 0, 512)


def test_measured_rows_interpolate_in_batch_and_extrapolate_on_request(tmp_path):
    table = _table(tmp_path, "llama2-7b",
                   [(1, 512, 10.0), (1, 1024, 12.0), (4, 512, 13.0), (4, 1024, 18.0)])
    t = step_time("llama2-7b", 2, 768, table=table)   # 11 at batch 1, 15.5 at 4: a third of the way
    assert t.step_ns == pytest.approx((11.0 + (15.5 - 11.0) / 3) * 1e6)
    assert "interpolated in batch" in t.source
    assert step_time("llama2-7b", 8, 512, table=table).source.startswith("roofline")
    x = step_time("llama2-7b", 8, 512, table=table, extrapolate=True)
    assert x.step_ns == pytest.approx((13.0 + 1.0 * 4) * 1e6) and "extrapolated" in x.source


def test_a_context_below_the_table_takes_its_shortest(tmp_path):
    table = _table(tmp_path, "smollm2-135m", [(1, 512, 2.0), (1, 1024, 3.0)])
    t = step_time("smollm2-135m", 1, 432, table=table)
    assert t.step_ns == pytest.approx(2e6) and t.context == 432
    assert "shortest measured context" in t.source
