"""Verilator simulation of the SpecKV SoC: model build (pyverilator + native loop) and driver."""

from soc.sim.driver import SimDriver, Stop, BusError, SimTimeout  # noqa: F401
from soc.sim.model import build_model  # noqa: F401
