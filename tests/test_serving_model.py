"""The serving model's rules, each checked against arithmetic done here by hand on stated
inputs, and its command line as a new user meets it (help, bad names, impossible inputs)."""
import json

import pytest

from host.serving.cli import main, make_device
from host.serving.model import (Device, Gpu, Link, ServingInputs, Traffic, evaluate,
                                saturation, sweep)
from host.serving.shapes import shape_of

SHAPE = shape_of("llama2-7b")
TRAFFIC = Traffic(pages=8.0, l1_pages=4, issued=4.0, candidates=8.0, hit_sync=0.5,
                  codec_ratio=4.0)
LINK = Link("test", 64.0, 600.0)


def _device(**kw):
    d = dict(name="test", clock_mhz=100.0, dram_gbs=100.0, memory_gib=64.0, predict_cycles=100.0,
             issue_fixed_cycles=0.0, issue_page_cycles=100.0, demand_cycles=100.0,
             offload_cycles=0.0, dram_cycles_measured=0.0)
    d.update(kw)
    return Device(**d)


def _inputs(device=None, gpu_gib=100.0, context=4096, traffic=TRAFFIC):
    return ServingInputs(model="llama2-7b", shape=SHAPE, gpu=Gpu("g", gpu_gib, 1.0), link=LINK,
                         device=device or _device(), traffic=traffic, context=context,
                         step_ns=lambda b, ctx: (1e6 * (1 + 0.01 * b), "test"))


def test_gpu_only_capacity_and_throughput():
    inp = _inputs()
    per_req = 4096 * SHAPE.kv_bytes_per_token()                # 2 GiB of KV a request
    fit = int((100 * 2**30 - inp.weights_bytes) // per_req)
    ok, over = evaluate(inp, "gpu-only", fit), evaluate(inp, "gpu-only", fit + 1)
    assert ok.feasible and not over.feasible and over.limit == "gpu-memory"
    assert ok.tokens_per_s == pytest.approx(fit / (1e6 * (1 + 0.01 * fit)) * 1e9)
    # compressed KV: ratio 4 times the requests (within one of rounding)
    comp = max(p.batch for p in sweep(inp, range(1, 4 * fit + 8), ["gpu-compressed"])
               if p.feasible)
    assert comp == int((100 * 2**30 - inp.weights_bytes) // (per_req / 4))


def test_cxl_is_gpu_only_until_requests_are_offloaded():
    inp = _inputs()
    for b in (1, 8, 30):
        g, c = evaluate(inp, "gpu-only", b), evaluate(inp, "cxl-nospec", b)
        if g.feasible:
            assert c.offloaded == 0 and c.step_ns == g.step_ns and c.stall_ns == 0


def test_nospec_stall_is_round_trips_plus_the_slowest_resource():
    inp = _inputs(gpu_gib=20.0)        # weights ~12.6 GiB: most requests offloaded
    p = evaluate(inp, "cxl-nospec", 8)
    assert p.feasible and p.offloaded > 0
    n = p.offloaded * SHAPE.layers * SHAPE.kv_heads * TRAFFIC.pages
    page = 16 * 2 * 128 * 2
    link = n * page / 64.0                     # ns
    device = n * 100 / 100.0 * 1e3             # 100 cycles at 100 MHz = 1 us a page
    dram = n * page / 4 / 100.0
    assert p.stall_ns == pytest.approx(SHAPE.layers * 600.0 + max(link, device, dram))
    assert p.limit == "demand-device"


def test_speculation_hides_what_the_device_finishes():
    fast = _inputs(device=_device(predict_cycles=0.0, issue_page_cycles=0.0), gpu_gib=20.0)
    slow = _inputs(device=_device(predict_cycles=1e6), gpu_gib=20.0)
    nospec = evaluate(fast, "cxl-nospec", 8)
    full, part = evaluate(fast, "cxl-speckv", 8), evaluate(slow, "cxl-speckv", 8)
    assert full.phi == 1.0 and full.hit == pytest.approx(0.5)
    assert full.stall_ns < nospec.stall_ns
    assert 0 < part.phi < 1 and part.hit == pytest.approx(0.5 * part.phi)
    assert part.limit == "device-predict"
    # phi is the step's window over the speculation's work, at the fixed point
    streams = part.offloaded * SHAPE.layers * SHAPE.kv_heads
    work = streams * 1e6 / 100.0 * 1e3 + streams * 4 * 100 / 100.0 * 1e3
    assert part.phi == pytest.approx(part.step_ns / work, rel=2e-3)


def test_device_memory_and_saturation():
    inp = _inputs(device=_device(memory_gib=1.0), gpu_gib=20.0)
    pts = sweep(inp, [1, 2, 4, 8, 16], ["gpu-only", "cxl-nospec"])
    sat = saturation(pts)
    assert sat["gpu-only"]["limit"] == "gpu-memory"
    assert any(p.limit == "device-memory" for p in pts if p.config == "cxl-nospec")


def test_device_scaling_replaces_the_simulated_dram_share(tmp_path):
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"provenance": {"date": "d", "commit": "c", "dram": "sdr",
                                              "dram_peak_bytes_per_cycle": 2,
                                              "sys_clk_hz": 1e8},
                               "cycles": {"predict": {"lstm": 1000.0}, "issue_fixed": 0.0,
                                          "issue_candidate": 200.0,
                                          "issue_page": 4000.0, "demand_device": 800.0,
                                          "offload_command": 10000.0}}))
    d = make_device("paper-800mhz", "lstm", 8192, 4.0, 64.0, calibration=cal)
    assert d.issue_page_cycles == 8000.0 and d.dram_cycles_measured == 8192 / 4 / 2
    # 800 cycles x2 for the 8 KiB page, of which 1024 the simulated DRAM's: 576 at 800 MHz
    assert d.ns(d.demand_cycles - d.dram_cycles_measured) == pytest.approx(720.0)


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--models", "--context", "--batches", "--devices", "--device-gib",
                "--prefetcher", "--gpu-memory-gib", "--json", "--plots"):
        assert opt in out
    with pytest.raises(SystemExit):
        main(["--models", "llama3"])
    assert "unknown model 'llama3'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--batches", "0,4"])
    assert "at least 1" in capsys.readouterr().err


def test_cli_runs_on_the_committed_data(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["--models", "smollm2-135m", "--batches", "1,64", "--context", "2048",
                 "--json", str(out), "--plots", str(tmp_path)]) == 0
    data = json.loads(out.read_text())
    pts = data["models"]["smollm2-135m"]["devices"]["sim-100mhz"]["points"]
    assert {p["config"] for p in pts} == {"gpu-only", "gpu-compressed", "cxl-nospec",
                                          "cxl-speckv"}
    assert (tmp_path / "throughput_vs_batch.png").is_file()
    assert "gpu-only" in capsys.readouterr().out
