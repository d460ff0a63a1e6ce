"""A sweep's grid: what each cell runs, read from a TOML or YAML file or the command line,
expanded into cells keyed by their parameters and the content of their inputs.

A grid file holds one or more ``[[grid]]`` tables (``grids:`` in YAML). In each, ``kind``
names what a cell runs (``replay``, ``codec`` or ``serve``); a scalar value fixes a
parameter for every cell of that table, a list makes it an axis; the cells are the cartesian
product of the axes. Optional top-level keys: ``name`` and ``results`` (the JSON Lines
file)::

    name = "predictors"
    [[grid]]
    kind = "replay"
    backend = "model"
    workload = ["chatbot", "codegen"]
    prefetcher = ["last", "lstm"]
    k = [4, 8, 16]

The parameters of each kind (``speckv-sweep params``): ``replay`` takes every field of
``host.replayer.engine.ReplayOptions`` that describes a configuration, plus ``workload``
(the trace ``<traces_dir>/<workload>.safetensors``, ``make traces``) instead of ``trace``;
``codec`` the codec evaluation's (``host.codec_eval.perplexity``: one mode on one text;
the FP16 baseline ``raw`` of the same text is added to the grid, the perplexity change is
taken against it); ``serve`` the serving model's (``host.serving.cli``: one model, device
and batch, every configuration).

A cell's key is the SHA-256 of its kind, its parameters with every default filled in, the
SHA-256 of each input file it reads (the trace, the model's weights, the text, the serving
model's replay results and tables) and the code version (``version.py``: the SHA-256 of every
source file a cell can run): a finished cell is found again by its key, and changing any
input or any such source file makes a new cell.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from host.codec_eval.perplexity import EvalOptions
from host.replayer.engine import PREFETCHERS, ROOT, ReplayOptions
from host.serving.cli import DEVICES, REPLAYS, ServeOptions
from host.serving.step_time import TABLE
from host.sweep.version import code_version

KINDS = ("replay", "codec", "serve")
# ReplayOptions fields that are not part of a configuration (how and where it runs).
_REPLAY_SKIP = {"label", "waveform", "server", "board_dir", "trace"}
# Parameters that are paths: left out of a cell's key (the content of the files is in it), so
# that a key does not depend on where a checkout or a trace lives.
PATH_PARAMS = {"replay": {"trace", "traces_dir"}, "codec": {"text", "model"},
               "serve": {"replays", "table"}}


class GridError(ValueError):
    """A grid file or a cell's parameters are wrong; the message names the bad input."""


@dataclass
class ReplayCell:
    """The replay's parameters (``ReplayOptions``) plus where its trace comes from."""
    workload: str | None = None          # chatbot, codegen, summarization, qa: the full traces
    trace: str | None = None             # or a trace file; neither: the bundled mini trace
    traces_dir: str = "build/traces"     # where workload traces are (relative: to the checkout)


def _schema(kind):
    """{parameter: (type, default)} of a kind, from the dataclasses that declare it."""
    if kind == "replay":
        out = {}
        hints = typing.get_type_hints(ReplayOptions)
        for f in fields(ReplayOptions):
            if f.name not in _REPLAY_SKIP:
                out[f.name] = (hints[f.name], f.default)
        rh = typing.get_type_hints(ReplayCell)
        out.update({f.name: (rh[f.name], f.default) for f in fields(ReplayCell)})
        return out
    cls = {"codec": EvalOptions, "serve": ServeOptions}.get(kind)
    if cls is None:
        raise GridError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.default) for f in fields(cls)}


def params_help(kind):
    """Lines naming each parameter of ``kind`` with its default."""
    return [f"  {n} = {d!r}" for n, (_, d) in _schema(kind).items()]


def _coerce(kind, name, value, typ):
    """``value`` (from TOML/YAML, or a string from the command line) as ``typ``."""
    args = typing.get_args(typ)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), typ) if args else typ
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")
                         and base is not str):        # a str parameter keeps "none" (prefetcher)
        if optional:
            return None
        raise GridError(f"{kind}: {name} may not be empty")
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise GridError(f"{kind}: {name} = {value!r} is not a {base.__name__}") from None
    raise GridError(f"{kind}: {name} has an unsupported type {typ}")


@dataclass
class Cell:
    """One run: a kind and its parameters (every default filled in), its inputs' hashes."""
    kind: str
    params: dict
    inputs: dict = field(default_factory=dict)     # {role: {"path": ..., "sha256": ...}}
    code: str = ""
    axes: tuple = ()                               # the parameters that vary in its grid

    @property
    def key(self):
        params = {k: v for k, v in self.params.items() if k not in PATH_PARAMS[self.kind]}
        blob = json.dumps({"kind": self.kind, "params": params, "code": self.code,
                           "inputs": {k: v["sha256"] for k, v in self.inputs.items()}},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def label(self):
        return " ".join(f"{a}={self.params[a]}" for a in self.axes) or self.kind


def _check(kind, p):
    """Kind-specific checks of one cell's parameters (the run checks the rest)."""
    if kind == "replay":
        if p["workload"] and p["trace"]:
            raise GridError("replay: give workload or trace, not both")
        if p["backend"] not in ("model", "rtl"):
            raise GridError(f"replay: backend {p['backend']!r}: model or rtl in a sweep")
        if p["timing"] not in ("on", "off"):
            raise GridError(f"replay: timing {p['timing']!r}: on or off (a list of both is "
                            "an axis)")
        if p["prefetcher"] not in PREFETCHERS:
            raise GridError(f"replay: prefetcher {p['prefetcher']!r}: one of "
                            f"{', '.join(PREFETCHERS)}")
    elif kind == "codec":
        from gateware.codec.reference import MODES
        if p["mode"] not in MODES:
            raise GridError(f"codec: mode {p['mode']!r}: one of {', '.join(MODES)}")
        if not p["text"]:
            raise GridError("codec: text (a file, or files comma-separated) is required")
    elif kind == "serve":
        from host.driver.link import PROFILES
        from host.serving.shapes import SHAPES
        for name, known in (("device", DEVICES), ("model", SHAPES), ("link", PROFILES)):
            if p[name] not in known:
                raise GridError(f"serve: {name} {p[name]!r}: one of {', '.join(known)}")


def expand(spec):
    """The cells of one grid table (a dict: kind, fixed scalars, list axes), inputs unhashed."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in KINDS:
        raise GridError(f"grid table without a known kind ({kind!r}): one of {', '.join(KINDS)}")
    schema = _schema(kind)
    unknown = sorted(set(spec) - set(schema))
    if unknown:
        raise GridError(f"{kind}: unknown parameter(s) {', '.join(unknown)}; known: "
                        f"{', '.join(schema)}")
    axes = {k: v for k, v in spec.items() if isinstance(v, list)}
    for k, v in axes.items():
        if not v:
            raise GridError(f"{kind}: axis {k} is an empty list")
    fixed = {k: v for k, v in spec.items() if k not in axes}
    cells = []
    for combo in itertools.product(*axes.values()):
        raw = {**fixed, **dict(zip(axes, combo))}
        p = {n: (_coerce(kind, n, raw[n], t) if n in raw else d) for n, (t, d) in schema.items()}
        _check(kind, p)
        cells.append(Cell(kind, p, axes=tuple(axes)))
    if kind == "codec":          # the FP16 baseline every mode's perplexity change is against
        base = {}
        for c in cells:
            b = dict(c.params, mode="raw")
            base.setdefault(json.dumps(b, sort_keys=True), Cell(kind, b, axes=c.axes))
        have = {json.dumps(c.params, sort_keys=True) for c in cells}
        cells += [c for k, c in base.items() if k not in have]
    return cells


def load_grid(path):
    """(name, results path or None, [grid tables]) of a TOML (.toml) or YAML file."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib
            doc = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml
            doc = yaml.safe_load(text)
        else:
            raise GridError(f"{path}: a grid file is .toml, .yaml or .yml")
    except GridError:
        raise
    except Exception as e:          # the parsers' own errors name line and column
        raise GridError(f"{path}: {e}") from None
    if not isinstance(doc, dict):
        raise GridError(f"{path}: expected a table at the top")
    tables = doc.get("grid", doc.get("grids"))
    if not tables or not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise GridError(f"{path}: no [[grid]] tables (YAML: a 'grids:' list)")
    extra = sorted(set(doc) - {"name", "results", "grid", "grids"})
    if extra:
        raise GridError(f"{path}: unknown top-level key(s) {', '.join(extra)}; "
                        "known: name, results, grid")
    return doc.get("name", path.stem), doc.get("results"), tables


def parse_assignments(kind, items, axes):
    """``--set NAME=VALUE`` / ``--axis NAME=V1,V2`` pairs as one grid table."""
    spec = {"kind": kind}
    for text in items:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise GridError(f"{text!r}: expected NAME=VALUE")
        spec[name.strip()] = value
    for text in axes:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise GridError(f"{text!r}: expected NAME=V1,V2,...")
        spec[name.strip()] = [v for v in value.split(",") if v != ""]
    return spec


# -- inputs and code version ---------------------------------------------------------------

_HASHES = {}


def file_sha256(path):
    """SHA-256 of a file, remembered per (path, size, mtime) within the process."""
    p = Path(path).resolve()
    st = p.stat()
    k = (str(p), st.st_size, st.st_mtime_ns)
    if k not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASHES[k] = h.hexdigest()
    return _HASHES[k]


def input_files(cell):
    """{role: path} of the files a cell reads besides the code."""
    p = cell.params
    if cell.kind == "replay":
        return {"trace": trace_path(p)}
    if cell.kind == "codec":
        from host.traces.model import gguf_path
        out = {f"text{i}": Path(f) for i, f in enumerate(x for x in p["text"].split(",") if x)}
        model = Path(p["model"]) if p["model"] else gguf_path()
        files = sorted(f for f in model.rglob("*") if f.is_file()) if model.is_dir() else [model]
        out.update({f"model:{f.name}": f for f in files})
        return out
    replays = Path(p["replays"]) if p["replays"] else REPLAYS
    out = {f"replays:{f.name}": f for f in sorted(replays.glob("*.json"))}
    table = Path(p["table"]) if p["table"] else TABLE
    if table.is_file():
        out["step_table"] = table
    return out


def trace_path(p):
    """The trace file a replay cell reads."""
    if p["workload"]:
        return ROOT / p["traces_dir"] / f"{p['workload']}.safetensors"
    return Path(p["trace"]) if p["trace"] else Path(ReplayOptions().trace)


def hash_inputs(cells, code=None):
    """Fill in each cell's input hashes (absolute paths: a worker's current folder is not the
    driver's) and the code version; a missing input is an error naming the cell and the file."""
    code = code or code_version()
    for c in cells:
        c.code = code
        for role, f in input_files(c).items():
            f = Path(f)
            if not f.is_file():
                raise GridError(f"{c.kind} cell {c.label()}: {role} file not found: {f}"
                                + (" (make traces captures the workload traces)"
                                   if role == "trace" and c.params.get("workload") else ""))
            c.inputs[role] = {"path": str(f.resolve()), "sha256": file_sha256(f)}
        p = c.params          # path parameters made absolute (they are not part of the key)
        if c.kind == "codec":
            p["text"] = ",".join(str(Path(f).resolve()) for f in p["text"].split(",") if f)
            p["model"] = p["model"] and str(Path(p["model"]).resolve())
        elif c.kind == "serve":
            p["replays"] = str(Path(p["replays"] or REPLAYS).resolve())
            p["table"] = c.inputs["step_table"]["path"] if "step_table" in c.inputs else None
    return cells
