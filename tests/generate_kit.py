"""Models for the live-generation tests: SmolLM2 in float16, and a small randomly initialised
LLaMA of another shape (head_dim 128: two device pages per token page; 2 KV heads of 4 query
heads; 3 layers), written as a Hugging Face folder with SmolLM2's tokenizer, and loaded
through ``--model PATH`` like any local checkpoint."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

PROMPT = ("The GNU General Public License is a free, copyleft license for software and other "
          "kinds of works.")


@functools.lru_cache(maxsize=None)
def smol16():
    from host.traces.model import load_model
    return load_model(dtype="float16")


def write_model(folder: Path, **shape):
    """Save a random LlamaForCausalLM (seed 0) of ``shape`` with SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tok = smol16()
    cfg = dict(vocab_size=len(tok), hidden_size=256, intermediate_size=512,
               num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=128,
               max_position_embeddings=2048, tie_word_embeddings=True,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg.update(shape)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**cfg)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@functools.lru_cache(maxsize=None)
def tiny_llama_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="speckv-gen-test-"))
    atexit.register(shutil.rmtree, d, True)
    return write_model(d / "tiny-llama")


@functools.lru_cache(maxsize=None)
def tiny_llama():
    from host.traces.model import load_model
    return load_model(path=tiny_llama_dir(), dtype="float16")
