"""The Verilator model cache (soc/sim/model.py) is safe for concurrent builders: a build
holds a lock per model key, so a second process (another test worker, `make sim` beside a
test run) waits for it and then finds the finished model instead of deleting its folder."""

import subprocess
import sys

from soc.sim.model import _locked

TRY_LOCK = ("import fcntl, sys\n"
            "f = open(sys.argv[1], 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n")


def _other_process_can_lock(path):
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)],
                          capture_output=True).returncode == 0


def test_a_held_model_lock_excludes_another_process(tmp_path):
    lock = tmp_path / "cache" / "key.lock"
    with _locked(lock):
        assert not _other_process_can_lock(lock)
    assert _other_process_can_lock(lock)
