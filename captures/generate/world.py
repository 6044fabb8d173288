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

import ipaddress
import random
from dataclasses import dataclass, field

from .netns import Lab

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


@dataclass(frozen=True)
class Plan:
    """One address plan of the emulated networks: where the customer LAN, the NATs, the VPN pool, the
    homes and the cloud hosts sit. The analyzer must reach the same verdicts on every plan."""

    name: str
    customer_lan: str  # /24: gateway .1, a .11, b .12
    customer_net: str  # the customer's prefix in the profile (covers the LAN)
    egress: str  # the customer NAT's public address
    concentrator: str  # the VPN head-end's public address (may equal the egress)
    vpn_pool: str  # /24: server .1, client .2
    home_x_lan: str  # /24: gateway .1, x .10
    home_v_lan: str
    home_prefix: str  # the public /24 of both home NATs (the edge's block-udp-sites rule)
    home_x: str
    home_v: str
    relay: str  # inside the service's published ranges, so the default profile calls them cloud
    media: str
    pstn: str

    @property
    def egress_is_concentrator(self) -> bool:
        return self.egress == self.concentrator


def _host(prefix: str, n: int) -> str:
    return str(ipaddress.ip_network(prefix)[n])


SHIPPED = Plan(
    "shipped",
    "10.1.0.0/24",
    "10.1.0.0/16",
    "198.51.100.2",
    "198.51.100.3",
    "10.8.0.0/24",
    "192.168.1.0/24",
    "192.168.2.0/24",
    "203.0.113.0/24",
    "203.0.113.2",
    "203.0.113.20",
    "52.112.10.10",
    "52.113.20.20",
    "52.114.30.30",
)
# a second fixed plan: other private and public prefixes, and the small office's firewall that NATs and
# terminates the VPN on one address (the set committed under captures/plans/office/)
OFFICE = Plan(
    "office",
    "172.20.5.0/24",
    "172.20.0.0/16",
    "192.0.2.44",
    "192.0.2.44",
    "10.99.7.0/24",
    "10.0.5.0/24",
    "172.31.9.0/24",
    "198.18.7.0/24",
    "198.18.7.9",
    "198.18.7.77",
    "20.202.40.4",
    "52.115.60.6",
    "52.122.3.30",
)

PLANS = {p.name: p for p in (SHIPPED, OFFICE)}

# where drawn plans pick from: private LANs, public NAT prefixes (documentation and benchmarking
# ranges), the service's published media ranges for the cloud hosts
_PRIVATE = ("10.{a}.{b}.0/24", "172.{c}.{b}.0/24", "192.168.{b}.0/24")
_PUBLIC = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.{b}.0/24", "198.19.{b}.0/24")
_CLOUD = (
    "52.112.{b}.{d}",
    "52.113.{b}.{d}",
    "52.114.{b}.{d}",
    "52.115.{b}.{d}",
    "20.202.{b}.{d}",
    "52.122.{b}.{d}",
    "52.123.{b}.{d}",
)


def draw(seed: int, egress_is_concentrator: bool = True) -> Plan:
    """An address plan drawn from `seed`: distinct private LANs for the office, the homes and the VPN
    pool, distinct public /24s for the office and the homes, cloud hosts in the published ranges."""
    rnd = random.Random(seed)

    def fill(t: str) -> str:
        return t.format(
            a=rnd.randrange(2, 250), b=rnd.randrange(0, 250), c=rnd.randrange(16, 32), d=rnd.randrange(2, 250)
        )

    lans: list[str] = []
    while len(lans) < 4:
        n = fill(rnd.choice(_PRIVATE))
        net = ipaddress.ip_network(n)
        if all(not net.overlaps(ipaddress.ip_network(x)) for x in lans):
            lans.append(n)
    pubs = rnd.sample(_PUBLIC, 2)
    office, homes = fill(pubs[0]), fill(pubs[1])
    while ipaddress.ip_network(office).overlaps(ipaddress.ip_network(homes)):
        homes = fill(rnd.choice(_PUBLIC))
    egress = _host(office, rnd.randrange(2, 120))
    conc = egress if egress_is_concentrator else _host(office, rnd.randrange(121, 250))
    cloud = rnd.sample(_CLOUD, 3)
    hx, hv = rnd.sample(range(2, 250), 2)
    name = f"drawn-{seed}" + ("-eqc" if egress_is_concentrator else "")
    return Plan(
        name,
        lans[0],
        lans[0],
        egress,
        conc,
        lans[1],
        lans[2],
        lans[3],
        homes,
        _host(homes, hx),
        _host(homes, hv),
        *(fill(c) for c in cloud),
    )


CUSTOMER_NET = ""
VPN_POOL = VPN_SERVER_TUNNEL = VPN_CLIENT_TUNNEL = VPN_HEADEND = ""
PLAN: Plan = SHIPPED
SITES: dict[str, Site] = {}
HOSTS: dict[str, tuple[str | None, str, str, str]] = {}  # host -> (site or None for a public host, address, zone, role)
EDGE_RULES: dict[str, list[str]] = {}


def use(plan: Plan) -> None:
    """Make `plan` the address plan of every network built from now on (module state, one per process)."""
    global CUSTOMER_NET, VPN_POOL, VPN_SERVER_TUNNEL, VPN_CLIENT_TUNNEL, VPN_HEADEND, PLAN
    PLAN = plan
    CUSTOMER_NET, VPN_POOL = plan.customer_net, plan.vpn_pool
    VPN_SERVER_TUNNEL, VPN_CLIENT_TUNNEL = _host(plan.vpn_pool, 1), _host(plan.vpn_pool, 2)
    VPN_HEADEND = plan.concentrator
    extra = () if plan.egress_is_concentrator else (plan.concentrator,)
    SITES.clear()
    SITES.update(
        {
            "cust": Site(
                "cust",
                plan.egress,
                _host(plan.customer_lan, 1),
                24,
                "customer",
                "customer NAT and firewall (egress)" + (" and VPN head-end" if not extra else ""),
                extra,
            ),
            "homex": Site("homex", plan.home_x, _host(plan.home_x_lan, 1), 24, "internet", "external user's home NAT"),
            "homev": Site("homev", plan.home_v, _host(plan.home_v_lan, 1), 24, "internet", "VPN user's home NAT"),
        }
    )
    HOSTS.clear()
    HOSTS.update(
        {
            "a": ("cust", _host(plan.customer_lan, 11), "customer", "client A on the customer network"),
            "b": ("cust", _host(plan.customer_lan, 12), "customer", "client B on the customer network"),
            "x": ("homex", _host(plan.home_x_lan, 10), "internet", "external (remote) user behind a home NAT"),
            "v": (
                "homev",
                _host(plan.home_v_lan, 10),
                "internet",
                "VPN user behind a home NAT, tunnel to the customer network",
            ),
            "relay": (None, plan.relay, "cloud", "cloud TURN relay (coturn): UDP 3478, TCP/TLS 443"),
            "media": (None, plan.media, "cloud", "cloud media processor (aiortc, host candidate only)"),
            "pstn": (None, plan.pstn, "cloud", "PSTN trunk media endpoint in the cloud (aiortc, G.711 only)"),
        }
    )
    EDGE_RULES.clear()
    EDGE_RULES.update(
        {
            # UDP between the customer site and the remote users' home networks: direct media impossible
            "block-udp-sites": [
                f"-I FORWARD -p udp -d {plan.home_prefix} -j DROP",
                f"-I FORWARD -p udp -s {plan.home_prefix} -j DROP",
            ],
            # no UDP out of the customer network at all: the relay only over TCP/TLS 443
            "block-udp": ["-I FORWARD -o out -p udp -j DROP"],
            # nothing leaves the customer network
            "block-all": ["-I FORWARD -o out -j DROP"],
            # the VPN concentrator lets signaling (TCP) through the tunnel but no UDP media
            "vpn-no-media": ["-I FORWARD -i wgs+ -p udp -j DROP", "-I FORWARD -o wgs+ -p udp -j DROP"],
        }
    )


use(SHIPPED)


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
