"""speckv-sweep with rtl replay cells: the simulation build is made once and shared by the
Ray workers; each cell equals the same replay on the Verilator SoC run directly."""

import json
from pathlib import Path

from host.sweep.grid import expand, hash_inputs
from host.sweep.store import Store

MINI = Path(__file__).resolve().parent.parent / "traces" / "mini-replay.safetensors"


def test_rtl_cells_on_local_ray_equal_direct_rtl_replays(sim_build, tmp_path):
    from host.replayer.engine import ReplayOptions, replay
    from host.sweep.cells import compact_replay
    from host.sweep.runner import run_sweep
    cells = hash_inputs(expand({"kind": "replay", "backend": "rtl", "trace": str(MINI),
                                "steps": 4, "layers": 2, "k": 4,
                                "prefetcher": ["last", "lstm"]}))
    store = Store(tmp_path / "rtl.jsonl")
    st = run_sweep(cells, store, "rtl", cpus=2, progress=False, build=sim_build)
    done = store.load()
    assert (st.ran, st.failed) == (2, 0), [r.get("error") for r in done.values()]
    for c in cells:
        got = done[c.key]["result"]
        assert got["speed"]["sim_cycles"] > 0                      # the Verilator SoC ran
        o = ReplayOptions(trace=str(MINI), backend="rtl", steps=4, layers=2, k=4,
                          prefetcher=c.params["prefetcher"], label=c.params["prefetcher"])
        want = json.loads(json.dumps(compact_replay(replay(o, build=sim_build, progress=False))))
        assert got["speed"]["sim_cycles"] == want["speed"]["sim_cycles"]
        for part in ("accesses", "prefetch", "check", "timing", "compression"):
            assert got[part] == want[part], (c.label(), part)
