"""The network profile: which addresses are the customer network, VPN pools, the cloud, the internet.

One source of truth for every stage that classifies an address. Built-in defaults are the service's
published media ranges and the private/CGNAT ranges; a TOML file adds to them (or replaces a section
with `replace_defaults = true`). Every answer says which rule and which range decided it.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

Net = ipaddress.IPv4Network | ipaddress.IPv6Network

# Published ACS / Teams media ranges (PROTOCOL-FACTS.md, Microsoft 365 endpoint list ID 11 "Optimize")
CLOUD_DEFAULT = ("20.202.0.0/16", "52.112.0.0/14", "52.122.0.0/15", "2603:1063::/38", "13.107.64.0/18")
# RFC 1918, RFC 6598 (CGNAT), RFC 4193 (ULA)
CUSTOMER_DEFAULT = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
LOCAL = ("127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10")

ZONES = ("vpn", "customer", "cloud", "internet")


ROLE_ORDER = ("relay", "media", "sbc", "egress", "concentrator", "vpn-user")
ORIGINS = ("profile", "inferred", "default")  # what decided a zone, strongest first


class Zone(NamedTuple):
    zone: str  # 'vpn' | 'customer' | 'cloud' | 'internet'
    rule: str  # e.g. 'cloud range 52.112.0.0/14 (default)'
    roles: frozenset[str] = frozenset()  # 'relay', 'media', 'sbc', 'concentrator', 'egress', 'vpn-user'
    origin: str = "default"  # 'profile' (the TOML named it), 'inferred' (the capture showed it), 'default'

    @property
    def role(self) -> str | None:
        """One role for display (rules test membership in `roles`: one address can hold several)."""
        return next((r for r in ROLE_ORDER if r in self.roles), None)


def _nets(items) -> tuple[Net, ...]:
    if isinstance(items, str):
        items = [items]
    if isinstance(items, tuple) and items in _CONST_NETS:  # the built-in ranges, parsed once
        return _CONST_NETS[items]
    out = []
    for x in items:
        try:
            out.append(ipaddress.ip_network(x, strict=False))
        except (TypeError, ValueError):
            raise ValueError(f"{x!r} is not an IP address or network") from None
    return tuple(out)


_CONST_NETS: dict[tuple, tuple[Net, ...]] = {}
for _c in (CUSTOMER_DEFAULT, CLOUD_DEFAULT, LOCAL, CUSTOMER_DEFAULT + LOCAL):
    _CONST_NETS[_c] = _nets(_c)


# section -> keys a profile may hold (docs/profile.md describes each)
KEYS = {
    "customer": {"networks", "egress", "replace_defaults"},
    "vpn": {"pools", "concentrators"},
    "cloud": {"relays", "media", "ranges", "replace_defaults"},
    "pstn": {"sbc"},
    "capture": {"point"},
}


def _check_keys(d: dict) -> None:
    """A misspelled section or key is an error naming it: silently ignoring it changes the verdict."""
    for section, body in d.items():
        if section not in KEYS:
            raise ValueError(f"unknown section [{section}] (sections: {', '.join(KEYS)})")
        if not isinstance(body, dict):
            raise ValueError(f"[{section}] must be a table, not a value")
        for key in body:
            if key not in KEYS[section]:
                raise ValueError(f"unknown key {key!r} in [{section}] (keys: {', '.join(sorted(KEYS[section]))})")
    point = d.get("capture", {}).get("point")
    if point is not None:
        try:
            ipaddress.ip_address(point)
        except ValueError:
            raise ValueError(f"[capture] point {point!r} is not an IP address") from None


@dataclass
class NetworkProfile:
    customer: tuple[Net, ...] = field(default_factory=lambda: _nets(CUSTOMER_DEFAULT))
    egress: tuple[Net, ...] = ()
    vpn_pools: tuple[Net, ...] = ()
    concentrators: tuple[Net, ...] = ()
    cloud: tuple[Net, ...] = field(default_factory=lambda: _nets(CLOUD_DEFAULT))
    relays: tuple[Net, ...] = ()
    media: tuple[Net, ...] = ()
    sbc: tuple[Net, ...] = ()
    capture_point: str | None = None
    source: str = "defaults"

    @classmethod
    def load(cls, path: str | None) -> NetworkProfile:
        """Defaults, plus what a TOML file adds (every key: docs/profile.md)."""
        p = cls()
        if path is None:
            return p
        with open(path, "rb") as f:
            try:
                d = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"not valid TOML: {e}") from None
        _check_keys(d)
        p.source = path

        def merge(current, section: str, key: str):
            sec = d.get(section, {})
            extra = _nets(sec.get(key, []))
            return extra if sec.get("replace_defaults") else current + extra

        p.customer = merge(p.customer, "customer", "networks")
        p.egress = _nets(d.get("customer", {}).get("egress", []))
        p.vpn_pools = _nets(d.get("vpn", {}).get("pools", []))
        p.concentrators = _nets(d.get("vpn", {}).get("concentrators", []))
        p.cloud = merge(p.cloud, "cloud", "ranges")
        p.relays = _nets(d.get("cloud", {}).get("relays", []))
        p.media = _nets(d.get("cloud", {}).get("media", []))
        p.sbc = _nets(d.get("pstn", {}).get("sbc", []))
        p.capture_point = d.get("capture", {}).get("point")
        return p

    def zone(self, address: str) -> Zone:
        """Most specific wins: vpn pools, customer, cloud, internet."""
        return _zone(self, address)

    def __hash__(self) -> int:
        return id(self)


_COMPILED: dict[tuple, tuple] = {}  # (ids) -> (the range tuples, held so their ids stay theirs; compiled)


def _all_nets(p: NetworkProfile) -> tuple[tuple[int, int, int], ...]:
    """(version, network, mask) of every range the profile names, and the local ranges: an address in
    none of them is the internet, found with integer compares only (kept per profile and range lists)."""
    groups = (p.customer, p.egress, p.vpn_pools, p.concentrators, p.cloud, p.relays, p.media, p.sbc)
    key = tuple(map(id, groups))
    hit = _COMPILED.get(key)
    if hit is None:
        nets = [n for group in groups for n in group] + list(_nets(LOCAL))
        hit = _COMPILED[key] = (groups, tuple((n.version, int(n.network_address), int(n.netmask)) for n in nets))
    return hit[1]


@lru_cache(maxsize=65536)
def _zone(p: NetworkProfile, address: str) -> Zone:
    """The zone from the most specific range; the roles from every role list naming the address (one
    firewall is often egress and concentrator at once; a concentrator is part of the customer's perimeter)."""
    try:
        a = ipaddress.ip_address(address)
    except ValueError:
        return Zone("internet", "not an IP address")
    v, x = a.version, int(a)
    if not any(v == nv and x & mask == net for nv, net, mask in _all_nets(p)):
        return Zone("internet", "no range matched", frozenset(), "default" if p.source == "defaults" else "profile")
    defaults = {"customer": _nets(CUSTOMER_DEFAULT), "cloud": _nets(CLOUD_DEFAULT)}

    def origin(n: Net, kind: str | None = None) -> str:
        return "default" if p.source == "defaults" or n in defaults.get(kind, ()) else "profile"

    def hit(nets) -> Net | None:  # the longest prefix: a profile's 10.2.0.0/16 over the default 10.0.0.0/8
        return max((n for n in nets if a.version == n.version and a in n), key=lambda n: n.prefixlen, default=None)

    roles, why = [], []
    for nets, role, what in (
        (p.egress, "egress", "customer NAT egress"),
        (p.concentrators, "concentrator", "VPN concentrator"),
        (p.relays, "relay", "cloud relay"),
        (p.media, "media", "cloud media processor"),
        (p.sbc, "sbc", "PSTN SBC"),
    ):
        n = hit(nets)
        if n is not None:
            roles.append(role)
            why.append(f"{what} {n} ({origin(n)})")
    n = hit(p.vpn_pools)
    if n is not None:
        return Zone("vpn", f"VPN pool {n} ({origin(n)})", frozenset(roles), origin(n))
    if set(roles) & {"egress", "concentrator"}:
        return Zone("customer", " and ".join(why), frozenset(roles), "default" if p.source == "defaults" else "profile")
    n = hit(p.customer)
    if n is not None:
        return Zone(
            "customer", f"customer network {n} ({origin(n, 'customer')})", frozenset(roles), origin(n, "customer")
        )
    if roles:
        return Zone("cloud", " and ".join(why), frozenset(roles), "default" if p.source == "defaults" else "profile")
    n = hit(p.cloud)
    if n is not None:
        return Zone("cloud", f"cloud range {n} ({origin(n, 'cloud')})", frozenset(), origin(n, "cloud"))
    if any(a in n for n in _nets(LOCAL) if n.version == a.version):
        return Zone("customer", "loopback/link-local address")
    return Zone("internet", "no range matched", frozenset(), "default" if p.source == "defaults" else "profile")


@lru_cache(maxsize=1 << 18)
def is_private(address: str) -> bool:
    """Private, CGNAT, ULA, loopback or link-local: an address no one outside can reach directly."""
    try:
        a = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(a in n for n in _nets(CUSTOMER_DEFAULT + LOCAL) if n.version == a.version)
