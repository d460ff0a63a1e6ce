"""Build a Verilator model of generated Verilog with pyverilator, plus the native loop.

pyverilator generates its C++ wrapper (signal accessors, tracing); we append
``link_layer.cpp`` and ``native.cpp`` to that wrapper before compiling, so the run-until-event loop lives in the
same shared library as the model. Memory contents (ROM firmware) are read by $readmemh
when the model is constructed, so a firmware change needs no model rebuild. Builds are cached in ``cache_root/<key>/`` where the key
hashes every input (Verilog text, CPU sources, native loop, flags): a second build of the
same design costs only the hash.
"""

import contextlib
import fcntl
import hashlib
import os
import sys
import shutil
import subprocess
from pathlib import Path

# Appended in this order: the link's wires and link layer, then the loop that drives them.
NATIVE_SOURCES = [Path(__file__).with_name(n) for n in ("link_layer.cpp", "native.cpp")]

# -O3 on the model and the wrapper; x-assign/x-initial fast: values Verilog leaves undefined
# are 0, identical run to run.
VERILATOR_ARGS = ["--top-module", "sim", "--prefix", "Vsim", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast", "--noassert",
                  "-Wno-fatal", "-Wno-lint", "-Wno-style"]
CFLAGS = "-O2 -fno-plt"
OPT_FAST = "-O2"  # make's optimisation of the model's hot code (Verilator's OPT_FAST)


def _key(paths, extra):
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode())
        # Comment lines carry generation dates; they do not change the model.
        for line in Path(p).read_bytes().splitlines():
            if not line.lstrip().startswith(b"//"):
                h.update(line + b"\n")
    for p in NATIVE_SOURCES:
        h.update(p.read_bytes())
    h.update(repr(extra).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _redirect_fds(f):
    if f is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(f.fileno(), 1)
    os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def _locked(path):
    """Hold an exclusive lock on ``path`` (created if missing): two processes that build the
    same cached model (two test workers, a test run beside `make sim`) take turns, and the
    second finds the first's result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_model(top_verilog, cpu_sources, cache_root, fst=True, jobs=None, log=None,
                extra_args=(), cflags=None, opt_fast=None):
    """Compile ``top_verilog`` (module ``sim``) and ``cpu_sources`` into a Verilator model.

    Returns the path of the shared library. ``log`` is a file path that receives
    Verilator's and make's output (they are quiet otherwise). ``extra_args`` (Verilator) and
    ``cflags`` (C++, default ``CFLAGS``) and ``opt_fast`` (default ``OPT_FAST``) make
    variants, e.g. a profiling build (``bench/sim_profile.py``); they are part of the key.
    """
    import pyverilator  # the pyverilator-mm fork

    top_verilog = Path(top_verilog).resolve()
    cpu_sources = [Path(p).resolve() for p in cpu_sources]
    for p in [top_verilog, *cpu_sources]:
        if not p.exists():
            raise FileNotFoundError(f"Verilog source not found: {p}")
    cflags = CFLAGS if cflags is None else cflags
    opt_fast = OPT_FAST if opt_fast is None else opt_fast
    vargs = list(VERILATOR_ARGS) + list(extra_args)
    variant = (vargs, cflags, fst) + ((opt_fast,) if opt_fast != "-O2" else ())
    key = _key([top_verilog, *cpu_sources], variant)
    build_dir = Path(cache_root) / key
    so_file = build_dir / "Vsim"
    with _locked(Path(cache_root) / (key + ".lock")):
        if so_file.exists():
            return so_file
        tmp_dir = Path(cache_root) / (key + ".tmp")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        out = open(log, "a") if log else subprocess.DEVNULL
        try:
            # pyverilator prints the Verilator command and Verilator its lint warnings; both go
            # to the log (fd level: Verilator is a child process).
            with _redirect_fds(out if log else None):
                pyverilator.PyVerilator.build(
                    str(top_verilog),
                    # CPU sources precede the top file (pyverilator's `preceding_files` is a
                    # single argument, so they go through `args`).
                    preceding_files="",
                    build_dir=str(tmp_dir), gen_only=True, quiet=True,
                    args=vargs + [str(p) for p in cpu_sources], cargs=cflags, dump_en=True, dump_fst=fst)
            wrapper = tmp_dir / "pyverilator_wrapper.cpp"
            wrapper.write_text("\n".join([wrapper.read_text()] + [p.read_text() for p in NATIVE_SOURCES]))
            jobs = jobs or os.cpu_count() or 1
            subprocess.run(["make", f"-j{jobs}", "-C", str(tmp_dir), "-f", "Vsim.mk",
                            "LDFLAGS=-fPIC -shared", f"OPT_FAST={opt_fast}", "OPT_SLOW=-O1"],
                           check=True, stdout=out, stderr=subprocess.STDOUT if log else None)
        finally:
            if log:
                out.close()
        os.replace(tmp_dir, build_dir) if not build_dir.exists() else shutil.rmtree(tmp_dir)
        return so_file


def cosim_model(verilog, name, cache_root, args=("-Wno-fatal", "-O1")):
    """A plain pyverilator model of one core's Verilog (unit co-simulation, no native loop),
    cached in ``cache_root/<hash of the Verilog>/``: built once, reloaded afterwards."""
    import pyverilator  # the pyverilator-mm fork

    d = Path(cache_root) / hashlib.sha256(verilog.encode()).hexdigest()[:16]
    d.mkdir(parents=True, exist_ok=True)
    with _locked(d / "lock"):
        return _cosim_model(pyverilator, d, name, verilog, args)


def _cosim_model(pyverilator, d, name, verilog, args):
    vf = d / f"{name}.v"
    if not vf.exists() or vf.read_text() != verilog:
        vf.write_text(verilog)
    cached = sorted((d / "obj").glob("*.so")) if (d / "obj").exists() else []
    if cached:
        try:
            return pyverilator.PyVerilator(str(cached[0]), auto_eval=False)
        except OSError:
            pass  # a stale or partial build: rebuild below
    sim = pyverilator.PyVerilator.build(str(vf), build_dir=str(d / "obj"), quiet=True,
                                        args=list(args))
    sim.auto_eval = False
    return sim
