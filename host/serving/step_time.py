"""A decode step's GPU compute time for a model, batch and context length: from the measured
table (``docs/results/gpu/step_times.json``, written by ``bench/gpu_step_time.py`` on a lent
GPU) when it has the model and batch, else a roofline estimate, labelled as one.

The roofline estimate is a lower bound: every weight and the whole KV cache of the batch
read once per step at the GPU's spec-sheet memory bandwidth, nothing else (no kernel
launches, no compute-bound phases). A measured row's time is the CUDA-graph replay of the
whole step (``bench/gpu_step_time.py``); between two measured context lengths the time is
interpolated linearly, outside them it is not extrapolated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from host.serving.shapes import SHAPES, shape_of

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "results" / "gpu" / "step_times.json"
# The roofline's GPU: NVIDIA H200 SXM spec sheet (HBM3e)
ROOFLINE_GPU = {"name": "NVIDIA H200 (spec sheet)", "bandwidth_gbs": 4800.0, "memory_gib": 141e9 / 2**30}
DTYPE_BYTES = {"bf16": 2, "fp16": 2}


class StepTimeError(ValueError):
    pass


@dataclass(frozen=True)
class StepTime:
    model: str
    dtype: str
    batch: int
    context: int
    step_ns: float
    layers: int
    source: str

    @property
    def layer_ns(self):
        return self.step_ns / self.layers


def roofline(model, batch, context, dtype="bf16", gpu=ROOFLINE_GPU) -> StepTime:
    """Weights + the batch's KV cache, read once at ``gpu``'s bandwidth (a lower bound)."""
    s = shape_of(model)
    nbytes = DTYPE_BYTES[dtype]
    weights = s.params() * nbytes
    kv = batch * context * s.kv_bytes_per_token(nbytes)
    need = weights + kv
    if need > gpu["memory_gib"] * 2**30:
        raise StepTimeError(f"{model} at batch {batch} and context {context}: weights + KV "
                            f"cache need {need / 2**30:.1f} GiB, the {gpu['name']} has "
                            f"{gpu['memory_gib']:.0f} GiB")
    ns = need / (gpu["bandwidth_gbs"] * 1e9) * 1e9
    return StepTime(model, dtype, batch, context, ns, s.layers,
                    f"roofline estimate (lower bound, not measured): {need / 1e9:.2f} GB of "
                    f"weights + KV read once at {gpu['bandwidth_gbs']:.0f} GB/s ({gpu['name']})")


def _in_context(rows, context):
    """Linear interpolation of sorted (context, ms) rows at ``context``; None outside them."""
    for (c0, t0), (c1, t1) in zip(rows, rows[1:] + rows[-1:]):
        if c0 <= context <= c1:
            return t0 if c1 == c0 else t0 + (t1 - t0) * (context - c0) / (c1 - c0)
    return None


def measured(model, batch, context, dtype="bf16", table=TABLE, extrapolate=False):
    """The measured time, interpolated in context and between measured batches; None if the
    table lacks the model or does not bracket ``batch`` or ``context`` from above (a context
    below the table's shortest takes the shortest's time, labelled as an upper bound). With ``extrapolate``,
    a batch above the largest measured one is extrapolated linearly from the two largest
    (the source says so)."""
    if not Path(table).is_file():
        return None
    data = json.loads(Path(table).read_text())
    by_batch = {}
    for r in data["rows"]:
        if r["model"] == model and r["dtype"] == dtype:
            by_batch.setdefault(r["batch"], []).append((r["context"], r["step_ms"]))
    note, asked = "", context
    lowest = min((c for rows in by_batch.values() for c, _ in rows), default=None)
    if lowest is not None and context < lowest:
        # below the table: its shortest context stands in (a step only grows with context)
        note = f", at {lowest} tokens (the shortest measured context; an upper bound)"
        context = lowest
    curve = sorted((b, ms) for b, rows in by_batch.items()
                   if (ms := _in_context(sorted(rows), context)) is not None)
    if not curve:
        return None
    if batch > curve[-1][0] and extrapolate and len(curve) > 1:
        (b0, t0), (b1, t1) = curve[-2:]
        ms = t1 + (t1 - t0) * (batch - b1) / (b1 - b0)
        note += f", extrapolated in batch beyond the largest measured ({b1})"
    else:
        ms = _in_context([(b, t) for b, t in curve], batch)
        if ms is None:
            return None
        if batch not in by_batch:
            note += ", interpolated in batch"
    return StepTime(model, dtype, batch, asked, ms * 1e6, shape_of(model).layers,
                    f"measured: {data['gpu']}, {data['date']}, CUDA graph{note} "
                    f"({Path(table).name}: `{data['command']}`)")


def step_time(model, batch, context, dtype="bf16", table=TABLE,
              extrapolate=False) -> StepTime:
    """The measured step time if the table has it, else the roofline estimate."""
    if model not in SHAPES:
        raise StepTimeError(f"unknown model {model!r}: known are {', '.join(SHAPES)}")
    if dtype not in DTYPE_BYTES:
        raise StepTimeError(f"unknown dtype {dtype!r}: bf16 or fp16")
    if batch < 1 or context < 1:
        raise StepTimeError(f"batch {batch} and context {context} must be at least 1")
    return (measured(model, batch, context, dtype, table, extrapolate)
            or roofline(model, batch, context, dtype))
