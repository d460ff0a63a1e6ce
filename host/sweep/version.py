"""The code version of a sweep's cells: the SHA-256 of every source file a cell can run.

Those files are found by following the imports (module level and inside functions) from
``host.sweep.cells``, the module a worker runs, through the repository's own packages
(``gateware``, ``soc``, ``host``); to them are added the data files beside each such module
(the LSTM weights, the replay's calibration, Verilog, C++ and C sources) and, as the SoC's
build compiles it, all of ``firmware/``. A change anywhere else (a benchmark, a test, the
sweep's own summary and plots, another command line) leaves finished cells valid.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "host.sweep.cells"
PACKAGES = ("gateware", "soc", "host")
DATA_SUFFIXES = {".json", ".npz", ".v", ".sv", ".cpp", ".c", ".h", ".S", ".ld"}


def _path(mod, root):
    base = root.joinpath(*mod.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(path, mod):
    """Every module name an import statement of ``path`` (module ``mod``) can load."""
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]     # a submodule imported by name
    return out


def modules(entry=ENTRY, root=ROOT):
    """{module: path} of the repository modules reachable by imports from ``entry``."""
    found, todo = {}, [entry]
    while todo:
        mod = todo.pop()
        if mod in found or mod.split(".")[0] not in PACKAGES:
            continue
        path = _path(mod, root)
        if path is None:
            continue
        found[mod] = path
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]     # parent packages
        todo += _imports(path, mod)
    return found


def _data_files(folder):
    """Data files in ``folder`` and its subfolders that are not packages of their own."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in DATA_SUFFIXES:
            out.append(p)
        elif p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists():
            out += _data_files(p)
    return out


def source_files(entry=ENTRY, root=ROOT):
    """Every file whose content is part of the code version, sorted."""
    root = Path(root)
    mods = modules(entry, root)
    files = set(mods.values())
    for folder in {p.parent for p in mods.values()}:
        files.update(_data_files(folder))
    if "soc.builder" in mods:
        files.update(p for p in (root / "firmware").rglob("*")
                     if p.is_file() and p.suffix in DATA_SUFFIXES)
    return sorted(files)


@lru_cache(maxsize=None)
def code_version(root=ROOT):
    """SHA-256 over the path and bytes of every file of ``source_files``."""
    h = hashlib.sha256()
    for p in source_files(root=Path(root)):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()
