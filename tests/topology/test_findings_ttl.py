"""unsupported-middlebox from TTL: one direction's media moving from one TTL to another for good, with
both TTLs' frames; TTLs that interleave (STUN answered by one host, media sent by another behind the
same address) are no path change."""

from __future__ import annotations

from analyzer import analyze
from tests.conftest import public_capture, tshark_fields
from tests.dissect import stunbuild as sb
from tests.topology.builder import CallBuilder

A, B = ("10.1.0.11", 50000), ("142.250.82.99", 3478)


def test_interleaved_ttls_of_stun_and_media_are_not_a_middlebox(tmp_path):
    """The shape of ntop_nDPI/stun.pcap's Google flow: Binding answers at one TTL (64 here), media at
    another (57), interleaved to the end."""
    cb = CallBuilder()
    cb.check(A, B, "bb", "aa", nominate=True)
    for i in range(150):
        cb.udp(A, B, sb.rtp(i, 960 * i, 0x1111), dt_ms=10)
        cb.udp(B, A, sb.rtp(i, 960 * i, 0x2222), dt_ms=10, ttl=57)
        if i % 25 == 0:
            cb.check(A, B, "bb", "aa")
    p = tmp_path / "lb.pcap"
    cb.write(p)
    a = analyze(p)
    assert set(a.flows.ttl_rev.dropna()) == {"57-64"}  # the whole direction's range spans both hosts
    assert "unsupported-middlebox" not in set(a.findings.code)


def test_interleaved_media_ttls_are_two_senders_not_a_path_change(tmp_path):
    cb = CallBuilder()
    cb.check(A, B, "bb", "aa", nominate=True)
    for i in range(150):
        cb.udp(A, B, sb.rtp(i, 960 * i, 0x1111), dt_ms=10)
        cb.udp(B, A, sb.rtp(i, 960 * i, 0x2222), dt_ms=10, ttl=57 if i % 2 else 104)
    p = tmp_path / "two.pcap"
    cb.write(p)
    assert "unsupported-middlebox" not in set(analyze(p).findings.code)


def test_stun_pcap_google_flow_has_no_middlebox():
    path = public_capture("ntop_nDPI/stun.pcap")
    rows = tshark_fields(path, ["frame.number", "ip.ttl", "_ws.col.Protocol"],
                         display_filter="ip.src==142.250.82.99 && udp.dstport==49153")
    ttl = {int(r[0]): (int(r[1]), r[2]) for r in rows}
    assert ttl[163] == (104, "STUN") and ttl[169] == (57, "DTLSv1.2") and ttl[170] == (104, "DTLSv1.2")
    assert ttl[181] == (57, "SRTCP") and ttl[184] == (104, "STUN")  # interleaved to the end
    a = analyze(path)
    assert "unsupported-middlebox" not in set(a.findings.code)


def test_stun_dtls_rtp_google_flow_has_no_middlebox():
    path = public_capture("ntop_nDPI/stun_dtls_rtp.pcapng")
    rows = tshark_fields(path, ["frame.number", "ip.ttl"], display_filter="ip.src==142.250.82.76 && udp.dstport==37967")
    ttl = {int(r[0]): int(r[1]) for r in rows}
    assert (ttl[2], ttl[8], ttl[9], ttl[11], ttl[13]) == (41, 57, 41, 41, 57)  # handshake at 41, data at 57
    assert "unsupported-middlebox" not in set(analyze(path).findings.code)
