"""The device costs the ``model`` backend charges: cycles of the simulated SoC's firmware and
gateware, measured on the ``rtl`` backend by ``python -m host.replayer.calibrate``, which
writes ``host/replayer/calibration.json`` (the fit's inputs, residuals and provenance are
in it). The link's own round trips and serialisation come from its profile
(``host.driver.link.PROFILES``), not from here.

What each cost covers (cycles at the SoC's ``sys_clk``):

- ``demand_device``: one demand read inside the device (ATU walk, DRAM read, decompression,
  64 line writes), the link's round trip and the page's serialisation excluded;
- ``cfg_device``: a config-space read or write inside the device (bridge, CSR bus);
- ``post_word``: each further word of a hint chunk posted (pipelined writes);
- ``chunk_fixed`` + ``chunk_unit`` x payload units + ``predict[kind]`` x streams: the
  firmware serving one hint chunk (validation, feedback, one prediction per stream);
- ``issue_fixed`` + ``issue_candidate`` x predictions filtered + ``issue_page`` x pages
  issued + ``issue_reused`` x reused slots: each chunk's filtering (a page-table and a
  directory lookup per prediction) and DMA (data into L2, then directory lines); the fixed
  cost per chunk includes its share of the step's last wait for the DMA;
- ``offload_command``: the firmware's offload command (compress into the pool, map), from
  the host's command write to the host seeing it done, the staging write excluded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
KINDS = ("none", "last", "stride", "markov", "layer_ahead", "lstm")


@dataclass(frozen=True)
class Costs:
    demand_device: float
    cfg_device: float
    post_word: float
    chunk_fixed: float
    chunk_unit: float
    predict: dict
    issue_fixed: float
    issue_candidate: float
    issue_page: float
    issue_reused: float
    offload_command: float
    provenance: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path=CALIBRATION_FILE):
        data = json.loads(Path(path).read_text())
        c = data["cycles"]
        missing = [k for k in KINDS if k not in c["predict"]]
        if missing:
            raise ValueError(f"{path}: no prediction cost for {', '.join(missing)}")
        return cls(**c, provenance=data["provenance"])

    def predict_cycles(self, kind):
        """Cycles of one prediction of predictor ``kind`` (its index or name)."""
        return self.predict[KINDS[kind] if isinstance(kind, int) else kind]

    def chunk_cycles(self, units, streams, kind):
        return self.chunk_fixed + self.chunk_unit * units + self.predict_cycles(kind) * streams

    def issue_cycles(self, candidates, pages, reused):
        return (self.issue_fixed + self.issue_candidate * candidates + self.issue_page * pages
                + self.issue_reused * reused)

    def note(self):
        p = self.provenance
        return (f"estimate: the model backend's times come from device costs measured on the "
                f"rtl backend by `{p.get('command')}` on {p.get('date')} (commit "
                f"{p.get('commit')}; host/replayer/calibration.json: demand read "
                f"{self.demand_device:.0f} device cycles, {self.issue_page:.0f} cycles per "
                f"prefetched page, LSTM {self.predict['lstm']:.0f} cycles per prediction), plus "
                f"the link profile's round trips and serialisation; not measured in this run")
