"""The host's view of the SpecKV device: the mailbox command protocol of the firmware's
control plane and the DRAM layout it uses (both in ``soc/mailbox.py``, the contract the
firmware's generated ``firmware/mailbox.h`` mirrors), on top of a :class:`host.driver.link.SimLink`.

    dev = Device(link)
    dev.offload(vpn, page_bytes)            # raw FP16 page -> compressed in the device pool
    link.transact([Message(Op.PAGE_RD, ...)])  # demand read: all gateware
    dev.prefetch(vpn, host_addr)            # firmware-queued DMA deposit into host memory
"""

from dataclasses import dataclass

from gateware.bridge.protocol import LINE
from gateware.codec import reference as R
from gateware.common import LINE_BYTES, PAGE_BYTES, PTE_FLAG_RAW
from host.driver.link import LinkError
from soc.mailbox import (DRAM_POOL, DRAM_POOL_END, DRAM_STAGING, MBOX_CMD, MBOX_CMD_ARG, MBOX_CMD_OFFLOAD,
                         MBOX_CMD_PRED_RUN, MBOX_CMD_PREFETCH, MBOX_CMD_SEQ, MBOX_CMD_VPN,
                         MBOX_DMA_FAILED, MBOX_DONE_LEN, MBOX_DONE_SEQ, MBOX_DONE_SLOT,
                         MBOX_DONE_STATUS, MBOX_ERRORS, MBOX_REJECTED, PRED_DRAM_BASE,
                         PRED_DRAM_END, PRED_OUT_STRIDE)


class DeviceError(RuntimeError):
    def __init__(self, msg, status):
        super().__init__(msg)
        self.status = status


@dataclass
class Done:
    status: int
    length: int  # OFFLOAD: compressed bytes
    slot: int    # OFFLOAD: DRAM offset of the slot


class Device:
    def __init__(self, link):
        self.link = link
        self.mbox = link.region("mbox")
        self.ram = link.region("main_ram")
        self.seq = link.cfg_read(self.mbox + 4 * MBOX_CMD_SEQ)

    def _word(self, i):
        return self.mbox + 4 * i

    def command(self, cmd, vpn, src=0, host=0, flags=0, max_cycles=3_000_000, poll=250):
        """Post one command and wait for its completion; returns :class:`Done`."""
        self.link.cfg_write_block(self._word(MBOX_CMD_VPN),
                                  [vpn, src, host & 0xFFFFFFFF, host >> 32, flags])
        return self._post(cmd, max_cycles, poll, what=f"command {cmd} (vpn {vpn})")

    def _post(self, cmd, max_cycles=3_000_000, poll=250, what=None):
        w = self.link.cfg_write
        w(self._word(MBOX_CMD), cmd)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        w(self._word(MBOX_CMD_SEQ), self.seq)  # last: the firmware acts on the sequence
        start = self.link.cycle
        while self.link.cfg_read(self._word(MBOX_DONE_SEQ)) != self.seq:
            if self.link.cycle - start > max_cycles:
                raise LinkError(f"{what or f'command {cmd}'} not completed in {max_cycles} cycles")
            self.link.run(poll)
        r = self.link.cfg_read
        return Done(r(self._word(MBOX_DONE_STATUS)), r(self._word(MBOX_DONE_LEN)),
                    r(self._word(MBOX_DONE_SLOT)))

    def command_words(self, cmd, words, **kw):
        """Post a command whose arguments are ``words`` (command words 3, 4, ...)."""
        self.link.cfg_write_block(self._word(MBOX_CMD_ARG), words)
        return self._post(cmd, **kw)

    def check(self, done, what):
        """Raise :class:`DeviceError` naming ``what`` if ``done`` failed; else return it."""
        if done.status:
            why = (MBOX_ERRORS.get(done.status, "?") if done.status < MBOX_DMA_FAILED
                   else f"DMA status {done.status & 0xFF}")
            raise DeviceError(f"{what} failed: {why} (status 0x{done.status:x})", done.status)
        return done

    def offload(self, vpn, page, staging_slot=0, check=True, raw=False):
        """Write a raw 4 KiB page into a staging slot, then have the firmware compress it
        (``raw``: copy it as is) into the pool and map it."""
        if len(page) != PAGE_BYTES:
            raise ValueError(f"a page is {PAGE_BYTES} bytes, got {len(page)}")
        src = DRAM_STAGING + staging_slot * PAGE_BYTES
        self.link.mem_write(self.ram + src, bytes(page))
        done = self.command(MBOX_CMD_OFFLOAD, vpn, src=src, flags=PTE_FLAG_RAW if raw else 0)
        return self.check(done, f"offload of vpn {vpn}") if check else done

    def prefetch(self, vpn, host_addr, check=True):
        done = self.command(MBOX_CMD_PREFETCH, vpn, host=host_addr)
        return self.check(done, f"prefetch of vpn {vpn}") if check else done

    def pred_run(self, kind, records, reset=True, l1=4, cfu=True, max_cycles=400_000_000):
        """Run predictor ``kind`` (enum pred_kind code) in firmware over ``records``, a list of
        (s, layer, n_pages, k, acc): returns (predictions per record, timer cycles per record).
        ``reset``: reset the predictor first, for an L1 window of ``l1`` pages (0..255), with
        the LSTM on the custom function unit (``cfu``, where the SoC has one) or in plain C."""
        if not 0 <= l1 <= 255:
            raise ValueError(f"L1 window of {l1} pages: must be 0..255")
        import numpy as np
        words = []
        for s, layer, n_pages, k, acc in records:
            words += [s, layer, n_pages, k, len(acc)] + [int(p) for p in acc]
        blob = np.asarray(words, dtype="<u2").tobytes()
        blob += bytes(-len(blob) % LINE)
        out = PRED_DRAM_BASE + ((len(blob) + PAGE_BYTES - 1) & ~(PAGE_BYTES - 1))
        if out + len(records) * PRED_OUT_STRIDE > PRED_DRAM_END:
            raise ValueError("too many records for the predictor test region")
        self.link.mem_write(self.ram + PRED_DRAM_BASE, blob)
        done = self.command_words(MBOX_CMD_PRED_RUN,  # words MBOX_PRED_ARG .. MBOX_PRED_OUT
                                  [kind | (int(reset) << 8) | (int(not cfu) << 9) | (l1 << 16),
                                   PRED_DRAM_BASE,
                                   len(records), out], max_cycles=max_cycles, poll=20_000)
        self.check(done, f"predictor run (kind {kind})")
        n_bytes = len(records) * PRED_OUT_STRIDE
        raw = self.link.mem_read(self.ram + out, (n_bytes + LINE - 1) & ~(LINE - 1))[:n_bytes]
        o = np.frombuffer(raw, dtype="<u2").reshape(len(records), PRED_OUT_STRIDE // 2)
        preds = [o[i, 1:1 + o[i, 0]].tolist() for i in range(len(records))]
        cycles = (o[:, 33].astype(np.int64) | (o[:, 34].astype(np.int64) << 16)).tolist()
        return preds, cycles

    def rejected(self):
        return self.link.cfg_read(self._word(MBOX_REJECTED))


assert PAGE_BYTES % LINE == 0


def pool_pages(codec: str, tokens: int = 16, channels: int = 64) -> int:
    """Device pages the pool (``DRAM_POOL`` .. ``DRAM_POOL_END``) holds in ``codec``: its
    fixed page length rounded up to the pool's 64-byte extents (a variable-length mode
    counts at its largest, header + raw page + CRC)."""
    if codec == "raw":
        return (DRAM_POOL_END - DRAM_POOL) // PAGE_BYTES     # stored as is (PTE_FLAG_RAW)
    n = R.page_length(R.MODES[codec], tokens, channels) or (PAGE_BYTES + LINE_BYTES)
    return (DRAM_POOL_END - DRAM_POOL) // (-(-n // LINE_BYTES) * LINE_BYTES)
