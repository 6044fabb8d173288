"""relay-unreachable on what the allocations show: unanswered alternatives beside an allocation that
succeeded are info; a request sent as the recording stops proves nothing; nothing answered is an error.
tcp-fallback says what was seen of UDP."""

from __future__ import annotations

from analyzer import analyze
from tests.dissect import stunbuild as sb
from tests.topology.builder import CallBuilder, tid
from tests.topology.test_findings import B_EXT, MAPPED, RELAYED, relayed_call

A = ("10.1.0.11", 50000)
RELAY_3478, RELAY_443 = ("52.112.5.5", 3478), ("52.112.5.5", 443)


def deallocate(cb: CallBuilder, client, server) -> None:
    t = tid()
    cb.udp(client, server, sb.message("Refresh", "request", [sb.attr(0x000D, (0).to_bytes(4, "big"))], t))
    cb.udp(server, client, sb.message("Refresh", "success", [sb.attr(0x000D, (0).to_bytes(4, "big"))], t))


def alternative_call(tmp_path):
    """UDP 443 tried twice, unanswered; UDP 3478 allocated (frame 4) and, at the end, released."""
    cb = CallBuilder()
    cb.allocate(A, RELAY_443, RELAYED, MAPPED, answer=False)
    cb.allocate(A, RELAY_443, RELAYED, MAPPED, answer=False)
    cb.allocate((A[0], A[1] + 1), RELAY_3478, RELAYED, MAPPED)
    cb.check(A, B_EXT, "bb", "aa", nominate=True)
    cb.media(A, B_EXT, 3)
    deallocate(cb, (A[0], A[1] + 1), RELAY_3478)
    p = tmp_path / "alt.pcap"
    cb.write(p)
    return analyze(p)


def test_unanswered_alternative_beside_an_allocation_is_info(tmp_path):
    a = alternative_call(tmp_path)
    al = a.allocations.sort_values("first_frame")
    assert list(zip(al.server_port, al.state, strict=True)) == [(443, "unanswered"), (3478, "deallocated")]
    (f,) = a.findings[a.findings.code == "relay-unreachable"].itertuples()
    assert (f.severity, f.frames) == ("info", [1, 2, 4])
    assert f.title.endswith("the same relay allocated on another transport")
    assert "52.112.5.5:3478/udp allocated (frame 4)" in f.evidence


def test_nothing_answered_is_an_error(tmp_path):
    cb = CallBuilder()
    for _ in range(3):
        cb.allocate(A, RELAY_3478, RELAYED, MAPPED, answer=False)
    cb.check(A, B_EXT, "bb", "aa", nominate=True)
    cb.media(A, B_EXT, 3)
    p = tmp_path / "none.pcap"
    cb.write(p)
    (f,) = analyze(p).findings[lambda d: d.code == "relay-unreachable"].itertuples()
    assert (f.severity, f.frames) == ("error", [1, 2, 3])


def test_allocate_sent_as_the_recording_stops_is_no_evidence(tmp_path):
    cb = CallBuilder()
    cb.check(A, B_EXT, "bb", "aa", nominate=True)
    cb.media(A, B_EXT, 3)
    cb.allocate(A, RELAY_3478, RELAYED, MAPPED, answer=False)  # the last packet of the capture
    p = tmp_path / "end.pcap"
    cb.write(p)
    a = analyze(p)
    assert list(a.allocations.state) == ["unanswered"]
    assert "relay-unreachable" not in set(a.findings.code)


def test_tcp_fallback_says_no_udp_allocation_was_tried(tmp_path):
    a = relayed_call(tmp_path, B_EXT, tcp=True, server=("52.112.5.5", 443))
    (f,) = a.findings[a.findings.code == "tcp-fallback"].itertuples()
    assert "UDP blocked" not in f.title
    assert f.title == "Media reaches the relay over TCP/TLS; no UDP allocation was tried"
    assert "no UDP allocation attempted" in f.evidence


def test_tcp_fallback_after_unanswered_udp_allocations_says_udp_blocked(tmp_path):
    cb = CallBuilder()
    for _ in range(3):
        cb.allocate(A, RELAY_3478, RELAYED, MAPPED, answer=False)
    server = RELAY_443
    cb.allocate(A, server, RELAYED, MAPPED, tcp=True)
    cb.bind_channel(A, server, 0x4001, B_EXT, tcp=True)
    via = (A, server, RELAYED)
    cb.check(RELAYED, B_EXT, "bb", "aa", nominate=True, via=via, tcp=True)
    cb.media(RELAYED, B_EXT, 3, via=via, tcp=True)
    p = tmp_path / "blocked.pcap"
    cb.write(p)
    a = analyze(p)
    (f,) = a.findings[a.findings.code == "tcp-fallback"].itertuples()
    assert f.title == "Media reaches the relay over TCP/TLS (UDP allocations unanswered: UDP blocked)"


def test_another_clients_allocation_does_not_make_an_alternative(tmp_path):
    """A's Allocates go unanswered while another host allocates on the same relay: A reached no relay."""
    cb = CallBuilder()
    for _ in range(2):
        cb.allocate(A, RELAY_3478, RELAYED, MAPPED, answer=False)
    cb.allocate(("10.1.0.12", 50000), RELAY_3478, ("52.112.5.5", 50600), MAPPED)
    cb.check(A, B_EXT, "bb", "aa", nominate=True)
    cb.media(A, B_EXT, 3)
    p = tmp_path / "other.pcap"
    cb.write(p)
    (f,) = analyze(p).findings[lambda d: d.code == "relay-unreachable"].itertuples()
    assert (f.severity, f.frames) == ("error", [1, 2])
