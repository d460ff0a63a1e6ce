"""host/serving/llama.py's decode step computes what transformers' LlamaForCausalLM computes:
same weights, same cache, the next token's logits agree (fp32, CPU), for MHA and GQA shapes,
so the step the GPU benchmark times is a real LLaMA step."""

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from host.serving.llama import DecodeStep
from host.serving.shapes import SHAPES, Shape, shape_of


def _hf_and_step(shape: Shape, batch: int, context: int, seed: int, swap_kv=False):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden,
                      intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
                      num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                      head_dim=shape.head_dim, rope_theta=shape.rope_theta,
                      rms_norm_eps=shape.rms_eps, tie_word_embeddings=False,
                      attn_implementation="eager")
    hf = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():       # non-trivial norms, so a swapped norm weight shows
        for n, p in hf.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    prompt = torch.randint(0, shape.vocab, (batch, context))
    nxt = torch.randint(0, shape.vocab, (batch,))
    cache = DynamicCache(config=cfg)
    with torch.no_grad():
        hf(input_ids=prompt, past_key_values=cache, use_cache=True)
        keys = [L.keys.clone() for L in cache.layers]
        vals = [L.values.clone() for L in cache.layers]
        want = hf(input_ids=nxt[:, None], past_key_values=cache, use_cache=True).logits[:, -1]
    step = DecodeStep(shape, dtype=torch.float32)
    step.alloc_cache(batch, context)
    step.load_hf(hf, *((vals, keys) if swap_kv else (keys, vals)))
    with torch.no_grad():
        got = step(nxt)
    return got, want


@pytest.mark.parametrize("shape,batch,context", [
    (Shape(layers=2, hidden=64, heads=4, kv_heads=4, head_dim=16, intermediate=96,
           vocab=101), 1, 7),
    (Shape(layers=3, hidden=96, heads=6, kv_heads=2, head_dim=32, intermediate=160,
           vocab=77, rope_theta=100000.0), 3, 19),                       # GQA, head_dim != hidden/heads
])
def test_decode_step_equals_transformers(shape, batch, context):
    got, want = _hf_and_step(shape, batch, context, seed=batch + context)
    assert got.shape == want.shape
    err = (got - want).abs().max().item() / want.abs().max().item()
    assert err < 1e-5, err


def test_comparison_can_fail():
    """The same comparison with K and V swapped in the step's cache fails."""
    shape = Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=96,
                  vocab=50)
    got, want = _hf_and_step(shape, 2, 9, seed=1, swap_kv=True)
    assert (got - want).abs().max().item() / want.abs().max().item() > 1e-3


def test_model_shapes():
    assert shape_of("llama2-7b").params() == pytest.approx(6.74e9, rel=0.01)
    assert shape_of("llama2-13b").params() == pytest.approx(13.0e9, rel=0.01)
    # SmolLM2-135M ties its LM head to the embedding: 135 M + one more 49152 x 576 matrix.
    assert shape_of("smollm2-135m").params() - 49152 * 576 == pytest.approx(134.5e6, rel=0.01)
    assert shape_of("llama2-7b").kv_bytes_per_token() == 512 * 1024        # 0.5 MiB, FP16
    with pytest.raises(ValueError, match="unknown model 'gpt2'.*llama2-7b"):
        shape_of("gpt2")
    # Llama-3-8B: 8.03 B parameters, GQA (8 KV heads): a quarter of 7B's KV a token
    assert shape_of("llama3-8b").params() == pytest.approx(8.03e9, rel=0.01)
    assert shape_of("llama3-8b").kv_bytes_per_token() == 128 * 1024
    assert set(SHAPES) == {"smollm2-135m", "llama2-7b", "llama2-13b", "llama3-8b"}
