"""Reliability: the decompressor fuzzer (``fuzz.py``, ``speckv-fuzz``)."""
