"""TURN framing: ChannelData, MS-TURN multiplexed packets, Send/Data payloads and the TCP deframer,
against tshark on the public captures and on synthetic streams."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import iter_payloads
from analyzer.dissect.stun import Address, parse_stun
from analyzer.dissect.turn import (
    MAX_GARBAGE,
    ChannelData,
    Framed,
    MsMultiplexed,
    TcpDeframer,
    parse_channeldata,
    parse_ms_multiplexed,
    relayed_payload,
)
from tests.conftest import public_capture, tshark_fields

COOKIE = b"\x21\x12\xa4\x42"


def stun_msg(msg_type: int, attrs: list[tuple[int, bytes]] = (), tid: bytes = b"\x07" * 12) -> bytes:
    body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\x00" * (-len(v) % 4) for t, v in attrs)
    return struct.pack("!HH", msg_type, len(body)) + COOKIE + tid + body


def xor_peer(ip: str, port: int) -> bytes:
    raw = bytes(int(x) for x in ip.split("."))
    return struct.pack("!BBH", 0, 1, port ^ 0x2112) + bytes(a ^ b for a, b in zip(raw, COOKIE, strict=True))


# ---------------------------------------------------------------------------------------------
# ChannelData and MS-TURN multiplexed


def test_channeldata_unpadded_and_padded() -> None:
    assert parse_channeldata(b"\x40\x01\x00\x03abc") == ChannelData(0x4001, 3, b"abc", 7, False, None)
    assert parse_channeldata(b"\x40\x01\x00\x03abc\x00") == ChannelData(0x4001, 3, b"abc", 8, True, None)
    assert parse_channeldata(b"\x7f\xff\x00\x04abcdXYZ") == ChannelData(0x7FFF, 4, b"abcd", 8, False, None)
    # over TCP the padding is mandatory
    tcp = parse_channeldata(b"\x40\x01\x00\x03abc", tcp=True)
    assert (tcp.size, tcp.malformed) == (7, "padding to 4 bytes missing over TCP")
    assert parse_channeldata(b"\x40\x01\x00\x03abc\x00", tcp=True).malformed is None


def test_channeldata_malformed() -> None:
    assert parse_channeldata(b"\x40").malformed == "truncated: 1 bytes, the header needs 4"
    short = parse_channeldata(b"\x40\x00\x00\x10abc")
    assert (short.data, short.size, short.malformed) == (b"abc", 7, "length 16 exceeds the 3 bytes after the header")
    assert parse_channeldata(b"\x80\x00\x00\x00").malformed == "channel 0x8000 outside 0x4000-0x7FFF"


def test_ms_multiplexed_synthetic() -> None:
    inner = stun_msg(0x0101)
    pkt = b"\xff\x10" + struct.pack("!H", 8 + len(inner)) + bytes.fromhex("0102030405060708") + inner
    assert parse_ms_multiplexed(pkt) == MsMultiplexed("0102030405060708", inner, None)
    assert parse_ms_multiplexed(b"\x40\x00\x00\x00") is None
    assert parse_ms_multiplexed(b"\xff\x10\x00\x04abcd").malformed == "length 4 too short for the 8-byte session id"
    assert parse_ms_multiplexed(pkt[:-4]).malformed == "length 28 exceeds the 24 bytes present"


def test_channeldata_matches_tshark() -> None:
    path = public_capture("ntop_nDPI/stun.pcap")
    rows = tshark_fields(path, ["frame.number", "stun.channel", "stun.length"], display_filter="stun.channel")
    theirs = {int(r[0]): (int(r[1], 16), int(r[2])) for r in rows}
    mine = {}
    for p in iter_payloads(path, {"turn-channel"}):
        cd = parse_channeldata(p.payload)
        assert cd.malformed is None and cd.length == len(cd.data)
        mine[p.frame] = (cd.channel, cd.length)
    assert mine == theirs and len(mine) == 19


def test_ms_multiplexed_matches_tshark() -> None:
    path = public_capture("ntop_nDPI/teams.pcap")
    rows = tshark_fields(path, ["frame.number", "stun.length", "stun.att.ms.turn_session_id"],
                         display_filter="stun.channel == 0xff10")
    theirs = {int(r[0]): (int(r[1]), r[2].removeprefix("0x")) for r in rows}
    mine = {}
    for p in iter_payloads(path, None):
        mux = parse_ms_multiplexed(p.payload) if p.proto == 17 else None
        if mux is not None:
            assert mux.malformed is None
            mine[p.frame] = (len(mux.data) + 8, mux.session_id)
            inner = parse_stun(mux.data)  # tshark leaves the inner bytes as data; the spec says TURN
            assert (inner.method_name, inner.cls, inner.malformed) == ("Binding", "success", None)
            assert inner.fingerprint_ok is True
    assert mine == theirs == {1424: (96, "deaa296708f708fc"), 1427: (96, "651f34ce2e7915fc")}


# ---------------------------------------------------------------------------------------------
# Send / Data


def test_send_and_data_indications_unwrap() -> None:
    inner = stun_msg(0x0001, tid=b"\x09" * 12)
    send = parse_stun(stun_msg(0x0016, [(0x0012, xor_peer("192.0.2.210", 49191)), (0x0013, inner)]))
    assert (send.method_name, send.cls) == ("Send", "indication")
    assert relayed_payload(send) == (Address("IPv4", "192.0.2.210", 49191), inner)
    data = parse_stun(stun_msg(0x0017, [(0x0012, xor_peer("198.51.100.7", 3478)), (0x0013, b"\x80" * 13)]))
    assert relayed_payload(data) == (Address("IPv4", "198.51.100.7", 3478), b"\x80" * 13)
    assert relayed_payload(parse_stun(stun_msg(0x0016, [(0x0013, inner)]))) is None  # no peer
    assert relayed_payload(parse_stun(stun_msg(0x0001))) is None


def test_send_data_on_captures() -> None:
    udp = {p.frame: p.payload for p in iter_payloads(public_capture("ntop_nDPI/stun.pcap"), {"stun"})}
    peer, inner = relayed_payload(parse_stun(udp[77]))
    assert peer == Address("IPv4", "185.170.139.1", 44459)
    assert parse_stun(inner).method_name == "Binding"
    peer, _ = relayed_payload(parse_stun(udp[79]))
    assert peer == Address("IPv4", "185.170.139.1", 12176)
    # MS-TURN Send request (0x0004): DESTINATION-ADDRESS in the clear, never answered
    teams = {p.frame: p.payload for p in iter_payloads(public_capture("ntop_nDPI/teams.pcap"), {"stun"})}
    send = parse_stun(teams[1413])
    assert (send.method_name, send.cls, send.legacy_ms) == ("Send", "request", True)
    peer, inner = relayed_payload(send)
    assert peer == Address("IPv4", "93.71.110.205", 16332)
    assert (parse_stun(inner).method_name, parse_stun(inner).ufrags) == ("Binding", ("o5/I", "FY32"))


# ---------------------------------------------------------------------------------------------
# TCP deframer on captures (in-order reassembly done here, as the caller would)


def deframe_capture(path) -> tuple[dict[int, list[Framed]], dict[tuple, TcpDeframer]]:
    streams: dict[tuple, list] = {}
    out: dict[int, list[Framed]] = {}
    for p in iter_payloads(path, None):
        if p.proto != 6 or not p.payload:
            continue
        state = streams.setdefault((p.src, p.sport, p.dst, p.dport), [p.tcp_seq, TcpDeframer()])
        skip = (state[0] - p.tcp_seq) & 0xFFFFFFFF
        if skip >= 1 << 31:
            skip = 0  # a gap: feed what we have
        if skip >= len(p.payload):
            continue  # a retransmission
        state[0] = (p.tcp_seq + len(p.payload)) & 0xFFFFFFFF
        out.setdefault(p.frame, []).extend(state[1].feed(p.payload[skip:], p.frame))
    return out, {k: v[1] for k, v in streams.items()}


@pytest.mark.parametrize("rel, frames, modes", [
    ("ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap", 4, {"turn"}),
    ("ntop_nDPI/stun.pcap", 31, {"turn", "rfc4571"}),
    ("ntop_nDPI/stun_dtls_rtp.pcapng", 39, {"turn"}),
])
def test_tcp_messages_match_tshark(rel: str, frames: int, modes: set[str]) -> None:
    path = public_capture(rel)
    fields = ["stun.type", "stun.id", "stun.att.type", "stun.att.ipv4", "stun.att.port", "stun.att.channelnum",
              "stun.att.error"]
    rows = tshark_fields(path, ["frame.number", *fields], display_filter="tcp and stun")
    theirs = {int(r[0]): tuple(v.split(",") if v else [] for v in r[1:]) for r in rows}
    got, streams = deframe_capture(path)
    mine = {}
    for frame, items in got.items():
        msgs = [parse_stun(f.payload) for f in items if f.kind == "stun"]
        assert all(f.kind == "stun" and f.malformed is None for f in items), frame
        assert all(m.malformed is None for m in msgs), frame
        if msgs:  # several messages in one frame: tshark lists their fields one after the other
            addrs = [a.value for m in msgs for a in m.attributes if isinstance(a.value, Address)]
            mine[frame] = (
                [f"0x{m.msg_type:04x}" for m in msgs],
                [m.transaction_id for m in msgs],
                [f"0x{a.type:04x}" for m in msgs for a in m.attributes],
                [a.address for a in addrs],
                [str(a.port) for a in addrs],
                [f"0x{m.channel:04x}" for m in msgs if m.channel is not None],
                [str(m.error.code % 100) for m in msgs if m.error],
            )
    assert mine == theirs
    assert len(mine) == frames
    assert {d.mode for d in streams.values()} == modes


def test_tcp_several_messages_in_one_segment() -> None:
    got, _ = deframe_capture(public_capture("ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap"))
    assert {f: [x.kind for x in v] for f, v in got.items()} == {
        2: ["stun"], 3: ["stun"], 4: ["stun"], 5: ["stun", "stun", "stun"],
    }
    assert {parse_stun(x.payload).method_name for x in got[5]} == {"Allocate"}


def test_tls_stream_reported_once_then_ignored() -> None:
    # Teams reaches its relays on TCP 443 with real TLS 1.2 in this capture (not pseudo-TLS)
    got, streams = deframe_capture(public_capture("ntop_nDPI/teams.pcap"))
    relay = [d for k, d in streams.items() if k[2] == "52.114.250.153" and k[3] == 443]
    assert [d.mode for d in relay] == ["stopped"]
    first = got[1325]
    assert [(f.kind, f.malformed) for f in first] == [("other", "not a TURN stream: TLS")]
    assert not any(f for frame, fs in got.items() if frame > 1325 for f in fs if f.kind != "other")


# ---------------------------------------------------------------------------------------------
# TCP deframer, synthetic streams


def _stream() -> tuple[bytes, list[tuple[str, bytes]]]:
    msgs = [
        ("stun", stun_msg(0x0003, [(0x0019, b"\x11\x00\x00\x00")])),
        ("channeldata", b"\x40\x00\x00\x05hello\x00\x00\x00"),
        ("stun", stun_msg(0x0016, [(0x0012, xor_peer("192.0.2.1", 5000)), (0x0013, b"abcdefg")])),
        ("channeldata", b"\x40\x01\x00\x04abcd"),
        ("stun", stun_msg(0x0101, [(0x8022, b"x")], tid=b"\x01" * 12)),
    ]
    return b"".join(m for _, m in msgs), msgs


def test_turn_stream_split_at_every_offset() -> None:
    wire, msgs = _stream()
    for cut in range(len(wire) + 1):
        d = TcpDeframer()
        first, second = d.feed(wire[:cut], 1), d.feed(wire[cut:], 2)
        got = first + second
        assert [(f.kind, f.payload) for f in got] == msgs, cut
        assert all(f.malformed is None for f in got)
        # a message completes in the frame that brings its last byte
        ends = [sum(len(m) for _, m in msgs[: i + 1]) for i in range(len(msgs))]
        assert [f.frame for f in got] == [1 if end <= cut else 2 for end in ends], cut
    assert parse_channeldata(msgs[1][1], tcp=True).data == b"hello"


def test_turn_stream_byte_by_byte() -> None:
    wire, msgs = _stream()
    d = TcpDeframer()
    got = [f for i, b in enumerate(wire) for f in d.feed(bytes([b]), i)]
    assert [(f.kind, f.payload) for f in got] == msgs


def test_rfc4571_framed_stream() -> None:
    check = stun_msg(0x0001, [(0x0006, b"ab:cd")])
    rtp = b"\x80\x6f" + b"\x00" * 30
    wire = b"".join(struct.pack("!H", len(m)) + m for m in (check, rtp, check))
    for cut in range(len(wire) + 1):
        d = TcpDeframer()
        got = d.feed(wire[:cut], 1) + d.feed(wire[cut:], 2)
        assert d.mode == "rfc4571"
        assert [(f.kind, f.payload, f.malformed) for f in got] == [
            ("stun", check, None), ("other", rtp, None), ("stun", check, None),
        ], cut


def _hello(handshake_type: int, ciphers: list[int]) -> bytes:
    if handshake_type == 1:
        body = b"\x03\x01" + b"\x11" * 32 + b"\x00" + struct.pack("!H", 2 * len(ciphers))
        body += b"".join(struct.pack("!H", c) for c in ciphers) + b"\x01\x00"
    else:
        body = b"\x03\x01" + b"\x22" * 32 + b"\x00" + struct.pack("!HB", ciphers[0], 0)
    hs = bytes([handshake_type]) + len(body).to_bytes(3, "big") + body
    if handshake_type == 2:
        hs += b"\x0e\x00\x00\x00"  # ServerHelloDone in the same record
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def test_ms_turn_pseudo_tls_then_framed_messages() -> None:
    alloc = stun_msg(0x0003, [(0x000F, b"\x72\xc6\x4b\xc6")])
    data = b"\x80\x00" + b"\x01" * 20
    for hello in (_hello(1, [0x0018]), _hello(2, [0x0018])):
        wire = hello + b"\x02\x00" + struct.pack("!H", len(alloc)) + alloc + b"\x03\x00\x00\x16" + data
        for cut in range(0, len(wire) + 1, 3):
            d = TcpDeframer()
            got = d.feed(wire[:cut], 1) + d.feed(wire[cut:], 2)
            assert [(f.kind, f.payload, f.malformed) for f in got] == [
                ("pseudo-tls", hello, None), ("stun", alloc, None), ("other", data, None),
            ], cut
            assert d.mode == "ms"
    assert parse_stun(alloc).legacy_ms


def test_real_tls_and_http_stop_the_stream() -> None:
    d = TcpDeframer()
    hello = _hello(1, [0xC02B, 0xC02F, 0x0018])
    assert [(f.kind, f.malformed) for f in d.feed(hello, 7)] == [("other", "not a TURN stream: TLS")]
    assert d.feed(stun_msg(0x0001), 8) == [] and d.mode == "stopped"
    d = TcpDeframer()
    assert d.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3) == [Framed(3, "other", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                                                    "not a TURN stream: HTTP")]


def test_garbage_is_skipped_and_reported() -> None:
    first, second = stun_msg(0x0001), stun_msg(0x0101)
    d = TcpDeframer()
    got = d.feed(first + b"\xee" * 37 + second, 4)
    assert [(f.kind, f.malformed) for f in got] == [
        ("stun", None), ("other", "37 bytes of garbage skipped"), ("stun", None),
    ]
    assert got[1].payload == b"\xee" * 37 and got[2].payload == second
    # endless garbage: reported every 64 KiB, the buffer stays small
    d = TcpDeframer()
    d.feed(first, 1)
    reports = [f for i in range(40) for f in d.feed(b"\xee" * 4096, i)]
    assert [f.malformed for f in reports] == [f"{MAX_GARBAGE} bytes of garbage skipped"] * 2
    assert len(d._buf) < 16


# ---------------------------------------------------------------------------------------------
# Properties: never raises


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_parse_channeldata_never_raises(data: bytes, tcp: bool) -> None:
    cd = parse_channeldata(data, tcp=tcp)
    assert 0 <= cd.size <= len(data) and len(cd.data) <= cd.length
    mux = parse_ms_multiplexed(b"\xff\x10" + data)
    assert mux is not None and (mux.malformed is None or isinstance(mux.malformed, str))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=12))
def test_deframer_random_chunks_never_raise(chunks: list[bytes]) -> None:
    d = TcpDeframer()
    for i, c in enumerate(chunks):
        for f in d.feed(c, i):
            assert f.kind in ("stun", "channeldata", "ms-multiplexed", "pseudo-tls", "other") and f.frame == i


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=5), st.integers(1, 60))
def test_deframer_mutated_stream_never_raises(edits: list[tuple[int, int]], step: int) -> None:
    wire = bytearray(_stream()[0])
    for pos, val in edits:
        if pos < len(wire):
            wire[pos] = val
    d = TcpDeframer()
    total = 0
    for i in range(0, len(wire), step):
        for f in d.feed(bytes(wire[i : i + step]), i):
            total += len(f.payload)
            if f.kind == "stun":
                parse_stun(f.payload)
            elif f.kind == "channeldata":
                parse_channeldata(f.payload, tcp=True)
    assert total <= len(wire)


def test_ms_framing_without_pseudo_tls_and_rfc4571_lookalike() -> None:
    alloc = stun_msg(0x0003, [(0x0019, b"\x11\x00\x00\x00")])
    wire = b"\x02\x00" + struct.pack("!H", len(alloc)) + alloc
    big = stun_msg(0x0001, [(0x0013, b"x" * (0x200 - 24))])  # RFC 4571 length 0x0200 starts 02 00 too
    for stream, mode in ((wire, "ms"), (struct.pack("!H", len(big)) + big, "rfc4571")):
        for cut in range(len(stream) + 1):
            d = TcpDeframer()
            got = d.feed(stream[:cut], 1) + d.feed(stream[cut:], 2)
            assert ([f.kind for f in got], d.mode) == (["stun"], mode), cut


PREFIXES = [b"", b"\x02\x00", b"\x03\x00\x00", b"\x16\x03\x01\x00", b"\x00\x01\x00", b"\x40\x00", b"\xff\x10",
            b"\x00\x54\x00\x01\x00\x50\x21\x12\xa4\x42", b"\x00\x01\x00\x00\x21\x12\xa4\x42"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PREFIXES), st.binary(max_size=300), st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_deframer_structured_prefixes_never_raise(prefix: bytes, rest: bytes, steps: list[int]) -> None:
    wire, d, pos, i = prefix + rest, TcpDeframer(), 0, 0
    while pos < len(wire):
        step = steps[i % len(steps)]
        for f in d.feed(wire[pos : pos + step], i):
            assert f.frame == i
        pos, i = pos + step, i + 1


def test_capture_starting_mid_message() -> None:
    wire, msgs = _stream()
    for lost in (3, 25, 41):  # the first segments were not captured: the stream starts inside a message
        d = TcpDeframer()
        got = d.feed(wire[lost:], 9)
        assert d.mode == "turn" and got[0].kind == "other" and got[0].malformed.endswith("bytes of garbage skipped")
        assert got[-1].payload == msgs[-1][1] and got[-1].kind == "stun"
    check = stun_msg(0x0001, [(0x0006, b"ab:cd")])
    framed = b"".join(struct.pack("!H", len(check)) + check for _ in range(3))
    d = TcpDeframer()
    got = d.feed(framed[5:], 1)
    assert d.mode == "rfc4571" and [f.kind for f in got] == ["other", "stun", "stun"]
