"""Sites inferred from the capture: which addresses reach the outside through the same public address.

Without a profile the capture itself says where the customer network is (docs/topology.md, 'Sites'): the
host a capture was taken on, with every private address whose packets reach that capture point
unwrapped (they share its address realm), and the public addresses a STUN or TURN server reports it
mapped to (XOR-MAPPED-ADDRESS), is one site, taken as the customer network. A private address that
sends from another capture point's realm, or that a relay reports hearing (a TURN peer address, the
inner source of relayed traffic) while it never shows on the wire, is elsewhere: a private address
is not by itself "customer". Every fact keeps the frame that shows it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from .flows import FlowAcc
from .profile import NetworkProfile, is_private


@dataclass
class Site:
    """One address realm behind its public addresses, as seen from one capture file."""

    file: int
    host: str  # the capture host (the address in most packets of the file)
    private: dict[str, int] = field(default_factory=dict)  # private address -> frame that shows it here
    public: dict[str, int] = field(default_factory=dict)  # public address it is mapped to -> frame
    host_frame: int | None = None  # the first frame with the capture host in it (a public host's only evidence)

    def describe(self) -> str:
        hosts = ", ".join(sorted(self.private)) or self.host
        behind = ", ".join(sorted(self.public)) if self.public else None
        if not self.private:  # a public capture host: the site is that address (e.g. a NAT's outside)
            return f"{self.host} (a public address)"
        return f"{hosts} behind {behind}" if behind else f"{hosts} (its public address is not in the capture)"

    def frames(self) -> list[int]:
        seen = {self.host_frame} if self.host_frame is not None and not self.private else set()
        return sorted(set(self.private.values()) | set(self.public.values()) | seen)


@dataclass
class Sites:
    customer: Site | None = None
    others: list[Site] = field(default_factory=list)
    via_relay: dict[str, tuple[str, int]] = field(default_factory=dict)  # address -> (TURN server, frame)
    rule: str = ""  # how the customer site was chosen
    points: dict[int, Site] = field(default_factory=dict)  # capture file -> the site of its capture host

    def customer_public(self) -> set[str]:
        c = self.customer
        if c is None:
            return set()
        return set(c.public) | (set() if c.private else {c.host})

    def place(self, address: str) -> tuple[str, str] | None:
        """(zone, rule) the capture shows for an address whose zone only a default range decided."""
        c = self.customer
        if c is not None:
            if address in c.private:
                return "customer", (
                    f"in the capture host's site ({c.describe()}; frame {c.private[address]}), "
                    "taken as the customer network (no profile names it)"
                )
            if address in self.customer_public():
                frame = c.public.get(address)
                return "customer", (
                    f"the public address of the capture host's site ({c.describe()}"
                    + (f"; frame {frame}" if frame else "")
                    + "), taken as the customer egress"
                )
        for s in self.others:
            if address in s.private:
                return "internet", (
                    f"at another site ({s.describe()}; frame {s.private[address]}), not the capture host's"
                )
        if address in self.via_relay:
            server, frame = self.via_relay[address]
            return "internet", (
                f"heard only through the relay {server} (frame {frame}): the relay's side, not the customer network"
            )
        return None


def infer(
    profile: NetworkProfile,
    flows: list[FlowAcc],
    stun: pd.DataFrame,
    allocations: pd.DataFrame,
    relayed_sources: dict[str, tuple[str, int]],
    servers: set[str],
    vpn_users: dict[str, str],
) -> Sites:
    """Sites from the flows (who sends on the wire at each capture point), the STUN table (mapped
    addresses) and what relays report. `servers`: TURN servers and relayed addresses (never a
    customer host); `relayed_sources`: inner source address -> (TURN server, frame); `vpn_users`: a VPN
    user's physical address -> the concentrator it keeps its tunnel to. When the first capture point is
    a VPN user's, the customer network is its concentrator (the customer's perimeter), and every other
    point's site is elsewhere unless it sits behind that address."""
    out = Sites()
    wire: set[str] = set()
    senders: dict[int, dict[str, int]] = {}
    count: dict[int, Counter] = {}
    present: dict[int, dict[str, int]] = {}  # file -> address -> the first frame with it, sent or received
    for f in flows:
        if f.vpn:
            continue
        n = count.setdefault(f.file, Counter())
        n[f.a[0]] += f.packets_ab + f.packets_ba
        n[f.b[0]] += f.packets_ab + f.packets_ba
        wire.update((f.a[0], f.b[0]))
        seen = present.setdefault(f.file, {})
        for addr in (f.a[0], f.b[0]):
            seen[addr] = min(seen.get(addr, f.first_frame), f.first_frame)
        s = senders.setdefault(f.file, {})
        s.setdefault(f.a[0], f.first_frame)
        if f.packets_ba:
            s.setdefault(f.b[0], f.first_frame)
    mapped: dict[int, dict[str, dict[str, int]]] = {}  # file -> client -> public -> frame
    if len(stun):
        st = stun[~stun.relayed]
        first_src = st.drop_duplicates(["file", "src"])
        for r in first_src.itertuples(index=False):  # the first STUN frame sent from an address, as evidence
            senders.setdefault(int(r.file), {})[str(r.src)] = int(r.frame)
        ok = st[(st.cls == "success") & st.mapped_address.notna() & st.method.isin(["Binding", "Allocate"])]
        for r in ok.itertuples(index=False):
            m = str(r.mapped_address)
            if m != r.dst and not is_private(m):
                mapped.setdefault(int(r.file), {}).setdefault(str(r.dst), {}).setdefault(m, int(r.frame))
    for addr, (server, frame) in relayed_sources.items():
        if addr not in wire and addr not in servers:
            out.via_relay[addr] = (server, frame)
    sites: list[Site] = []
    first_user = _first_vpn_user(count, vpn_users)
    if first_user is not None and not profile.capture_point:
        server, frame = vpn_users[first_user]
        sites.append(Site(-1, server, {}, {server: frame}))
    for file in sorted(count):
        host = profile.capture_point if (file == min(count) and profile.capture_point) else None
        if host is None:
            ranked = [a for a, _ in count[file].most_common()]
            host = ranked[0] if ranked else None
        if host is None or host in servers or host in vpn_users or profile.zone(host).zone in ("cloud", "vpn"):
            continue
        site = Site(file, host, host_frame=present.get(file, {}).get(host))
        if is_private(host):
            for addr, frame in senders.get(file, {}).items():
                if is_private(addr) and addr not in servers and profile.zone(addr).zone != "vpn":
                    site.private[addr] = frame
            site.private.setdefault(host, senders.get(file, {}).get(host, site.host_frame or 0))
            for client in site.private:
                for pub, frame in mapped.get(file, {}).get(client, {}).items():
                    site.public.setdefault(pub, frame)
        sites.append(site)
        out.points[file] = site
    if sites:
        out.customer = sites[0]
        for s in sites[1:]:  # a second capture point behind the same public address is the same site
            if set(s.public) & set(out.customer.public) or s.host in out.customer_public():
                for k, v in s.private.items():
                    out.customer.private.setdefault(k, v)
            else:
                out.others.append(s)
        rule = "the network profile's [capture] point" if profile.capture_point else "the address in most packets"
        out.rule = f"capture host {out.customer.host} ({rule} of file {out.customer.file})"
        if out.customer.file < 0:
            out.rule = f"the VPN concentrator {out.customer.host} that the first capture point's host keeps a tunnel to"
    return out


def _first_vpn_user(count: dict[int, Counter], vpn_users: dict) -> str | None:
    """The first capture file's host, when it is a VPN user."""
    if not count:
        return None
    ranked = [a for a, _ in count[min(count)].most_common()]
    return ranked[0] if ranked and ranked[0] in vpn_users else None
