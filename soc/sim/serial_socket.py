"""Serve the simulated SoC's serial line on a TCP socket, as a board's USB UART would be.

The board-link simulation model (``soc.board_link.build_sim_link``, native loop built with
SPK_BOARD_LINK) has a real 8N1 serial line on its UARTBone. ``SerialSocket`` runs the model in
a background thread and moves the line's bytes to and from one TCP client, so the real host
tools attach to it unchanged:

    litex_server --uart --uart-port socket://127.0.0.1:PORT

The simulation runs continuously (the firmware runs whether or not a client is connected), in
slices of ``slice_cycles``; bytes are exchanged with the socket between slices.
"""

import select
import socket
import threading


class SerialSocket:
    def __init__(self, drv, host="127.0.0.1", port=0, slice_cycles=4000, max_cycles=None):
        self.drv = drv
        self.slice_cycles = slice_cycles
        self.max_cycles = max_cycles
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(1)
        self.server.setblocking(False)
        self.address = self.server.getsockname()
        self.client = None
        self.error = None
        self.bytes_in = self.bytes_out = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sim-serial", daemon=True)

    @property
    def url(self):
        return f"socket://{self.address[0]}:{self.address[1]}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        for s in (self.client, self.server):
            if s is not None:
                s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _loop(self):
        try:
            while not self._stop.is_set():
                if self.max_cycles is not None and self.drv.cycle >= self.max_cycles:
                    raise RuntimeError(f"simulation budget of {self.max_cycles} cycles spent")
                if self.client is None:
                    r, _, _ = select.select([self.server], [], [], 0)
                    if r:
                        self.client, _ = self.server.accept()
                        self.client.setblocking(False)
                else:
                    r, _, _ = select.select([self.client], [], [], 0)
                    if r:
                        data = self.client.recv(65536)
                        if not data:       # client gone; wait for the next one
                            self.client.close()
                            self.client = None
                        else:
                            self.bytes_in += len(data)
                            self.drv.uart_write(data)
                self.drv.run(self.slice_cycles)
                out = self.drv.uart_read()
                if out and self.client is not None:
                    self.client.setblocking(True)
                    self.client.sendall(out)
                    self.client.setblocking(False)
                    self.bytes_out += len(out)
        except Exception as e:  # reported to the test / caller
            self.error = e
