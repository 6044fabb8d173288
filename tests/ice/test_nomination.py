"""ICE nomination and path bookkeeping on crafted captures: libwebrtc's NOMINATION attribute and
renomination, USE-CANDIDATE in a retransmission, a private XOR-MAPPED-ADDRESS behind an outer NAT, a
Binding response stamped at time 0 (issue 21). Values are read back with tshark where it decodes them."""

from __future__ import annotations

import itertools
import struct

import pandas as pd
import pytest

from analyzer import analyze
from tests.capture.writers import pcap_bytes
from tests.conftest import tshark_fields
from tests.dissect import stunbuild as sb
from tests.ice.test_scenarios import A2, B2, A, B, check, udp

_tids = itertools.count(0x9100)


def test_binding_response_at_time_0_is_a_time(tmp_path):
    """Issue 21: a success stamped 1970-01-01T00:00:00 connects the session at that time."""
    req, resp = check(A, B, "bb", "aa", nominate=True)
    p = tmp_path / "t0.pcap"
    p.write_bytes(pcap_bytes([(0, req), (0, resp)]))
    assert tshark_fields(p, ["frame.number", "frame.time_epoch"]) == [["1", "0.000000000"], ["2", "0.000000000"]]
    a = analyze(p)
    (s,) = a.sessions.itertuples()
    assert (s.state, s.connected_frame) == ("connected", 2)
    assert s.connected_ts == pd.Timestamp(0, tz="UTC")
    assert a.pairs.first_success_ts.iloc[0] == pd.Timestamp(0, tz="UTC")
    a.timeline()


T0 = 1_700_000_000_000_000_000


def _write(tmp_path, name, frames):
    p = tmp_path / name
    p.write_bytes(pcap_bytes([(T0 + i * 20_000_000, f) for i, f in enumerate(frames)]))
    return p


def _tid() -> bytes:
    return next(_tids).to_bytes(12, "big")


def _check(src, dst, to_ufrag, from_ufrag, t, extra=()):
    attrs = [
        sb.attr(0x0006, f"{to_ufrag}:{from_ufrag}".encode()),
        sb.attr(0x0024, struct.pack("!I", 0x6E7F1EFF)),
        sb.attr(0x802A, (7).to_bytes(8, "big")),
        *extra,
    ]
    return udp(src, dst, sb.message("Binding", "request", attrs, t))


def _ok(src, dst, mapped, t):
    return udp(src, dst, sb.message("Binding", "success", [sb.xor_addr(0x0020, *mapped, t)], t))


def test_nomination_attribute_is_decoded_and_each_renomination_recorded(tmp_path):
    """libwebrtc's NOMINATION (0xC001): 1 on the first pair, 2 on the second (a renomination)."""
    t1, t2 = _tid(), _tid()
    frames = [
        _check(A, B, "bb", "aa", t1, [sb.attr(0xC001, struct.pack("!I", 1))]),
        _ok(B, A, A, t1),
        _check(A2, B2, "bb", "aa", t2, [sb.attr(0xC001, struct.pack("!I", 2))]),
        _ok(B2, A2, A2, t2),
    ]
    p = _write(tmp_path, "renominate.pcap", frames)
    # tshark names 0xC001 by its IANA entry (ENF-FLOW-DESCRIPTION) and shows the 4 bytes
    rows = tshark_fields(p, ["frame.number", "stun.att.type", "stun.value"], display_filter="stun.attribute == 0xc001")
    assert [(r[0], r[2]) for r in rows] == [("1", "00000001"), ("3", "00000002")]
    a = analyze(p)
    st = a.stun.set_index("frame")
    assert st.loc[1, "nomination"] == 1 and st.loc[3, "nomination"] == 2
    assert "NOMINATION" in st.loc[1, "attributes"]
    (s,) = a.sessions.itertuples()
    assert s.nominations == "pair 0 frame 1 NOMINATION 1; pair 1 frame 3 NOMINATION 2 (renomination)"
    assert (s.renominations, s.nominated_pair, s.selected_pair) == (1, 1, 1)  # no media: the highest number
    pr = a.pairs.set_index("pair")
    assert list(pr.nominated) == [True, True] and list(pr.nomination) == [1, 2] and list(pr.nominated_frame) == [1, 3]
    n = a.nominations
    assert list(zip(n.pair, n.value, n.frame, n.response_frame, n.renomination, strict=True)) == [
        (0, 1, 1, 2, False),
        (1, 2, 3, 4, True),
    ]


@pytest.mark.parametrize("answered_first", [False, True])
def test_use_candidate_in_a_retransmission_is_a_nomination(tmp_path, answered_first):
    """The first copy has no USE-CANDIDATE; a later copy that reuses its transaction id does (right after
    it, or after the first copy was answered), then the answer."""
    t = _tid()
    frames = [_check(A, B, "bb", "aa", t)] + ([_ok(B, A, A, t)] if answered_first else [])
    frames += [_check(A, B, "bb", "aa", t, [sb.attr(0x0025, b"")]), _ok(B, A, A, t)]
    p = _write(tmp_path, "retx.pcap", frames)
    rows = tshark_fields(p, ["frame.number", "stun.id", "stun.att.type"])
    assert len({r[1] for r in rows}) == 1  # one transaction id
    flagged = [int(r[0]) for r in rows if "0x0025" in r[2].split(",")]
    assert flagged == [3 if answered_first else 2]
    a = analyze(p)
    (pr,) = a.pairs.itertuples()
    assert pr.nominated and pr.nominated_frame == flagged[0] and (pr.checks, pr.retransmissions) == (1, 1)
    (s,) = a.sessions.itertuples()
    assert s.nominated_pair == 0 and s.nominations == f"pair 0 frame {flagged[0]} USE-CANDIDATE"
    assert a.nominations.response_frame.tolist() == [len(frames)]  # the answer after the flagged copy


def test_private_xor_mapped_address_is_reflexive_not_host(tmp_path):
    """Double NAT: a STUN server and a peer both see the client as 10.64.x behind an outer NAT."""
    stun_server = ("74.125.1.1", 19302)
    peer = ("203.0.113.9", 6000)
    q = _tid()
    query = udp(A, stun_server, sb.message("Binding", "request", [], q))
    answer = udp(stun_server, A, sb.message("Binding", "success", [sb.xor_addr(0x0020, "10.64.0.7", 40000, q)], q))
    t = _tid()
    frames = [query, answer, _check(A, peer, "pp", "aa", t), _ok(peer, A, ("10.64.0.7", 40002), t)]
    p = _write(tmp_path, "doublenat.pcap", frames)
    rows = tshark_fields(p, ["frame.number", "stun.att.ipv4", "stun.att.port"])
    assert [r[1:] for r in rows] == [["", ""], ["10.64.0.7", "40000"], ["", ""], ["10.64.0.7", "40002"]]
    c = analyze(p).candidates.set_index(["agent", "address", "port"])
    srflx = c.loc[("aa", "10.64.0.7", 40000)]  # the server's answer (frame 2) for the base 10.0.0.1:5000
    assert (srflx.type, srflx.frame, srflx.seen) == ("srflx", 2, "server response")
    prflx = c.loc[("aa", "10.64.0.7", 40002)]  # the peer saw another mapping: learned from the check (frame 4)
    assert prflx.type == "prflx" and "NAT inside a NAT" in prflx.rule
    assert c.loc[("aa", "10.0.0.1", 5000)].type == "host"
