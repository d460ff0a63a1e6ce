"""One LLaMA decode step in plain torch, with a static KV cache: the GPU's side of a step.

The serving model and the GPU step-time benchmark (``bench/gpu_step_time.py``) need the time
of one decode step of a LLaMA-architecture model at a given batch and context length. A
step's cost does not depend on the weights' values, so the weights are random; its shapes
are the model's. Everything has a static shape (the cache holds ``context`` tokens per
sequence and the step attends to all of them), so a whole step can be captured in a CUDA
graph and replayed: the measured time is the GPU's work, not Python's kernel launches.

``tests/test_serving_llama.py`` checks that :class:`DecodeStep` computes what
``transformers``' ``LlamaForCausalLM`` computes for the same weights and cache.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from host.serving.shapes import Shape


def _rms(x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def _rope(x, cos, sin):
    """Rotate-half RoPE (as transformers' LLaMA): x [B, H, 1, D], cos/sin [B, 1, 1, D]."""
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin


class DecodeStep(torch.nn.Module):
    """The weights of a model (random, on ``device``) and, after :meth:`alloc_cache`, the
    KV cache of ``batch`` sequences of ``context`` tokens each.

    ``forward(tokens)`` embeds one token per sequence (``tokens`` [batch] int64), runs every
    layer (attention over the ``context`` cached tokens plus its own) and returns the logits
    [batch, vocab]. The new token's K/V go to cache slot ``context``, which is what a real
    step at that length costs; the cache is not advanced, so the step can be replayed
    unchanged. ``layer(i, x)`` runs layer ``i`` alone (per-layer timing). Weights are stored
    as [in, out] and Q/K/V and gate/up fused, as serving engines keep them.
    """

    def __init__(self, shape: Shape, dtype=torch.bfloat16, device="cpu", seed: int = 0):
        super().__init__()
        s = self.shape = shape
        self.dtype, self.device = dtype, device
        self.gen = g = torch.Generator(device=device).manual_seed(seed)

        def w(*size, scale=None):
            scale = scale if scale is not None else 1.0 / math.sqrt(size[0])
            t = torch.randn(*size, generator=g, device=device, dtype=dtype).mul_(scale)
            return torch.nn.Parameter(t, requires_grad=False)

        def ones():
            return torch.nn.Parameter(torch.ones(s.hidden, device=device, dtype=dtype),
                                      requires_grad=False)

        qkv = (s.heads + 2 * s.kv_heads) * s.head_dim
        self.embed = w(s.vocab, s.hidden, scale=1.0)
        self.lm_head = w(s.hidden, s.vocab)
        self.norm = ones()
        self.wqkv = torch.nn.ParameterList(w(s.hidden, qkv) for _ in range(s.layers))
        self.wo = torch.nn.ParameterList(w(s.heads * s.head_dim, s.hidden)
                                         for _ in range(s.layers))
        self.wgu = torch.nn.ParameterList(w(s.hidden, 2 * s.intermediate)
                                          for _ in range(s.layers))
        self.wd = torch.nn.ParameterList(w(s.intermediate, s.hidden) for _ in range(s.layers))
        self.ln1 = torch.nn.ParameterList(ones() for _ in range(s.layers))
        self.ln2 = torch.nn.ParameterList(ones() for _ in range(s.layers))
        self.k_cache = self.v_cache = None
        self.batch = self.context = 0

    def cache_bytes_for(self, batch: int, context: int) -> int:
        s = self.shape
        return 2 * s.layers * batch * s.kv_heads * (context + 1) * s.head_dim \
            * torch.finfo(self.dtype).bits // 8

    def alloc_cache(self, batch: int, context: int):
        """A cache of ``context`` random tokens (plus the step's slot) per sequence."""
        s = self.shape
        self.k_cache = self.v_cache = None
        kv = (s.layers, batch, s.kv_heads, context + 1, s.head_dim)
        self.k_cache = torch.randn(*kv, generator=self.gen, device=self.device, dtype=self.dtype)
        self.v_cache = torch.randn(*kv, generator=self.gen, device=self.device, dtype=self.dtype)
        self.batch, self.context = batch, context
        inv = 1.0 / (s.rope_theta ** (torch.arange(0, s.head_dim, 2).float() / s.head_dim))
        ang = torch.cat([inv, inv]) * context
        self.cos = ang.cos().to(self.dtype).to(self.device).view(1, 1, 1, -1)
        self.sin = ang.sin().to(self.dtype).to(self.device).view(1, 1, 1, -1)

    def layer(self, i: int, x):
        s = self.shape
        B = x.shape[0]
        h = _rms(x, self.ln1[i], s.rms_eps)
        q, k, v = (h @ self.wqkv[i]).split(
            [s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], -1)
        q = _rope(q.view(B, s.heads, 1, s.head_dim), self.cos, self.sin)
        k = _rope(k.view(B, s.kv_heads, 1, s.head_dim), self.cos, self.sin)
        c = self.context
        self.k_cache[i, :, :, c:c + 1] = k
        self.v_cache[i, :, :, c:c + 1] = v.view(B, s.kv_heads, 1, s.head_dim)
        a = F.scaled_dot_product_attention(q, self.k_cache[i], self.v_cache[i],
                                           enable_gqa=s.heads != s.kv_heads)
        x = x + a.reshape(B, s.heads * s.head_dim) @ self.wo[i]
        h = _rms(x, self.ln2[i], s.rms_eps)
        gate, up = (h @ self.wgu[i]).chunk(2, -1)
        return x + (F.silu(gate) * up) @ self.wd[i]

    def forward(self, tokens):
        x = self.embed[tokens]
        for i in range(self.shape.layers):
            x = self.layer(i, x)
        return _rms(x, self.norm, self.shape.rms_eps) @ self.lm_head

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())


    @torch.no_grad()
    def load_hf(self, model, k_cache, v_cache):
        """Copy the weights of a transformers ``LlamaForCausalLM`` and its cached K/V
        (lists per layer of [batch, kv_heads, context, head_dim], post-RoPE) into this step,
        after :meth:`alloc_cache` of that batch and context."""
        m = model.model
        self.embed.copy_(m.embed_tokens.weight)
        self.norm.copy_(m.norm.weight)
        self.lm_head.copy_(model.lm_head.weight.t())
        for i, L in enumerate(m.layers):
            a, f = L.self_attn, L.mlp
            self.wqkv[i].copy_(torch.cat([a.q_proj.weight, a.k_proj.weight,
                                          a.v_proj.weight]).t())
            self.wo[i].copy_(a.o_proj.weight.t())
            self.wgu[i].copy_(torch.cat([f.gate_proj.weight, f.up_proj.weight]).t())
            self.wd[i].copy_(f.down_proj.weight.t())
            self.ln1[i].copy_(L.input_layernorm.weight)
            self.ln2[i].copy_(L.post_attention_layernorm.weight)
            self.k_cache[i, :, :, :self.context] = k_cache[i]
            self.v_cache[i, :, :, :self.context] = v_cache[i]
