"""speckv-sweep (host/sweep/): grids from TOML, YAML and the command line, keys from
parameters and input content, cells run as Ray tasks on a local runtime equal to the same runs
made directly, failed cells recorded, an interrupted sweep resumed without recomputing."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from host.sweep.grid import GridError, expand, hash_inputs, load_grid, parse_assignments
from host.sweep.store import Store

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "traces" / "mini-replay.safetensors"
SWEEP = [str(ROOT / ".venv" / "bin" / "speckv-sweep")]


def _same_result(a, b):
    """Two replay results equal in everything but how long they took."""
    a, b = (json.loads(json.dumps({k: v for k, v in x.items() if k != "speed"})) for x in (a, b))
    return a == b


GRID_TOML = f"""
name = "four"
[[grid]]
kind = "replay"
trace = "{MINI}"
steps = 8
prefetcher = ["last", "lstm"]
k = [4, 8]
"""

GRID_YAML = f"""
name: four
grids:
  - kind: replay
    trace: {MINI}
    steps: 8
    prefetcher: [last, lstm]
    k: [4, 8]
"""


def test_grid_from_toml_yaml_and_command_line_is_the_same(tmp_path):
    (tmp_path / "g.toml").write_text(GRID_TOML)
    (tmp_path / "g.yaml").write_text(GRID_YAML)
    keys = []
    for f in ("g.toml", "g.yaml"):
        name, results, tables = load_grid(tmp_path / f)
        assert name == "four" and results is None
        keys.append([c.key for c in hash_inputs([c for t in tables for c in expand(t)])])
    cli = parse_assignments("replay", [f"trace={MINI}", "steps=8"],
                            ["prefetcher=last,lstm", "k=4,8"])
    keys.append([c.key for c in hash_inputs(expand(cli))])
    assert keys[0] == keys[1] == keys[2] and len(set(keys[0])) == 4
    cells = expand(cli)
    assert [(c.params["prefetcher"], c.params["k"]) for c in cells] == [
        ("last", 4), ("last", 8), ("lstm", 4), ("lstm", 8)]
    assert cells[0].params["l2_slots"] == 512 and cells[0].label() == "prefetcher=last k=4"


@pytest.mark.parametrize("spec, msg", [
    ({"kind": "nope"}, "known kind"),
    ({"kind": "replay", "kk": 3}, "unknown parameter"),
    ({"kind": "replay", "k": "eight"}, "k = 'eight' is not a int"),
    ({"kind": "replay", "k": []}, "axis k is an empty list"),
    ({"kind": "replay", "ucb": "maybe"}, "ucb = 'maybe' is not a bool"),
    ({"kind": "replay", "workload": "qa", "trace": str(MINI)}, "not both"),
    ({"kind": "replay", "timing": "both"}, "on or off"),
    ({"kind": "replay", "backend": "board"}, "model or rtl"),
    ({"kind": "codec", "mode": "kivi_k4v3"}, "text"),
    ({"kind": "codec", "text": "x", "mode": "zip"}, "mode 'zip'"),
    ({"kind": "serve", "model": "gpt-9"}, "model 'gpt-9'"),
])
def test_grid_errors_name_the_bad_input(spec, msg):
    with pytest.raises(GridError, match=msg):
        expand(spec)


def test_grid_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[grid]]\nkind = 'replay'\nk = [4,\n")
    with pytest.raises(GridError, match="bad.toml"):
        load_grid(bad)
    bad.write_text("colour = 'red'\n[[grid]]\nkind = 'replay'\n")
    with pytest.raises(GridError, match="unknown top-level key"):
        load_grid(bad)
    with pytest.raises(GridError, match="not found"):
        load_grid(tmp_path / "none.toml")
    with pytest.raises(GridError, match="trace file not found.*make traces"):
        hash_inputs(expand({"kind": "replay", "workload": "qa", "traces_dir": str(tmp_path)}))


def test_key_follows_content_not_paths(tmp_path):
    """Same content elsewhere: same key; one byte changed, another code version or an
    explicit default: as stated."""
    def key(**kw):
        return hash_inputs(expand({"kind": "replay", **kw}), code="c0")[0].key
    copy = tmp_path / "t.safetensors"
    copy.write_bytes(MINI.read_bytes())
    assert key(trace=str(MINI)) == key(trace=str(copy)) == key() == key(k=8, trace=str(copy))
    assert key(k=4) != key()
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    assert key(trace=str(copy)) != key()
    assert hash_inputs(expand({"kind": "replay"}), code="c1")[0].key != key()


def test_none_is_a_value_for_strings_and_empty_for_the_rest(tmp_path):
    g = _write(tmp_path / "n.toml", '[[grid]]\nkind = "replay"\nprefetcher = "none"\n'
               'steps = "none"\n')
    c = expand(load_grid(g)[2][0])[0]
    assert c.params["prefetcher"] == "none" and c.params["steps"] is None


def test_codec_grid_adds_its_fp16_baseline():
    cells = expand({"kind": "codec", "text": "a.txt", "mode": ["kivi_k4v3", "kivi_n10v9"],
                    "window": [0, 4]})
    modes = sorted((c.params["mode"], c.params["window"]) for c in cells)
    assert modes == [("kivi_k4v3", 0), ("kivi_k4v3", 4), ("kivi_n10v9", 0), ("kivi_n10v9", 4),
                     ("raw", 0), ("raw", 4)]


def test_store_skips_a_torn_last_line(tmp_path):
    from host.sweep.cells import run_cell
    cell = hash_inputs(expand({"kind": "serve", "batch": 1}))[0]
    st = Store(tmp_path / "r.jsonl")
    st.append(cell, run_cell(cell.kind, cell.params, cell.inputs))
    with open(st.path, "a") as f:
        f.write('{"key": "torn", "sta')
    assert list(st.load()) == [cell.key]
    st.append(cell, {"status": "failed", "error": "x"})          # repairs the torn line first
    lines = st.path.read_text().splitlines()
    assert len(lines) == 2 and st.load()[cell.key]["status"] == "failed"


def test_pareto_front():
    from host.sweep.report import pareto_front
    pts = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.7), (0.5, 0.1), (4.0, 0.9)]
    assert pareto_front(pts) == [(0.5, 0.1), (1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]


def test_serve_cell_equals_speckv_serve(tmp_path):
    """A serve cell's points are those speckv-serve writes for the same model, device, batch
    and context."""
    from host.serving.cli import main as serve
    from host.sweep.cells import run_cell
    cell = hash_inputs(expand({"kind": "serve", "model": "llama2-13b", "batch": 24,
                               "context": 2048, "device": "paper-800mhz"}))[0]
    rec = run_cell(cell.kind, cell.params, cell.inputs)
    assert rec["status"] == "ok", rec.get("error")
    assert serve(["--model", "llama2-13b", "--devices", "paper-800mhz", "--batches", "24",
                  "--context", "2048", "--json", str(tmp_path / "s.json")]) == 0
    want = json.loads((tmp_path / "s.json").read_text())
    pts = want["models"]["llama2-13b"]["devices"]["paper-800mhz"]["points"]
    assert json.loads(json.dumps(rec["result"]["points"])) == pts and len(pts) == 4


def test_codec_cell_equals_the_codec_evaluation(tmp_path):
    from host.codec_eval.perplexity import main as codec_eval
    from host.sweep.cells import run_cell
    text = "/usr/share/common-licenses/GPL-3"
    cells = hash_inputs(expand({"kind": "codec", "text": text, "tokens": 64,
                                "mode": "kivi_k4v3"}))
    got = {c.params["mode"]: run_cell(c.kind, c.params, c.inputs) for c in cells}
    assert codec_eval(["--text", text, "--tokens", "64", "--modes", "kivi_k4v3", "--skip-fp32",
                       "--json", str(tmp_path / "c.json")]) == 0
    want = json.loads((tmp_path / "c.json").read_text())["results"]
    for mode in ("raw", "kivi_k4v3"):
        assert got[mode]["status"] == "ok", got[mode].get("error")
        assert got[mode]["result"]["ppl"] == want[mode]["ppl"]
        assert got[mode]["result"]["ratio"] == want[mode]["ratio"]
    assert cells[0].inputs["text0"]["path"] == text and any(
        r.startswith("model:") for r in cells[0].inputs)


def test_four_cell_sweep_on_local_ray_equals_direct_replays(tmp_path):
    """A local Ray runtime runs the 4-cell grid; each result equals the replay run here."""
    from host.replayer.engine import ReplayOptions, replay
    from host.sweep.cells import compact_replay
    from host.sweep.report import save_plots, summary_markdown, write_summary
    from host.sweep.runner import run_sweep
    _, _, tables = load_grid(_write(tmp_path / "g.toml", GRID_TOML))
    cells = hash_inputs([c for t in tables for c in expand(t)])
    store = Store(tmp_path / "r.jsonl")
    st = run_sweep(cells, store, "four", cpus=2, progress=False)
    assert (st.ran, st.failed, st.skipped, st.cpus) == (4, 0, 0, 2.0)
    done = store.load()
    assert all(done[c.key]["pid"] != os.getpid() for c in cells)      # in Ray's workers
    for c in cells:
        o = ReplayOptions(trace=str(MINI), steps=8, prefetcher=c.params["prefetcher"],
                          k=c.params["k"], label=c.params["prefetcher"])
        direct = compact_replay(replay(o, progress=False))
        assert _same_result(done[c.key]["result"], direct), c.label()
    again = run_sweep(cells, store, "four", cpus=2, progress=False)
    assert (again.ran, again.skipped) == (0, 4)
    md = summary_markdown(list(done.values()))
    assert md.count("\n| l") == 4 and "| prefetcher | k | L2 hit" in md
    _, js = write_summary([done[c.key] for c in cells], store.path, "four")
    rows = json.loads(js.read_text())["replay"]["rows"]
    assert [(r["prefetcher"], r["k"]) for r in rows] == [("last", 4), ("last", 8), ("lstm", 4),
                                                         ("lstm", 8)]
    assert rows[3]["l2_hit_rate"] == done[cells[3].key]["result"]["accesses"]["l2_hit_rate"]
    assert [p.name for p in save_plots(list(done.values()), tmp_path / "plots")] == ["pareto.png"]


def _write(path, text):
    path.write_text(text)
    return path


def test_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    res = tmp_path / "f.jsonl"
    cmd = SWEEP + ["run", "--kind", "replay", "--set", f"trace={MINI}", "--set",
                   "prefetcher=last", "--axis", "steps=2,99", "--results", str(res), "--quiet",
                   "--cpus", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    recs = {r["params"]["steps"]: r for r in Store(res).load().values()}
    assert recs[2]["status"] == "ok" and recs[99]["status"] == "failed"
    assert "--steps 99: the trace has 24 decode steps" in recs[99]["error"]
    assert "failed: ReplayError" in p.stdout and "ran 2 cells (1 failed)" in p.stderr
    assert (tmp_path / "f.summary.md").is_file()
    p = subprocess.run(cmd + ["--keep-failed"], capture_output=True, text=True)
    assert p.returncode == 1 and "2 finished earlier, 0 to run" in p.stderr
    p = subprocess.run(cmd, capture_output=True, text=True)          # failed cells run again
    assert "1 finished earlier, 1 to run" in p.stderr
    assert len(res.read_text().splitlines()) == 3


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    """Ctrl-C after two cells finished; the rerun runs only the others, once each."""
    res = tmp_path / "i.jsonl"
    cmd = SWEEP + ["run", "--kind", "replay", "--set", f"trace={MINI}", "--axis",
                   "prefetcher=last,stride,markov,layer_ahead,lstm", "--axis", "k=4,8",
                   "--results", str(res), "--cpus", "1", "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while (not res.is_file() or len(res.read_text().splitlines()) < 2) and p.poll() is None:
        assert time.time() - t0 < 300, "no cell finished in 300 s"
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    first = Store(res).load()
    assert 2 <= len(first) < 10 and "run the same command again to resume" in err
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"{len(first)} finished earlier, {10 - len(first)} to run" in p.stderr
    lines = [json.loads(x) for x in res.read_text().splitlines()]
    keys = [x["key"] for x in lines]
    assert len(keys) == len(set(keys)) == 10                 # nothing ran twice
    after = Store(res).load()
    assert all(after[k] == first[k] for k in first)          # the finished lines untouched


def test_cli_help_params_and_errors(tmp_path):
    p = subprocess.run(SWEEP + ["--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "speckv-sweep run" in p.stdout
    p = subprocess.run(SWEEP + ["params", "codec"], capture_output=True, text=True)
    assert "  tokens = 1024" in p.stdout and "replay" not in p.stdout
    p = subprocess.run(SWEEP + ["run", "--kind", "replay", "--axis", "k=4,x"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "k = 'x' is not a int" in p.stderr
    p = subprocess.run(SWEEP + ["run"], capture_output=True, text=True)
    assert p.returncode == 2 and "no grid" in p.stderr
    p = subprocess.run(SWEEP + ["plot", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "results file not found" in p.stderr
    p = subprocess.run(SWEEP + ["run", "--kind", "replay", "--dry-run", "--results",
                                str(tmp_path / "d.jsonl"), "--axis", "k=4,8"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2 and "replay k=4" in p.stdout


def test_code_version_covers_what_a_cell_runs():
    from host.sweep.version import ROOT as R, source_files
    files = {p.relative_to(R).as_posix() for p in source_files()}
    for f in ("host/sweep/cells.py", "host/replayer/engine.py", "host/replayer/backends.py",
              "host/replayer/calibration.json", "host/prefetch/weights/lstm.npz",
              "host/codec_eval/perplexity.py", "host/serving/model.py",
              "gateware/codec/reference.py", "soc/sim/native.cpp", "firmware/speculate.c"):
        assert f in files, f
    for f in ("host/sweep/report.py", "host/sweep/cli.py", "host/generate/cache.py",
              "host/driver/batch.py"):
        assert f not in files, f
