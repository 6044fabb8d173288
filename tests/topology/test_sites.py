"""Sites inferred from the capture when no profile describes the network (issue 15): the capture host's
site is the customer network, a participant behind another public address is elsewhere, a private
address only a relay reports is on the relay's side. Addresses and frames read off the packets with
tshark (`-Y stun -T fields -e frame.number -e ip.src -e stun.att.ipv4-xord`)."""

from __future__ import annotations

from analyzer import analyze
from analyzer.topology.profile import NetworkProfile
from tests.conftest import CAPTURES, public_capture


def test_readme_command_without_a_profile_is_external_via_relay():
    a = analyze(CAPTURES / "external-via-relay" / "client-a.pcap")
    (call,) = a.calls.itertuples()
    assert call.topology == "external-via-relay"
    assert set(a.findings.code) == {"direct-path-blocked"}
    # frame 4: Binding success to 10.1.0.11 with XOR-MAPPED-ADDRESS 198.51.100.2; frame 2: 10.1.0.1's
    # ICMP port unreachable for the DNS query (the LAN's resolver, same site)
    assert call.assumptions[0] == (
        "no network profile: customer network = the capture host's site 10.1.0.1, 10.1.0.11 behind "
        "198.51.100.2, inferred from frames 2, 3, 4"
    )
    assert call.confidence == "inferred"
    # X's host candidate 192.168.1.10 is private, but X also announced 203.0.113.2 (frame 10's destination)
    x = [s for s in call.assumptions if "192.168.1.10" in s]
    assert x and "internet (inferred)" in x[0] and "203.0.113.2" in x[0]
    assert 'networks = ["10.1.0.0/24"], egress = ["198.51.100.2"]' in call.profile_hint


def test_ice_failed_without_a_profile_is_not_intranet():
    a = analyze(CAPTURES / "ice-failed" / "client-a.pcap")
    assert list(a.calls.topology) == ["external-via-relay"]
    assert set(a.findings.code) == {"ice-failed", "relay-unreachable"}
    # A's Binding and Allocate went unanswered: its public address is unknown, and the assumption says so
    assert "its public address is not in the capture" in a.calls.iloc[0].assumptions[0]


def test_private_peer_behind_a_public_relay_is_not_customer():
    a = analyze(public_capture("ntop_nDPI/stun_dtls_rtp.pcapng"))
    second = a.calls.iloc[1]
    assert second.topology == "external-via-relay"
    mine = set(a.findings[a.findings.call == second.call].code)
    assert "relay-hairpin" not in mine
    assert mine == {"non-cloud-relay", "tcp-fallback"}
    # frame 50: Data indication from 142.250.82.249 with XOR-PEER-ADDRESS 10.13.0.50
    far = [s for s in second.assumptions if s.startswith("wGR4")]
    assert far == [
        "wGR4 internet (inferred): 10.13.0.50 (host): heard only through the relay 142.250.82.249 "
        "(frame 50): the relay's side, not the customer network"
    ]


def test_a_profile_naming_the_address_wins_over_inference(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text('[customer]\nnetworks = ["192.168.1.0/24", "10.1.0.0/16"]\nreplace_defaults = true\n')
    a = analyze(CAPTURES / "external-via-relay" / "client-a.pcap", network=prof)
    (call,) = a.calls.itertuples()
    # the profile calls X's home LAN customer: the verdict rests on that, not on the capture
    assert (call.topology, call.confidence) == ("intranet-direct", "profile")
    assert list(call.assumptions) == [f"network profile {prof}"] and call.profile_hint == ""


def test_roles_are_a_set_and_a_concentrator_is_customer(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text('[customer]\negress = ["198.51.100.2"]\n[vpn]\nconcentrators = ["198.51.100.2"]\n')
    z = NetworkProfile.load(str(prof)).zone("198.51.100.2")
    assert z.zone == "customer" and z.roles == {"egress", "concentrator"} and z.origin == "profile"
    prof.write_text('[vpn]\nconcentrators = ["198.51.100.3"]\n')
    z = NetworkProfile.load(str(prof)).zone("198.51.100.3")
    assert (z.zone, z.roles) == ("customer", {"concentrator"})


def test_console_and_html_say_what_the_verdict_rests_on(tmp_path):
    from rich.console import Console

    from analyzer.report.console import print_verdict
    from analyzer.report.html import verdict_html

    a = analyze(CAPTURES / "external-via-relay" / "client-a.pcap")
    out = Console(record=True, width=200)
    print_verdict(a, out)
    text = out.export_text()
    assert "rests on  inferred" in text
    assert "no network profile: customer network = the capture host's site" in text
    assert 'add to the network profile: [customer] networks = ["10.1.0.0/24"]' in text
    html = verdict_html(a)
    assert "<th>confidence</th>" in html and "inferred" in html
    # with the scenario's profile every participant is named: nothing to add
    b = analyze(
        CAPTURES / "external-via-relay" / "client-a.pcap", network=CAPTURES / "external-via-relay" / "network.toml"
    )
    assert list(b.calls.confidence) == ["profile"]
    out = Console(record=True, width=200)
    print_verdict(b, out)
    assert "rests on" not in out.export_text()


def test_three_points_name_the_customer_edge_as_the_hop_that_dropped_the_checks():
    d = CAPTURES / "external-via-relay"
    a = analyze([d / "client-a.pcap", d / "nat-outside.pcap", d / "relay.pcap"], network=d / "network.toml")
    f = a.findings.set_index("code").loc["direct-path-blocked"]
    # client-a frame 10: A's check to X's srflx 203.0.113.2:55174 (its transaction id is on no frame of
    # nat-outside.pcap); nat-outside frame 7: X's check to 198.51.100.2:41888, never on client-a.pcap
    assert "the customer edge (NAT 198.51.100.2) dropped UDP" in f.explanation
    assert "10.1.0.11:41888 -> 203.0.113.2:55174 (client-a.pcap frame 10) never shows on nat-outside.pcap" in (
        f.explanation
    )
    assert "203.0.113.2:55174 -> 198.51.100.2:41888 (nat-outside.pcap frame 7) never reaches client-a.pcap" in (
        f.explanation
    )
    assert {7, 10} <= set(f.frames)
    assert "customer edge" in f.action


def test_without_the_next_point_no_hop_is_named():
    d = CAPTURES / "external-via-relay"
    a = analyze([d / "client-a.pcap", d / "relay.pcap"], network=d / "network.toml")
    f = a.findings.set_index("code").loc["direct-path-blocked"]
    assert "dropped UDP" not in f.explanation and "customer edge" not in f.action


def test_both_ends_on_one_relay_says_so_and_which_capture_settles_it():
    d = CAPTURES / "relay-hairpin"
    a = analyze(d / "client-a.pcap", network=d / "network.toml")
    (call,) = a.calls.itertuples()
    assert call.topology == "undetermined"
    assert call.reason.startswith("both ends are relayed on the same relay 52.112.10.10")
    assert "A capture at the relay" in call.reason and "customer NAT's outside" in call.reason
    # with the NAT's outside added, both allocations leave the customer egress: the hairpin is proven
    b = analyze([d / "client-a.pcap", d / "nat-outside.pcap"], network=d / "network.toml")
    assert list(b.calls.topology) == ["intranet-direct"] and "relay-hairpin" in set(b.findings.code)


def test_relayed_media_without_checks_places_the_far_end_where_the_relay_hears_it(tmp_path):
    # a relay-only client captured after its checks: only the allocation, the ChannelBind to the peer's
    # address as the relay sees it (its home NAT) and ChannelData media. The relayed address stands for
    # A, the far end is on the internet: external-via-relay (was: group-call, the relay taken for a
    # media processor)
    from tests.topology.builder import CallBuilder

    a_, server, relayed, mapped, peer = (
        ("10.1.0.11", 50000),
        ("52.112.5.5", 3478),
        ("52.112.5.5", 50500),
        ("198.51.100.2", 40000),
        ("203.0.113.9", 61000),
    )
    cb = CallBuilder()
    cb.allocate(a_, server, relayed, mapped)
    cb.bind_channel(a_, server, 0x4001, peer)
    cb.media(relayed, peer, 3, via=(a_, server, relayed))
    cb.write(tmp_path / "c.pcap")
    a = analyze(tmp_path / "c.pcap")
    (call,) = a.calls.itertuples()
    assert call.topology == "external-via-relay"
    assert "10.1.0.11 (customer)" in call.participants and "203.0.113.9 (internet)" in call.participants


def test_a_media_processor_known_only_by_the_published_ranges_is_a_default():
    a = analyze(CAPTURES / "group-call" / "client-a.pcap")
    (call,) = a.calls.itertuples()
    assert (call.topology, call.confidence) == ("group-call", "default ranges")
    assert any("52.113.20.20" in s and "(default ranges)" in s for s in call.assumptions)
    assert call.profile_hint.endswith('[cloud] media = ["52.113.20.20"]')


def test_a_public_capture_host_cites_the_frame_that_shows_it():
    """loopback-call: both peers on 192.0.2.2 (a public address): the site is that address, and the
    assumption names the first frame with it (tshark: frame 1, 192.0.2.2 -> 10.255.255.53), not an
    empty list."""
    a = analyze(CAPTURES / "loopback-call" / "call.pcap")
    (call,) = a.calls.itertuples()
    assert call.assumptions[0] == (
        "no network profile: customer network = the capture host's site 192.0.2.2 (a public address), "
        "inferred from frames 1"
    )
