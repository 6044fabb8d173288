"""Calls and their topology: who took part from where (the documented use case), the path the media
took, and the flows the use case expects beside the ones observed.

A call is one ICE session with its media, or a group call's several sessions to one cloud media
processor, or media seen without any ICE (a trunk leg, or checks the capture missed). The topology
names the use case from the participants' locations; a path that departs from what the use case
expects is a finding (findings.py), never a different topology (docs/topology.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..ice.paths import MediaPath
from .profile import is_private
from .zones import ZoneMap

EXPECTED = {
    "intranet-direct": ["Flow 5"],
    "external-via-relay": ["Flow 4", "Flow 3"],
    "external-direct": ["Flow 2"],
    "vpn-internal-via-relay": ["Flow 3", "Flow 4"],
    "vpn-internal-direct": ["Flow 2"],
    "vpn-external-direct": ["Flow 6"],
    "pstn-trunk": ["Flow 4"],
    "group-call": ["Flow 4", "Flow 3"],
    "undetermined": [],
}
RELAY_PORTS = frozenset((3478, 3479, 3480, 3481))
G711 = frozenset((0, 8))
MIN_MEDIA_CALL = 10  # packets of media before media without ICE makes a call of its own


@dataclass
class Call:
    call: int
    sessions: list[int] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    selected: list[pd.Series] = field(default_factory=list)  # selected pair rows, one per session
    media_ends: list[frozenset] = field(default_factory=list)  # endpoint pairs of media not tied to ICE
    topology: str = "undetermined"
    reason: str = ""
    locations: dict[str, tuple[str, str]] = field(default_factory=dict)  # participant -> (location, rule)
    origins: dict[str, str] = field(default_factory=dict)  # participant -> what decided its location (ORIGINS)
    path: str = ""
    relayed: bool = False
    tunnel: object = None  # a VPN tunnel carrying the call's media, when nothing else of the call is visible
    moves: str = ""  # the media's earlier paths and why it moved (path_moves); the topology judges the last


def locate(addresses: list[tuple[str, str, str]], zm: ZoneMap) -> tuple[str, str, str]:
    """Where a participant is, from its candidates [(address, type, seen)]: (location, rule, origin), the
    origin saying what decided it ('profile', 'inferred' from the capture, 'default' ranges). Addresses
    its checks were seen coming from count first; an address only seen as a check's destination (a host
    candidate the peer announced, maybe a home LAN) counts only when nothing better is known."""
    rank = {"host": 0, "srflx": 1, "prflx": 2, "unknown": 3}
    usable = [a for a in addresses if a[1] in rank]
    for addr, ctype, seen in usable:  # a candidate in a VPN pool, even one only announced, is a VPN user
        z = zm.zone(addr)
        if z.zone == "vpn" and "check source" not in seen:
            return "vpn-user", f"{addr} ({ctype}, {seen or 'announced'}) is in a VPN pool: {z.rule}", z.origin
    sources = [a for a in usable if "check source" in a[2]]
    for group in (sources, usable):
        ordered = sorted(group, key=lambda a: rank[a[1]])
        for addr, ctype, _ in ordered:
            z = zm.zone(addr)
            if z.zone == "vpn":
                return "vpn", f"{addr} ({ctype}) is in a VPN pool: {z.rule}", z.origin
            if "vpn-user" in z.roles:
                return "vpn-user", f"{addr} ({ctype}): {z.rule}", z.origin
        for addr, ctype, _ in ordered:
            z = zm.zone(addr)
            if z.zone == "customer" and z.origin == "default" and is_private(addr):
                other = _behind_other_site(usable, zm)
                if other:
                    return "internet", f"{addr} ({ctype}) is private and {other}", "inferred"
            # a public address outside every customer and cloud range is on the internet whatever the profile
            origin = "inferred" if z.zone == "internet" and z.origin == "default" and not is_private(addr) else z.origin
            return z.zone, f"{addr} ({ctype}): {z.rule}", origin
    return "unknown", "no candidate of this participant outside a relay", "inferred"


def _behind_other_site(usable: list[tuple[str, str, str]], zm: ZoneMap) -> str | None:
    """A participant whose private address only a default range calls customer, with a public candidate
    of its own that is not the customer site's: it sits behind that public address, at another site."""
    site = zm.sites.customer
    ours = zm.sites.customer_public()
    for addr, ctype, seen in usable:
        if is_private(addr) or addr in ours:
            continue
        z = zm.zone(addr)
        if z.zone != "internet" or z.roles & {"relay", "vpn-user"}:
            continue
        where = (f"the customer site's is {', '.join(sorted(ours))}" if ours else
                 "the capture host's public address is not in the capture" if site else "no customer site is known")
        return f"its own public address {addr} ({ctype}, {seen or 'announced'}) is another site's ({where})"
    return None


def build_calls(a, zm: ZoneMap, paths: list[MediaPath]) -> list[Call]:
    sessions, pairs, cands = a.sessions, a.pairs, a.candidates
    calls: list[Call] = []
    by_processor: dict[str, Call] = {}
    used_ends: set[frozenset] = set()
    for s in sessions.itertuples(index=False):
        sp = pairs[(pairs.session == s.session)]
        sel = sp[sp.pair == s.selected_pair].iloc[0] if pd.notna(s.selected_pair) else None
        for p in sp.itertuples(index=False):
            used_ends.add(frozenset(((p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port)))))
            if p.relayed and isinstance(p.wire, str):
                w = p.wire.split(" -> ")
                used_ends.add(frozenset(tuple(parse_endpoint(x) for x in w)))
        processor = None
        if sel is not None:
            z = zm.zone(sel.remote_address)
            if z.zone == "cloud" and "relay" not in z.roles and int(sel.remote_port) not in RELAY_PORTS:
                processor = sel.remote_address
        c = by_processor.get(processor) if processor else None
        if c is None:
            c = Call(len(calls))
            calls.append(c)
            if processor:
                by_processor[processor] = c
        c.sessions.append(int(s.session))
        c.agents += [s.agent_a, s.agent_b]
        if sel is not None:
            c.selected.append(sel)
    used_ends |= _history_ends(a)  # a session's own media on a path no check covered is not another call
    for p in paths:  # media with no ICE session: one call per pair of hosts
        ends = frozenset(((p.src, p.sport), (p.dst, p.dport)))
        wire = frozenset(((p.wire_src, p.wire_sport), (p.wire_dst, p.wire_dport)))
        if (
            ends in used_ends
            or wire in used_ends
            or not p.src
            or p.packets < MIN_MEDIA_CALL
            or {p.sport, p.dport} & {53}
        ):
            continue
        hosts = frozenset((p.src, p.dst))
        c = next(
            (
                c
                for c in calls
                if not c.sessions and c.media_ends and frozenset(x for e in c.media_ends[0] for x in [e[0]]) == hosts
            ),
            None,
        )
        if c is None:
            c = Call(len(calls))
            calls.append(c)
        if ends not in c.media_ends:
            c.media_ends.append(ends)
    for c in calls:
        _classify(c, a, zm, cands)
        c.moves = path_moves(a, c.sessions)
    busy = [t for t in zm.tunnels if t.busy_seconds >= 2]
    _follow_tunnels(calls, busy, a, zm, paths)
    vpn_calls = [c for c in calls if any(v[0] in ("vpn", "vpn-user") for v in c.locations.values())]
    for t in busy:  # a tunnel's packet rate alone is no call (findings.tunnel_findings says what it shows)
        if vpn_calls:  # the VPN user's call is visible in another capture point: the tunnel is its path
            vpn_calls[0].tunnel = t
    return calls


def _follow_tunnels(calls: list[Call], busy: list, a, zm: ZoneMap, paths: list[MediaPath]) -> None:
    """A call whose media leaves from the customer's egress while a VPN tunnel carries a call's packet
    rate at the same seconds is the VPN user's call, through the tunnel (full tunnel, seen outside)."""
    for t in busy:
        secs = set(t.busy)
        for c in calls:
            if c.tunnel is not None or any(v[0] in ("vpn", "vpn-user") for v in c.locations.values()):
                continue
            for p in c.selected:
                for agent, addr, port in ((p.agent, p.local_address, p.local_port),
                                          (None, p.remote_address, p.remote_port)):
                    if "egress" not in zm.zone(addr).roles:
                        continue
                    spans = [(m.first_ts_ns // 10**9, m.last_ts_ns // 10**9) for m in paths
                             if (m.src, m.sport) == (addr, int(port)) or (m.dst, m.dport) == (addr, int(port))]
                    overlap = sum(1 for sec in secs if any(lo <= sec <= hi for lo, hi in spans))
                    if overlap < 2:
                        continue
                    who = agent or next((k for k in c.locations if k != p.agent), None)
                    if who is None:
                        continue
                    c.tunnel = t
                    c.origins[who] = "inferred"
                    c.locations[who] = ("vpn-user", f"its media ({addr}:{port}, the customer egress) follows the "
                                        f"VPN tunnel {t.client[0]} -> {t.server[0]}:{t.server[1]} ({overlap} s)")
                    _reclassify(c, a, zm)


def _reclassify(c: Call, a, zm: ZoneMap) -> None:
    kept, origins = dict(c.locations), dict(c.origins)
    _classify(c, a, zm, a.candidates)
    c.locations.update({k: v for k, v in kept.items() if v[0] == "vpn-user"})
    c.origins.update({k: origins[k] for k, v in kept.items() if v[0] == "vpn-user" and k in origins})
    locs = [v[0] for v in c.locations.values()]
    others = [x for x in locs if x not in ("vpn", "vpn-user")]
    c.topology = ("vpn-internal-via-relay" if c.relayed else "vpn-internal-direct") if "customer" in others else (
        "vpn-external-direct" if "internet" in others else "undetermined")
    c.reason = "a VPN user takes part (its media follows a VPN tunnel). Participants: " + "; ".join(
        f"{k}: {v[0]} ({v[1]})" for k, v in c.locations.items())


def _history_ends(a) -> set[frozenset]:
    """Endpoint pairs of every leg in the sessions' path history (ice/paths.py)."""
    h = a.path_history
    return {frozenset(((r.src, int(r.sport)), (r.dst, int(r.dport)))) for r in h.itertuples(index=False)}


def path_moves(a, sessions: list[int]) -> str:
    """The switches of a call's media, from the path history: 'relay ... (frames 1-80, 80 packets) =>
    direct ... (frames 85-204, 120 packets; nominated: ...)'; empty when media kept one path."""
    h = a.path_history
    out = []
    for _, legs in h[h.session.isin(sessions)].groupby("session", sort=True):
        if len(legs) < 2:
            continue
        out.append(" => ".join(
            f"{g.kind} {g.description} (frames {g.first_frame}-{g.last_frame}, {g.packets} packets"
            + (f"; {g.reason})" if g.leg else ")")
            for g in legs.itertuples(index=False)))
    return "; ".join(out)


def parse_endpoint(text: str) -> tuple[str, int]:
    """'host:port' (the `wire` column of pairs) as a tuple."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def _payload_types(a, ends: list[frozenset]) -> set[int]:
    if "streams" not in a.tables or not ends:
        return set()
    st = a.streams
    out = set()
    for r in st.itertuples(index=False):
        if frozenset(((r.src, int(r.sport)), (r.dst, int(r.dport)))) in ends:
            out.add(int(r.payload_type))
    return out


def _classify(c: Call, a, zm: ZoneMap, cands: pd.DataFrame) -> None:
    if c.sessions:
        clients = {
            (r.relayed_address, int(r.relayed_port)): r.client
            for r in a.allocations.itertuples(index=False)
            if isinstance(r.relayed_address, str)
        }
        for agent in dict.fromkeys(c.agents):
            own = cands[cands.agent == agent]
            found = list(zip(own.address, own.type, own.seen, strict=True))
            # a relay candidate's owner sits where its TURN client address is
            found += [
                (clients[(r.address, int(r.port))], "host", "check source")
                for r in own.itertuples(index=False)
                if r.type == "relay" and (r.address, int(r.port)) in clients
            ]
            where, rule, c.origins[agent] = locate(found, zm)
            c.locations[agent] = (where, rule)
        sel = c.selected[0] if c.selected else None
        # relayed when either end of the path is a relay candidate, whether or not this capture point
        # saw the TURN wrapping (the peer's relay, or TURN over TLS, look like plain UDP from here)
        c.relayed = bool(sel is not None and (sel.relayed or "relay" in (sel.local_type, sel.remote_type)))
        c.path = "; ".join(
            a.sessions.set_index("session").loc[s].path
            for s in c.sessions
            if isinstance(a.sessions.set_index("session").loc[s].path, str)
        )
        ends = [
            frozenset(((p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port))))
            for p in c.selected
        ]
    else:
        # relayed media without checks in the capture: the relayed address stands for its TURN client, and
        # the far end is where the relay hears it from (the peer address it reports)
        turn_clients = {
            (r.relayed_address, int(r.relayed_port)): r.client
            for r in a.allocations.itertuples(index=False)
            if isinstance(r.relayed_address, str)
        }
        for host, port in dict.fromkeys(ep for e in c.media_ends for ep in sorted(e)):
            client = turn_clients.get((host, port))
            if client is not None:
                where, rule, c.origins[client] = locate([(client, "host", "check source")], zm)
                c.locations[client] = (where, f"{rule}; the TURN client of the relayed address {host}:{port}")
                continue
            where, rule, c.origins[host] = locate([(host, "host", "check source")], zm)
            c.locations[host] = (where, rule)
        ends = c.media_ends
        c.path = "; ".join(" <-> ".join(f"{h}:{p}" for h, p in sorted(e)) for e in c.media_ends)
    locs = [v[0] for v in c.locations.values()]
    why = "; ".join(f"{k}: {v[0]} ({v[1]})" for k, v in c.locations.items())
    pts = _payload_types(a, ends)
    if "cloud" in locs:
        sbc = any("sbc" in zm.zone(h).roles for e in ends for h, _ in e)
        if sbc or (pts and pts <= G711):
            c.topology, c.reason = "pstn-trunk", f"one leg to a cloud media endpoint speaking G.711 (PT {sorted(pts)})"
        else:
            c.topology, c.reason = "group-call", f"{len(c.sessions) or 1} leg(s) to a cloud media processor"
    elif any(x in ("vpn", "vpn-user") for x in locs):
        others = [x for x in locs if x not in ("vpn", "vpn-user")]
        if "customer" in others or (locs.count("vpn") + locs.count("vpn-user") > 1 and not others):
            c.topology = "vpn-internal-via-relay" if c.relayed else "vpn-internal-direct"
        elif "internet" in others:
            c.topology = "vpn-external-direct"
        else:
            c.topology = "undetermined"
        c.reason = "a VPN user takes part"
    elif locs and all(x == "customer" for x in locs) and len(locs) >= 2:
        c.topology, c.reason = "intranet-direct", "both participants on the customer network"
    elif "customer" in locs and "internet" in locs:
        # the path taken decides; without one, what was tried: relay pairs, or TURN allocations by a participant
        relay_tried = c.relayed if c.selected else (_relay_pairs(a, c) or _allocated(a, c)
                                                    or tls_to_relay(a, c, zm) is not None)
        c.topology = "external-via-relay" if relay_tried else "external-direct"
        c.reason = "a customer user and an external user" + (", relayed" if relay_tried else ", direct")
    else:
        c.topology, c.reason = "undetermined", _undetermined_why(c, a, cands)
    c.reason = f"{c.reason}. Participants: {why}"


def _undetermined_why(c: Call, a, cands: pd.DataFrame) -> str:
    """Why the use case is unknown, and which capture would settle it. Both ends relayed on one relay
    hide the far end: only the relay, or the customer NAT's outside, sees where its allocation comes from."""
    unknown = [k for k, v in c.locations.items() if v[0] == "unknown"]
    servers = set(a.allocations.server.astype(str)) | set(a.allocations.relayed_address.dropna().astype(str))
    for agent in unknown:
        own = cands[(cands.agent == agent) & (cands.type == "relay")]
        same = sorted(set(own.address) & servers)
        if same:
            ports = ", ".join(f"{r.address}:{int(r.port)}" for r in own.itertuples(index=False))
            return (f"both ends are relayed on the same relay {', '.join(same)} (the far end only as {ports}): "
                    "nothing in this capture shows where the far end is. A capture at the relay (it sees the "
                    "public address the far end's allocation comes from) or at the customer NAT's outside (both "
                    "allocations leaving the customer egress prove a hairpin) would settle it")
    return "the capture does not show where both participants are"


def tls_to_relay(a, c: Call, zm: ZoneMap):
    """A participant's TCP/TLS flow on 443/5349 to a TURN or STUN server of this call, with a call's worth
    of packets: TURN over TLS, whose Allocate and media are encrypted. The flows row, or None."""
    hosts = {v[1].split(" ", 1)[0] for v in c.locations.values()}
    servers = set(zm.relays)
    st = a.stun
    if len(st):
        servers |= set(st[(st.method == "Binding") & st.username.isna() & (st.cls == "request")].dst.astype(str))
    p = a.pairs
    mine = p[p.session.isin(c.sessions)]
    servers |= set(mine[mine.local_type == "relay"].local_address)
    servers |= set(mine[mine.remote_type == "relay"].remote_address)
    f = a.flows
    tls = f[(f.transport == "tcp") & f.dport.isin([443, 5349]) & f.src.isin(hosts) & f.dst.isin(servers)
            & (f.packets >= 50)]
    return tls.iloc[0] if len(tls) else None


def _allocated(a, c: Call) -> bool:
    hosts = {v[1].split(" ", 1)[0] for v in c.locations.values()}
    return bool(len(a.allocations)) and bool(set(a.allocations.client) & hosts)


def _relay_pairs(a, c: Call) -> bool:
    p = a.pairs
    return bool(len(p[p.session.isin(c.sessions) & p.relayed]))


def calls_table(calls: list[Call], flows: pd.DataFrame, zm: ZoneMap | None = None) -> pd.DataFrame:
    from .assumptions import rests_on

    rows = []
    for c in calls:
        observed = _observed(c, flows)
        said, confidence, hint = rests_on(c, zm) if zm is not None else ([], "", "")
        rows.append(
            {
                "call": c.call,
                "topology": c.topology,
                "path": c.path,
                "expected": ", ".join(EXPECTED[c.topology]),
                "observed": ", ".join(observed),
                "reason": c.reason,
                "relayed": c.relayed,
                "sessions": [int(s) for s in c.sessions],
                "participants": ", ".join(f"{k} ({v[0]})" for k, v in c.locations.items()),
                "moves": c.moves,
                "assumptions": said,
                "confidence": confidence,
                "profile_hint": hint,
            }
        )
    cols = ["call", "topology", "path", "expected", "observed", "reason", "relayed", "sessions", "participants",
            "moves", "assumptions", "confidence", "profile_hint"]
    return pd.DataFrame(rows, columns=cols)


def _observed(c: Call, flows: pd.DataFrame) -> list[str]:
    ends: set[frozenset] = set(c.media_ends)
    for p in c.selected:
        ends.add(frozenset(((p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port)))))
        if p.relayed and isinstance(p.wire, str):
            ends.add(frozenset(parse_endpoint(x) for x in p.wire.split(" -> ")))
    labels = []
    for f in flows.itertuples(index=False):
        if frozenset(((f.src, int(f.sport)), (f.dst, int(f.dport)))) in ends and f.label not in labels:
            labels.append(str(f.label))
    return labels
