"""The codec's effect on a real model: perplexity with the KV cache round-tripped through
each codec mode, and the compression ratio it reaches (``perplexity``)."""
