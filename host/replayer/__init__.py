"""Trace replay: the host's side of every decode step of a KV trace, against a backend.

- ``engine``       the replay loop (offload, tiered reads, hints) and ``compare``;
- ``backends``     the :class:`~host.replayer.backends.Backend` interface and its three
                   implementations: ``model`` (reference models), ``rtl`` (Verilator SoC),
                   ``board`` (an FPGA board through its tunnel);
- ``page_check``   the data check of every page read;
- ``report``       the summary table and plots;
- ``equivalence``  rtl == model, step by step, on a whole trace.

``host/replay.py`` is the command line.
"""
