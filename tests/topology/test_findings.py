"""Each finding rule, with its evidence and without it: a rule that fires on a capture lacking the
evidence is as wrong as one that misses it."""

from __future__ import annotations

import pytest

from analyzer import analyze
from tests.topology.builder import CallBuilder

A = ("10.1.0.11", 50000)
B_INT = ("10.2.0.22", 50010)
B_EXT = ("203.0.113.9", 61000)
SERVER = ("52.112.5.5", 3478)
RELAYED = ("52.112.5.5", 50500)
MAPPED = ("198.51.100.2", 40000)


def codes(a) -> set[str]:
    return set(a.findings.code)


def relayed_call(
    tmp_path,
    peer,
    *,
    direct_attempts=False,
    tcp=False,
    server=SERVER,
    relayed=RELAYED,
    profile: str | None = None,
    name="call.pcap",
):
    cb = CallBuilder()
    if direct_attempts:
        for _ in range(3):
            cb.check(A, peer, "bb", "aa", answer=False)
    cb.allocate(A, server, relayed, MAPPED, tcp=tcp)
    cb.bind_channel(A, server, 0x4001, peer, tcp=tcp)
    via = (A, server, relayed)
    cb.check(relayed, peer, "bb", "aa", nominate=True, via=via, tcp=tcp)
    cb.media(relayed, peer, 3, via=via, tcp=tcp)
    path = tmp_path / name
    cb.write(path)
    prof = None
    if profile:
        prof = tmp_path / "net.toml"
        prof.write_text(profile)
    return analyze(path, network=prof)


def direct_call(tmp_path, a, b, *, profile=None, media_both=True, ttl_change=False, nominate_other=False):
    cb = CallBuilder()
    cb.check(a, b, "bb", "aa", nominate=not nominate_other)
    cb.check(b, a, "aa", "bb", role="controlled")
    if nominate_other:  # a second pair gets the nomination, media stays on the first
        a2 = (a[0], a[1] + 2)
        cb.check(a2, b, "bb", "aa", nominate=True)
    cb.media(a, b, 3, both=media_both, ttl_change_at=0.5 if ttl_change else None)
    path = tmp_path / "direct.pcap"
    cb.write(path)
    prof = None
    if profile:
        prof = tmp_path / "net.toml"
        prof.write_text(profile)
    return analyze(path, network=prof)


def test_relay_hairpin_between_two_customer_clients(tmp_path):
    # the relay hears B from the customer's own egress (the address A's Allocate is mapped to): a hairpin
    a = relayed_call(tmp_path, (MAPPED[0], 40002))
    (call,) = a.calls.itertuples()
    assert call.topology == "intranet-direct"
    assert call.confidence == "inferred"
    assert "relay-hairpin" in codes(a)
    f = a.findings.set_index("code").loc["relay-hairpin"]
    assert f.severity == "warning" and "52.112.5.5:50500 relay" in f.evidence


def test_relay_hairpin_with_a_profile_naming_the_peers_network(tmp_path):
    a = relayed_call(tmp_path, B_INT, profile='[customer]\nnetworks = ["10.1.0.0/16", "10.2.0.0/16"]\n')
    (call,) = a.calls.itertuples()
    assert (call.topology, call.confidence) == ("intranet-direct", "profile")
    assert "relay-hairpin" in codes(a)


def test_private_peer_heard_only_through_the_relay_is_the_relays_side(tmp_path):
    # no profile: 10.2.0.22 is private, but only the relay reports it (its Data/ChannelData source): it is
    # on the relay's side, not the customer network, and the call is no hairpin
    a = relayed_call(tmp_path, B_INT)
    (call,) = a.calls.itertuples()
    assert call.topology == "external-via-relay"
    assert "relay-hairpin" not in codes(a)
    assert any("heard only through the relay 52.112.5.5" in x for x in call.assumptions)
    assert call.assumptions[0].startswith("no network profile: customer network = the capture host's site 10.1.0.11")


def test_no_hairpin_when_the_peer_is_external(tmp_path):
    a = relayed_call(tmp_path, B_EXT)
    assert a.calls.iloc[0].topology == "external-via-relay"
    assert "relay-hairpin" not in codes(a)
    assert codes(a) == set()  # a cloud relay over UDP, answered: nothing to report


def test_direct_path_blocked(tmp_path):
    a = relayed_call(tmp_path, B_EXT, direct_attempts=True)
    assert "direct-path-blocked" in codes(a)
    f = a.findings.set_index("code").loc["direct-path-blocked"]
    assert "UDP between the two sites" in f.explanation
    assert a.calls.iloc[0].topology == "external-via-relay"


def test_no_direct_path_blocked_without_failed_direct_pairs(tmp_path):
    assert "direct-path-blocked" not in codes(relayed_call(tmp_path, B_EXT))


def test_tcp_fallback(tmp_path):
    a = relayed_call(tmp_path, B_EXT, tcp=True, server=("52.112.5.5", 443))
    al = a.allocations
    assert list(al.transport) == ["tcp"] and list(al.state) == ["allocated"]
    assert "tcp-fallback" in codes(a)
    assert "no UDP allocation attempted" in a.findings.set_index("code").loc["tcp-fallback"].evidence


def test_no_tcp_fallback_over_udp(tmp_path):
    assert "tcp-fallback" not in codes(relayed_call(tmp_path, B_EXT))


def test_non_cloud_relay(tmp_path):
    a = relayed_call(tmp_path, B_EXT, server=("198.51.100.7", 3478), relayed=("198.51.100.7", 50500))
    assert "non-cloud-relay" in codes(a)
    assert "non-cloud-relay" not in codes(relayed_call(tmp_path, B_EXT, name="cloud.pcap"))


def test_relay_unreachable(tmp_path):
    cb = CallBuilder()
    for _ in range(4):
        cb.allocate(A, SERVER, RELAYED, MAPPED, answer=False)
    cb.check(A, B_EXT, "bb", "aa", nominate=True)
    cb.media(A, B_EXT, 3)  # the recording goes on for 3 s after the requests: their answers were due
    p = tmp_path / "unreach.pcap"
    cb.write(p)
    a = analyze(p)
    assert "relay-unreachable" in codes(a)
    assert list(a.allocations.state) == ["unanswered"] * 4 or set(a.allocations.state) == {"unanswered"}
    assert "relay-unreachable" not in codes(relayed_call(tmp_path, B_EXT))


def test_media_over_vpn_from_a_vpn_pool(tmp_path):
    vpn_client = ("10.8.0.5", 50000)
    a = direct_call(tmp_path, vpn_client, B_INT, profile='[vpn]\npools = ["10.8.0.0/24"]\n')
    assert a.calls.iloc[0].topology == "vpn-internal-direct"
    assert "media-over-vpn" in codes(a)
    assert "10.8.0.5 is VPN pool 10.8.0.0/24 (profile)" in a.findings.set_index("code").loc["media-over-vpn"].evidence


def test_no_media_over_vpn_without_a_pool(tmp_path):
    a = direct_call(tmp_path, ("10.8.0.5", 50000), B_INT)
    assert a.calls.iloc[0].topology == "intranet-direct"
    assert codes(a) == set()


def test_media_not_on_nominated_pair(tmp_path):
    a = direct_call(tmp_path, A, B_EXT, nominate_other=True)
    assert "media-not-on-nominated-pair" in codes(a)
    assert "media-not-on-nominated-pair" not in codes(direct_call(tmp_path, A, B_EXT))


def test_ttl_change_mid_flow_is_a_middlebox_sign(tmp_path):
    a = direct_call(tmp_path, A, B_EXT, ttl_change=True)
    assert "unsupported-middlebox" in codes(a)
    f = a.findings.set_index("code").loc["unsupported-middlebox"]
    # frames 1-4 are the checks; media alternates A -> B, B -> A from frame 5; TTL 50 from packet 75 on
    assert "10.1.0.11:50000 -> 203.0.113.9:61000 media TTL 64 until frame 153, 50 from frame 155" in f.evidence
    assert f.frames == [153, 154, 155, 156]
    assert "unsupported-middlebox" not in codes(direct_call(tmp_path, A, B_EXT))


@pytest.mark.parametrize(
    "profile,topology",
    [
        (None, "external-direct"),
        ('[customer]\nnetworks = ["203.0.113.0/24"]\n', "intranet-direct"),
    ],
)
def test_profile_changes_the_use_case(tmp_path, profile, topology):
    a = direct_call(tmp_path, A, B_EXT, profile=profile)
    assert a.calls.iloc[0].topology == topology
    labels = set(a.flows[a.flows.media].label)
    assert labels == ({"Flow 2"} if topology == "external-direct" else {"Flow 5"})


def test_one_way_media(tmp_path):
    a = direct_call(tmp_path, A, B_EXT, media_both=False)
    f = a.findings[a.findings.code == "one-way-media"]
    assert len(f) == 1 and f.iloc[0].call == 0
    assert f.iloc[0].evidence.startswith("203.0.113.9:61000 -> 10.1.0.11:50000 silent for")
    assert "one-way-media" not in codes(direct_call(tmp_path, A, B_EXT))


def test_dtls_failed_when_the_client_hello_is_never_answered(tmp_path):
    from analyzer.capture import iter_payloads
    from tests.conftest import CAPTURES

    hello = next(p.payload for p in iter_payloads(CAPTURES / "loopback-call" / "call.pcap", {"dtls"}))
    assert hello[0] == 22 and hello[13] == 1  # a handshake record holding a ClientHello
    cb = CallBuilder()
    cb.check(A, B_EXT, "bb", "aa", nominate=True)
    for _ in range(4):  # retransmitted, never answered, while the checks go on for 3 s
        cb.udp(A, B_EXT, hello, dt_ms=750)
        cb.check(A, B_EXT, "bb", "aa")
    p = tmp_path / "dtls.pcap"
    cb.write(p)
    a = analyze(p)
    f = a.findings.set_index("code")
    assert f.loc["dtls-failed"].title == "DTLS handshake failed (no completion)"
    # four copies of one ClientHello: one flight, retransmitted
    assert "alerts: none, retransmitted flights 1" in f.loc["dtls-failed"].evidence
    assert "dtls-failed" not in codes(direct_call(tmp_path, A, B_EXT))


def test_no_non_cloud_relay_when_the_far_relay_is_in_the_cloud_and_no_allocation_was_seen(tmp_path):
    """Checks straight to a cloud relay candidate, with no Allocate in the capture (the benchmark capture):
    the relay is the far end of the path, not the capturing client on 10.x."""
    a = direct_call(tmp_path, A, ("52.112.9.9", 3479))
    assert a.pairs.iloc[0].remote_type == "relay" and bool(a.calls.iloc[0].relayed)
    assert "non-cloud-relay" not in codes(a)
