"""The emulated networks: a customer site behind a NAT (with a VPN head-end), two home networks behind
NATs, and public hosts for the cloud relay, the media processor and the PSTN trunk's media endpoint.

```
          customer LAN 10.1.0.0/24 (bridge 'lan' in the cust namespace)
   a 10.1.0.11 --+
   b 10.1.0.12 --+-- cust: NAT 198.51.100.2 + WireGuard head-end 198.51.100.3:51820 (pool 10.8.0.0/24)
                                 |
          internet: one flat segment (bridge 'br' in the inet namespace), each host a /32, default dev
                                 |
   relay 52.112.10.10 (coturn)   media 52.113.20.20   pstn 52.114.30.30
   homex: NAT 203.0.113.2  -- x 192.168.1.10 (external user)
   homev: NAT 203.0.113.20 -- v 192.168.2.10 (VPN user; tunnel address 10.8.0.2)
```

Every NAT masquerades outbound and drops unsolicited inbound UDP on its outside (conntrack state NEW),
except the customer's VPN port: an early inbound check would otherwise leave a conntrack entry that
makes the NAT pick another port for the outbound flow, and hole punching would fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .netns import Lab

CUSTOMER_NET = "10.1.0.0/16"
VPN_POOL = "10.8.0.0/24"
VPN_SERVER_TUNNEL = "10.8.0.1"
VPN_CLIENT_TUNNEL = "10.8.0.2"
WG_PORT = 51820


@dataclass(frozen=True)
class Site:
    """A NAT router and the LAN behind it."""

    name: str
    outside: str
    lan_gateway: str
    lan_prefix: int
    zone: str
    role: str
    extra_outside: tuple[str, ...] = ()


SITES = {
    "cust": Site(
        "cust",
        "198.51.100.2",
        "10.1.0.1",
        24,
        "customer",
        "customer NAT and firewall (egress)",
        extra_outside=("198.51.100.3",),
    ),
    "homex": Site("homex", "203.0.113.2", "192.168.1.1", 24, "internet", "external user's home NAT"),
    "homev": Site("homev", "203.0.113.20", "192.168.2.1", 24, "internet", "VPN user's home NAT"),
}

# host -> (site or None for a public host, address, zone, role)
HOSTS = {
    "a": ("cust", "10.1.0.11", "customer", "client A on the customer network"),
    "b": ("cust", "10.1.0.12", "customer", "client B on the customer network"),
    "x": ("homex", "192.168.1.10", "internet", "external (remote) user behind a home NAT"),
    "v": ("homev", "192.168.2.10", "internet", "VPN user behind a home NAT, tunnel to the customer network"),
    "relay": (None, "52.112.10.10", "cloud", "cloud TURN relay (coturn): UDP 3478, TCP/TLS 443"),
    "media": (None, "52.113.20.20", "cloud", "cloud media processor (aiortc, host candidate only)"),
    "pstn": (None, "52.114.30.30", "cloud", "PSTN trunk media endpoint in the cloud (aiortc, G.711 only)"),
}
VPN_HEADEND = SITES["cust"].extra_outside[0]


@dataclass
class World:
    lab: Lab
    ns: dict[str, str] = field(default_factory=dict)  # host or site name -> namespace
    edge_rules: list[str] = field(default_factory=list)

    def address(self, host: str) -> str:
        return HOSTS[host][1] if host in HOSTS else SITES[host].outside


def build(lab: Lab, hosts: set[str], *, edge: list[str] | None = None) -> World:
    """Namespaces and links for `hosts` (and the sites they sit behind), NATs and firewalls configured."""
    w = World(lab)
    inet = w.ns["inet"] = lab.ns("inet")
    lab.bridge(inet, "inetbr")
    sites = {HOSTS[h][0] for h in hosts if HOSTS[h][0]}
    if "v" in hosts:
        sites.add("cust")  # the VPN user's head-end
    for s in sorted(sites):
        _site(w, SITES[s])
    for h in sorted(hosts):
        site, addr, _, _ = HOSTS[h]
        ns = w.ns[h] = lab.ns(h)
        if site is None:
            _public(w, ns, h, [addr])
        else:
            gw = w.ns[site]
            lab.veth(ns, "eth0", gw, f"l-{h}")
            lab.batch(gw, [f"link set dev l-{h} master lan", f"link set dev l-{h} up"])
            lab.batch(
                ns,
                [
                    f"addr add {addr}/{SITES[site].lan_prefix} dev eth0",
                    "link set dev eth0 up",
                    f"route add default via {SITES[site].lan_gateway}",
                ],
            )
    if edge:
        w.edge_rules = [r for name in edge for r in EDGE_RULES[name]]
        lab.iptables(w.ns["cust"], w.edge_rules)
    return w


def _public(w: World, ns: str, name: str, addrs: list[str]) -> None:
    """A host on the flat internet segment: /32 addresses, everything on-link."""
    w.lab.veth(ns, "out" if name in SITES else "eth0", w.ns["inet"], f"p-{name}")
    dev = "out" if name in SITES else "eth0"
    w.lab.batch(w.ns["inet"], [f"link set dev p-{name} master inetbr", f"link set dev p-{name} up"])
    w.lab.batch(
        ns, [*(f"addr add {a}/32 dev {dev}" for a in addrs), f"link set dev {dev} up", f"route add default dev {dev}"]
    )


def _site(w: World, s: Site) -> None:
    lab = w.lab
    ns = w.ns[s.name] = lab.ns(s.name, forward=True)
    _public(w, ns, s.name, [s.outside, *s.extra_outside])
    lab.bridge(ns, "lan")
    lab.batch(ns, [f"addr add {s.lan_gateway}/{s.lan_prefix} dev lan"])
    lab.iptables(
        ns,
        [
            "-t nat -A POSTROUTING -o out -j MASQUERADE",
            f"-A INPUT -i out -p udp --dport {WG_PORT} -j ACCEPT",
            "-A INPUT -i out -p udp -m conntrack --ctstate NEW -j DROP",
            "-A FORWARD -i out -m conntrack --ctstate NEW -j DROP",
        ],
    )


# Firewall policies at the customer edge (FORWARD chain of the cust namespace)
EDGE_RULES: dict[str, list[str]] = {
    # UDP between the customer site and the remote users' home networks: direct media impossible
    "block-udp-sites": ["-I FORWARD -p udp -d 203.0.113.0/24 -j DROP", "-I FORWARD -p udp -s 203.0.113.0/24 -j DROP"],
    # no UDP out of the customer network at all: the relay only over TCP/TLS 443
    "block-udp": ["-I FORWARD -o out -p udp -j DROP"],
    # nothing leaves the customer network
    "block-all": ["-I FORWARD -o out -j DROP"],
    # the VPN concentrator lets signaling (TCP) through the tunnel but no UDP media
    "vpn-no-media": ["-I FORWARD -i wgs+ -p udp -j DROP", "-I FORWARD -o wgs+ -p udp -j DROP"],
}
