"""Reliability: the decompressor fuzzer (``fuzz.py``, ``speckv-fuzz``) and replays under
link faults and device resets beside clean ones (``faults.py``, ``speckv-faults``)."""
