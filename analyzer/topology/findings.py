"""Findings: where the path departs from what the documented use case expects, with evidence.

Each rule raises a finding only when its evidence is in the capture; each carries the principle of
the source document it tests, the frames to look at, and what to do. Codes are stable identifiers.
"""

from __future__ import annotations

import os
from itertools import pairwise
from typing import NamedTuple

import pandas as pd

from ..ice.sessions import IN_PROGRESS_S
from .calls import Call, parse_endpoint, tls_to_relay
from .evidence import call_shape, one_direction, recording_until
from .hops import describe as describe_drops
from .hops import dropped_checks
from .zones import BUSY_RATE, ZoneMap

PRINCIPLES = {
    "direct": "Media for peer-to-peer calls takes the most direct route available.",
    "intranet": "Two clients on the customer network should get a direct path.",
    "vpn": "Media must not traverse a VPN, packet shaper or inspection device (media transmission over VPNs "
    "is not supported).",
    "udp": "UDP is strongly preferred over TCP for media.",
    "relay": "The service's relays are reached on UDP 3478-3481 (TCP 443 as a fallback).",
}


LATE_S = 2.0  # a handshake not finished this long after it began, while the capture records, failed


class Finding(NamedTuple):
    call: int | None
    code: str
    severity: str
    title: str
    explanation: str
    evidence: str
    action: str
    frames: list[int]


class Frame(int):
    """A Wireshark frame number that knows its capture: `file` indexes Analysis.files (None: unknown).
    Frame 10 exists in every file of a multi-point capture, so a finding's evidence carries both."""

    file: int | None

    def __new__(cls, frame, file=None):
        out = super().__new__(cls, int(frame))
        out.file = None if file is None or pd.isna(file) else int(file)
        return out

    def __repr__(self) -> str:
        return f"{int(self)}" if self.file is None else f"{self.file}#{int(self)}"


def ff(rows, *cols: str) -> list[Frame]:
    """The frame numbers in columns `cols` of `rows` (a table, one row, or a list of rows), each with its
    row's `file`: the one place a rule turns a row's frame into evidence."""
    if isinstance(rows, pd.DataFrame):
        files = list(rows["file"]) if "file" in rows.columns else [None] * len(rows)
        return [Frame(v, f) for c in cols for v, f in zip(rows[c], files, strict=True) if pd.notna(v)]
    if isinstance(rows, pd.Series) or hasattr(rows, "_fields"):
        rows = [rows]
    return [Frame(v, getattr(r, "file", None)) for r in rows for c in cols if pd.notna(v := getattr(r, c))]


def _frames(values) -> list[Frame]:
    """Distinct (file, frame) evidence in frame order, at most 20."""
    seen: dict = {}
    for v in values:
        if v is None or pd.isna(v):
            continue
        f = getattr(v, "file", None)
        seen.setdefault((f, int(v)), v if isinstance(v, Frame) else Frame(v))
    known = {n for f, n in seen if f is not None}  # a frame of unknown file that a known one names is that one
    out = [v for (f, n), v in seen.items() if f is not None or n not in known]
    return sorted(out, key=lambda x: (int(x), -1 if x.file is None else x.file))[:20]


def build_findings(a, calls: list[Call], zm: ZoneMap) -> list[Finding]:
    out: list[Finding] = []
    pairs, sessions = a.pairs, a.sessions.set_index("session") if len(a.sessions) else a.sessions
    allocs = a.allocations
    for c in calls:
        sp = pairs[pairs.session.isin(c.sessions)]
        states = [sessions.loc[s].state for s in c.sessions]
        if c.sessions and all(st == "failed" for st in states) and not _checks_recorded(a, sp):
            out.append(Finding(
                c.call, "ice-incomplete", "info", "ICE not finished: the capture ends during the connectivity checks",
                f"The recording stops less than {IN_PROGRESS_S:.0f} s after the checks began: whether one would "
                "have succeeded cannot be told.",
                "; ".join(f"{p.description}: {p.state}" for p in sp.itertuples())[:600],
                "Capture for longer after the call starts.", _frames(ff(sp, "first_check_frame"))))
        elif c.sessions and all(st == "failed" for st in states):
            out.append(
                Finding(
                    c.call,
                    "ice-failed",
                    "error",
                    "ICE failed: no connectivity check succeeded",
                    f"{len(sp)} candidate pairs checked, none answered with success.",
                    "; ".join(f"{p.description}: {p.state}" for p in sp.itertuples())[:600],
                    "Check UDP 3478-3481 to the relays and the firewall rules for the client's ports.",
                    _frames(ff(sp, "first_check_frame")),
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
                    _frames(ff(drops, "frame") + ff(direct, "first_check_frame")
                            + ff(relay_ok, "first_success_frame")),
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
                    _frames(ff(sel, "first_check_frame", "first_success_frame")),
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
                        _frames(ff(c.selected[0], "first_check_frame")),
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
                                _frames(ff(nom, "first_success_frame") + ff(sel, "first_check_frame")),
                            )
                        )
    one_way_files = {i: d for i in range(len(a.files)) if (d := one_direction(a, i)) is not None}
    blind = frozenset(one_way_files)
    out += _relay_unreachable(a, allocs[~allocs.file.isin(blind)] if len(allocs) else allocs)
    out += _dtls_failed(a, blind)
    out += _one_way(a, calls, blind)
    out += _middlebox(a)
    out += _icmp_unreachable(a, calls)
    from .quality import quality_findings  # issue 16: poor-media, media-gap, high-rtt, far-end-not-receiving

    out += quality_findings(a, calls, zm.capture_host)
    if one_way_files and len(one_way_files) == len(a.files):  # no answer could be in the capture at all
        out = [f for f in out if f.code not in ABSENCE_CODES]
    out += [_one_direction_finding(a, i, d) for i, d in one_way_files.items()]
    return out


def _icmp_unreachable(a, calls: list[Call]) -> list[Finding]:
    """ICMP/ICMPv6 unreachable messages quoting a call's selected pair. The far end still sending after
    them: the path refuses some packets mid-call (warning). The far end silent for a while before them:
    it closed its port while this side kept sending (info). An ICMP within TEARDOWN_NS of the far end's
    last packet is both ends hanging up together: no finding."""
    from .icmp_evidence import TEARDOWN_NS, _key, far_end_activity, quoted_frames

    icmp = a.icmp
    hits = quoted_frames(icmp, by_file=False, unreachable_only=True)
    out: list[Finding] = []
    for c in calls:
        for p in c.selected:
            if p is None:
                continue
            key = _key(p.local_address, p.local_port, p.remote_address, p.remote_port, p.transport)
            frames = hits.get((None, key))
            if not frames:
                continue
            # the first ICMP quoting this pair: a frame number alone may be another capture's packet
            q = icmp[icmp.frame.isin(frames) & icmp.quoted_sport.notna() & icmp.quoted_dport.notna()]
            same = [_key(x.quoted_src, x.quoted_sport, x.quoted_dst, x.quoted_dport, x.quoted_transport) == key
                    for x in q.itertuples(index=False)]  # fmt: skip
            r = q[same].sort_values("ts_ns").iloc[0]
            far = far_end_activity(
                a, r.quoted_dst, int(r.quoted_dport), r.quoted_src, int(r.quoted_sport), int(r.ts_ns)
            )
            if far.after_frame is None and far.last_ns is not None and r.ts_ns - far.last_ns < TEARDOWN_NS:
                continue
            sender = "the far end itself" if r.src == r.quoted_dst else f"{r.src} (a router or firewall)"
            what = (
                f"{len(frames)} ICMP {r.kind} message{'s' if len(frames) > 1 else ''} from {sender} quote "
                f"{r.quoted_src}:{r.quoted_sport} -> {r.quoted_dst}:{r.quoted_dport}/{r.quoted_transport}"
            )
            if far.after_frame is not None:
                sev, title = "warning", f"ICMP {r.kind} on the selected pair while the far end still sends"
                why = (f"{what}, yet {r.quoted_dst} kept sending on the pair (frame {far.after_frame}): "
                       "packets are refused mid-call.")  # fmt: skip
                quoted = ff(icmp[icmp.frame.isin(frames)].drop_duplicates(["file", "frame"]), "frame")
                cited = [*quoted, far.after_frame]
                act = "Check the firewall or NAT in front of the far end: it rejects some packets to that port."
            else:
                silent = "" if far.last_ns is None else (
                    f" {(r.ts_ns - far.last_ns) / 1e9:.1f} s after its last packet (frame {far.last_frame})"
                )
                sev, title = "info", f"The far end closed its port on the selected pair ({r.kind})"
                why = f"{what}{silent}: the far end stopped using the pair while this side kept sending."
                quoted = ff(icmp[icmp.frame.isin(frames)].drop_duplicates(["file", "frame"]), "frame")
                cited = [*quoted] + ([far.last_frame] if far.last_frame is not None else [])
                act = ("If the call or this stream had ended on the far side, nothing is wrong; otherwise see why "
                       "the far end left.")  # fmt: skip
            out.append(Finding(c.call, "icmp-unreachable", sev, title, why,
                               f"selected pair {p.description}; first ICMP at {r.ts}", act, _frames(cited)))
    return out


# rules that rest on something not arriving: a capture of one direction cannot support them
ABSENCE_CODES = frozenset(("ice-failed", "ice-incomplete", "direct-path-blocked", "relay-unreachable", "dtls-failed",
                           "dtls-incomplete", "one-way-media", "far-end-not-receiving"))


def _one_direction_finding(a, file: int, d) -> Finding:
    name = a.files[file].rsplit("/", 1)[-1]
    def hosts(xs: list[str]) -> str:
        return ", ".join(xs[:6]) + (f" and {len(xs) - 6} more" if len(xs) > 6 else "")

    who = (f"sent to {d.receivers[0]}" if len(d.receivers) == 1 and len(d.senders) > 1
           else f"sent by {hosts(d.senders)}")
    return Finding(
        None, "one-direction-capture", "info",
        f"The capture holds one direction only: every packet is {who}",
        "No packet travels back in any flow: a one-way SPAN port or a capture filter on the source. Unanswered "
        "checks, allocations and handshakes, and a silent media direction, cannot be judged from this file.",
        f"{name}: {d.packets} packets in {d.flows} flows, none with a packet in the other direction",
        "Capture both directions (mirror ingress and egress on the SPAN port, or capture on the client).",
        d.frames,
    )


def _checks_recorded(a, sp: pd.DataFrame) -> bool:
    """Did the capture keep recording IN_PROGRESS_S after some pair's first check (time for an answer)?"""
    for p in sp.itertuples(index=False):
        if pd.isna(p.first_check_ts):
            continue
        t = p.first_check_ts.value
        if (recording_until(a, int(p.file), t) - t) / 1e9 >= IN_PROGRESS_S:
            return True
    return False
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
        title, note = _udp_seen(allocs, t.src)
        return [Finding(c.call, "tcp-fallback", "warning", title,
                        PRINCIPLES["udp"], f"no UDP path; {t.src}:{t.sport} -> {t.dst}:{t.dport} {t.protocols} "
                        f"({int(t.packets)} packets): TURN over TLS/TCP, its Allocate and media encrypted; {note}",
                        "Allow UDP 3478-3481 to the service's relay ranges.", ff(t, "first_frame"))]
    sel = c.selected[0]
    ev, frames = "", ff(sel, "first_check_frame")
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
            frames += ff(al, "first_frame")
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
            frames += ff(t, "first_frame")
    if not ev:
        return []
    client_host = sel.wire.split(" -> ")[0].rpartition(":")[0] if isinstance(sel.wire, str) else sel.local_address
    title, udp_note = _udp_seen(allocs, client_host)
    return [
        Finding(
            c.call,
            "tcp-fallback",
            "warning",
            title,
            PRINCIPLES["udp"],
            f"{ev}; {udp_note}",
            "Allow UDP 3478-3481 to the service's relay ranges.",
            _frames(frames),
        )
    ]


def _udp_seen(allocs: pd.DataFrame, client: str) -> tuple[str, str]:
    """(title, evidence) of a TCP/TLS relay path by what the capture shows of the client's UDP allocations:
    "UDP blocked" only when UDP was tried and got nothing."""
    own = allocs[(allocs.transport == "udp") & (allocs.client == client)]
    if not len(own):
        return "Media reaches the relay over TCP/TLS; no UDP allocation was tried", "no UDP allocation attempted"
    note = "UDP allocations: " + ", ".join(f"{r.client}:{r.client_port} -> {r.server}:{r.server_port} {r.state}"
                                           for r in own.itertuples())
    if (own.allocated_frame.notna() | own.state.isin(["allocated", "deallocated"])).any():
        return "Media reaches the relay over TCP/TLS although a UDP allocation succeeded", note
    if (own.state == "unanswered").all():
        return "Media reaches the relay over TCP/TLS (UDP allocations unanswered: UDP blocked)", note
    return "Media reaches the relay over TCP/TLS (UDP allocations refused)", note


def _relay_unreachable(a, allocs: pd.DataFrame) -> list[Finding]:
    """Allocations unanswered or refused, per client host. A client with no allocation answered reached
    no relay (error); refused ones beside its answered ones are a warning; unanswered ones beside one of
    its allocations that succeeded (the same relay on UDP 3478 while UDP 443 got nothing, or another
    relay) are alternatives it tried: info. An Allocate sent as the recording stops proves nothing."""
    if not len(allocs):
        return []
    ok = allocs.allocated_frame.notna() | allocs.state.isin(["allocated", "deallocated"])
    bad = allocs[allocs.state.isin(["unanswered", "failed"])]
    recorded = [
        (recording_until(a, int(r.file), r.first_ts.value) - r.first_ts.value) / 1e9 > LATE_S
        for r in bad.itertuples(index=False)
    ]
    bad = bad[[st == "failed" or rec for st, rec in zip(bad.state, recorded, strict=True)]]
    if not len(bad):
        return []

    def where(rows: pd.DataFrame) -> str:
        return "; ".join(
            f"{r.client}:{r.client_port} -> {r.server}:{r.server_port}/{r.transport} {r.state}"
            + (f" ({r.errors})" if r.errors else "")
            for r in rows.itertuples()
        )[:800]

    def requests(rows: pd.DataFrame) -> list[int]:
        """Every Allocate request of these allocations (retransmissions included), not only the first."""
        st = a.stun
        req = st[(st.method == "Allocate") & (st.cls == "request") & ~st.relayed]
        keys = set(zip(rows.file, rows.client, rows.client_port.astype(int), rows.server, rows.server_port.astype(int),
                       strict=True))
        mine = [k in keys for k in zip(req.file, req.src, req.sport.astype(int), req.dst, req.dport.astype(int),
                                       strict=True)]
        return ff(req[mine], "frame") or ff(rows, "first_frame")

    out = []
    good_all = allocs[ok]
    for client in sorted(set(bad.client)):
        mine, good = bad[bad.client == client], good_all[good_all.client == client]
        worked = "; ".join(
            f"{r.server}:{r.server_port}/{r.transport} allocated (frame {int(r.allocated_frame)})"
            for r in good.itertuples() if pd.notna(r.allocated_frame)
        )[:400]
        if not len(good):  # this client reached no relay at all
            out.append(Finding(None, "relay-unreachable", "error", "TURN allocations unanswered or refused",
                               PRINCIPLES["relay"], where(mine),
                               "Check that UDP 3478 and TCP 443 reach the relays, and the credentials.",
                               _frames(requests(mine))))
            continue
        failed = mine[mine.state == "failed"]
        if len(failed):
            out.append(Finding(None, "relay-unreachable", "warning", "TURN allocations refused",
                               PRINCIPLES["relay"], f"{where(failed)}; while {worked}",
                               "Check the credentials and the relay's quota for the refused allocations.",
                               _frames(requests(failed) + ff(good, "allocated_frame"))))
        alt = mine[mine.state == "unanswered"]
        if len(alt):
            same = alt.server.isin(set(good.server)).all()
            out.append(Finding(None, "relay-unreachable", "info",
                               "TURN allocation on an alternative unanswered; "
                               + ("the same relay allocated on another transport" if same
                                  else "another relay allocated"),
                               f"Clients try several relay addresses and transports at once; {client} got an "
                               "allocation, so its media has a relay.", f"{where(alt)}; while {worked}",
                               "Nothing needed for this call; open the unanswered transport if it is the preferred "
                               "one.", _frames(requests(alt) + ff(good, "allocated_frame"))))
    return out


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
            _frames(ff([p for p in c.selected if p is not None], "first_check_frame")),
        )
    ]


def tunnel_findings(a, zm: ZoneMap, calls: list[Call], already: list[Finding]) -> list[Finding]:
    """A tunnel carrying a call's packet rate while no media from that host travels outside the tunnel.
    With the VPN user's call in view (its ICE, its media at the customer egress) the media is inside the
    VPN: media-over-vpn. Without a call in view the rate alone shows at most that the tunnel may hold
    one, and only when the rate has a call's shape (evidence.call_shape)."""
    out: list[Finding] = []
    if any(f.code == "media-over-vpn" for f in already):
        return out  # the media itself was seen from a VPN pool address: that finding says it already
    flows = a.flows
    outside_media = flows[flows.media & flows.vpn.isna()]
    accs = {(f.file, f.a, f.b): f for t in a.flow_tables for f in t.flows.values()}
    for t in zm.tunnels:
        mine = outside_media[(outside_media.src == t.client[0]) | (outside_media.dst == t.client[0])]
        if t.busy_seconds < 2 or len(mine):
            continue
        ends = f"{t.client[0]}:{t.client[1]} -> {t.server[0]}:{t.server[1]} ({', '.join(sorted(t.kinds))})"
        call = next((c.call for c in calls if c.tunnel is t), None)
        if call is not None:
            out.append(Finding(call, "media-over-vpn", "error", "Call media inside the VPN tunnel",
                               PRINCIPLES["vpn"], f"{ends}: {t.busy_seconds} s at a call's packet rate "
                               f"(>= 40 packets/s), {t.packets} packets in all, and no media outside the tunnel "
                               "from that host" + (f"; the tunnel: {t.evidence}" if t.evidence else ""),
                               "Configure split tunnelling so the service's media ranges bypass "
                               "the VPN.", [t.first_frame]))
            continue
        acc = accs.get((t.file, t.client, t.server)) or accs.get((t.file, t.server, t.client))
        shape = acc and call_shape(acc.vpn_seconds, acc.packets_ab + acc.packets_ba, acc.bytes_ab + acc.bytes_ba,
                                   BUSY_RATE)
        if not shape:
            continue  # bursts, a download, a few seconds: nothing says a call
        out.append(Finding(None, "vpn-call-like-traffic", "info", "Tunnel with call-like traffic: media may be inside",
                           f"{PRINCIPLES['vpn']} No call is visible in this capture; the tunnel's packet rate has a "
                           "call's shape, so a call's media may travel inside it.",
                           f"{ends}: {shape}; {t.packets} packets in all, no media outside the tunnel from "
                           f"{t.client[0]}" + (f"; the tunnel: {t.evidence}" if t.evidence else ""),
                           "Capture the tunnel interface (or the far side) to see the call; if it is one, configure "
                           "split tunnelling so the service's media ranges bypass the VPN.", [t.first_frame]))
    return out


def _dtls_failed(a, blind: frozenset = frozenset()) -> list[Finding]:
    """A handshake that did not finish, judged by what the capture could see: a fatal alert fails it; no
    completion fails it only when the capture kept recording for LATE_S after it began (else the capture
    ends during the handshake); an attempt the client replaced by a handshake to the same server that
    completed is a retry. A session without a hello was set up before the capture: nothing to judge."""
    if "dtls_sessions" not in a.tables:
        return []
    ds = a.dtls_sessions
    if not len(ds):
        return []
    last_rec = a.dtls.groupby(["file", "session"]).ts_ns.max().to_dict() if len(a.dtls) else {}
    out = []
    for r in ds.itertuples(index=False):
        if r.file in blind:
            continue  # a file of one direction: the answer could never be in it
        if pd.isna(r.client_hello_frame) and pd.isna(r.server_hello_frame):
            continue  # no handshake seen: dtls_sessions.state says so
        fatal = isinstance(r.alerts, str) and "fatal" in r.alerts
        if r.completed and not fatal:
            continue
        start = r.start_ts.value
        last = int(last_rec.get((r.file, r.session), start))
        recorded_s = (recording_until(a, int(r.file), last) - start) / 1e9
        where = f"{r.client}:{r.client_port} -> {r.server}:{r.server_port}"
        frames = _frames(ff(r, "client_hello_frame", "server_hello_frame", "first_frame"))
        if not fatal and recorded_s <= LATE_S:
            out.append(Finding(
                None, "dtls-incomplete", "info", "DTLS handshake not finished: the capture ends during the handshake",
                "The capture stops recording within "
                f"{LATE_S:.0f} s of the handshake's start: whether it completed cannot be told.",
                f"{where}, last record {(last - start) / 1e9:.3f} s after the first, the recording ends "
                f"{recorded_s:.3f} s after the first",
                "Capture for longer after the call starts.", frames))
            continue
        retry = ds[(ds.file == r.file) & (ds.client == r.client) & (ds.server == r.server)
                   & (ds.server_port == r.server_port) & ds.completed & (ds.start_ts > r.start_ts)]
        why = (
            "fatal alert"
            if fatal
            else ("no completion, repeated flights" if r.retransmitted_flights >= 2 else "no completion")
        )
        evidence = (f"{where}, alerts: {r.alerts or 'none'}, retransmitted flights {r.retransmitted_flights}, "
                    f"the capture recorded {recorded_s:.1f} s after the first hello")
        if len(retry) and not fatal:
            again = retry.iloc[0]
            out.append(Finding(
                None, "dtls-failed", "info", "DTLS handshake attempt unanswered; a later one to the same server "
                f"completed (frame {int(again.first_frame)})",
                "The client gave up this attempt and a new handshake with the same server succeeded.",
                f"{evidence}; completed from {again.client}:{again.client_port}",
                "Nothing to do for media: the handshake that followed completed.",
                _frames(ff(r, "client_hello_frame", "first_frame") + ff(again, "first_frame"))))
            continue
        out.append(
            Finding(
                None,
                "dtls-failed",
                "error",
                f"DTLS handshake failed ({why})",
                "Media keys come from the DTLS-SRTP handshake: without it no media flows.",
                evidence,
                "Check fingerprints in the signaling and anything that drops large UDP datagrams.",
                frames,
            )
        )
    return out


def _one_way(a, calls: list[Call], one_way_files: frozenset = frozenset()) -> list[Finding]:
    """From the media stage's per-direction view: a direction silent for more than 2 s while the other
    direction flows. Attached to the call whose endpoints it joins. When the silent side still sends
    RTCP or DTLS application data (SCTP: the data channel) the same way, the path works both ways: the
    far end is not sending media, which is no network fault. A file that holds one direction only
    cannot tell (evidence.one_direction)."""
    if "media_directions" not in a.tables:
        return []
    md = a.media_directions
    if "one_way" not in md.columns:
        return []
    out = []
    for r in md[md.one_way.fillna(False).astype(bool)].itertuples(index=False):
        if r.file in one_way_files or _resumed(r):
            continue
        ends = {(r.sender, int(r.sender_port)), (r.receiver, int(r.receiver_port))}
        call = next((c.call for c in calls if _joins(c, ends)), None)
        media_frames = _direction_frames(a, md, r)
        alive, what = _still_sending(a, r)
        silence = f"{r.sender}:{r.sender_port} -> {r.receiver}:{r.receiver_port} silent for {float(r.silent_s):.1f} s"
        if alive:
            out.append(Finding(
                call, "one-way-media", "warning", "One-way media: the far end sends no media, though the path "
                "works both ways",
                f"{r.sender} sends no RTP, yet in the silence it sent {what} the same way: its packets get "
                "through. The far end is not sending (muted, receive-only, or an SFU that forwards nothing).",
                f"{silence} while {r.receiver} sends ({int(r.packets)} RTP packets this way); {what} from "
                f"{r.sender} in that time",
                "Check the far end (mute, a receive-only transceiver, what the SFU forwards), not the firewall.",
                _frames(alive[:10] + media_frames)))
            continue
        out.append(
            Finding(
                call,
                "one-way-media",
                "error",
                "One-way media",
                "Both directions of a call carry media; one is silent here, and nothing else came that way.",
                f"{silence} while {r.receiver} sends ({int(r.packets)} packets this way); no RTCP or DTLS from "
                f"{r.sender} in that time",
                "Look for a firewall or NAT that drops one direction, or a muted/failed capture device.",
                media_frames,
            )
        )
    return out


def _resumed(r) -> bool:
    """Every silence of the direction ended with its media coming back, and together they are less than
    half of its time: an interruption (media-gap says so, with the frames either side), not one-way media."""
    spans = list(r.silent_intervals or [])
    if not spans:
        return False
    last = pd.Timestamp(r.last_ts).value
    span = last - pd.Timestamp(r.first_ts).value
    back = all(iv["end_ts_ns"] < last - RESUMED_NS for iv in spans)
    return back and span > 0 and sum(iv["end_ts_ns"] - iv["start_ts_ns"] for iv in spans) < span / 2


RESUMED_NS = 500_000_000  # media that comes back at least this long before the direction's end resumed


def _direction_frames(a, md: pd.DataFrame, r) -> list[int]:
    """The first and last frames of the media flowing the other way, and where the silent side's own
    streams (if any) stopped."""
    st = a.streams
    rev = md[(md.file == r.file) & (md.conversation == r.conversation) & (md.sender == r.receiver)
             & (md.sender_port == r.receiver_port)]
    flowing = {x for v in rev.ssrcs for x in str(v).split(",") if x}
    silent = {x for x in str(r.ssrcs or "").split(",") if x and r.ssrcs == r.ssrcs}
    mine = st[st.file == r.file]
    fl = mine[mine.ssrc_hex.isin(flowing)]
    si = mine[mine.ssrc_hex.isin(silent)]
    return _frames(ff(fl, "first_frame", "last_frame") + ff(si, "last_frame"))


def _aliases(a, ep: tuple[str, int]) -> set[tuple[str, int]]:
    """An endpoint and the relayed addresses it allocated (its packets through the relay come from them)."""
    out = {ep}
    al = a.allocations
    if len(al):
        mine = al[(al.client == ep[0]) & (al.client_port.astype("Int64") == ep[1]) & al.relayed_address.notna()]
        out |= {(x, int(p)) for x, p in zip(mine.relayed_address, mine.relayed_port, strict=True)}
    return out


def _still_sending(a, r) -> tuple[list[int], str]:
    """Frames of RTCP and DTLS application data sent sender -> receiver during the direction's silence."""
    spans = [(iv["start_ts_ns"], iv["end_ts_ns"]) for iv in (r.silent_intervals or [])]
    src, dst = _aliases(a, (r.sender, int(r.sender_port))), _aliases(a, (r.receiver, int(r.receiver_port)))

    def pick(df: pd.DataFrame, outer: bool) -> pd.DataFrame:
        if not len(df):
            return df
        df = df[df.file == r.file]
        s = pd.Series(list(zip(df.src, df.sport.astype(int), strict=True)), index=df.index).isin(src)
        d = pd.Series(list(zip(df.dst, df.dport.astype(int), strict=True)), index=df.index).isin(dst)
        if outer:
            os_ = pd.Series(list(zip(df.outer_src, df.outer_sport.fillna(-1).astype(int), strict=True)),
                            index=df.index).isin(src)
            od = pd.Series(list(zip(df.outer_dst, df.outer_dport.fillna(-1).astype(int), strict=True)),
                           index=df.index).isin(dst)
            s, d = s | os_, d | od
        df = df[s & d]
        t = df.ts_ns.astype("int64")
        inside = pd.Series(False, index=df.index)
        for lo, hi in spans:
            inside |= (t >= lo) & (t <= hi)
        return df[inside]

    rtcp = pick(a.rtcp_reports, outer=False) if "rtcp_reports" in a.tables else pd.DataFrame()
    dtls = a.dtls
    app = pick(dtls[dtls.content_type == "application_data"], outer=True) if len(dtls) else pd.DataFrame()
    parts, frames = [], []
    if len(rtcp):
        rtcp = rtcp.drop_duplicates("frame")
        kinds = ", ".join(sorted({str(k) for k in rtcp.packet_type.dropna()}))
        name = "SRTCP" if rtcp.srtcp.astype(bool).all() else "RTCP"
        parts.append(f"{len(rtcp)} {name} packets ({kinds})")
        frames += ff(rtcp, "frame")
    if len(app):
        app = app.drop_duplicates("frame")
        parts.append(f"{len(app)} DTLS application data records (SCTP, the data channel)")
        frames += ff(app, "frame")
    return _frames(frames), " and ".join(parts)


def _joins(c: Call, ends: set) -> bool:
    for p in c.selected:
        pe = {(p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port))}
        if pe == ends or (isinstance(p.wire, str) and {parse_endpoint(x) for x in p.wire.split(" -> ")} & ends):
            return True
    return any(set(e) == ends for e in c.media_ends)


MIN_TTL_PACKETS = 5  # media packets at one TTL before it counts as a path


def _ttl_steps(spans: dict[int, list[int]]) -> list[tuple[int, int, int, int]]:
    """(old TTL, its last frame, new TTL, its first frame) where one direction's media moved from one TTL
    to another for good: the old value's last packet comes before the new value's first. Values whose
    frames interleave are two senders behind one address (a load balancer, STUN and media served by
    different hosts), not a path change."""
    vals = sorted(((lo, hi, t) for t, (lo, hi, n) in spans.items() if n >= MIN_TTL_PACKETS))
    return [(t1, hi1, t2, lo2) for (_lo1, hi1, t1), (lo2, _hi2, t2) in pairwise(vals)
            if hi1 < lo2 and abs(t1 - t2) >= 2]


def _middlebox(a) -> list[Finding]:
    out = []
    f = a.flows
    media = f[f.media & ~f.relayed & (f.transport == "udp")]
    accs = {(x.file, x.a, x.b): x for t in a.flow_tables for x in t.flows.values()}
    for r in media.itertuples(index=False):
        acc = accs.get((r.file, (r.src, r.sport), (r.dst, r.dport))) or accs.get((r.file, (r.dst, r.dport),
                                                                                 (r.src, r.sport)))
        if acc is None:
            continue
        changed, frames = [], []
        for d in ("ab", "ba"):
            sender, receiver = (acc.a, acc.b) if d == "ab" else (acc.b, acc.a)
            for t1, f1, t2, f2 in _ttl_steps(acc.media_ttl[d]):
                changed.append(f"{sender[0]}:{sender[1]} -> {receiver[0]}:{receiver[1]} media TTL {t1} until frame "
                               f"{f1}, {t2} from frame {f2}")
                frames += [Frame(f1, r.file), Frame(f2, r.file)]
        if changed:
            out.append(
                Finding(
                    None,
                    "unsupported-middlebox",
                    "warning",
                    "TTL changes in the middle of a media flow",
                    f"{PRINCIPLES['vpn']} The media of one direction arrives over a path of another length "
                    "from some point on: something re-routed or proxied it.",
                    "; ".join(changed),
                    "Look for a device that re-routes or proxies media on this path.",
                    _frames(frames),
                )
            )
    if len(a.files) > 1:
        seen: dict[tuple, dict] = {}
        for r in media.itertuples(index=False):
            if not isinstance(r.dscp_fwd, str):
                continue
            acc = accs.get((r.file, (r.src, r.sport), (r.dst, r.dport)))
            first = acc.dscp_frame["ab"] if acc is not None else {}
            frame = min((first[int(v)] for v in r.dscp_fwd.split(",") if int(v) in first), default=r.first_frame)
            seen.setdefault((r.src, r.sport, r.dst, r.dport), {}).setdefault(r.dscp_fwd, (int(r.file), int(frame)))
        for key, marks in seen.items():
            if len(marks) > 1:
                out.append(
                    Finding(
                        None,
                        "unsupported-middlebox",
                        "warning",
                        "DSCP rewritten between capture points",
                        PRINCIPLES["vpn"],
                        f"{key}: DSCP "
                        + "; ".join(f"{m} in file {fi} (frame {fr})" for m, (fi, fr) in sorted(marks.items())),
                        "Find the device that rewrites DSCP between the two capture points.",
                        _frames(Frame(fr, fi) for fi, fr in marks.values()),
                    )
                )
    return out


def findings_table(findings: list[Finding], files: list[str] | None = None) -> pd.DataFrame:
    """`frames` stay plain ints (the frame numbers of the one capture, when one was read); `frame_files`
    beside them names each frame's capture file (None where a rule could not tell)."""
    cols = ["call", "code", "severity", "title", "explanation", "evidence", "action", "frames"]
    df = pd.DataFrame([f._asdict() for f in findings], columns=cols)
    names = [os.path.basename(str(f)) for f in files or []]

    def name(f) -> str | None:
        i = getattr(f, "file", None)
        if len(names) == 1:
            return names[0]
        return names[i] if i is not None and 0 <= i < len(names) else None

    df["frame_files"] = [[name(f) for f in fr] for fr in df.frames]
    df["frames"] = [[int(f) for f in fr] for fr in df.frames]
    df["call"] = df["call"].astype("Int64")
    return df


def frame_refs(frames, files, n_files: int) -> list[str]:
    """Frames as a user reads them: `client-a.pcap#10` when several captures were read, else `10`."""
    files = files if isinstance(files, list | tuple) else [None] * len(frames)
    if n_files <= 1:
        return [str(int(f)) for f in frames]
    return [f"{n or '?'}#{int(f)}" for f, n in zip(frames, files, strict=False)]


def _known_relay(zm, host: str) -> bool:
    return bool(host) and ("relay" in zm.zone(host).roles or host in zm.relays)
