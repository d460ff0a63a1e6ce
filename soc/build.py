#!/usr/bin/env python3
"""SpecKV-FPGA SoC target: VexRiscv + firmware in ROM + SRAM + LiteDRAM + UART + the cache
engine, simulated with Verilator or built for an FPGA board. ``--help`` lists the options;
the command line is ``soc/cli.py``, the builders ``soc/builder.py`` and ``soc/targets/``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] != str(ROOT):  # run as a script: the repo first (not soc/, whose soc.py
    sys.path.insert(0, str(ROOT))  # would shadow the package), also when on PYTHONPATH

if __name__ == "__main__":
    from soc.cli import main
    sys.exit(main())
