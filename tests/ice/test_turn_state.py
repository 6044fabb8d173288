"""TURN allocation and permission state on crafted captures: deallocation by LIFETIME 0, refused and
unanswered permissions, a ChannelBind without a peer (issue 21), and the verdict of a capture that holds
an allocation but no call. Each expected value is also read back with tshark where tshark decodes it."""

from __future__ import annotations

import itertools
import os
import struct

import pandas as pd

from analyzer import analyze
from tests.conftest import public_capture, tshark_fields
from tests.dissect import stunbuild as sb
from tests.ice.test_scenarios import udp, write

CLIENT, SERVER = ("192.168.1.10", 50000), ("198.51.100.20", 3478)
RELAYED, MAPPED = ("198.51.100.20", 61000), ("203.0.113.5", 40001)
PEER = ("203.0.113.77", 52000)
_tid = itertools.count(0x7100)


def tid() -> bytes:
    return next(_tid).to_bytes(12, "big")


def lifetime(s: int) -> bytes:
    return sb.attr(0x000D, struct.pack("!I", s))


def error(code: int, reason: bytes = b"") -> bytes:
    return sb.attr(0x0009, struct.pack("!HBB", 0, code // 100, code % 100) + reason)


def allocate(t: bytes | None = None) -> list[bytes]:
    t = t or tid()
    req = sb.message("Allocate", "request", [sb.attr(0x0019, b"\x11\0\0\0")], t)
    ok = sb.message(
        "Allocate",
        "success",
        [sb.xor_addr(0x0016, *RELAYED, t), sb.xor_addr(0x0020, *MAPPED, t), lifetime(600)],
        t,
    )
    return [udp(CLIENT, SERVER, req), udp(SERVER, CLIENT, ok)]


def request(method: str, attrs: list[bytes], answer: str | None, answer_attrs: list[bytes] | None = None):
    t = tid()
    out = [udp(CLIENT, SERVER, sb.message(method, "request", attrs, t))]
    if answer:
        out.append(udp(SERVER, CLIENT, sb.message(method, answer, answer_attrs or [], t)))
    return out


def test_refresh_and_allocate_with_lifetime_0_end_the_allocation(tmp_path):
    frames = allocate()  # frames 1, 2
    frames += request("Refresh", [lifetime(0)], "success", [lifetime(0)])  # frames 3, 4: deallocation
    frames += allocate()  # frames 5, 6: a new allocation on the same 5-tuple
    frames += request("Allocate", [lifetime(0)], "success", [lifetime(0)])  # frames 7, 8: MS-TURN's way to end it
    p = write(tmp_path, "dealloc.pcap", frames)
    # the packets as tshark reads them: methods, classes and LIFETIME
    assert [r[1:] for r in tshark_fields(p, ["frame.number", "stun.type", "stun.att.lifetime"])] == [
        ["0x0003", ""], ["0x0103", "600"], ["0x0004", "0"], ["0x0104", "0"],
        ["0x0003", ""], ["0x0103", "600"], ["0x0003", "0"], ["0x0103", "0"],
    ]  # fmt: skip
    al = analyze(p).allocations
    assert list(al.state) == ["deallocated", "deallocated"]
    assert list(al.allocated_frame) == [2, 6] and list(al.deallocated_frame) == [4, 8]
    assert list(al.ended_by) == ["Refresh LIFETIME 0 (frame 3)", "Allocate LIFETIME 0 (frame 7)"]
    assert list(al.lifetime) == [600, 600]
    t0 = pd.Timestamp(1_700_000_000, unit="s", tz="UTC")  # write() spaces frames 20 ms apart from T0
    assert list(al.deallocated_ts) == [t0 + pd.Timedelta(milliseconds=60), t0 + pd.Timedelta(milliseconds=140)]


def test_a_refused_or_unanswered_create_permission_installs_nothing(tmp_path):
    frames = allocate()
    peer = [sb.xor_addr(0x0012, *PEER, b"")]  # IPv4 XOR does not use the transaction id
    refused = [error(403, b"Forbidden")]
    frames += request("CreatePermission", [sb.xor_addr(0x0012, "203.0.113.1", 1, b"")], "error", refused)
    frames += request("CreatePermission", [sb.xor_addr(0x0012, "203.0.113.2", 1, b"")], "error", [])  # no ERROR-CODE
    frames += request("CreatePermission", [sb.xor_addr(0x0012, "203.0.113.3", 1, b"")], None)  # never answered
    frames += request("CreatePermission", peer, "success")  # frames 8, 9
    p = write(tmp_path, "perm.pcap", frames)
    rows = tshark_fields(p, ["frame.number", "stun.type", "stun.att.ipv4", "stun.att.error.class", "stun.att.error"])
    assert [r[1:] for r in rows[2:]] == [
        ["0x0008", "203.0.113.1", "", ""], ["0x0118", "", "4", "3"], ["0x0008", "203.0.113.2", "", ""],
        ["0x0118", "", "", ""], ["0x0008", "203.0.113.3", "", ""], ["0x0008", "203.0.113.77", "", ""],
        ["0x0108", "", "", ""],
    ]  # fmt: skip
    (a,) = analyze(p).allocations.itertuples()
    assert a.permissions == "203.0.113.77 (frame 8)"
    assert a.permissions_not_installed == (
        "203.0.113.1 (frame 3, refused 403 Forbidden frame 4), "
        "203.0.113.2 (frame 5, refused error without ERROR-CODE frame 6), "
        "203.0.113.3 (frame 7, unanswered)"
    )
    assert "CreatePermission error without ERROR-CODE (frame 6)" in a.errors and "nan" not in a.errors


def test_channel_bind_without_peer_address(tmp_path):
    """Issue 21: ChannelBind with CHANNEL-NUMBER and no XOR-PEER-ADDRESS, then its success response."""
    frames = allocate() + request("ChannelBind", [sb.attr(0x000C, b"\x40\x01\0\0")], "success")
    p = write(tmp_path, "chanbind.pcap", frames)
    rows = tshark_fields(p, ["frame.number", "stun.type", "stun.att.channelnum", "stun.att.ipv4"])
    assert [r[1:] for r in rows[2:]] == [["0x0009", "0x4001", ""], ["0x0109", "", ""]]
    a = analyze(p)
    (al,) = a.allocations.itertuples()
    assert al.channels == "0x4001 -> no XOR-PEER-ADDRESS (frame 3)"
    a.to_html(tmp_path / "report.html")
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_permissions_of_the_facebook_relay():
    # ntop_nDPI/stun.pcap (tshark): CreatePermission 192.168.0.102 (frame 71) and 10.36.43.120 (frame 72)
    # refused 403 Forbidden Address (frames 73, 75); 185.170.139.1 (frame 74) answered with success in frame 76
    al = analyze(public_capture("ntop_nDPI/stun.pcap")).allocations
    a = al[(al.client == "192.168.12.169") & (al.client_port == 38123)].iloc[0]
    assert a.permissions == "185.170.139.1 (frame 74), 31.13.86.54 (frame 119)"
    assert a.permissions_not_installed == (
        "192.168.0.102 (frame 71, refused 403 Forbidden Address frame 73), "
        "10.36.43.120 (frame 72, refused 403 Forbidden Address frame 75)"
    )


def _verdict(a) -> str:
    from rich.console import Console

    from analyzer.report.console import print_verdict

    out = Console(width=300, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    print_verdict(a, out)
    return out.export_text()


def test_no_call_verdict_names_the_allocation_it_has(tmp_path):
    # ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap (tshark): Allocate requests over TCP in frames 2-5, none answered
    a = analyze(public_capture("ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap"))
    assert len(a.calls) == 0 and list(a.allocations.state) == ["unanswered"]
    text = _verdict(a)
    assert "No call found: 1 TURN allocation (1 unanswered; first frame 2), but no ICE checks or RTP media" in text
    assert "no TURN allocations" not in text
    a.to_html(tmp_path / "r.html")
    assert "1 TURN allocation (1 unanswered; first frame 2)" in (tmp_path / "r.html").read_text()
    # a crafted allocation that succeeded: still no call (no checks, no media), and the verdict says what it has
    b = analyze(write(tmp_path, "alloc.pcap", allocate()))
    text = _verdict(b)
    assert "No call found: 1 TURN allocation (1 allocated; first frame 1), but no ICE checks or RTP media" in text


def test_a_later_allocate_on_a_live_allocation_refreshes_it(tmp_path):
    """MS-TURN refreshes with Allocate: frames 1-2 allocate, 3 repeats the success (retransmitted
    response), 4-5 a new Allocate transaction on the same 5-tuple: one allocation, allocated in frame 2."""
    first = allocate()
    frames = [*first, first[1], *allocate()]
    p = write(tmp_path, "refresh.pcap", frames)
    ids = [r[1] for r in tshark_fields(p, ["frame.number", "stun.id"])]
    assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4]
    (a,) = analyze(p).allocations.itertuples()
    assert (a.state, a.allocated_frame, a.refreshes, a.lifetime) == ("allocated", 2, 1, 600)
