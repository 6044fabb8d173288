"""What a capture point can tell about one peer's ICE session, and the checks of the analyzer against the
stack's own report (truth.json, written by captures.generate).

A peer's view of its candidate pair (local base or relay address, remote address it sends to) is on the
wire only where nothing rewrote the addresses: on the peer's own interface (for a full-tunnel VPN user,
its tunnel interface; the physical one shows WireGuard only), and, when its local candidate is a TURN
relay candidate, on the relay and on the customer NAT's outside as well (the checks and media travel
inside TURN with the relayed address and the remote address). Elsewhere NATs rewrote one end.
"""

from __future__ import annotations

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
    """capture file -> 'own' | 'relayed' | 'hidden' for peer `key` (files that say nothing are left out)."""
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
    return out


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
    for agent, known, side in ((peer["ufrag"], peer["local_candidates"], "local"),
                               (peer["remote_ufrag"], peer["remote_candidates"], "remote")):
        stack = {(k["host"], k["port"]): k for k in known}
        for r in c[c.agent == agent].itertuples():
            k = stack.get((r.address, int(r.port)))
            if k is None:
                problems.append(f"{side} candidate {r.address}:{r.port} ({r.type}) of {agent} unknown to the stack "
                                f"(stack: {sorted(stack)})")
                continue
            if r.transport != k["transport"]:
                problems.append(f"{side} {r.address}:{r.port} transport {r.transport} != {k['transport']}")
            if msg := type_problem(f"{side} {r.address}:{r.port}", k["type"], r.type):
                problems.append(msg)
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
    ours = (r.local_address, int(r.local_port), r.remote_address, int(r.remote_port))
    theirs = (sel["local"]["host"], sel["local"]["port"], sel["remote"]["host"], sel["remote"]["port"])
    if ours != theirs:
        problems.append(f"selected pair {ours} != stack's {theirs}")
        return problems
    for end in ("local", "remote"):
        if msg := type_problem(f"selected {end}", sel[end]["type"], getattr(r, f"{end}_type")):
            problems.append(msg)
    return problems


def controlling(truth: dict, peer: dict) -> str:
    """The ufrag of the controlling agent of this peer's session."""
    if peer["controlling"]:
        return peer["ufrag"]
    return peer["remote_ufrag"]
