"""Training data for the prefetchers: extra traces from documents that none of the four
evaluation workloads (chatbot: Apache-2.0, summarization: GPL-3, codegen: tqdm/std.py,
qa: MPL-2.0) uses, so that the LSTM is trained and validated on other text than it is
reported on.

    python -m host.prefetch.data --out build/traces-train     # capture TRAIN + VAL traces

Split (by source document, never by step):

* train: LGPL-2.1, GFDL-1.3, Artistic (Debian licences), migen/fhdl/structure.py (PyPI
  migen==0.10.0), litex/soc/integration/builder.py (PyPI litex==2024.12)
* validation (model selection only): CC0-1.0 (Debian)
* held-out evaluation: the four workloads of ``host/traces/workloads.py`` (``build/traces``) and
  the two bundled mini traces (``traces/``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import host.traces.model  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from host.traces.workloads import TextSource, Workload, capture_workload

LGPL21 = TextSource("debian", "/usr/share/common-licenses/LGPL-2.1")
GFDL13 = TextSource("debian", "/usr/share/common-licenses/GFDL-1.3")
CC0 = TextSource("debian", "/usr/share/common-licenses/CC0-1.0")
MIGEN = TextSource("pypi", "migen", "migen/fhdl/structure.py")
ARTISTIC = TextSource("debian", "/usr/share/common-licenses/Artistic")
LITEX = TextSource("pypi", "litex", "litex/soc/integration/builder.py")

TRAIN = {w.name: w for w in [
    Workload("train-lgpl", "training: long licence, summary", LGPL21, 768, 96,
             instruction="Summarize the following document.", anchor="Preamble",
             store_queries=False),
    Workload("train-gfdl", "training: chat turn about a licence clause", GFDL13, 320, 128,
             instruction="A friend sent me this part of a license. What does it mean, in plain words?",
             anchor="1. APPLICABILITY AND DEFINITIONS", store_queries=False),
    Workload("train-code", "training: code context, code output", MIGEN, 448, 128,
             instruction="Here is part of a Python module. Write pytest unit tests for it.",
             anchor="class _Value", store_queries=False),
    Workload("train-artistic", "training: chat turn about a licence", ARTISTIC, 256, 192,
             instruction="What does this license allow me to do? Explain in plain words.",
             anchor="Preamble", store_queries=False),
    Workload("train-code2", "training: code context, code output", LITEX, 512, 192,
             instruction="Here is part of a Python module. Explain what it does, then write tests.",
             anchor="class Builder:", store_queries=False),
]}
VAL = {w.name: w for w in [
    Workload("val-cc0", "validation: licence text and a question", CC0, 896, 64,
             instruction="Read the text below and answer the question after it.",
             question="Question: what does the affirmer waive? Answer briefly.",
             anchor="Statement of Purpose", store_queries=False),
]}
HELD_OUT = ("chatbot", "summarization", "codegen", "qa")
ALL = {**TRAIN, **VAL}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="speckv-prefetch-data",
        description="Capture the prefetcher training and validation traces (documents disjoint "
                    "from the evaluation workloads).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("build/traces-train"), help="output directory")
    ap.add_argument("--only", nargs="*", default=None, help=f"subset of {', '.join(ALL)}")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    names = args.only or list(ALL)
    bad = [n for n in names if n not in ALL]
    if bad:
        ap.error(f"unknown: {bad}")
    from host.traces.model import load_model
    mt = load_model(threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for n in names:
        if (args.out / f"{n}.safetensors").exists():
            print(f"{n}: exists, skipped", flush=True)
            continue
        t0 = time.perf_counter()
        out, sha, meta, stats = capture_workload(ALL[n], args.out, mt, progress=not args.no_progress,
                                                 threads=args.threads)
        print(f"{n}: {meta['total_tokens']} tokens in {time.perf_counter() - t0:.0f} s, "
              f"decode {stats['decode_tok_s']:.1f} tok/s, sha256 {sha}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
