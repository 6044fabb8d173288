"""The scenarios: who calls whom, from where, through which firewall, and where the captures are taken.

Each scenario's `topology` and `findings` are the ground truth the analyzer must reach (docs/topology.md: the
topology names the use case, a departure from its expected path is a finding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .impair import Impairment


@dataclass(frozen=True)
class Point:
    host: str  # namespace (host or site) the capture runs in
    iface: str  # interface name; 'tunnel' is the VPN client's WireGuard interface
    where: str


POINTS = {
    "client-a.pcap": Point("a", "eth0", "client A's interface, on the customer network"),
    "client-b.pcap": Point("b", "eth0", "client B's interface, on the customer network"),
    "client-x.pcap": Point("x", "eth0", "external user X's interface, behind its home NAT"),
    "client-v.pcap": Point("v", "eth0", "VPN user V's physical interface, behind its home NAT"),
    "tunnel-v.pcap": Point("v", "tunnel", "VPN user V's WireGuard tunnel interface (raw IP)"),
    "nat-outside.pcap": Point("cust", "out", "outside of the customer NAT/VPN head-end"),
    "relay.pcap": Point("relay", "eth0", "the cloud TURN relay's interface"),
    "media.pcap": Point("media", "eth0", "the cloud media processor's interface"),
    "pstn.pcap": Point("pstn", "eth0", "the PSTN trunk's cloud media endpoint"),
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
    relayed: bool = False  # the nominated pairs use a relay candidate (else the run is repeated)
    impair: tuple[Impairment, ...] = ()  # network impairment on one hop (captures/generate/impair.py)

    @property
    def peers(self) -> list[str]:
        return sorted({h for c in self.calls for h in c})

    @property
    def hosts(self) -> set[str]:
        return {*self.peers, "relay"}


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="intranet-direct",
            topology="intranet-direct",
            findings=(),
            summary="A and B on the customer LAN: host-host media (Flow 5)",
            calls=(("a", "b"),),
            points=("client-a.pcap", "nat-outside.pcap"),
            look_for="host candidates paired directly on 10.1.0.0/24; only STUN/TURN allocations leave the NAT",
        ),
        Scenario(
            name="external-via-relay",
            topology="external-via-relay",
            findings=("direct-path-blocked",),
            summary="A (customer) calls X (external); the customer firewall drops UDP to and from the home networks",
            calls=(("a", "x"),),
            points=("client-a.pcap", "nat-outside.pcap", "relay.pcap"),
            look_for="checks to X's host/srflx unanswered; media through the relay (Flow 4 + Flow 3)",
            edge=("block-udp-sites",),
            relayed=True,
        ),
        Scenario(
            name="external-via-relay-only",
            topology="external-via-relay",
            findings=(),
            summary="A (relay-only ICE policy) calls X: A offers only its relay candidate",
            calls=(("a", "x"),),
            points=("client-a.pcap", "relay.pcap"),
            look_for="A's checks leave through its TURN allocation (ChannelData/Send on 3478); no direct attempt",
            policy={"a": "relay"},
            relayed=True,
        ),
        Scenario(
            name="external-direct",
            topology="external-direct",
            findings=(),
            summary="A (customer) calls X (external) through both NATs; captured at both clients (merge test)",
            calls=(("a", "x"),),
            points=("client-a.pcap", "client-x.pcap", "nat-outside.pcap"),
            look_for="srflx-srflx hole punching (Flow 2); the two client captures are the two ends of one call",
        ),
        Scenario(
            name="vpn-internal-via-relay",
            topology="vpn-internal-via-relay",
            findings=("direct-path-blocked",),
            summary="V (split-tunnel VPN) calls A; the customer firewall drops UDP to the home networks and in the VPN",
            calls=(("v", "a"),),
            points=("client-v.pcap", "client-a.pcap", "relay.pcap"),
            look_for="WireGuard keepalives to 198.51.100.3 beside media to the relay; media does not use the tunnel",
            edge=("block-udp-sites", "vpn-no-media"),
            vpn="split",
            relayed=True,
        ),
        Scenario(
            name="vpn-internal-direct",
            topology="vpn-internal-direct",
            findings=(),
            summary="V (split-tunnel VPN) calls A; media goes directly between the NATs, outside the tunnel",
            calls=(("v", "a"),),
            points=("client-v.pcap", "client-a.pcap", "nat-outside.pcap"),
            look_for="srflx-srflx media between 203.0.113.20 and 198.51.100.2 beside the WireGuard flow",
            edge=("vpn-no-media",),
            vpn="split",
        ),
        Scenario(
            name="vpn-external-direct",
            topology="vpn-external-direct",
            findings=(),
            summary="V (split-tunnel VPN) calls X; media directly between the two home NATs (Flow 6)",
            calls=(("v", "x"),),
            points=("client-v.pcap", "client-x.pcap"),
            look_for="srflx-srflx media between 203.0.113.20 and 203.0.113.2; the tunnel carries keepalives only",
            edge=("vpn-no-media",),
            vpn="split",
        ),
        Scenario(
            name="media-over-vpn-internal",
            topology="vpn-internal-direct",
            findings=("media-over-vpn",),
            summary="V (full-tunnel VPN) calls A: media goes through the tunnel (the misrouting)",
            calls=(("v", "a"),),
            points=("client-v.pcap", "tunnel-v.pcap", "client-a.pcap"),
            look_for="client-v: only WireGuard at ~100 packets/s; tunnel-v: host 10.8.0.2 <-> host 10.1.0.11 media",
            vpn="full",
        ),
        Scenario(
            name="media-over-vpn-external",
            topology="vpn-external-direct",
            findings=("media-over-vpn",),
            summary="V (full-tunnel VPN) calls X: media goes through the tunnel and out of the customer NAT",
            calls=(("v", "x"),),
            points=("client-v.pcap", "tunnel-v.pcap", "nat-outside.pcap", "client-x.pcap"),
            look_for="client-v: only WireGuard; X sees V at the customer egress 198.51.100.2",
            vpn="full",
        ),
        Scenario(
            name="tcp-fallback",
            topology="external-via-relay",
            findings=("tcp-fallback",),
            summary="A calls X; the customer edge drops all UDP: A reaches the relay with TURN over TCP 443",
            calls=(("a", "x"),),
            points=("client-a.pcap", "relay.pcap"),
            look_for="unanswered STUN on UDP 3478, then TURN over TCP 443 carrying ChannelData; X uses UDP",
            edge=("block-udp",),
            turn={"a": "tcp"},
            relayed=True,
        ),
        Scenario(
            name="tcp-fallback-tls",
            topology="external-via-relay",
            findings=("tcp-fallback",),
            summary="as tcp-fallback, TURN over TLS on 443 (the client capture sees only TLS)",
            calls=(("a", "x"),),
            points=("client-a.pcap", "relay.pcap"),
            look_for="TLS to 52.112.10.10:443 at the client; the relay capture shows the checks on its UDP side",
            edge=("block-udp",),
            turn={"a": "tls"},
            relayed=True,
        ),
        Scenario(
            name="relay-hairpin",
            topology="intranet-direct",
            findings=("relay-hairpin",),
            summary="A and B on the customer LAN, both with a relay-only policy: media hairpins through the relay",
            calls=(("a", "b"),),
            points=("client-a.pcap", "nat-outside.pcap", "relay.pcap"),
            look_for="both ends relay candidates on 52.112.10.10; two TURN flows leave the customer NAT",
            policy={"a": "relay", "b": "relay"},
            relayed=True,
        ),
        Scenario(
            name="group-call",
            topology="group-call",
            findings=(),
            summary="A (customer) and X (external) join a group call on the cloud media processor",
            calls=(("a", "media"), ("x", "media")),
            points=("client-a.pcap", "nat-outside.pcap", "media.pcap"),
            look_for="two sessions to 52.113.20.20, which answers with its host candidate only (Flow 4, Flow 3)",
        ),
        Scenario(
            name="pstn-trunk",
            topology="pstn-trunk",
            findings=(),
            summary="A calls a phone number: one media leg to the trunk's cloud media endpoint, G.711 (PCMU)",
            calls=(("a", "pstn"),),
            points=("client-a.pcap", "nat-outside.pcap", "pstn.pcap"),
            look_for="RTP payload type 0 (PCMU, 8 kHz) between A and 52.114.30.30 (Flow 4)",
            codec={"pstn": "PCMU"},
        ),
        Scenario(
            name="ice-failed",
            topology="external-via-relay",
            findings=("ice-failed", "relay-unreachable"),
            summary="A calls X; the customer edge drops everything: no STUN, no TURN, no checks get through",
            calls=(("a", "x"),),
            points=("client-a.pcap", "client-x.pcap"),
            look_for="A's Binding/Allocate requests and checks unanswered; X's checks to A's host address unanswered",
            edge=("block-all",),
            seconds=2.0,
            check_retries=3,
            expect_connected=False,
        ),
        # Impaired real calls (issue 16): A calls X directly, as external-direct, with one hop impaired
        Scenario(
            name="impaired/loss-uplink",
            topology="external-direct",
            findings=("poor-media",),
            summary="A calls X directly; 15 % random loss on X's uplink (X -> its home NAT)",
            calls=(("a", "x"),),
            points=("client-a.pcap", "nat-outside.pcap"),
            look_for="X's stream arrives with about 15 % of its sequence numbers missing; A's stream intact",
            seconds=10.0,
            impair=(Impairment("x", loss_pct=15.0),),
        ),
        Scenario(
            name="impaired/delay-jitter",
            topology="external-direct",
            findings=("high-rtt",),
            summary="A calls X directly; 350 ms delay with +-40 ms jitter on X's access link, both directions, "
            "from the moment the call is up",
            calls=(("a", "x"),),
            points=("client-a.pcap", "nat-outside.pcap"),
            look_for="once connected, round trips of A's consent checks about 700 ms; X's stream with about 28 ms "
            "interarrival jitter, reordered",
            seconds=12.0,
            # switched on once the call is up: from the start, 700-ms checks make ICE settle on the relay
            impair=(Impairment("x", delay_ms=350.0, jitter_ms=40.0, both=True, from_s=0.0),),
        ),
        Scenario(
            name="impaired/outage",
            topology="external-direct",
            findings=("media-gap", "poor-media"),  # an interruption that resumes is a gap, not one-way media
            summary="A calls X directly; X's access link loses everything for 2 s mid-call, both directions",
            calls=(("a", "x"),),
            points=("client-a.pcap", "client-x.pcap"),
            look_for="X's stream stops for 2 s at both captures while A's goes on (X's downlink drops it after "
            "the capture point)",
            seconds=10.0,
            impair=(Impairment("x", both=True, outage=(4.0, 2.0)),),
        ),
    ]
}
