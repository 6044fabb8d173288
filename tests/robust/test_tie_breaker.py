"""Issue 14: 64-bit STUN values keep every bit, whether the message goes through the Binding batch or
through the one-by-one parser, and relayed in a Send indication or not."""

from __future__ import annotations

from analyzer import analyze
from tests.dissect import stunbuild as sb
from tests.robust.crafted import CLIENT, PEER, SERVER, check, send_indication, udp, write

TIES = [0xFFFFFFFFFFFFFFFF, 2**53 + 1, 0x8000000000000001, 12345]


def _capture(tmp_path):
    frames = []
    for i, tie in enumerate(TIES):
        tid = bytes([i + 1]) * 12
        # batch path: plain checks; one-by-one path: the same check with a PRIORITY of 3 bytes, which the
        # batch hands to the full parser; relayed: inside a Send indication
        frames.append(udp(CLIENT, 50000, PEER, 50001, check(tie, tid)))
        bad = check(tie, bytes([i + 0x40]) * 12, extra=[sb.attr(0x0024, b"\x01\x02\x03")])
        frames.append(udp(CLIENT, 50000, PEER, 50001, bad))
        relayed = send_indication(PEER, 50001, check(tie, bytes([i + 0x80]) * 12))
        frames.append(udp(CLIENT, 50000, SERVER, 3478, relayed))
    return write(tmp_path / "ties.pcap", frames)


def test_tie_breakers_keep_every_bit(tmp_path):
    a = analyze(_capture(tmp_path))
    st = a.stun
    assert str(st.tie_breaker.dtype) == "UInt64"
    binding = st[st.method == "Binding"]
    assert len(binding) == 3 * len(TIES)
    got = binding.tie_breaker.tolist()
    want = [t for t in TIES for _ in range(3)]
    assert got == want
    assert binding.relayed.tolist() == [False, False, True] * len(TIES)
    # the one-by-one rows really went through the full parser (their PRIORITY is malformed)
    assert binding.malformed.notna().tolist() == [False, True, False] * len(TIES)


def test_every_table_builds_with_huge_tie_breakers(tmp_path):
    a = analyze(_capture(tmp_path))
    for name in a.tables:
        getattr(a, name)
    a.timeline()
    a.to_json()
    assert '"tie_breaker": 18446744073709551615' in a.to_json()
