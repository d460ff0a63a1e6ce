"""The shapes of the LLaMA-architecture models the serving side knows (no torch needed):
what sets a decode step's cost and its KV bytes."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Shape:
    """The shapes of a LLaMA-architecture model that set a decode step's cost."""
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5

    def params(self) -> int:
        """Parameters (embedding and LM head counted once each, untied)."""
        attn = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim \
            + self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (attn + mlp + 2 * self.hidden) + 2 * self.vocab * self.hidden \
            + self.hidden

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """KV-cache bytes one token adds, all layers (K and V)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    def as_dict(self) -> dict:
        return asdict(self)


# The models the serving model and the benchmark know. SmolLM2-135M is the traces' model
# (its config.json); Llama-2 7B and 13B are the paper's shapes (their config.json files);
# Llama-3-8B an 8B model with grouped-query attention (8 KV heads; its config.json).
SHAPES = {
    "smollm2-135m": Shape(layers=30, hidden=576, heads=9, kv_heads=3, head_dim=64,
                          intermediate=1536, vocab=49152, rope_theta=100000.0),
    "llama2-7b": Shape(layers=32, hidden=4096, heads=32, kv_heads=32, head_dim=128,
                       intermediate=11008, vocab=32000),
    "llama2-13b": Shape(layers=40, hidden=5120, heads=40, kv_heads=40, head_dim=128,
                        intermediate=13824, vocab=32000),
    "llama3-8b": Shape(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128,
                       intermediate=14336, vocab=128256, rope_theta=500000.0),
}


def shape_of(name: str) -> Shape:
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: known are {', '.join(SHAPES)}") from None
