"""STUN transaction matching: retransmissions, RTT, errors, unanswered and asymmetric transactions,
bounded memory, and Wireshark's request/response pairing as the oracle."""

from __future__ import annotations

import struct

import pytest

from analyzer.capture import iter_payloads
from analyzer.dissect.stun import ErrorCode, looks_like_stun, parse_stun
from analyzer.dissect.transactions import Transaction, TransactionMatcher
from tests.conftest import public_capture, tshark_fields

COOKIE = b"\x21\x12\xa4\x42"
MS = 1_000_000
CLIENT = ("10.0.0.2", 50000, "192.0.2.10", 3478, "udp")
SERVER = ("192.0.2.10", 3478, "10.0.0.2", 50000, "udp")


def msg(msg_type: int, tid: bytes, attrs: bytes = b""):
    return parse_stun(struct.pack("!HH", msg_type, len(attrs)) + COOKIE + tid + attrs)


def error_401() -> bytes:
    reason = b"Unauthorized"
    value = b"\x00\x00\x04\x01" + reason
    return struct.pack("!HH", 0x0009, len(value)) + value + b"\x00" * (-len(value) % 4)


def test_retransmitted_request_then_response() -> None:
    m = TransactionMatcher()
    tid = b"\x01" * 12
    for i, t in enumerate((0, 500, 1500)):  # three copies of the request
        m.add(10 + i, t * MS, CLIENT, msg(0x0001, tid))
    m.add(20, 1520 * MS, SERVER, msg(0x0101, tid))
    m.add(21, 1530 * MS, SERVER, msg(0x0101, tid))  # a duplicate response changes nothing
    assert m.results() == [
        Transaction("01" * 12, "Binding", 10, 0, 20, 1520 * MS, "success", None, 1520.0, 2, "answered", False),
    ]


def test_unanswered_and_error() -> None:
    m = TransactionMatcher()
    m.add(1, 0, CLIENT, msg(0x0003, b"\x02" * 12))
    m.add(2, 5 * MS, CLIENT, msg(0x0003, b"\x03" * 12))
    m.add(3, 35 * MS, SERVER, msg(0x0113, b"\x03" * 12, error_401()))
    unanswered, error = m.results()
    assert (unanswered.state, unanswered.response_frame, unanswered.rtt_ms, unanswered.retransmissions) == (
        "unanswered", None, None, 0,
    )
    assert (error.state, error.response_cls, error.response_frame, error.rtt_ms) == ("error", "error", 3, 30.0)
    assert error.error == ErrorCode(401, "Unauthorized") and error.method_name == "Allocate"


def test_asymmetric_response_and_ignored_messages() -> None:
    m = TransactionMatcher()
    tid = b"\x04" * 12
    m.add(1, 0, CLIENT, msg(0x0001, tid))
    m.add(2, 1 * MS, CLIENT, msg(0x0016, b"\x05" * 12))  # Send indication: not a transaction
    m.add(3, 2 * MS, ("192.0.2.11", 3479, "10.0.0.2", 50000, "udp"), msg(0x0101, tid))  # answered from elsewhere
    m.add(4, 3 * MS, SERVER, msg(0x0101, b"\x06" * 12))  # a response to a request never seen
    ms_send = parse_stun(struct.pack("!HH", 0x0004, 8) + COOKIE + b"\x07" * 12 + bytes.fromhex("000f000472c64bc6"))
    assert ms_send.legacy_ms and (ms_send.method_name, ms_send.cls) == ("Send", "request")
    m.add(5, 4 * MS, CLIENT, ms_send)  # MS-TURN Send requests are never answered: not a transaction
    [tx] = m.results()
    assert (tx.transaction_id, tx.response_frame, tx.state, tx.asymmetric) == ("04" * 12, 3, "answered", True)


def test_expiry_keeps_memory_bounded() -> None:
    m = TransactionMatcher()
    for i in range(1000):
        m.add(i, i * 100 * MS, CLIENT, msg(0x0001, i.to_bytes(12, "big")))
    # at 99.9 s only the requests of the last 40 s are still open
    assert m.open_count == 400
    results = m.results()
    assert len(results) == 1000 and all(t.state == "unanswered" for t in results)
    assert [t.request_frame for t in results] == list(range(1000))


@pytest.mark.parametrize("rel, answered", [
    ("corelight_zeek-spicy-stun/stun-ice-testcall.pcap", 47),
    ("zeek_zeek/webrtc-stun.pcap", 5),
    ("ntop_nDPI/stun.pcap", 40),
])
def test_pairing_matches_wireshark(rel: str, answered: int) -> None:
    path = public_capture(rel)
    rows = tshark_fields(path, ["frame.number", "stun.response-to", "stun.time", "stun.reqduplicate"],
                         display_filter="udp and stun.response-to")
    theirs = {int(r[0]): (int(r[1]), round(float(r[2]) * 1000, 3)) for r in rows if not r[3]}
    m = TransactionMatcher()
    for p in iter_payloads(path, {"stun"}):
        if p.proto == 17 and looks_like_stun(p.payload):
            m.add(p.frame, p.ts_ns, (p.src, p.sport, p.dst, p.dport, "udp"), parse_stun(p.payload))
    results = m.results()
    mine = {t.response_frame: (t.request_frame, round(t.rtt_ms, 3)) for t in results if t.response_frame}
    assert mine == theirs
    assert len(mine) == answered
    assert not any(t.asymmetric for t in results)
