"""Simulation platform of the SpecKV SoC: the pads the Verilator driver touches.

Every pad here is a top-level port of the generated Verilog, and the native C++ loop of
``soc/sim/driver.py`` reads or drives it by name:

- ``sys_clk`` / ``sys_rst``: clock and synchronous reset.
- ``serial``: LiteX's stream UART (``uart_name="sim"``): one byte per beat, no baud rate.
- ``host_bus``: a 32-bit Wishbone master the host drives directly (debug/bring-up path).
- ``bridge``: the CXL.mem-style message link to the bridge endpoint, one flit (128-bit
  header + 64 B line) per beat each way; the native loop emulates the link behind it.
- ``sim_ctrl``: ``finish`` / ``code`` from the :class:`~soc.simctrl.SimControl` CSR block, so
  firmware ends a simulation cleanly with an exit code.
"""

import os

from migen.fhdl.structure import _Fragment

from litex.build.generic_platform import Pins, Subsignal
from litex.build.sim import SimPlatform

_io = [
    ("sys_clk", 0, Pins(1)),
    ("sys_rst", 0, Pins(1)),
    ("serial", 0,
        Subsignal("source_valid", Pins(1)),
        Subsignal("source_ready", Pins(1)),
        Subsignal("source_data",  Pins(8)),
        Subsignal("sink_valid",   Pins(1)),
        Subsignal("sink_ready",   Pins(1)),
        Subsignal("sink_data",    Pins(8)),
    ),
    ("host_bus", 0,
        Subsignal("adr",   Pins(30)),  # word address
        Subsignal("dat_w", Pins(32)),
        Subsignal("dat_r", Pins(32)),
        Subsignal("sel",   Pins(4)),
        Subsignal("cyc",   Pins(1)),
        Subsignal("stb",   Pins(1)),
        Subsignal("we",    Pins(1)),
        Subsignal("ack",   Pins(1)),
        Subsignal("err",   Pins(1)),
    ),
    ("bridge", 0,  # CXL.mem-style message link (gateware/bridge/protocol.py)
        Subsignal("h2d_valid", Pins(1)),
        Subsignal("h2d_ready", Pins(1)),
        Subsignal("h2d_hdr",   Pins(128)),
        Subsignal("h2d_data",  Pins(512)),
        Subsignal("d2h_valid", Pins(1)),
        Subsignal("d2h_ready", Pins(1)),
        Subsignal("d2h_hdr",   Pins(128)),
        Subsignal("d2h_data",  Pins(512)),
    ),
    ("sim_ctrl", 0,
        Subsignal("finish", Pins(1)),
        Subsignal("code",   Pins(8)),
    ),
]


class Platform(SimPlatform):
    """LiteX's SimPlatform, whose build writes the Verilog only.

    LiteX's own Verilator flow compiles its C++ harness (libevent, json-c modules); here the
    model is compiled by pyverilator with the native loop instead (``soc/sim/model.py``).
    """
    def __init__(self):
        SimPlatform.__init__(self, "SIM", _io)

    def build(self, fragment, build_dir="build", build_name="sim", **kwargs):
        os.makedirs(build_dir, exist_ok=True)
        if not isinstance(fragment, _Fragment):
            fragment = fragment.get_fragment()
        self.finalize(fragment)
        v_output = self.get_verilog(fragment, name=build_name)
        # ConvOutput.write() puts memory init files in the cwd; keep them beside the Verilog.
        with open(os.path.join(build_dir, build_name + ".v"), "w") as f:
            f.write(v_output.main_source)
        for filename, content in v_output.data_files.items():
            with open(os.path.join(build_dir, filename), "w") as f:
                f.write(content)
        return v_output.ns
