"""Zones of addresses: the network profile, plus what the capture itself shows.

The profile (defaults or TOML) decides most addresses. The capture adds facts the profile cannot know:
a host that keeps a VPN tunnel is a VPN user (its physical address is on the internet, docs/topology.md);
TURN servers seen allocating are relays; the capture host is the address that sends most checks and
allocations. Every answer carries the rule that decided it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ..capture.decode import PROTO_TCP
from .flows import FlowAcc
from .profile import NetworkProfile, Zone, is_private
from .sites import Sites, infer

VPN_SERVER_PORTS = frozenset((51820, 4500, 500, 1194, 443))
BUSY_RATE = 40  # packets/s both ways: one audio call is ~100 (50 each way), tunnel keepalives a few

# unordered zone pair -> (label, reason); the flow table of docs/topology.md
LABELS: dict[frozenset, tuple[str, str]] = {
    frozenset(("customer", "internet")): ("Flow 2", "customer network <-> internet"),
    frozenset(("vpn", "customer")): ("Flow 2`", "VPN user <-> customer network through the tunnel"),
    frozenset(("internet", "cloud")): ("Flow 3", "remote user (internet) <-> cloud"),
    frozenset(("customer", "cloud")): ("Flow 4", "customer network <-> cloud"),
    frozenset(("customer",)): ("Flow 5", "inside the customer network"),
    frozenset(("internet",)): ("Flow 6", "remote user <-> remote user over the internet"),
}
OTHER_REASONS: dict[frozenset, str] = {
    frozenset(("vpn", "cloud")): "VPN pool address <-> cloud: media through the tunnel (not a documented flow)",
    frozenset(("vpn", "internet")): "VPN pool address <-> internet (not a documented flow)",
    frozenset(("vpn",)): "between VPN pool addresses",
    frozenset(("cloud",)): "between cloud addresses",
}


@dataclass
class VpnTunnel:
    client: tuple[str, int]
    server: tuple[str, int]
    kinds: dict[str, int]
    packets: int
    first_frame: int
    first_ts: int
    last_ts: int
    file: int
    busy_seconds: int = 0  # seconds with a call's packet rate (>= BUSY_RATE packets)
    busy: tuple[int, ...] = ()  # those seconds (epoch seconds)
    evidence: str | None = None  # how the flow as a whole was recognised, when no packet signature named it


@dataclass
class ZoneMap:
    profile: NetworkProfile
    vpn_users: dict[str, str] = field(default_factory=dict)  # physical address -> rule
    tunnels: list[VpnTunnel] = field(default_factory=list)
    relays: dict[str, str] = field(default_factory=dict)  # TURN server / relayed address -> rule
    relay_server: dict[str, str] = field(default_factory=dict)  # relayed address -> its TURN server
    capture_host: str | None = None
    capture_rule: str = ""
    sites: Sites = field(default_factory=Sites)
    _memo: dict = field(default_factory=dict, repr=False)  # address -> Zone, once learn() has finished

    def zone(self, address: str) -> Zone:
        """The profile's zone, then what the capture shows: a VPN user's physical address, a relay, and,
        where only a default range decided, the site the address was seen at. Remembered per address
        once the map is learned: a perimeter capture asks about hundreds of thousands of addresses."""
        z = self._memo.get(address)
        if z is None:
            z = self._zone(address)
            if self._learned:
                self._memo[address] = z
        return z

    _learned = False

    def _zone(self, address: str) -> Zone:
        z = self.profile.zone(address)
        if z.zone == "vpn":
            return z
        if address in self.vpn_users:
            return Zone("internet", self.vpn_users[address], z.roles | {"vpn-user"}, "inferred")
        if address in self.relays:
            server = self.relay_server.get(address)
            if z.origin == "default" and z.zone == "customer" and server and server != address:
                # a private relayed address is on its server's side, not the customer network
                zs = self._zone(server)
                return Zone(zs.zone, f"{self.relays[address]} on {server} ({zs.rule})", z.roles | {"relay"}, "inferred")
            return Zone(z.zone, f"{z.rule}; {self.relays[address]}", z.roles | {"relay"}, z.origin)
        if z.origin == "default" and z.zone in ("customer", "internet"):
            heads = {t.server[0]: t for t in self.tunnels if t.client[0] in self.vpn_users}
            if address in heads:  # a concentrator is part of the customer's perimeter
                t = heads[address]
                return Zone(
                    "customer",
                    f"VPN concentrator: {t.client[0]} keeps a tunnel to it (frame {t.first_frame})",
                    z.roles | {"concentrator"},
                    "inferred",
                )
            placed = self.sites.place(address)
            if placed is not None:
                zone, rule = placed
                roles = z.roles | ({"egress"} if zone == "customer" and not is_private(address) else set())
                return Zone(zone, rule, roles, "inferred")
        return z

    def label(self, a: str, b: str) -> tuple[str, str]:
        za, zb = self.zone(a).zone, self.zone(b).zone
        key = frozenset((za, zb))
        if key in LABELS:
            return LABELS[key]
        return "other", OTHER_REASONS.get(key, f"{za} <-> {zb}")

    # ------------------------------------------------------------------ learning from the capture
    def _tunnel_ends(self, f: FlowAcc) -> tuple[tuple[str, int], tuple[str, int]]:
        """(client, server) of a tunnel flow, by the strongest sign there is: a concentrator named in the
        profile; the TCP SYN; a private address against a public one (a laptop reaching its company's
        head-end); a VPN server port on one end only; the first to send. A server behind a port forward,
        captured on its LAN, has the private address: ports cannot tell it from a client bound to a VPN
        port (OpenVPN without nobind, WireGuard's ListenPort) that reaches a server on a high port, so
        the profile names it ([vpn] concentrators)."""
        a, b = f.a, f.b

        def concentrator(ep: tuple[str, int]) -> bool:
            return "concentrator" in self.profile.zone(ep[0]).roles

        if concentrator(a) != concentrator(b):
            return (b, a) if concentrator(a) else (a, b)
        if f.proto == PROTO_TCP and f.syn_seen:
            return (b, a) if f.syn_from_b else (a, b)
        if is_private(a[0]) != is_private(b[0]):
            return (a, b) if is_private(a[0]) else (b, a)
        if (a[1] in VPN_SERVER_PORTS) != (b[1] in VPN_SERVER_PORTS):
            return (b, a) if a[1] in VPN_SERVER_PORTS else (a, b)
        return a, b

    def learn(self, flows: list[FlowAcc], stun: pd.DataFrame, allocations: pd.DataFrame) -> None:
        self._learned = False
        self._memo.clear()
        try:
            self._learn(flows, stun, allocations)
        finally:
            self._learned = True

    def _learn(self, flows: list[FlowAcc], stun: pd.DataFrame, allocations: pd.DataFrame) -> None:
        for f in flows:
            if not f.vpn or (sum(f.vpn.values()) < 2 and not f.vpn_evidence):
                continue
            client, server = self._tunnel_ends(f)
            kinds = ", ".join(sorted(f.vpn))
            self.tunnels.append(
                VpnTunnel(
                    client,
                    server,
                    dict(f.vpn),
                    f.packets_ab + f.packets_ba,
                    f.first_frame,
                    f.first_ts,
                    f.last_ts,
                    f.file,
                    sum(1 for n in f.vpn_seconds.values() if n >= BUSY_RATE),
                    tuple(sorted(sec for sec, n in f.vpn_seconds.items() if n >= BUSY_RATE)),
                    f.vpn_evidence,
                )
            )
            if self.profile.zone(client[0]).zone != "vpn":
                self.vpn_users.setdefault(
                    client[0],
                    f"keeps a VPN tunnel ({kinds}) to {server[0]}:{server[1]} "
                    f"(frame {f.first_frame}): a VPN user's physical address",
                )
        for r in allocations.itertuples(index=False):
            self.relays.setdefault(r.server, f"TURN server seen allocating (frame {r.first_frame})")
            if isinstance(r.relayed_address, str):
                self.relays.setdefault(r.relayed_address, f"TURN relayed address (frame {r.allocated_frame})")
                self.relay_server.setdefault(r.relayed_address, r.server)
        self._capture_host(stun, allocations)
        self.sites = infer(
            self.profile,
            flows,
            stun,
            allocations,
            _relayed_sources(stun, set(self.relays)),
            set(self.relays),
            self._user_servers(),
        )

    def _user_servers(self) -> dict[str, tuple[str, int]]:
        """A VPN user's physical address -> (the concentrator of its tunnel, the tunnel's first frame)."""
        out: dict[str, tuple[str, int]] = {}
        for t in self.tunnels:
            if t.client[0] in self.vpn_users:
                out.setdefault(t.client[0], (t.server[0], t.first_frame))
        return out

    def _capture_host(self, stun: pd.DataFrame, allocations: pd.DataFrame) -> None:
        if self.profile.capture_point:
            self.capture_host, self.capture_rule = self.profile.capture_point, "network profile [capture] point"
            return
        votes: Counter = Counter()
        if len(stun):
            req = stun[(stun.cls == "request") & ~stun.relayed]
            votes.update(req.src.astype(str).tolist())
        if len(allocations):
            votes.update(allocations.client.astype(str).tolist())
        if votes:
            host, n = votes.most_common(1)[0]
            self.capture_host = host
            self.capture_rule = f"sends most checks and allocations ({n})"


def _relayed_sources(stun: pd.DataFrame, servers: set[str]) -> dict[str, tuple[str, int]]:
    """Addresses a relay reports hearing: the inner source of relayed STUN (Data indications, ChannelData)
    and the XOR-PEER-ADDRESS of Data indications; -> (TURN server, first frame)."""
    out: dict[str, tuple[str, int]] = {}
    if not len(stun):
        return out
    inner = stun[stun.relayed & stun.outer_src.notna()].drop_duplicates("src")  # first frame of each source
    for r in inner.itertuples(index=False):
        if r.src in servers:
            continue
        server = r.outer_src if r.outer_src in servers else r.outer_dst
        out.setdefault(str(r.src), (str(server), int(r.frame)))
    data = stun[(stun.method == "Data") & (stun.cls == "indication") & stun.peer_address.notna() & ~stun.relayed]
    for r in data.drop_duplicates("peer_address").itertuples(index=False):
        out.setdefault(str(r.peer_address), (str(r.src), int(r.frame)))
    return out
