"""A sweep's results: one JSON Lines file, a line per finished cell (done or failed), appended
and flushed as each cell finishes, so an interrupted sweep keeps every cell it finished.

A line: ``{"key", "sweep", "kind", "params", "axes", "inputs", "code", "status" ("ok" or
"failed"), "result" | "error" + "traceback", "wall_s", "node", "pid", "finished"}``. A key
may appear more than once (a failed cell run again); the last line of a key is its state.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


class Store:
    def __init__(self, path):
        self.path = Path(path)

    def load(self):
        """{key: the last record of that key}; a torn last line (a killed writer) is skipped."""
        out = {}
        if not self.path.is_file():
            return out
        lines = self.path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                if i == len(lines) - 1:
                    continue
                raise ValueError(f"{self.path}:{i + 1}: not a JSON line") from None
            out[rec["key"]] = rec
        return out

    def append(self, cell, rec, sweep=""):
        """Write one finished cell (``rec`` from ``cells.run_cell``)."""
        line = {"key": cell.key, "sweep": sweep, "kind": cell.kind, "params": cell.params,
                "axes": list(cell.axes), "inputs": cell.inputs, "code": cell.code, **rec,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return line

    def _repair(self):
        """Cut a torn last line so that the next line starts on its own."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as f:
            f.truncate(cut)
