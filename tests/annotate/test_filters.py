"""Display filters built from a finding's frames or from the conversation its evidence names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from analyzer.annotate.filters import display_filter
from tests.annotate import tshark as T
from tests.capture.writers import pcap_bytes


def test_frames_sorted_once_comma_separated() -> None:
    assert display_filter([15, 9, 10, 9]) == "frame.number in {9, 10, 15}"


def test_conversations_from_the_evidence() -> None:
    ev = "8.8.8.8:5002 -> 192.168.83.237:53755 silent for 6.3 s while 192.168.83.237 sends"
    assert display_filter([], ev) == (
        "ip.addr == 8.8.8.8 && ip.addr == 192.168.83.237 && udp.port == 5002 && udp.port == 53755"
    )
    flows = pd.DataFrame([{"src": "10.0.0.2", "sport": 443, "dst": "10.0.0.1", "dport": 5000, "transport": "tcp"}])
    assert display_filter([], "('10.0.0.1', 5000, '10.0.0.2', 443): DSCP ['0', '46']", flows) == (
        "ip.addr == 10.0.0.1 && ip.addr == 10.0.0.2 && tcp.port == 5000 && tcp.port == 443"
    )
    assert display_filter([], "no addresses here") == ""
    assert display_filter([], "10.0.0.1:99999999 -> nowhere") == ""


def test_ipv6_conversation_selects_exactly_its_packets(tmp_path: Path) -> None:
    a, b, c = "2001:db8::1", "2001:db8::2", "2001:db8::3"
    pkts = [
        Ether() / IPv6(src=a, dst=b) / UDP(sport=5000, dport=6000) / b"x",
        Ether() / IPv6(src=b, dst=a) / UDP(sport=6000, dport=5000) / b"y",
        Ether() / IPv6(src=a, dst=c) / UDP(sport=5000, dport=6000) / b"z",
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=6000) / b"w",
    ]
    cap = tmp_path / "v6.pcap"
    cap.write_bytes(pcap_bytes([(1_700_000_000_000_000_000 + i, bytes(p)) for i, p in enumerate(pkts)]))
    flt = display_filter([], f"[{a}]:5000 -> [{b}]:6000 silent")
    assert flt == f"ipv6.addr == {a} && ipv6.addr == {b} && udp.port == 5000 && udp.port == 6000"
    assert T.selected(cap, flt) == [1, 2]
