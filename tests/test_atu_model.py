"""ATU reference model: PTE format, parameter checks, faults, replacement policies, counters."""

import pytest

from gateware.atu.model import (
    ATUModel, ATUParams, PTE, SparseMemory, pack_pte, lfsr_next, LFSR_SEED,
    FAULT_NONE, FAULT_UNMAPPED, FAULT_INVALID, FAULT_BAD_PTE, FAULT_BUS_ERROR)


def make(entries=4, policy="lru", **kw):
    m = ATUModel(entries=entries, policy=policy, vpn_width=12, paddr_width=24,
                 port_bytes=1 << 16, **kw)
    m.configure(pt_base=0x1000, pt_entries=64, dram_base=0x10000, dram_size=0x20000)
    return m


def test_pte_pack_unpack_roundtrip():
    v = pack_pte(0x123440, 4112, flags=0x55)
    assert v & 1 == 1
    assert PTE.unpack(v) == PTE(valid=True, flags=0x55, length=4112, paddr=0x123440)
    assert PTE.unpack(pack_pte(0x40, 1, valid=False)).valid is False
    top = pack_pte(((1 << 40) - 1) << 6, 0xFFFF, 0x7F)
    assert top == 2**64 - 1


@pytest.mark.parametrize("args, msg", [
    ((0x41, 8), "aligned"), ((1 << 46, 8), "slot field"), ((0x40, 1 << 16), "length"),
    ((0x40, 8, 128), "flags")])
def test_pte_pack_rejects(args, msg):
    with pytest.raises(ValueError, match=msg):
        pack_pte(*args)


@pytest.mark.parametrize("kw, msg", [
    (dict(entries=0), "entries"), (dict(entries=65), "entries"), (dict(entries=2.0), "entries"),
    (dict(policy="plru"), "policy"), (dict(policy="random", entries=6), "power-of-two"),
    (dict(vpn_width=0), "vpn_width"), (dict(vpn_width=32), "vpn_width"),
    (dict(paddr_width=6), "paddr_width"), (dict(paddr_width=47), "paddr_width"),
    (dict(tag_width=0), "tag_width"), (dict(max_length=0), "max_length"),
    (dict(max_length=1 << 16), "max_length")])
def test_params_rejected(kw, msg):
    with pytest.raises(ValueError, match=msg):
        ATUParams(**kw)


def test_sparse_memory_unaligned():
    mem = SparseMemory()
    mem.write(5, bytes(range(1, 20)))
    assert mem.read(4, 21) == b"\0" + bytes(range(1, 20)) + b"\0"
    mem.write64(3, 0x1122334455667788)
    assert mem.read64(3) == 0x1122334455667788
    assert mem.read(0, 3) == b"\0\0\0"


def test_every_fault_code():
    m = make()
    m.map(1, 0x10000, 100, flags=3)
    assert m.lookup(1) == (FAULT_NONE, 0x10000, 100, 3, False)
    assert m.lookup(1).hit
    assert m.lookup(64).fault == FAULT_UNMAPPED            # vpn >= pt_entries
    assert m.lookup(2).fault == FAULT_INVALID              # never written: valid = 0
    m.map(3, 0x10000, 0)
    m.map(4, 0x10000, m.p.max_length + 1)
    m.map(5, 0xFFC0, 64)                                    # below the window
    m.map(6, 0x30000 - 64, 65)                              # crosses the window end
    m.map(7, 0x30000, 1)                                    # at the window end
    for v in (3, 4, 5, 6, 7):
        assert m.lookup(v).fault == FAULT_BAD_PTE, v
    m.memory.write64(m.pte_addr(8), 1 | (1 << 8) | (1 << 42))   # slot beyond paddr_width
    m.configure(dram_size=0xFFFFFF)
    assert m.lookup(8).fault == FAULT_BAD_PTE
    m.map(9, 0x30000 - 64, 64)                              # exactly fits: fine
    assert m.lookup(9).fault == FAULT_NONE
    m.configure(pt_base=(1 << 16) - 8 * 10)                 # PTEs 10.. beyond the port
    walks = m.walks
    assert m.lookup(10).fault == FAULT_BUS_ERROR
    assert m.walks == walks                                  # no memory read
    assert (m.last_fault_code, m.last_fault_vpn) == (FAULT_BUS_ERROR, 10)


def test_faults_not_cached_and_counters():
    m = make()
    assert m.lookup(2).fault == FAULT_INVALID
    m.map(2, 0x10040, 64)
    assert m.lookup(2) == (FAULT_NONE, 0x10040, 64, 0, False)
    assert m.lookup(100).fault == FAULT_UNMAPPED
    assert m.counters() == dict(hits=0, misses=3, walks=2, faults=2,
                                last_fault_code=FAULT_UNMAPPED, last_fault_vpn=100)
    m.clear_counters()
    assert m.counters() == dict(hits=0, misses=0, walks=0, faults=0,
                                last_fault_code=0, last_fault_vpn=0)


def test_stale_entry_until_invalidated():
    m = make()
    m.map(1, 0x10000, 64)
    m.lookup(1)
    m.map(1, 0x20000, 128, invalidate=False)                # software forgot: TLB is stale
    assert m.lookup(1) == (FAULT_NONE, 0x10000, 64, 0, True)
    m.invalidate(1)
    assert m.lookup(1) == (FAULT_NONE, 0x20000, 128, 0, False)
    m.unmap(1)
    assert m.lookup(1).fault == FAULT_INVALID


def test_config_change_flushes_only_when_changed():
    m = make()
    m.map(1, 0x10000, 64)
    m.lookup(1)
    m.configure(pt_entries=64)                               # same value: no flush
    assert m.lookup(1).hit
    m.configure(dram_size=0x20040)
    assert not m.lookup(1).hit


def _fill(m, vpns):
    for v in range(32):
        m.map(v, 0x10000 + 64 * v, 64)
    return [m.lookup(v).hit for v in vpns]


def test_lru_policy():
    m = make(entries=4, policy="lru")
    _fill(m, [0, 1, 2, 3])
    assert m.lookup(0).hit                                   # 1 is now least recent
    assert not m.lookup(4).hit                               # evicts 1
    assert [m.lookup(v).hit for v in (0, 2, 3, 4)] == [True] * 4
    assert not m.lookup(1).hit                               # evicts 0 (LRU after the hits)
    assert not m.lookup(0).hit


def test_fifo_policy():
    m = make(entries=4, policy="fifo")
    _fill(m, [0, 1, 2, 3])
    assert m.lookup(0).hit                                   # hits don't matter to FIFO
    assert not m.lookup(4).hit                               # evicts entry 0 (vpn 0)
    assert not m.lookup(0).hit                               # evicts entry 1 (vpn 1)
    assert [m.lookup(v).hit for v in (2, 3, 4, 0)] == [True] * 4
    m.invalidate(3)                                          # entry 3 is free again
    assert not m.lookup(5).hit                               # goes to the invalid slot
    assert m.tags[3] == 5 and m.fifo_ptr == 2


def test_random_policy_uses_lfsr():
    m = make(entries=4, policy="random")
    _fill(m, [0, 1, 2, 3])
    state = LFSR_SEED
    for v in range(10, 20):
        victim = state & 3
        state = lfsr_next(state)
        assert not m.lookup(v).hit
        assert m.tags[victim] == v
    assert m.lfsr == state


def test_lfsr_period():
    s, seen = LFSR_SEED, 0
    while True:
        s = lfsr_next(s)
        seen += 1
        if s == LFSR_SEED:
            break
    assert seen == 2**16 - 1


def test_invalidate_all_and_lookup_range():
    m = make()
    _fill(m, [0, 1])
    m.invalidate_all()
    assert not m.lookup(0).hit
    with pytest.raises(ValueError, match="vpn"):
        m.lookup(1 << 12)


def test_lru_order_equals_age_permutation():
    """The model keeps LRU as an order; the core as per-entry ages (touch: younger entries
    age by one, the touched one becomes 0; victim = age N-1). Same decisions, step by step."""
    import random
    rng = random.Random(7)
    m = make(entries=8, policy="lru")
    for v in range(64):
        m.map(v, 0x10000 + 64 * v, 64)
    ages = list(range(8))                                    # reset: age[i] = i
    for step in range(3000):
        op = rng.random()
        if op < 0.05:
            m.invalidate(rng.randrange(64))
        elif op < 0.06:
            m.invalidate_all()
        else:
            valid_before = list(m.valid)
            full = all(valid_before)
            victim_by_age = ages.index(7) if full else valid_before.index(False)
            r = m.lookup(rng.choice(range(16)) if rng.random() < 0.8 else rng.randrange(64))
            touched = next(k for k in range(8) if m.valid[k] and m.data[k][0] == r.paddr)
            if not r.hit:
                assert touched == victim_by_age, step
            a = ages[touched]
            ages = [g + 1 if g < a else g for g in ages]
            ages[touched] = 0
        assert m.ages == ages, step
