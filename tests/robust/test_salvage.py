"""Issue 14: one bad row never ends the analysis. A stage that cannot handle a row: the row is left
out, counted as damaged in the summary with its frame, said in the console verdict, and every table
is still built."""

from __future__ import annotations

import io
import struct

from analyzer import analyze
from analyzer.ice import allocations
from analyzer.report.console import console, print_verdict
from analyzer.salvage import DAMAGE_KIND
from tests.conftest import CAPTURES
from tests.dissect import stunbuild as sb
from tests.robust.crafted import CLIENT, SERVER, udp, write

CALL = CAPTURES / "external-via-relay" / "client-a.pcap"


def _stun_frames(path) -> list[int]:
    return analyze(path).stun.frame.tolist()


def test_a_row_the_allocations_stage_cannot_handle_is_left_out(monkeypatch):
    frames = _stun_frames(CALL)
    bad = frames[len(frames) // 2]
    real = allocations.build_allocations

    def fussy(stun, traffic):
        if (stun.frame == bad).any():
            raise TypeError("int() argument must be a string, a bytes-like object or a real number, not 'NAType'")
        return real(stun, traffic)

    monkeypatch.setattr(allocations, "build_allocations", fussy)
    a = analyze(CALL)
    for name in a.tables:  # every table builds, the ICE and topology ones through the allocations
        getattr(a, name)
    assert bad not in a.stun.frame.tolist()
    assert len(a.stun) == len(frames) - 1
    s = a.captures[0]
    assert s.damaged[DAMAGE_KIND] == 1
    assert [n for n in s.damage_notes if "could not use" in n] == [
        f"frame {bad}: a stun row the allocations table could not use (TypeError: int() argument must be a "
        "string, a bytes-like object or a real number, not 'NAType'); left out"
    ]
    assert int(a.summary.damaged.iloc[0]) == sum(s.damaged.values())
    buf = io.StringIO()
    print_verdict(a, console(buf))
    text = buf.getvalue()
    assert f"1 {DAMAGE_KIND} (the verdict rests on the others):" in text
    assert f"frame {bad}: a stun row the allocations table" in text
    assert len(a.calls) >= 1  # the call is still there


def test_a_failure_no_row_explains_is_raised(monkeypatch):
    def broken(stun, traffic):
        raise ValueError("a bug, not damage")

    monkeypatch.setattr(allocations, "build_allocations", broken)
    a = analyze(CALL)
    try:
        _ = a.allocations
    except ValueError as e:
        assert str(e) == "a bug, not damage"
    else:
        raise AssertionError("a failure without a bad row must not be hidden")
    assert not a.captures[0].damaged.get(DAMAGE_KIND)


def test_channel_bind_without_peer_never_ends_the_analysis(tmp_path):
    """Issue 21's case: ChannelBind with CHANNEL-NUMBER and no XOR-PEER-ADDRESS, then its success."""
    tid = bytes(range(12))
    alloc = b"a" * 12
    granted = [sb.xor_addr(0x0016, SERVER, 40000, alloc), sb.attr(0x000D, struct.pack("!I", 600))]
    c, s = (CLIENT, 50000), (SERVER, 3478)
    frames = [
        udp(*c, *s, sb.message("Allocate", "request", [sb.attr(0x0019, b"\x11\0\0\0")], tid=alloc)),
        udp(*s, *c, sb.message("Allocate", "success", granted, tid=alloc)),
        udp(*c, *s, sb.message("ChannelBind", "request", [sb.attr(0x000C, b"\x40\x00\0\0")], tid=tid)),
        udp(*s, *c, sb.message("ChannelBind", "success", [], tid=tid)),
        udp(*c, *s, sb.channeldata(0x4000, sb.rtp(1, 160, 0x1234))),
    ]
    a = analyze(write(tmp_path / "bind.pcap", frames))
    for name in a.tables:
        getattr(a, name)
    a.to_json()
    a.to_html(tmp_path / "r.html")
    assert len(a.allocations) == 1


def test_a_packet_a_dissector_cannot_handle_is_counted(monkeypatch):
    from analyzer.dissect.control import ControlDissector
    from analyzer.dissect.stage import DAMAGE_KIND as PACKETS

    frames = _stun_frames(CALL)
    bad = frames[3]
    real = ControlDissector.stun

    def fussy(self, w, data, depth=0):
        if w.frame == bad and not w.relayed:
            raise IndexError("index out of range")
        return real(self, w, data, depth)

    monkeypatch.setattr(ControlDissector, "stun", fussy)
    a = analyze(CALL)
    s = a.captures[0]
    assert s.damaged[PACKETS] == 1
    assert f"frame {bad}: a packet the dissectors could not handle (IndexError: index out of range); left out" in (
        s.damage_notes
    )
    buf = io.StringIO()
    print_verdict(a, console(buf))
    assert f"1 {PACKETS} (the verdict rests on the others):" in buf.getvalue()
    assert a.stun.frame.tolist() == [f for f in frames if f != bad]
    for name in a.tables:
        getattr(a, name)
