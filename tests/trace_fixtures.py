"""Shared fixtures for tests/test_trace_*.py.

Model load (~25 s) and the tiny captures happen once per pytest process: load_model() caches
the model in-process, and the captures below are memoised, so importing these fixtures into
several test modules does not repeat the work.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "traces"
TEXT = Path("/usr/share/common-licenses/GPL-3")

# Tiny capture: 72-token prompt + 8 decode steps = 80 tokens = 5 pages per (layer, KV head);
# k=1 and window=0 so the sparse mode has real choices (4 candidate pages, 1 kept).
TINY = dict(prompt_tokens=72, gen_tokens=8, k=1, window=0, instruction="Summarize:")


def _tmpdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="speckv-trace-test-"))
    atexit.register(shutil.rmtree, d, True)
    return d


@functools.lru_cache(maxsize=None)
def _smol():
    from host.traces.model import load_model

    return load_model()


@functools.lru_cache(maxsize=None)
def _tiny(tag: str):
    """Capture the tiny trace; returns (path, sha256, meta, result). tag distinguishes repeat runs."""
    from host.traces.capture import run_capture

    out = _tmpdir() / f"tiny-{tag}.safetensors"
    sha, meta, stats, res = run_capture(TEXT, out, TINY["prompt_tokens"], TINY["gen_tokens"],
                                        instruction=TINY["instruction"], k=TINY["k"], window=TINY["window"],
                                        progress=False, model_and_tokenizer=_smol())
    return out, sha, meta, res


def need_text():
    if not TEXT.is_file():
        pytest.skip(f"{TEXT} (Debian base-files) not present")


@pytest.fixture(scope="session")
def smol():
    return _smol()


@pytest.fixture(scope="session")
def tiny():
    need_text()
    return _tiny("a")


@pytest.fixture(scope="session")
def tiny_again():
    need_text()
    return _tiny("b")


@pytest.fixture(scope="session")
def bundled_trace_path():
    p = BUNDLED / "mini-chatbot.safetensors"
    assert p.is_file(), f"bundled trace {p} missing"
    return p


os.environ.setdefault("HF_HUB_OFFLINE", "1")
