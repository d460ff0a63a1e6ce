"""Every command a user runs answers ``--help``: the console scripts of pyproject.toml and
the benchmark scripts in bench/ (run as ``python bench/NAME.py``, the way the Makefile does)."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
BENCH = sorted(p.name for p in (ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_scripts_have_help(name, capsys):
    module, _, func = SCRIPTS[name].partition(":")
    main = getattr(importlib.import_module(module), func)
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage:")


@pytest.mark.parametrize("name", BENCH)
def test_bench_scripts_have_help(name):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / name), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:"), r.stdout[:200]
