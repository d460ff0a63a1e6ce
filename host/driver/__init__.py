"""The device layer: how the host talks to a SpecKV device.

- ``link``    the :class:`~host.driver.link.Link` interface (messages of
              ``gateware/bridge/protocol.py``, ``transact``, config and memory access) and
              :class:`~host.driver.link.SimLink`, the emulated CXL/PCIe link of the Verilator SoC;
- ``tunnel``  :class:`~host.driver.tunnel.TunnelLink`, the same interface over a board's
              message tunnel through ``litex_server``, and its :class:`RemoteTarget`;
- ``device``  the firmware's mailbox commands (offload, prefetch, predictor runs);
- ``hints``   the per-step hint chunks and the speculation configuration words.

The wire contracts come from ``soc/mailbox.py`` and ``gateware/``; nothing here imports
another ``host`` subpackage.
"""
