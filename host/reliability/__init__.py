"""Reliability: the decompressor fuzzer (``fuzz.py``, ``speckv-fuzz``) and replays over a
faulty link (``links.py``, ``speckv-link-faults``)."""
