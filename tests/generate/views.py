"""What a capture point can tell about one peer's ICE session, and the checks of the analyzer against the
stack's own report (truth.json, written by captures.generate).

A peer's view of its candidate pair (local base or relay address, remote address it sends to) is on the
wire only where nothing rewrote the addresses: on the peer's own interface (for a full-tunnel VPN user,
its tunnel interface; the physical one shows WireGuard only), and, when its local candidate is a TURN
relay candidate, on the relay and on the customer NAT's outside as well (the checks and media travel
inside TURN with the relayed address and the remote address). Elsewhere NATs rewrote one end.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

REFLEXIVE = {"srflx", "prflx"}


def truths(root: Path) -> dict[str, dict]:
    """scenario -> truth, for the folders the real-call generator made (those with peers)."""
    out = {}
    for p in sorted(root.glob("*/truth.json")):
        t = json.loads(p.read_text())
        if "peers" in t:
            out[t["scenario"]] = t
    return out


def views(truth: dict, key: str) -> dict[str, str]:
    """capture file -> 'own' | 'relayed' | 'translated' | 'hidden' for peer `key` (files where NATs rewrote
    both ends, or that do not carry the peer's traffic, are left out)."""
    p = truth["peers"][key]
    host, sel = p["host"], p["selected"]
    full_vpn = host == "v" and truth["firewall"]["vpn"] == "full"
    relay_local = sel is not None and sel["local"]["type"] == "relay"
    tls = (p["turn"] or {}).get("transport") == "tls"
    behind_customer_nat = host in ("a", "b") or full_vpn
    out = {}
    for f, h in truth["capture_hosts"].items():
        tunnel = f.startswith("tunnel-")
        if h == host and (tunnel or not full_vpn):
            out[f] = "hidden" if tls and relay_local else "own"  # TURN over TLS hides the checks and media
        elif h == host:
            out[f] = "hidden"  # the full-tunnel VPN user's physical interface: WireGuard only
        elif relay_local and (f == "relay.pcap" or (f == "nat-outside.pcap" and behind_customer_nat and not tls)):
            out[f] = "relayed"
        elif sel and sel["local"]["type"] == "host" and host in NATTED and _mapped(p) and _public(sel["remote"]):
            # beyond the peer's own NAT, on its path: the local end is its server-reflexive address
            info = truth["hosts"].get(h, {})
            server = info.get("behind", "") is None and info["address"] == sel["remote"]["host"]
            remote_relay = sel["remote"]["type"] == "relay" and f == "relay.pcap"
            if (f == "nat-outside.pcap" and behind_customer_nat) or remote_relay or server:
                out[f] = "translated"
    return out


NATTED = ("a", "b", "x", "v")


LANS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def _public(candidate: dict) -> bool:
    """Not an address of a LAN (the emulated internet uses documentation ranges, which Python calls private)."""
    return not any(ipaddress.ip_address(candidate["host"]) in n for n in LANS)


def _mapped(peer: dict) -> dict | None:
    """The stack's server-reflexive candidate whose base is the selected local candidate."""
    base = peer["selected"]["local"]
    for c in peer["local_candidates"]:
        if c["type"] == "srflx" and (c.get("related_address"), c.get("related_port")) == (base["host"], base["port"]):
            return c
    return None


def expected_pair(peer: dict, view: str) -> tuple[dict, dict]:
    """(local, remote) candidates as the wire shows them at a capture point of this view."""
    sel = peer["selected"]
    if view == "translated":
        return _mapped(peer), sel["remote"]
    return sel["local"], sel["remote"]


def type_problem(what: str, stack: str, ours: str) -> str | None:
    """None when the analyzer's candidate type agrees with the stack's, as far as packets can tell.

    A reflexive address is 'unknown' to the analyzer unless it saw the STUN/TURN server return it: the
    capture does not say whether a public address is a host or a reflexive candidate (by design); and
    whether the stack calls it srflx (from the SDP) or prflx (learned from a check first) is not on the
    wire either."""
    if ours == stack or (stack in REFLEXIVE and ours in REFLEXIVE | {"unknown"}):
        return None
    return f"{what}: stack says {stack}, analyzer says {ours}"


def candidate_problems(a, peer: dict) -> list[str]:
    """The analyzer's candidates of this peer and of its remote agent are candidates the stack had."""
    problems = []
    c = a.candidates
    for agent, known, side in (
        (peer["ufrag"], peer["local_candidates"], "local"),
        (peer["remote_ufrag"], peer["remote_candidates"], "remote"),
    ):
        stack = {(k["host"], k["port"]): k for k in known}
        for r in c[c.agent == agent].itertuples():
            k = stack.get((r.address, int(r.port)))
            if k is None:
                problems.append(
                    f"{side} candidate {r.address}:{r.port} ({r.type}) of {agent} unknown to the stack "
                    f"(stack: {sorted(stack)})"
                )
                continue
            if r.transport != k["transport"]:
                problems.append(f"{side} {r.address}:{r.port} transport {r.transport} != {k['transport']}")
            if msg := type_problem(f"{side} {r.address}:{r.port}", k["type"], r.type):
                problems.append(msg)
    return problems


def allocation_problems(a, peer: dict) -> list[str]:
    """At the peer's own interface its TURN allocations are its relay candidates: relayed address, the
    transport to the relay, the reflexive address the relay saw (the candidate's related address); an
    allocation that got no relayed address must be one the stack has no relay candidate for."""
    turn = peer["turn"]
    relays = {(c["host"], c["port"]): c for c in peer["local_candidates"] if c["type"] == "relay"}
    al = a.allocations
    problems = []
    got = {}
    for r in al.itertuples():
        if isinstance(r.relayed_address, str):
            got[(r.relayed_address, int(r.relayed_port))] = r
        elif relays:
            problems.append(
                f"allocation {r.client}:{r.client_port} -> {r.server} {r.state}, stack has {sorted(relays)}"
            )
    if set(got) != set(relays):
        problems.append(f"allocations {sorted(got)} != stack's relay candidates {sorted(relays)}")
    for key, r in got.items():
        c = relays.get(key)
        if c is None:
            continue
        if r.transport != turn["transport"] or int(r.server_port) != turn["server"][1]:
            problems.append(f"{key}: over {r.transport} to port {r.server_port}, stack: {turn}")
        if c["related_address"] != "0.0.0.0" and (r.mapped_address, int(r.mapped_port)) != (
            c["related_address"],
            c["related_port"],
        ):
            problems.append(f"{key}: mapped {r.mapped_address}:{r.mapped_port}, stack's related {c['related_address']}")
    return problems


def _endpoint(text: str) -> tuple[str, str, int]:
    """'relay 52.112.10.10:49171' -> ('relay', '52.112.10.10', 49171)"""
    kind, hostport = text.split()
    host, port = hostport.rsplit(":", 1)
    return kind, host, int(port)


def pair_problems(a, peer: dict) -> list[str]:
    """At the peer's own interface, every pair whose check succeeded for the stack is a 'succeeded' pair of
    this agent for the analyzer. (Unanswered checks may never reach the wire, e.g. to an unroutable private
    address or into a tunnel; pairs checked through a TURN allocation over TLS are out of sight.)"""
    tls = (peer["turn"] or {}).get("transport") == "tls"
    p = a.pairs
    mine = {
        (r.local_address, int(r.local_port), r.remote_address, int(r.remote_port)): r.state
        for r in p[p.agent == peer["ufrag"]].itertuples()
    }
    problems = []
    for c in peer["checklist"]:
        if c["state"] != "succeeded":
            continue
        lk, lh, lp = _endpoint(c["local"])
        _, rh, rp = _endpoint(c["remote"])
        if lk == "relay" and tls:
            continue
        state = mine.get((lh, lp, rh, rp))
        if state is None:
            problems.append(f"stack's check {c['local']} -> {c['remote']} succeeded: no such pair")
        elif state != "succeeded":
            problems.append(f"{c['local']} -> {c['remote']}: stack succeeded, analyzer {state}")
    return problems


def session_of(a, peer: dict):
    s = a.sessions
    rows = s[s.ufrags.map(lambda u: set(str(u).split(":")) == {peer["ufrag"], peer["remote_ufrag"]})]
    return rows


def selected_problems(a, peer: dict, view: str, controlling_ufrag: str) -> list[str]:
    """The analyzer's selected pair for this peer's agent is the stack's nominated pair (addresses, ports,
    types as far as the packets tell), and the session's state and roles agree with the stacks."""
    problems = []
    p = a.pairs
    rows = p[(p.agent == peer["ufrag"]) & p.selected.astype(bool)]
    sel = peer["selected"]
    sessions = session_of(a, peer)
    if view == "hidden" or sel is None:
        if len(rows):
            problems.append(f"analyzer selects {list(rows.description)} where the capture cannot show a pair")
        if sel is None and view != "hidden":
            states = set(sessions.state)
            if states != {"failed"}:
                problems.append(f"stack: ICE {peer['ice_state']}; analyzer session state {states or 'absent'}")
        return problems
    if len(sessions) != 1:
        return [f"expected one session for {peer['ufrag']}:{peer['remote_ufrag']}, found {len(sessions)}"]
    s = sessions.iloc[0]
    if s.state != "connected":
        problems.append(f"session state {s.state}, the stack connected")
    if s.controlling != controlling_ufrag:
        problems.append(f"controlling {s.controlling}, the stack's controlling agent is {controlling_ufrag}")
    if len(rows) != 1:
        return [*problems, f"{len(rows)} selected pairs for agent {peer['ufrag']}: {list(rows.description)}"]
    r = rows.iloc[0]
    want = dict(zip(("local", "remote"), expected_pair(peer, view), strict=True))
    ours = (r.local_address, int(r.local_port), r.remote_address, int(r.remote_port))
    theirs = (want["local"]["host"], want["local"]["port"], want["remote"]["host"], want["remote"]["port"])
    if ours != theirs:
        problems.append(f"selected pair {ours} != stack's {theirs} ({view} view)")
        return problems
    for end in ("local", "remote"):
        if msg := type_problem(f"selected {end}", want[end]["type"], getattr(r, f"{end}_type")):
            problems.append(msg)
    return problems


def controlling(truth: dict, peer: dict) -> str:
    """The ufrag of the controlling agent of this peer's session."""
    if peer["controlling"]:
        return peer["ufrag"]
    return peer["remote_ufrag"]
