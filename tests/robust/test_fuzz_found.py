"""Crashes the fuzzer found, each kept as a regression test (the capture it mutated, the damage)."""

from __future__ import annotations

import struct

import pytest

from analyzer import analyze
from tests.capture.writers import _block, epb, shb
from tests.dissect import stunbuild as sb
from tests.robust.crafted import udp


def _idb(tsresol: int | None, tsoffset: int | None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack("<HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
    if tsoffset is not None:
        opts += struct.pack("<HHq", 14, 8, tsoffset)
    return _block("<", 1, struct.pack("<HHI", 1, 0, 0) + opts + struct.pack("<HH", 0, 0))


@pytest.mark.parametrize("tsoffset", [-(2**62), 2**62, 2**63 - 1])
def test_pcapng_tsoffset_beyond_int64_time(tmp_path, tsoffset):
    """seed 2 run 65: an IDB's if_tsoffset of about 2**62 s gave OverflowError in capture/formats.py."""
    frame = udp("10.0.0.1", 5000, "10.0.0.2", 3478, sb.message("Binding", "request", []))
    p = tmp_path / "off.pcapng"
    p.write_bytes(
        shb() + _idb(6, tsoffset) + epb(0, 1_700_000_000_000_000, frame) + epb(0, 1_700_000_000_020_000, frame)
    )
    a = analyze(p)
    assert a.captures[0].packets == 2
    assert len(a.stun) == 2


def test_pcapng_tsresol_0x7f(tmp_path):
    """Issue 21's neighbour of the above: if_tsresol 0x7F (10**-127 s) overflowed in capture/formats.py."""
    frame = udp("10.0.0.1", 5000, "10.0.0.2", 3478, sb.message("Binding", "request", []))
    p = tmp_path / "res.pcapng"
    p.write_bytes(shb() + _idb(0x7F, None) + epb(0, 1_700_000_000_000_000, frame))
    a = analyze(p)
    assert a.captures[0].packets == 1
    assert len(a.stun) == 1
