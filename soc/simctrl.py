"""SimControl: the firmware's way to end a simulation with an exit code.

Writing ``finish`` with a ``code`` drives the ``sim_ctrl`` pads for one cycle; the Verilator
driver sees ``sim_ctrl_finish`` and stops its native loop with reason ``FINISH``. On a board
the pads are simply not connected (the core is only added to simulation SoCs).
"""

from migen import Module, Signal

from litex.soc.interconnect.csr import AutoCSR, CSRField, CSRStorage


class SimControl(Module, AutoCSR):
    def __init__(self, pads=None):
        self.finish = Signal()
        self.code   = Signal(8)
        self._ctrl = CSRStorage(description="Simulation control.", fields=[
            CSRField("finish", size=1, offset=0, pulse=True,
                     description="Write 1 to end the simulation."),
            CSRField("code", size=8, offset=8,
                     description="Exit code reported to the host with ``finish``."),
        ])
        self.comb += [
            self.finish.eq(self._ctrl.fields.finish),
            self.code.eq(self._ctrl.fields.code),
        ]
        if pads is not None:
            self.comb += [pads.finish.eq(self.finish), pads.code.eq(self.code)]
