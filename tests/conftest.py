"""Shared pytest fixtures. Slow artefacts (SoC build, firmware, Verilator model) are built
once per test session; the model is also cached on disk by a hash of its inputs."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_BUILD = ROOT / "build" / "test-sim"


@pytest.fixture(scope="session")
def sim_build():
    """The simulation SoC built once per session (gateware, firmware, Verilator model)."""
    from soc.targets.sim import build_sim
    return build_sim(TEST_BUILD, quiet=True)


@pytest.fixture
def sim(sim_build):
    """A fresh SoC model instance, reset, with the CSR map loaded."""
    from soc.sim import SimDriver
    drv = SimDriver(sim_build.model, csr_json=sim_build.csr_json)
    drv.reset()
    yield drv
    drv.close()


BOOT_CYCLES = 2_000_000  # budget to reach the firmware prompt (it takes ~0.3 M cycles)


@pytest.fixture
def booted(sim):
    """A model whose firmware has booted and prints its prompt; yields (driver, boot text)."""
    text = sim.uart_read_until(b"speckv> ", BOOT_CYCLES)
    return sim, text.decode(errors="replace")


@pytest.fixture
def ready(sim):
    """A model whose firmware has reported the device ready in the mailbox (DRAM is up):
    host memory traffic before that may be lost while the SDRAM is being initialised."""
    from host.driver.link import SimLink
    SimLink(sim, "ideal").wait_ready(BOOT_CYCLES)
    return sim
