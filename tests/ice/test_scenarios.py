"""ICE situations built on purpose: an ICE restart, media switching pair, the far side of a relay, and a
negotiation where every check fails."""

from __future__ import annotations

import itertools

import pandas as pd
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from analyzer import analyze
from tests.capture.writers import pcap_bytes
from tests.dissect import stunbuild as sb

T0 = 1_700_000_000_000_000_000
_tid = itertools.count(1)


def udp(src, dst, payload):
    return bytes(Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload)


def check(src, dst, to_ufrag, from_ufrag, role="controlling", nominate=False):
    tid = next(_tid).to_bytes(12, "big")
    attrs = [
        sb.attr(0x0006, f"{to_ufrag}:{from_ufrag}".encode()),
        sb.attr(0x0024, (0x6E7F1EFF).to_bytes(4, "big")),
        sb.attr(0x802A if role == "controlling" else 0x8029, (7).to_bytes(8, "big")),
    ]
    if nominate:
        attrs.append(sb.attr(0x0025, b""))
    req = udp(src, dst, sb.message("Binding", "request", attrs, tid))
    resp = udp(dst, src, sb.message("Binding", "success", [sb.xor_addr(0x0020, *src, tid)], tid))
    return req, resp


def media(src, dst, n, ssrc, start_seq=0):
    return [udp(src, dst, sb.rtp(start_seq + i, 960 * i, ssrc)) for i in range(n)]


def write(tmp_path, name, frames, step_ms=20):
    p = tmp_path / name
    p.write_bytes(pcap_bytes([(T0 + i * step_ms * 1_000_000, f) for i, f in enumerate(frames)]))
    return p


A, B = ("10.0.0.1", 5000), ("10.0.0.2", 6000)
A2, B2 = ("10.0.0.1", 5002), ("10.0.0.2", 6002)


def test_ice_restart_is_a_new_session_between_the_same_hosts(tmp_path):
    frames = [*check(A, B, "b1", "a1", nominate=True), *check(B, A, "a1", "b1", "controlled"), *media(A, B, 20, 1)]
    frames += [
        *check(A2, B2, "b2", "a2", nominate=True),
        *check(B2, A2, "a2", "b2", "controlled"),
        *media(A2, B2, 20, 1, 20),
    ]
    a = analyze(write(tmp_path, "restart.pcap", frames))
    s = a.sessions.set_index("ufrags")
    assert list(a.sessions.ufrags) == ["a1:b1", "a2:b2"]
    assert s.loc["a2:b2"].restart_of == s.loc["a1:b1"].session
    assert str(s.loc["a1:b1"].restart_of) == "<NA>"


def test_media_switching_pair_is_recorded(tmp_path):
    frames = [*check(A, B, "bb", "aa", nominate=True), *check(A2, B2, "bb", "aa", nominate=True)]
    frames += media(A, B, 30, 7) + media(A2, B2, 30, 7, 30)
    a = analyze(write(tmp_path, "switch.pcap", frames))
    (s,) = a.sessions.itertuples()
    p = a.pairs.set_index("pair")
    assert p.loc[s.selected_pair].local_port == 5002  # media ended on the second pair
    assert s.switches.endswith(
        "10.0.0.1:5000 host/udp -> 10.0.0.2:6000 host => 10.0.0.1:5002 host/udp -> 10.0.0.2:6002 host"
    )
    assert list(p.media_packets) == [30, 30]


def test_far_side_of_a_cloud_relay(tmp_path):
    relay = ("52.113.20.5", 3480)  # a Teams relay address: the far side sees checks come from it
    here = ("203.0.113.7", 40000)
    frames = [*check(relay, here, "far", "near", nominate=True), *check(here, relay, "near", "far", "controlled")]
    frames += media(relay, here, 10, 9)
    a = analyze(write(tmp_path, "far.pcap", frames))
    c = a.candidates.set_index(["agent", "address"])
    assert c.loc[("near", "52.113.20.5")].type == "relay"
    assert "relay port 3480" in c.loc[("near", "52.113.20.5")].rule
    assert c.loc[("far", "203.0.113.7")].type == "unknown"
    (s,) = a.sessions.itertuples()
    assert s.state == "connected" and s.path == "52.113.20.5:3480 relay/udp -> 203.0.113.7:40000 unknown"


def test_every_check_fails(tmp_path):
    frames = []
    for _ in range(6):  # checks never answered, the capture runs on for 10 s afterwards
        frames.append(check(A, B, "bx", "ax")[0])
        frames.append(check(A2, B2, "bx", "ax")[0])
    frames += [udp(("10.0.0.1", 53), ("10.0.0.9", 53), b"\x12\x34" + b"\0" * 20)] * 1
    p = tmp_path / "fail.pcap"
    stamps = [T0 + i * 100_000_000 for i in range(len(frames) - 1)] + [T0 + 12_000_000_000]
    p.write_bytes(pcap_bytes(list(zip(stamps, frames, strict=True))))
    a = analyze(p)
    (s,) = a.sessions.itertuples()
    assert s.state == "failed" and str(s.selected_pair) == "<NA>"
    assert set(a.pairs.state) == {"not answered"}
    assert list(a.pairs.checks) == [6, 6]


def test_ms_ice2_candidate_identifier_is_the_foundation(tmp_path):
    tid = next(_tid).to_bytes(12, "big")
    req = sb.message("Binding", "request", [sb.attr(0x0006, b"bb:aa"), sb.attr(0x8054, b"f00d")], tid)
    resp = sb.message("Binding", "success", [sb.xor_addr(0x0020, *A, tid)], tid)
    a = analyze(write(tmp_path, "msice2.pcap", [udp(A, B, req), udp(B, A, resp)]))
    c = a.candidates.set_index(["agent", "address"])
    assert c.loc[("aa", "10.0.0.1")].foundation == "f00d"
    assert pd.isna(c.loc[("bb", "10.0.0.2")].foundation)  # only seen as a destination
