"""The layers only point down: gateware <- soc <- host <- bench, and inside host/ the device
layer (driver) <- the references and trace tools <- the replay. No library module of
gateware/ or soc/ pulls in a host/ module when imported, gateware/ imports neither soc/ nor
host/, and nothing imports soc/build.py (the command-line entry point over soc/cli.py). Outside
tests/, no file is over 600 lines and no function over 150."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Which top-level packages each layer may import (besides the standard library and PyPI).
ALLOWED = {"gateware": {"gateware"}, "soc": {"gateware", "soc"},
           "host": {"gateware", "soc", "host"}, "bench": {"gateware", "soc", "host", "bench"}}
# Where an upward import is the point: soc/build.py's --sim hands over to the replay.
LAZY_UPWARD = {("soc/cli.py", "host.replay")}
# Inside host/: which subpackages each may import (host/replay.py, the command line, any).
HOST_ALLOWED = {"driver": {"driver"}, "traces": {"traces"},
                "prefetch": {"driver", "traces", "prefetch"}, "codec_eval": {"traces", "codec_eval"},
                "replayer": {"driver", "traces", "prefetch", "serving", "replayer"},
                "serving": {"driver", "serving"},
                "generate": {"driver", "traces", "prefetch", "replayer", "generate"},
                "connectors": {"driver", "prefetch", "replayer", "connectors"},
                "sweep": {"driver", "codec_eval", "replayer", "serving", "traces", "sweep"},
                "reliability": {"driver", "traces", "replayer", "reliability"}}


def _modules(layer):
    return sorted(p for p in (ROOT / layer).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path):
    """(module imported, at module level?) for every import statement of a file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, id(node) in top))
    return out


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_no_upward_imports(layer):
    bad = []
    for path in _modules(layer):
        rel = str(path.relative_to(ROOT))
        for mod, _ in _imports(path):
            pkg = mod.split(".")[0]
            if pkg in ALLOWED and pkg not in ALLOWED[layer] and (rel, mod) not in LAZY_UPWARD:
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("sub", list(HOST_ALLOWED))
def test_host_subpackages_point_down(sub):
    bad = []
    for path in _modules(f"host/{sub}"):
        for mod, _ in _imports(path):
            parts = mod.split(".")
            if parts[0] == "host" and (len(parts) < 2 or parts[1] not in HOST_ALLOWED[sub]):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_host_has_no_loose_modules():
    """Every host module lives in a subpackage; host/replay.py is the one command line."""
    loose = sorted(p.name for p in (ROOT / "host").glob("*.py"))
    assert loose == ["__init__.py", "replay.py"], loose


def test_nothing_imports_the_build_entry_point():
    users = [f"{p.relative_to(ROOT)}" for layer in (*ALLOWED, "tests", "scripts")
             for p in _modules(layer) if any(m == "soc.build" for m, _ in _imports(p))]
    assert not users, users


def test_importing_gateware_and_soc_pulls_in_no_host_module():
    """Every library module of gateware/ and soc/, imported in a fresh interpreter."""
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
             for layer in ("gateware", "soc") for p in _modules(layer)
             if p.name != "build.py" or p.parent.name != "soc"]
    code = ("import importlib, sys\n"
            f"for n in {names!r}:\n    importlib.import_module(n)\n"
            "print(sorted(m for m in sys.modules if m == 'host' or m.startswith('host.')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]", r.stdout


MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 150


def test_no_long_files_or_functions():
    """Outside tests/, no Python file over 600 lines and no function over 150 lines."""
    bad = []
    for layer in ("gateware", "soc", "host", "bench", "scripts"):
        for path in _modules(layer):
            src = path.read_text()
            if src.count("\n") > MAX_FILE_LINES:
                bad.append(f"{path.relative_to(ROOT)}: {src.count(chr(10))} lines")
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                   f"{n} lines")
    assert not bad, "\n".join(bad)
