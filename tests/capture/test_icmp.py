"""ICMP and ICMPv6 errors: the quoted 5-tuple, the `icmp` table, the flows and pairs they hit, and the
`icmp-unreachable` finding, checked against tshark."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6TimeExceeded, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from analyzer.api import analyze
from tests.capture.writers import pcap_bytes
from tests.conftest import CAPTURES, public_capture, tshark_fields

T0 = 1_700_000_000_000_000_000
TEAMS = "ntop_nDPI/teams.pcap"
ICMP_FIELDS = ["frame.number", "ip.src", "ip.dst", "icmp.type", "icmp.code", "udp.srcport", "udp.dstport"]


def _eth():
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def test_teams_port_unreachables_quote_the_video_pair_as_tshark_reads_them():
    path = public_capture(TEAMS)
    theirs = tshark_fields(path, ICMP_FIELDS, display_filter="icmp")
    assert [r[0] for r in theirs] == ["1490", "1497"]
    a = analyze(path)
    icmp = a.icmp
    assert icmp.frame.tolist() == [1490, 1497]
    for row, t in zip(icmp.itertuples(index=False), theirs, strict=True):
        _, src, dst, typ, code, sport, dport = t
        # tshark lists the outer and then the quoted IP header's addresses
        assert [row.src, row.quoted_src] == src.split(",")
        assert [row.dst, row.quoted_dst] == dst.split(",")
        assert (row.type, row.code, row.quoted_sport, row.quoted_dport) == (int(typ), int(code), int(sport), int(dport))
        assert (row.kind, row.unreachable, row.quoted_transport) == ("port unreachable", True, "udp")
    flows = a.flows
    hit = flows[flows.icmp_frames.str.len() > 0]
    assert hit[["src", "sport", "dst", "dport"]].values.tolist() == [["93.71.110.205", 16333, "192.168.1.6", 50036]]
    assert hit.icmp_frames.tolist() == [[1490, 1497]]
    pairs = a.pairs
    sel = pairs[(pairs.session == 1) & pairs.selected]
    assert sel.icmp_frames.tolist() == [[1490, 1497], [1490, 1497]]
    assert (pairs[pairs.session == 0].icmp_frames.str.len() == 0).all()
    f = a.findings[a.findings.code == "icmp-unreachable"]
    # tshark: frame 1453 is the far end's last packet on the pair (a Binding success from
    # 93.71.110.205:16333), 1.1 s before the ICMPs; this side kept sending (frames 1483, 1489)
    assert len(f) == 1 and f.frames.iloc[0] == [1453, 1490, 1497] and f.call.iloc[0] == 1
    assert f.severity.iloc[0] == "info"
    assert (
        "192.168.1.6:50036 -> 93.71.110.205:16333/udp 1.1 s after its last packet (frame 1453)"
        in (f.explanation.iloc[0])
    )


def test_the_far_end_still_sending_after_the_unreachable_makes_it_a_warning(tmp_path):
    pkts = list(rdpcap(str(public_capture(TEAMS))))
    late = pkts[1453 - 1].copy()  # the far end's Binding success, sent again after the ICMPs
    late.time = pkts[1497 - 1].time + 0.05
    pkts.append(late)
    out = tmp_path / "late.pcap"
    wrpcap(str(out), pkts)
    f = analyze(out).findings
    f = f[f.code == "icmp-unreachable"]
    assert f.severity.tolist() == ["warning"] and f.frames.iloc[0] == [1490, 1497, 1541]


def test_an_unreachable_as_both_ends_hang_up_is_attached_but_no_finding():
    """The generated group call: the far end's last DTLS alert (frame 646) 0.6 ms before the ICMP (651)."""
    from tests.conftest import CAPTURES

    path = CAPTURES / "group-call" / "media.pcap"
    if not path.exists():
        pytest.skip("shipped capture absent")
    a = analyze(path)
    assert a.icmp.frame.tolist() == [651]
    hit = a.pairs[a.pairs.icmp_frames.str.len() > 0]
    assert hit.selected.all() and hit.icmp_frames.tolist() == [[651], [651]]
    assert "icmp-unreachable" not in a.findings.code.tolist()


@pytest.mark.parametrize("change", ["removed", "other-port"])
def test_no_finding_without_an_unreachable_on_the_selected_pair(tmp_path, change):
    pkts = list(rdpcap(str(public_capture(TEAMS))))
    if change == "removed":
        pkts = [p for k, p in enumerate(pkts, start=1) if k not in (1490, 1497)]
    else:  # the same messages quoting a port the pair does not use
        for k in (1490, 1497):
            p = pkts[k - 1]
            quoted = IP(bytes(p[ICMP].payload))
            quoted[UDP].dport = 16999
            quoted[UDP].chksum = None
            p[ICMP].remove_payload()
            p[ICMP].add_payload(bytes(quoted)[: 20 + 8])
            p[ICMP].chksum = None
            del p[IP].len, p[IP].chksum
            pkts[k - 1] = Ether(bytes(p))
    out = tmp_path / "t.pcap"
    wrpcap(str(out), pkts)
    a = analyze(out)
    assert len(a.icmp) == (0 if change == "removed" else 2)
    assert "icmp-unreachable" not in a.findings.code.tolist()
    if change == "other-port":
        assert a.icmp.quoted_dport.tolist() == [16999, 16999]
        assert a.pairs.icmp_frames.str.len().sum() == 0


def test_icmpv6_and_time_exceeded_quotes_equal_tshark(tmp_path):
    u6 = IPv6(src="2001:db8::1", dst="2603:1063::9") / UDP(sport=50020, dport=3480) / Raw(b"\x00\x01" + b"\0" * 18)
    t4 = IP(src="10.1.0.11", dst="52.112.7.9", ttl=1) / TCP(sport=50444, dport=443, flags="S")
    pkts = [
        _eth() / IPv6(src="2603:1063::9", dst="2001:db8::1") / ICMPv6DestUnreach(code=4) / u6,
        _eth() / IPv6(src="2001:db8:ff::1", dst="2001:db8::1") / ICMPv6TimeExceeded(code=0) / u6,
        _eth() / IP(src="10.1.0.1", dst="10.1.0.11") / ICMP(type=11, code=0) / Raw(bytes(t4)[:28]),
        _eth() / IP(src="10.1.0.1", dst="10.1.0.11") / ICMP(type=8) / Raw(b"ping"),  # echo: no quote, no row
    ]
    path = tmp_path / "e.pcap"
    path.write_bytes(pcap_bytes([(T0 + k, bytes(p)) for k, p in enumerate(pkts)]))
    fields = ["frame.number", "ipv6.src", "ip.src", "icmpv6.type", "icmp.type", "icmpv6.code", "icmp.code",
              "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport"]  # fmt: skip
    theirs = {int(r[0]): r for r in tshark_fields(path, fields)}
    icmp = analyze(path).icmp
    assert icmp.frame.tolist() == [1, 2, 3]
    for row in icmp.itertuples(index=False):
        _, src6, src4, t6, t4_, c6, c4, us, ud, ts_, td = theirs[row.frame]
        outer, quoted = (src6 or src4).split(",")
        assert (row.src, row.quoted_src) == (outer, quoted)
        assert (row.type, row.code) == (int(t6 or t4_), int(c6 or c4))
        assert (row.quoted_sport, row.quoted_dport) == (int(us or ts_), int(ud or td))
    assert icmp.kind.tolist() == ["port unreachable", "hop limit exceeded in transit", "TTL exceeded in transit"]
    assert icmp.unreachable.tolist() == [True, False, False]
    assert icmp.quoted_transport.tolist() == ["udp", "udp", "tcp"]


def test_the_icmp_judged_is_the_one_quoting_the_pair_not_another_files_frame():
    """plans/office/vpn-internal-via-relay, all three points: client-v.pcap frames 305 and 307 are ICMP
    port unreachable quoting 20.202.40.4:49154 -> 172.31.9.10:48686/udp (the selected pair), 1.3 ms after
    V's own last packet on it (frame 301): both ends hanging up, no finding (as for client-v.pcap alone).
    client-a.pcap frame 307 is an unrelated ICMP quoting a DNS query to 172.20.5.1:53 (tshark -Y icmp);
    judging that one by its frame number raised an icmp-unreachable that no packet supports."""
    d = CAPTURES / "plans" / "office" / "vpn-internal-via-relay"
    one = analyze(d / "client-v.pcap", network=d / "network.toml")
    assert "icmp-unreachable" not in set(one.findings.code)
    a = analyze(sorted(d.glob("*.pcap")), network=d / "network.toml")
    assert set(a.icmp[(a.icmp.file == 1) & a.icmp.frame.isin([305, 307])].quoted_dport) == {48686}
    assert "icmp-unreachable" not in set(a.findings.code)
