"""Shared pytest fixtures. Slow artefacts (SoC build, firmware, Verilator model) are built
once per test session; the model is also cached on disk by a hash of its inputs."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_BUILD = ROOT / "build" / "test-sim"

# `make test` runs the suite on every core (pytest-xdist). A session fixture runs once per
# worker, and the slow ones build into fixed folders (build/test-sim) or capture with the
# model, so every module that uses one runs in that fixture's group, on one worker; any
# other module is a group of its own (its module-scoped builds also happen once). xdist's
# own --dist loadgroup cannot be used: it tags node ids, which pytest 9 no longer lets a
# plugin change. The scheduler below maps modules to groups instead.
SHARED_FIXTURES = {"sim_build": "soc", "smol": "traces", "tiny": "traces",
                   "tiny_again": "traces"}
WORKER_GROUPS = {
    "soc": ("test_engine", "test_flows", "test_generate_rtl", "test_link",
            "test_prefetch_firmware", "test_replay", "test_soc", "test_soc_datapath",
            "test_soc_dma", "test_sweep_rtl", "test_fuzz", "test_link_faults"),
    "traces": ("test_rotation", "test_trace_capture", "test_trace_format"),
}
GROUP_OF = {mod: group for group, mods in WORKER_GROUPS.items() for mod in mods}
# The longest work units first (a fresh clone's durations), so that no worker is left
# running a long one alone at the end.
LONGEST_FIRST = ("soc", "test_board_link", "test_dma_codec", "test_codec_verilator",
                 "test_codec_gateware", "test_dma_core", "traces")


def _module(nodeid):
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


def _group(nodeid):
    return GROUP_OF.get(_module(nodeid), _module(nodeid))


def pytest_collection_modifyitems(config, items):
    """A module that uses a shared fixture must be in that fixture's group; the longest
    groups run first."""
    rank = {g: i for i, g in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(_group(it.nodeid), len(rank)))
    for item in items:
        for f in getattr(item, "fixturenames", ()):
            want = SHARED_FIXTURES.get(f)
            if want and GROUP_OF.get(_module(item.nodeid)) != want:
                raise pytest.UsageError(
                    f"{item.nodeid} uses the {f} fixture: add {_module(item.nodeid)} to "
                    f"WORKER_GROUPS[{want!r}] in tests/conftest.py")


class _WorkerGroups:
    """xdist's scheduler: one work unit per group (registered only when xdist is active)."""

    def pytest_xdist_make_scheduler(self, config, log):
        from xdist.scheduler import LoadScopeScheduling

        class GroupScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid):
                return _group(nodeid)

        return GroupScheduling(config, log)


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_WorkerGroups(), "speckv-worker-groups")


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
