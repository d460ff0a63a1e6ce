"""One source for each contract: the firmware headers generated from soc/mailbox.py and
gateware/common.py are up to date, the contract modules stay in their layer, the host and
the firmware agree with them, and the firmware's modules call only downwards."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateware import common
from soc import mailbox
from soc.cheader import constants

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"


@pytest.mark.parametrize("name", ["mailbox.h", "common.h"])
def test_generated_headers_are_up_to_date(name):
    text = mailbox.headers()[FIRMWARE / name]
    assert (FIRMWARE / name).read_text() == text, \
        f"firmware/{name} is stale: run `python -m soc.mailbox` and commit it"


def test_a_changed_word_makes_the_header_stale(monkeypatch):
    committed = (FIRMWARE / "mailbox.h").read_text()
    assert mailbox.headers()[FIRMWARE / "mailbox.h"] == committed
    monkeypatch.setattr(mailbox, "MBOX_HINT_SEQ", mailbox.MBOX_HINT_SEQ + 1)
    assert mailbox.headers()[FIRMWARE / "mailbox.h"] != committed
    monkeypatch.setattr(common, "PTE_LEN_SHIFT", 9)
    assert mailbox.headers()[FIRMWARE / "common.h"] != (FIRMWARE / "common.h").read_text()


def test_check_command_detects_a_stale_header(tmp_path, capsys):
    assert mailbox.main(["--out-dir", str(tmp_path)]) == 0
    assert mailbox.main(["--out-dir", str(tmp_path), "--check"]) == 0
    p = tmp_path / "mailbox.h"
    p.write_text(p.read_text().replace("#define MBOX_CMD_SEQ         1u",
                                       "#define MBOX_CMD_SEQ         2u"))
    assert mailbox.main(["--out-dir", str(tmp_path), "--check"]) == 1
    assert "STALE" in capsys.readouterr().out


def test_every_constant_reaches_the_header_with_its_value():
    text = (FIRMWARE / "mailbox.h").read_text()
    names = [n for n, *_ in constants(mailbox) if n]
    assert {"MBOX_CMD_SEQ", "MBOX_HINT_PAYLOAD", "HERR_CONFIG", "REC_EPOCH", "DRAM_PT",
            "SPEC_LAMBDA_Q16", "TAG_MAGIC", "SPEC_UCB_ARMS"} <= set(names)
    for name in names:
        m = re.search(rf"^#define {name}\s+(\{{[^}}]*\}}|\S+)", text, re.M)
        assert m, name
        value = getattr(mailbox, name)
        if isinstance(value, tuple):
            assert m.group(1) == "{" + ", ".join(str(v) for v in value) + "}", name
        else:
            assert int(m.group(1).rstrip("u"), 0) == value, name
    assert "#define PTE_SLOT_SHIFT       24u" in (FIRMWARE / "common.h").read_text()


def test_codes_and_records_have_descriptions():
    assert set(mailbox.MBOX_ERRORS) == set(range(1, 7))
    assert set(mailbox.HINT_ERRORS) == set(range(1, 8))
    assert all(mailbox.MBOX_ERRORS.values()) and all(mailbox.HINT_ERRORS.values())
    assert mailbox.STEP_RECORD[0] == "step" and len(mailbox.STEP_RECORD) == 17
    assert mailbox.MBOX_STEP_RECORD + len(mailbox.STEP_RECORD) == mailbox.MBOX_WORDS


def test_contract_modules_import_no_host_and_no_migen():
    code = ("import sys, soc.mailbox, gateware.common; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('host', 'migen', 'litex')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shared_constants_have_one_definition():
    """PAGE = 4096 and friends are imported from gateware/common.py, not redefined."""
    pat = re.compile(r"^\s*(PAGE\w*|LINE\w*|HOST_LINE|PTE_\w+)\s*=\s*(4096|64|0x1000)\b", re.M)
    found = []
    for top in ("gateware", "soc", "host"):
        for p in (ROOT / top).rglob("*.py"):
            if p != ROOT / "gateware" / "common.py":
                found += [f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
                          for m in pat.finditer(p.read_text())]
    assert not found


def test_host_and_models_read_the_contract():
    from gateware.atu import model as atu
    from gateware.bridge import protocol
    from gateware.dma import model as dma
    from host.driver import device, hints, link
    from host.prefetch import speculation
    from host.replayer import backends
    from host.prefetch import KINDS
    from host.prefetch import core as prefetch
    from soc import soc

    assert atu.pack_pte is common.pack_pte and atu.FAULT_BAD_PTE == common.FAULT_BAD_PTE
    assert dma.HOST_LINE == protocol.LINE == common.LINE_BYTES
    assert dma.ST_CORRUPT == common.ST_CORRUPT
    assert backends.PAGE == device.PAGE_BYTES == common.PAGE_BYTES
    assert hints.HINT_MAGIC == mailbox.HINT_MAGIC and link.MBOX_READY == mailbox.MBOX_READY
    assert speculation.STEP_RECORD is mailbox.STEP_RECORD
    assert soc.MAILBOX_SIZE == 4 * mailbox.MBOX_WORDS and soc.VPN_WIDTH == mailbox.VPN_WIDTH
    # the predictors (host/prefetch, firmware/predict.h) hold what the contract allows
    assert mailbox.SPEC_MAX_KIND == len(KINDS) - 1
    assert mailbox.SPEC_MAX_STREAMS <= prefetch.MAX_STREAMS
    assert mailbox.SPEC_MAX_PAGES == prefetch.MAX_PAGES
    # the XLATE answer carries the PTE's length and flags fields
    assert protocol.xlate_fields(protocol.xlate_value(0xFFFF, 0x7F, True)) == (0xFFFF, 0x7F, True)
    assert protocol.xlate_value(1, 1, True) == 1 | 1 << 16 | 1 << 23


def _firmware_calls():
    """Firmware module -> the other modules whose headers it includes."""
    mods = {p.stem for p in FIRMWARE.glob("*.c")}
    deps = {}
    for m in mods:
        text = (FIRMWARE / f"{m}.c").read_text()
        inc = {Path(h).stem for h in re.findall(r'#include "([^"]+)"', text)}
        deps[m] = (inc & mods) - {m}
    return deps


def test_firmware_modules_call_only_downwards():
    deps = _firmware_calls()
    assert deps["pool"] == set(), "the page store calls nothing above it"
    assert "dispatch" not in deps["speculate"] and "pool" in deps["speculate"]
    assert {"pool", "speculate", "predict"} <= deps["dispatch"]
    seen, done = set(), set()

    def visit(m, path):
        assert m not in seen or m in done, f"firmware include cycle: {' -> '.join(path)}"
        if m in seen:
            return
        seen.add(m)
        for d in sorted(deps[m]):
            visit(d, path + [d])
        done.add(m)

    for m in sorted(deps):
        visit(m, [m])
