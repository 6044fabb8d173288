"""The scenarios: who calls whom, from where, through which firewall, and where the captures are taken.

Each scenario's `topology` and `findings` are the ground truth the analyzer must reach (DESIGN.md: the
topology names the use case, a departure from its expected path is a finding).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Point:
    host: str  # namespace (host or site) the capture runs in
    iface: str  # interface name; 'tunnel' is the VPN client's WireGuard interface
    where: str


POINTS = {
    "client-a.pcap": Point("a", "eth0", "client A's interface (10.1.0.11), on the customer network"),
    "client-b.pcap": Point("b", "eth0", "client B's interface (10.1.0.12), on the customer network"),
    "client-x.pcap": Point("x", "eth0", "external user X's interface (192.168.1.10), behind its home NAT"),
    "client-v.pcap": Point("v", "eth0", "VPN user V's physical interface (192.168.2.10), behind its home NAT"),
    "tunnel-v.pcap": Point("v", "tunnel", "VPN user V's WireGuard tunnel interface (10.8.0.2, raw IP)"),
    "nat-outside.pcap": Point("cust", "out", "outside of the customer NAT/VPN head-end (198.51.100.2, .3)"),
    "relay.pcap": Point("relay", "eth0", "the cloud TURN relay's interface (52.112.10.10)"),
    "media.pcap": Point("media", "eth0", "the cloud media processor's interface (52.113.20.20)"),
    "pstn.pcap": Point("pstn", "eth0", "the PSTN trunk's cloud media endpoint (52.114.30.30)"),
}
CLIENTS = ("a", "b", "x", "v")


@dataclass(frozen=True)
class Scenario:
    name: str
    topology: str
    findings: tuple[str, ...]
    summary: str
    calls: tuple[tuple[str, str], ...]  # (caller, callee); the callee answers
    points: tuple[str, ...]
    look_for: str
    edge: tuple[str, ...] = ()  # firewall policies at the customer edge (world.EDGE_RULES)
    vpn: str | None = None  # 'split' | 'full'
    turn: dict[str, str] = field(default_factory=dict)  # client -> TURN transport ('udp' default, 'tcp', 'tls')
    policy: dict[str, str] = field(default_factory=dict)  # client -> 'relay' (iceTransportPolicy)
    codec: dict[str, str] = field(default_factory=dict)  # peer -> only codec
    seconds: float = 2.5  # media after ICE completes
    check_retries: int | None = None  # aioice retransmissions (ice-failed: fail in 7.5 s, not 63 s)
    expect_connected: bool = True

    @property
    def peers(self) -> list[str]:
        return sorted({h for c in self.calls for h in c})

    @property
    def hosts(self) -> set[str]:
        return {*self.peers, "relay"}


S = Scenario
SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    S("intranet-direct", "intranet-direct", (),
      "A and B on the customer LAN: host-host media (Flow 5)",
      (("a", "b"),), ("client-a.pcap", "nat-outside.pcap"),
      "host candidates paired directly on 10.1.0.0/24; only STUN/TURN allocations leave the NAT"),
    S("external-via-relay", "external-via-relay", ("direct-path-blocked",),
      "A (customer) calls X (external); the customer firewall drops UDP to and from the home networks",
      (("a", "x"),), ("client-a.pcap", "nat-outside.pcap", "relay.pcap"),
      "checks to X's host/srflx unanswered; media through the relay (Flow 4 + Flow 3)",
      edge=("block-udp-sites",)),
    S("external-via-relay-only", "external-via-relay", (),
      "A (relay-only ICE policy) calls X: A offers only its relay candidate",
      (("a", "x"),), ("client-a.pcap", "relay.pcap"),
      "A's checks leave through its TURN allocation (ChannelData/Send on 3478); no direct attempt",
      policy={"a": "relay"}),
    S("external-direct", "external-direct", (),
      "A (customer) calls X (external) through both NATs; captured at both clients (merge test)",
      (("a", "x"),), ("client-a.pcap", "client-x.pcap", "nat-outside.pcap"),
      "srflx-srflx hole punching (Flow 2); the two client captures are the two ends of one call"),
    S("vpn-internal-via-relay", "vpn-internal-via-relay", ("direct-path-blocked",),
      "V (split-tunnel VPN) calls A; the customer firewall drops UDP to the home networks and in the tunnel",
      (("v", "a"),), ("client-v.pcap", "client-a.pcap", "relay.pcap"),
      "WireGuard keepalives to 198.51.100.3 beside media to the relay; media does not use the tunnel",
      edge=("block-udp-sites", "vpn-no-media"), vpn="split"),
    S("vpn-internal-direct", "vpn-internal-direct", (),
      "V (split-tunnel VPN) calls A; media goes directly between the NATs, outside the tunnel",
      (("v", "a"),), ("client-v.pcap", "client-a.pcap", "nat-outside.pcap"),
      "srflx-srflx media between 203.0.113.20 and 198.51.100.2 beside the WireGuard flow",
      edge=("vpn-no-media",), vpn="split"),
    S("vpn-external-direct", "vpn-external-direct", (),
      "V (split-tunnel VPN) calls X; media directly between the two home NATs (Flow 6)",
      (("v", "x"),), ("client-v.pcap", "client-x.pcap"),
      "srflx-srflx media between 203.0.113.20 and 203.0.113.2; the tunnel carries keepalives only",
      edge=("vpn-no-media",), vpn="split"),
    S("media-over-vpn-internal", "vpn-internal-direct", ("media-over-vpn",),
      "V (full-tunnel VPN) calls A: media goes through the tunnel (the misrouting)",
      (("v", "a"),), ("client-v.pcap", "tunnel-v.pcap", "client-a.pcap"),
      "client-v: only WireGuard at ~100 packets/s; tunnel-v: host 10.8.0.2 <-> host 10.1.0.11 media",
      vpn="full"),
    S("media-over-vpn-external", "vpn-external-direct", ("media-over-vpn",),
      "V (full-tunnel VPN) calls X: media goes through the tunnel and out of the customer NAT",
      (("v", "x"),), ("client-v.pcap", "tunnel-v.pcap", "nat-outside.pcap", "client-x.pcap"),
      "client-v: only WireGuard; X sees V at the customer egress 198.51.100.2",
      vpn="full"),
    S("tcp-fallback", "external-via-relay", ("tcp-fallback",),
      "A calls X; the customer edge drops all UDP: A reaches the relay with TURN over TCP 443",
      (("a", "x"),), ("client-a.pcap", "relay.pcap"),
      "unanswered STUN on UDP 3478, then TURN over TCP 443 carrying ChannelData; X uses UDP",
      edge=("block-udp",), turn={"a": "tcp"}),
    S("tcp-fallback-tls", "external-via-relay", ("tcp-fallback",),
      "as tcp-fallback, TURN over TLS on 443 (the client capture sees only TLS)",
      (("a", "x"),), ("client-a.pcap", "relay.pcap"),
      "TLS to 52.112.10.10:443 at the client; the relay capture shows the checks on its UDP side",
      edge=("block-udp",), turn={"a": "tls"}),
    S("relay-hairpin", "intranet-direct", ("relay-hairpin",),
      "A and B on the customer LAN, both with a relay-only policy: media hairpins through the relay",
      (("a", "b"),), ("client-a.pcap", "nat-outside.pcap", "relay.pcap"),
      "both ends relay candidates on 52.112.10.10; two TURN flows leave the customer NAT",
      policy={"a": "relay", "b": "relay"}),
    S("group-call", "group-call", (),
      "A (customer) and X (external) join a group call on the cloud media processor",
      (("a", "media"), ("x", "media")), ("client-a.pcap", "nat-outside.pcap", "media.pcap"),
      "two sessions to 52.113.20.20, which answers with its host candidate only (Flow 4, Flow 3)"),
    S("pstn-trunk", "pstn-trunk", (),
      "A calls a phone number: one media leg to the trunk's cloud media endpoint, G.711 (PCMU)",
      (("a", "pstn"),), ("client-a.pcap", "nat-outside.pcap", "pstn.pcap"),
      "RTP payload type 0 (PCMU, 8 kHz) between A and 52.114.30.30 (Flow 4)",
      codec={"pstn": "PCMU"}),
    S("ice-failed", "external-via-relay", ("ice-failed", "relay-unreachable"),
      "A calls X; the customer edge drops everything: no STUN, no TURN, no checks get through",
      (("a", "x"),), ("client-a.pcap", "client-x.pcap"),
      "A's Binding/Allocate requests and checks unanswered; X's checks to A's host address unanswered",
      edge=("block-all",), check_retries=3, seconds=2.0, expect_connected=False),
]}
