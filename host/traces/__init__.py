"""KV traces: what a real model's decode steps read, recorded once and replayed many times.

- ``model``      SmolLM2-135M (the embedded GGUF) loaded for capture and evaluation;
- ``capture``    one generation -> a trace file (KV pages, accesses, Quest selections);
- ``workloads``  the four workloads (chatbot, summarization, codegen, qa) and their capture;
- ``format``     the trace file format (safetensors + JSON metadata; ``traces/README.md``);
- ``sparse``     Quest-style top-k page selection;
- ``rotation``   the value rotation folded into the model's weights.
"""
