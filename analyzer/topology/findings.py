"""Findings: where the path departs from what the documented use case expects, with evidence.

Each rule raises a finding only when its evidence is in the capture; each carries the principle of
the source document it tests, the frames to look at, and what to do. Codes are stable identifiers.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from .calls import Call, parse_endpoint, tls_to_relay
from .hops import describe as describe_drops
from .hops import dropped_checks
from .zones import ZoneMap

PRINCIPLES = {
    "direct": "Media for peer-to-peer calls takes the most direct route available.",
    "intranet": "Two clients on the customer network should get a direct path.",
    "vpn": "Media must not traverse a VPN, packet shaper or inspection device (media transmission over VPNs "
    "is not supported).",
    "udp": "UDP is strongly preferred over TCP for media.",
    "relay": "The service's relays are reached on UDP 3478-3481 (TCP 443 as a fallback).",
}


class Finding(NamedTuple):
    call: int | None
    code: str
    severity: str
    title: str
    explanation: str
    evidence: str
    action: str
    frames: list[int]


def _frames(values) -> list[int]:
    out = sorted({int(v) for v in values if pd.notna(v)})
    return out[:20]


def build_findings(a, calls: list[Call], zm: ZoneMap) -> list[Finding]:
    out: list[Finding] = []
    pairs, sessions = a.pairs, a.sessions.set_index("session") if len(a.sessions) else a.sessions
    allocs = a.allocations
    for c in calls:
        sp = pairs[pairs.session.isin(c.sessions)]
        states = [sessions.loc[s].state for s in c.sessions]
        if c.sessions and all(st == "failed" for st in states):
            out.append(
                Finding(
                    c.call,
                    "ice-failed",
                    "error",
                    "ICE failed: no connectivity check succeeded",
                    f"{len(sp)} candidate pairs checked, none answered with success.",
                    "; ".join(f"{p.description}: {p.state}" for p in sp.itertuples())[:600],
                    "Check UDP 3478-3481 to the relays and the firewall rules for the client's ports.",
                    _frames(sp.first_check_frame),
                )
            )
        via_relay = sp.relayed | (sp.local_type == "relay") | (sp.remote_type == "relay")
        direct = sp[~via_relay]
        relay_ok = sp[via_relay & (sp.state == "succeeded")]
        if len(direct) and not (direct.state == "succeeded").any() and len(relay_ok):
            remote_direct = direct[~direct.agent.isin(_capture_agents(a, zm))]
            what = (
                "the peer's direct checks arrived but ours got no answer: inbound UDP is dropped on the "
                "peer's side (its NAT or firewall)"
                if len(remote_direct)
                else "UDP between the two sites: no direct check was answered and none of the peer's arrived"
            )
            drops, action = _dropping_hop(a, zm, direct)
            if drops:
                what = describe_drops(drops)
            out.append(
                Finding(
                    c.call,
                    "direct-path-blocked",
                    "warning",
                    "Direct path blocked; media relayed",
                    f"{PRINCIPLES['direct']} Blocked: {what}.",
                    f"{len(direct)} direct pairs, none succeeded; relay pair succeeded: {relay_ok.iloc[0].description}",
                    action,
                    _frames([d.frame for d in drops] + list(direct.first_check_frame)
                            + list(relay_ok.first_success_frame)),
                )
            )
        locs = [v[0] for v in c.locations.values()]
        if c.relayed and len(locs) >= 2 and all(x == "customer" for x in locs):
            sel = c.selected[0]
            out.append(
                Finding(
                    c.call,
                    "relay-hairpin",
                    "warning",
                    "Media hairpins through the relay between two customer-network clients",
                    PRINCIPLES["intranet"],
                    f"selected path {sel.description}",
                    "Allow UDP between the clients' subnets so ICE finds the direct pair.",
                    _frames([sel.first_check_frame, sel.first_success_frame]),
                )
            )
        if c.relayed:
            server = (
                c.selected[0].wire.split(" -> ")[1].rpartition(":")[0] if isinstance(c.selected[0].wire, str) else ""
            )
            client = (
                c.selected[0].wire.split(" -> ")[0].rpartition(":")[0] if isinstance(c.selected[0].wire, str) else ""
            )
            # the far end of the outer path, unless only the near end is known to relay (a capture taken at
            # the relay sees its own address first)
            relay_host = client if _known_relay(zm, client) and not _known_relay(zm, server) else server
            if relay_host and zm.zone(relay_host).zone != "cloud":
                out.append(
                    Finding(
                        c.call,
                        "non-cloud-relay",
                        "warning",
                        "Media relayed by a TURN server outside the service's ranges",
                        f"{relay_host} is {zm.zone(relay_host).rule}.",
                        f"selected path {c.selected[0].description}",
                        "Check the TURN configuration; the service's relays are in its published ranges.",
                        _frames([c.selected[0].first_check_frame]),
                    )
                )
        fallback = _tcp_fallback(a, c, allocs, zm)
        if fallback:  # UDP blocked explains the failed direct pairs too: one finding, not two
            out = [f for f in out if not (f.call == c.call and f.code == "direct-path-blocked")]
            out += fallback
        out += _media_over_vpn(c, zm)
        if c.sessions:
            for s in c.sessions:
                row = sessions.loc[s]
                # a nominated pair that carried media in some capture's view settles it (captures taken at
                # several points show the same path under NAT-translated addresses)
                nominated_media = (sp[(sp.session == s) & sp.nominated].media_packets > 0).any()
                if (
                    row.selected_by == "media"
                    and pd.notna(row.nominated_pair)
                    and pd.notna(row.selected_pair)
                    and not nominated_media
                ):
                    nom = sp[(sp.session == s) & (sp.pair == row.nominated_pair)].iloc[0]
                    sel = sp[(sp.session == s) & (sp.pair == row.selected_pair)].iloc[0]
                    if {(nom.local_address, nom.local_port), (nom.remote_address, nom.remote_port)} != {
                        (sel.local_address, sel.local_port),
                        (sel.remote_address, sel.remote_port),
                    }:
                        out.append(
                            Finding(
                                c.call,
                                "media-not-on-nominated-pair",
                                "warning",
                                "Media flows on a pair other than the nominated one",
                                "After nomination both agents must send media on the nominated pair.",
                                f"nominated {nom.description}; media on {sel.description}",
                                "Look for a NAT rebinding or a renomination without checks.",
                                _frames([nom.first_success_frame, sel.first_check_frame]),
                            )
                        )
    out += _relay_unreachable(allocs)
    out += _dtls_failed(a)
    out += _one_way(a, calls)
    out += _middlebox(a)
    return out


def _dropping_hop(a, zm: ZoneMap, direct: pd.DataFrame) -> tuple[list, str]:
    """With several capture points: the hop that dropped the direct checks (hops.py), and what to do there."""
    ends = {frozenset(((p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port))))
            for p in direct.itertuples(index=False)}
    drops = dropped_checks(a, zm, ends)
    if not drops:
        return [], "Open UDP between the sites or at the NAT."
    return drops, f"Allow UDP to and from the peer at {drops[0].hop}."


def _capture_agents(a, zm: ZoneMap) -> set[str]:
    c = a.candidates
    return set(c[c.address == zm.capture_host].agent) if zm.capture_host else set()


def _tcp_fallback(a, c: Call, allocs: pd.DataFrame, zm: ZoneMap) -> list[Finding]:
    """Media reached the relay over TCP or TLS: a TCP allocation on the path, or (TURN over TLS hides its
    Allocate) a customer client's TLS flow to the relay's address with no UDP allocation of its own."""
    if not c.selected:
        t = tls_to_relay(a, c, zm)
        if t is None:
            return []
        return [Finding(c.call, "tcp-fallback", "warning", "Media reaches the relay over TCP/TLS (UDP blocked)",
                        PRINCIPLES["udp"], f"no UDP path; {t.src}:{t.sport} -> {t.dst}:{t.dport} {t.protocols} "
                        f"({int(t.packets)} packets): TURN over TLS/TCP, its Allocate and media encrypted",
                        "Allow UDP 3478-3481 to the service's relay ranges.", [int(t.first_frame)])]
    sel = c.selected[0]
    ev, frames = "", [sel.first_check_frame]
    if sel.transport == "tcp" or (sel.relayed and isinstance(sel.wire, str)):
        client, server = sel.wire.split(" -> ") if isinstance(sel.wire, str) else ("", "")
        host, _, port = client.rpartition(":")
        shost, _, sport = server.rpartition(":")
        al = allocs[
            ((allocs.client == host) & (allocs.client_port.astype("Int64") == int(port or 0)))
            | ((allocs.client == shost) & (allocs.client_port.astype("Int64") == int(sport or 0)))
        ]
        if sel.transport == "tcp" or (len(al) and (al.transport == "tcp").any()):
            ev = f"selected path {sel.description}"
            frames += list(al.first_frame)
    if not ev:
        relay_ips = {
            ad for ad, t in ((sel.local_address, sel.local_type), (sel.remote_address, sel.remote_type)) if t == "relay"
        }
        f = a.flows
        tls = f[(f.transport == "tcp") & f.dst.isin(relay_ips) & f.dport.isin([443, 5349]) & (f.src_zone == "customer")]
        own_udp = allocs[
            (allocs.transport == "udp")
            & allocs.server.isin(relay_ips)
            & allocs.client.map(lambda x: zm.zone(x).zone == "customer")
        ]
        if len(tls) and not len(own_udp):
            t = tls.iloc[0]
            ev = (
                f"{t.src}:{t.sport} -> {t.dst}:{t.dport} {t.protocols} ({int(t.packets)} packets): TURN over "
                f"TLS/TCP, its Allocate encrypted; media leaves the relay as {sel.description}"
            )
            frames.append(int(t.first_frame))
    if not ev:
        return []
    udp = allocs[allocs.transport == "udp"]
    udp_note = (
        "no UDP allocation attempted"
        if not len(udp)
        else f"UDP allocations: {', '.join(f'{r.client} {r.state}' for r in udp.itertuples())}"
    )
    return [
        Finding(
            c.call,
            "tcp-fallback",
            "warning",
            "Media reaches the relay over TCP/TLS (UDP blocked)",
            PRINCIPLES["udp"],
            f"{ev}; {udp_note}",
            "Allow UDP 3478-3481 to the service's relay ranges.",
            _frames(frames),
        )
    ]


def _relay_unreachable(allocs: pd.DataFrame) -> list[Finding]:
    bad = allocs[allocs.state.isin(["unanswered", "failed"])]
    if not len(bad) or ((allocs.state == "allocated").any() and not (bad.state == "failed").any()):
        return []
    ev = "; ".join(
        f"{r.client}:{r.client_port} -> {r.server}:{r.server_port}/{r.transport} {r.state}"
        + (f" ({r.errors})" if r.errors else "")
        for r in bad.itertuples()
    )
    return [
        Finding(
            None,
            "relay-unreachable",
            "error" if not (allocs.state == "allocated").any() else "warning",
            "TURN allocations unanswered or refused",
            PRINCIPLES["relay"],
            ev[:800],
            "Check that UDP 3478 and TCP 443 reach the relays, and the credentials.",
            _frames(bad.first_frame),
        )
    ]


def _media_over_vpn(c: Call, zm: ZoneMap) -> list[Finding]:
    hits = []
    vpn_users = {agent for agent, (where, _) in c.locations.items() if where == "vpn-user"}
    for p in c.selected:
        for addr in (p.local_address, p.remote_address):
            z = zm.zone(addr)
            if z.zone == "vpn":
                hits.append(f"{addr} is {z.rule} (pair {p.description})")
        # a VPN user whose media comes out of the customer's egress went through the tunnel (full tunnel)
        for agent in vpn_users:
            addr = p.local_address if p.agent == agent else p.remote_address
            z = zm.zone(addr)
            if "egress" in z.roles:
                hits.append(f"VPN user {agent}'s media uses {addr}, {z.rule}: it left through the tunnel "
                            f"(pair {p.description})")
    if not hits:
        return []
    return [
        Finding(
            c.call,
            "media-over-vpn",
            "error",
            "Media goes through the VPN tunnel",
            PRINCIPLES["vpn"],
            "; ".join(hits),
            "Configure split tunnelling so the service's media ranges bypass the VPN.",
            _frames([p.first_check_frame for p in c.selected]),
        )
    ]


def tunnel_findings(a, zm: ZoneMap, calls: list[Call], already: list[Finding]) -> list[Finding]:
    """A tunnel carrying a call's packet rate (seconds of >= 40 packets) while no media from that host
    travels outside the tunnel: the media is inside the VPN."""
    out: list[Finding] = []
    if any(f.code == "media-over-vpn" for f in already):
        return out  # the media itself was seen from a VPN pool address: that finding says it already
    flows = a.flows
    outside_media = flows[flows.media & flows.vpn.isna()]
    for t in zm.tunnels:
        mine = outside_media[(outside_media.src == t.client[0]) | (outside_media.dst == t.client[0])]
        if t.busy_seconds >= 2 and not len(mine):
            call = next((c.call for c in calls if c.tunnel is t), None)
            out.append(Finding(call, "media-over-vpn", "error", "Call media inside the VPN tunnel",
                               PRINCIPLES["vpn"], f"{t.client[0]}:{t.client[1]} -> {t.server[0]}:{t.server[1]} "
                               f"({', '.join(sorted(t.kinds))}): {t.busy_seconds} s at a call's packet rate "
                               f"(>= 40 packets/s), {t.packets} packets in all, and no media outside the tunnel "
                               "from that host" + (f"; the tunnel: {t.evidence}" if t.evidence else ""),
                               "Configure split tunnelling so the service's media ranges bypass "
                               "the VPN.", [t.first_frame]))
    return out


def _dtls_failed(a) -> list[Finding]:
    if "dtls_sessions" not in a.tables:
        return []
    ds = a.dtls_sessions
    out = []
    end = max((c.last_ts_ns or 0) for c in a.captures)
    for r in ds.itertuples(index=False):
        late = (end - r.start_ts.value) / 1e9 > 2
        fatal = isinstance(r.alerts, str) and "fatal" in r.alerts
        if (not r.completed and late) or fatal:
            why = (
                "fatal alert"
                if fatal
                else ("no completion, repeated flights" if r.retransmitted_flights >= 2 else "no completion")
            )
            out.append(
                Finding(
                    None,
                    "dtls-failed",
                    "error",
                    f"DTLS handshake failed ({why})",
                    "Media keys come from the DTLS-SRTP handshake: without it no media flows.",
                    f"{r.client}:{r.client_port} -> {r.server}:{r.server_port}, alerts: {r.alerts or 'none'}, "
                    f"retransmitted flights {r.retransmitted_flights}",
                    "Check fingerprints in the signaling and anything that drops large UDP datagrams.",
                    _frames([r.client_hello_frame, r.server_hello_frame, r.first_frame]),
                )
            )
    return out


def _one_way(a, calls: list[Call]) -> list[Finding]:
    """From the media stage's per-direction view: a direction silent for more than 2 s while the other
    direction flows. Attached to the call whose endpoints it joins."""
    if "media_directions" not in a.tables:
        return []
    md = a.media_directions
    if "one_way" not in md.columns:
        return []
    out = []
    for r in md[md.one_way.fillna(False).astype(bool)].itertuples(index=False):
        ends = {(r.sender, int(r.sender_port)), (r.receiver, int(r.receiver_port))}
        call = next((c.call for c in calls if _joins(c, ends)), None)
        out.append(
            Finding(
                call,
                "one-way-media",
                "error",
                "One-way media",
                "Both directions of a call carry media; one is silent here.",
                f"{r.sender}:{r.sender_port} -> {r.receiver}:{r.receiver_port} silent for "
                f"{float(r.silent_s):.1f} s while {r.receiver} sends ({int(r.packets)} packets this way)",
                "Look for a firewall or NAT that drops one direction, or a muted/failed capture device.",
                [],
            )
        )
    return out


def _joins(c: Call, ends: set) -> bool:
    for p in c.selected:
        pe = {(p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port))}
        if pe == ends or (isinstance(p.wire, str) and {parse_endpoint(x) for x in p.wire.split(" -> ")} & ends):
            return True
    return any(set(e) == ends for e in c.media_ends)


def _middlebox(a) -> list[Finding]:
    out = []
    f = a.flows
    media = f[f.media & ~f.relayed & (f.transport == "udp")]
    for r in media.itertuples(index=False):
        changed = []
        for d, name in (("ttl_fwd", "sender to receiver"), ("ttl_rev", "receiver to sender")):
            v = getattr(r, d)
            if isinstance(v, str) and "-" in v:
                lo, hi = map(int, v.split("-"))
                if hi - lo >= 2:
                    changed.append(f"TTL {v} {name}")
        if changed:
            out.append(
                Finding(
                    None,
                    "unsupported-middlebox",
                    "warning",
                    "TTL changes in the middle of a media flow",
                    PRINCIPLES["vpn"],
                    f"{r.src}:{r.sport} <-> {r.dst}:{r.dport}: {'; '.join(changed)}",
                    "Look for a device that re-routes or proxies media on this path.",
                    [int(r.first_frame)],
                )
            )
    if len(a.files) > 1:
        seen: dict[tuple, set] = {}
        for r in media.itertuples(index=False):
            key = (r.src, r.sport, r.dst, r.dport)
            seen.setdefault(key, set()).add(r.dscp_fwd)
        for key, marks in seen.items():
            if len({m for m in marks if isinstance(m, str)}) > 1:
                out.append(
                    Finding(
                        None,
                        "unsupported-middlebox",
                        "warning",
                        "DSCP rewritten between capture points",
                        PRINCIPLES["vpn"],
                        f"{key}: DSCP {sorted(m for m in marks if isinstance(m, str))}",
                        "Find the device that rewrites DSCP between the two capture points.",
                        [],
                    )
                )
    return out


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    cols = ["call", "code", "severity", "title", "explanation", "evidence", "action", "frames"]
    df = pd.DataFrame([f._asdict() for f in findings], columns=cols)
    df["call"] = df["call"].astype("Int64")
    return df


def _known_relay(zm, host: str) -> bool:
    return bool(host) and ("relay" in zm.zone(host).roles or host in zm.relays)
