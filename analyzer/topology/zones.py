"""Zones of addresses: the network profile, plus what the capture itself shows.

The profile (defaults or TOML) decides most addresses. The capture adds facts the profile cannot know:
a host that keeps a VPN tunnel is a VPN user (its physical address is on the internet, DESIGN.md);
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

VPN_SERVER_PORTS = frozenset((51820, 4500, 500, 1194, 443))
BUSY_RATE = 40  # packets/s both ways: one audio call is ~100 (50 each way), tunnel keepalives a few

# unordered zone pair -> (label, reason); DESIGN.md's flow table
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
    capture_host: str | None = None
    capture_rule: str = ""

    def zone(self, address: str) -> Zone:
        z = self.profile.zone(address)
        if z.zone == "vpn":
            return z
        if address in self.vpn_users:
            return Zone("internet", self.vpn_users[address], "vpn-user")
        if address in self.relays:
            return Zone(z.zone, f"{z.rule}; {self.relays[address]}", "relay")
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
            return self.profile.zone(ep[0]).role == "concentrator"

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
        self._capture_host(stun, allocations)

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
