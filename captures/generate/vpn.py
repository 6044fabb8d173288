"""The VPN user's tunnel to the customer network: wireguard-go (userspace, on /dev/net/tun) at both ends.

The head-end runs in the customer NAT's namespace and listens on the concentrator address; the client
runs in the VPN user's namespace. wireguard-go's control sockets live in /var/run/wireguard, shared by
all namespaces, so each run names its interfaces uniquely (`wgs<tag>`, `wgc<tag>`).

split: only the customer network (the plan's customer prefix) goes through the tunnel; media leaves by the home NAT.
full:  everything goes through the tunnel (a host route keeps the tunnel's own packets outside it).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

from . import world
from .netns import Lab, LabError, sh
from .world import WG_PORT, World

KEEPALIVE_S = 1


def _keys() -> tuple[str, str]:
    private = sh(["wg", "genkey"]).strip()
    public = sh(["wg", "pubkey"], input=private + "\n").strip()
    return private, public


def _start(lab: Lab, ns: str, ifname: str) -> subprocess.Popen:
    env = {**os.environ, "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "error"}
    p = lab.popen(
        ns,
        ["wireguard-go", "-f", ifname],
        f"wireguard-go {ifname}",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.path.exists(f"/var/run/wireguard/{ifname}.sock"):
            return p
        if p.poll() is not None:
            raise LabError(f"wireguard-go {ifname} exited: {p.stderr.read().decode() if p.stderr else ''}")
        time.sleep(0.02)
    raise LabError(f"wireguard-go {ifname}: no control socket after 5 s")


def _set(lab: Lab, ns: str, ifname: str, private: str, args: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".key") as f:
        f.write(private + "\n")
        f.flush()
        lab.run(ns, "wg", "set", ifname, "private-key", f.name, *args)


def setup(w: World, mode: str) -> dict[str, str]:
    """Bring the tunnel up between the customer head-end and the VPN user; returns the interface names."""
    lab = w.lab
    tag = lab.prefix[len("cf") : -1][-5:]
    server_if, client_if = f"wgs{tag}", f"wgc{tag}"
    cust, v = w.ns["cust"], w.ns["v"]
    s_priv, s_pub = _keys()
    c_priv, c_pub = _keys()
    _start(lab, cust, server_if)
    _set(
        lab,
        cust,
        server_if,
        s_priv,
        ["listen-port", str(WG_PORT), "peer", c_pub, "allowed-ips", f"{world.VPN_CLIENT_TUNNEL}/32"],
    )
    lab.batch(cust, [f"addr add {world.VPN_SERVER_TUNNEL}/24 dev {server_if}", f"link set dev {server_if} up"])
    _start(lab, v, client_if)
    allowed = "0.0.0.0/0" if mode == "full" else f"{world.CUSTOMER_NET},{world.VPN_POOL}"
    _set(
        lab,
        v,
        client_if,
        c_priv,
        [
            "peer",
            s_pub,
            "endpoint",
            f"{world.VPN_HEADEND}:{WG_PORT}",
            "allowed-ips",
            allowed,
            "persistent-keepalive",
            str(KEEPALIVE_S),
        ],
    )
    routes = [f"addr add {world.VPN_CLIENT_TUNNEL}/32 dev {client_if}", f"link set dev {client_if} up"]
    if mode == "full":
        gw = world.SITES["homev"].lan_gateway
        routes += [f"route add {world.VPN_HEADEND}/32 via {gw} dev eth0", f"route replace default dev {client_if}"]
    else:
        routes += [f"route add {world.CUSTOMER_NET} dev {client_if}", f"route add {world.VPN_POOL} dev {client_if}"]
    lab.batch(v, routes)
    return {"server": server_if, "client": client_if}
