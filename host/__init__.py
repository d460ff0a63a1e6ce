"""The host side of SpecKV: everything that runs on the machine the device is attached to.

Subpackages, one job each; imports point down the list (``tests/test_layers.py`` checks):

- ``host.driver``     the device layer: the link (emulated CXL/PCIe or a board's tunnel),
                      the mailbox command protocol, the hint encoding;
- ``host.traces``     KV traces: the model, capture, the workloads, the file format, Quest
                      page selection, value rotation;
- ``host.prefetch``   Python references of the firmware's predictors and speculation
                      engine, and the LSTM's training and export;
- ``host.codec_eval`` the codec's effect on a real model (perplexity, ratio);
- ``host.replayer``   trace replay against a backend (model, rtl, board), its data check
                      and reports; ``host/replay.py`` is its command line;
- ``host.serving``    the GPU's side of a step: a LLaMA decode step in plain torch (timed
                      by ``bench/gpu_step_time.py``).
"""
