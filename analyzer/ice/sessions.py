"""ICE sessions and candidate pairs, rebuilt from the connectivity checks.

A session is the pair of ufrags (USERNAME 'R:L' one way, 'L:R' the other), so captures taken at both
ends of a call merge into one session. A pair is (local, remote) from one agent's point of view: the
local side of a check sent through TURN is the relay candidate, its wire path client <-> relay. The
selected pair is the one media and DTLS actually used; if media moved, each switch is listed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..dissect.tables import rows
from . import nominations as nom
from .candidates import PRIVATE_RULE, RELAY_PORTS, CandidateBook
from .paths import Leg, MediaPath, legs_table, stray_leg, strays

TURN_SERVER_PORTS = frozenset((3478, 3479, 3480, 3481, 443, 5349))
IN_PROGRESS_S = 5.0  # an unanswered check this close to the capture's end may still be answered
MIN_MEDIA = 5  # packets on a pair before it counts as carrying media


@dataclass
class _Pair:
    session: int
    pair: int
    agent: str
    local: tuple[str, int]
    remote: tuple[str, int]
    transport: str
    relayed: bool
    wire: tuple[str, int, str, int]
    checks: int = 0
    copies: int = 0
    successes: int = 0
    errors: list[str] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    first_check_frame: int = 0
    first_check_ts: int = 0
    last_check_ts: int = 0
    first_success_frame: int | None = None
    first_success_ts: int | None = None
    use_candidate: bool = False
    nominated: bool = False
    nominated_frame: int | None = None  # the first nominating request that took effect
    nomination: int | None = None  # the highest NOMINATION number that took effect
    component: int | None = None  # from PRIORITY, the highest either agent's checks on these ends carry
    local_type: str = ""
    remote_type: str = ""
    relay_side: str | None = None  # 'local' when the check left through the agent's TURN allocation
    file: int = 0  # the capture file the pair's first check was seen in
    media_packets: int = 0
    dtls_records: int = 0
    media_first_ts: int | None = None
    media_last_ts: int | None = None
    media_first_frame: int | None = None
    media_last_frame: int | None = None
    selected: bool = False

    @property
    def ends(self) -> frozenset:
        return frozenset((self.local, self.remote))


@dataclass
class _Session:
    session: int
    ufrags: frozenset
    files: set = field(default_factory=set)
    controlling: str | None = None
    controlled: str | None = None
    role_conflicts: int = 0
    start_frame: int = 0
    start_ts: int = 0
    start_file: int = 0  # the capture start_frame is in (frame numbers repeat across files)
    connected_frame: int | None = None
    connected_file: int | None = None
    connected_ts: int | None = None
    pairs: list[_Pair] = field(default_factory=list)
    nominations: list[nom.Nomination] = field(default_factory=list)
    strays: list[Leg] = field(default_factory=list)  # media on its sockets that no check covered
    legs: list[Leg] = field(default_factory=list)  # the path history, in order of first media


_NEEDED = (
    "file",
    "frame",
    "ts_ns",
    "src",
    "sport",
    "dst",
    "dport",
    "transport",
    "relayed",
    "method",
    "cls",
    "transaction_id",
    "ufrag_to",
    "ufrag_from",
    "use_candidate",
    "nomination",
    "priority",
    "ice_role",
    "mapped_address",
    "mapped_port",
    "error_code",
    "candidate_id",
    "outer_src",
    "outer_sport",
    "outer_dst",
    "outer_dport",
)


def build(stun: pd.DataFrame, book: CandidateBook, paths: list[MediaPath], dtls: list[MediaPath], end_ts: int):
    """IceTables (sessions, pairs, nominations, path_history); candidates are added to `book` as met."""
    stun = stun[[c for c in _NEEDED if c in stun.columns]]  # rows as small tuples: a call has many checks
    checks = stun[
        (stun.method == "Binding") & stun.ufrag_to.notna() & stun.ufrag_from.notna() & (stun.cls == "request")
    ]
    responses = stun[(stun.method == "Binding") & stun.cls.isin(["success", "error"])]
    first_resp: dict[tuple, list] = {}
    for r in rows(responses.sort_values(["ts_ns", "frame"], kind="stable")):
        first_resp.setdefault((r.file, r.transaction_id), []).append(r)
    sessions: dict[frozenset, _Session] = {}
    pairs: dict[tuple, _Pair] = {}
    seen_tid: set = set()
    flagged: dict[tuple, tuple] = {}  # (tid, pair key) -> the first copy that nominates: (via, value, frame, ts)
    components: dict[frozenset, int] = {}
    for r in rows(checks.sort_values(["ts_ns", "frame"], kind="stable")):
        key = frozenset((r.ufrag_to, r.ufrag_from))
        s = sessions.get(key)
        if s is None:
            s = sessions[key] = _Session(len(sessions), key, start_frame=int(r.frame), start_ts=int(r.ts_ns),
                                               start_file=int(r.file))
        s.files.add(r.file)
        if r.ice_role == "controlling":
            s.controlling = s.controlling or r.ufrag_from
        elif r.ice_role == "controlled":
            s.controlled = s.controlled or r.ufrag_from
        local, remote = (r.src, int(r.sport)), (r.dst, int(r.dport))
        wire = (r.outer_src, int(r.outer_sport), r.outer_dst, int(r.outer_dport)) if r.relayed else (*local, *remote)
        pk = (s.session, r.ufrag_from, local, remote, r.transport)
        p = pairs.get(pk)
        if p is None:
            side = _relay_side(r, book) if r.relayed else None
            same = ("host", "both ends of the check on one host") if local[0] == remote[0] and not r.relayed else None
            lc = book.add(
                r.ufrag_from,
                *local,
                r.transport,
                int(r.frame),
                r.file,
                relayed_check=side == "local",
                typed=same,
                seen="check source",
                foundation=r.candidate_id if isinstance(r.candidate_id, str) else None,
            )
            rc = book.add(
                r.ufrag_to,
                *remote,
                r.transport,
                int(r.frame),
                r.file,
                relayed_check=side == "remote",
                typed=same,
                seen="check destination",
            )
            p = pairs[pk] = _Pair(
                s.session,
                len(s.pairs),
                r.ufrag_from,
                local,
                remote,
                r.transport,
                bool(r.relayed),
                wire,
                first_check_frame=int(r.frame),
                first_check_ts=int(r.ts_ns),
                local_type=lc.type,
                remote_type=rc.type,
                relay_side=side,
                file=int(r.file),
            )
            s.pairs.append(p)
        p.copies += 1
        p.last_check_ts = int(r.ts_ns)
        tid = (r.file, r.transaction_id)
        comp = nom.component(r.priority)
        if comp is not None:
            components[p.ends] = max(comp, components.get(p.ends, comp))
        flag = nom.nominating(r.use_candidate, getattr(r, "nomination", None))
        if flag is not None:  # every copy counts: a retransmission may carry the flag the first copy lacked
            p.use_candidate |= flag[0] == "USE-CANDIDATE"
            flagged.setdefault((tid, pk, flag), (*flag, int(r.frame), int(r.ts_ns), p, s))
        if tid in seen_tid:
            continue
        seen_tid.add(tid)
        p.checks += 1
        answered = False
        for resp in first_resp.get(tid, []):
            if resp.cls == "success" and answered:
                continue
            if resp.cls == "success":
                answered = True
                p.successes += 1
                p.rtts.append((int(resp.ts_ns) - int(r.ts_ns)) / 1e6)
                if p.first_success_frame is None:
                    p.first_success_frame, p.first_success_ts = int(resp.frame), int(resp.ts_ns)
                if s.connected_ts is None or int(resp.ts_ns) < s.connected_ts:
                    s.connected_frame, s.connected_ts = int(resp.frame), int(resp.ts_ns)
                    s.connected_file = int(resp.file)
                if isinstance(resp.mapped_address, str) and pd.notna(resp.mapped_port):  # how the peer sees this agent
                    ep = (resp.mapped_address, int(resp.mapped_port))
                    if not book.known(r.ufrag_from, *ep, r.transport):
                        typed = book.classify(*ep)
                        if typed[0] == "unknown" or typed[1] == PRIVATE_RULE:
                            # reflexive, even when private: the peer saw the check come from an address
                            # the agent did not send from (a NAT between; 10.x behind an outer NAT)
                            typed = (
                                "prflx",
                                f"XOR-MAPPED-ADDRESS of a check response (frame {resp.frame}) "
                                "matching no known candidate"
                                + (" (a private address: a NAT inside a NAT)" if typed[0] == "host" else ""),
                            )
                        book.add(
                            r.ufrag_from,
                            *ep,
                            r.transport,
                            int(resp.frame),
                            resp.file,
                            typed=typed,
                            seen="check response",
                        )
            else:
                code = int(resp.error_code) if pd.notna(resp.error_code) else 0
                p.errors.append(f"{code} (frame {resp.frame})")
                s.role_conflicts += code == 487
    _nominate(flagged, first_resp)
    book.add_gathered()
    for s in sessions.values():
        for p in s.pairs:
            p.component = components.get(p.ends)
    covered = _attach_media(sessions, paths, dtls)
    _attach_strays(sessions, paths, covered, book)
    return _tables(sessions, end_ts)


def _attach_strays(sessions: dict[frozenset, _Session], paths: list[MediaPath], covered: set, book) -> None:
    """Media from or to a session's own socket that no check covered is that session's media on another
    path (a relay leg set up without ICE, before the call moved to a checked pair), not another call."""
    sockets: dict[tuple[int, str, int], int] = {}
    for s in sessions.values():
        for p in s.pairs:
            if not p.relayed:
                sockets.setdefault((p.file, *p.local), s.session)
                sockets.setdefault((p.file, *p.remote), s.session)
            elif p.relay_side == "local":
                sockets.setdefault((p.file, p.wire[0], p.wire[1]), s.session)
            elif p.relay_side == "remote":
                sockets.setdefault((p.file, p.wire[2], p.wire[3]), s.session)
    by_id = {s.session: s for s in sessions.values()}

    def is_relay(address: str, port: int) -> bool:
        return port in RELAY_PORTS or book.classify(address, port)[0] == "relay"

    for sid, groups in strays(paths, sockets, covered).items():
        for _, ms in groups:
            if sum(m.packets for m in ms) >= MIN_MEDIA:
                by_id[sid].strays.append(stray_leg(sid, ms, is_relay))


def _nominate(flagged: dict[tuple, tuple], first_resp: dict[tuple, list]) -> None:
    """A flagged check whose transaction was answered with a success nominates its pair: one record per
    pair for USE-CANDIDATE, one per pair and number for NOMINATION."""
    done: set = set()
    for (tid, pk, _), (via, value, frame, ts, p, s) in sorted(flagged.items(), key=lambda kv: kv[1][2:4]):
        ok = [x for x in first_resp.get(tid, []) if x.cls == "success"]
        if not ok:
            continue
        after = [x for x in ok if int(x.ts_ns) >= ts]
        answer = (after or ok)[0]
        p.nominated = True
        if p.nominated_frame is None:
            p.nominated_frame = frame
        if value is not None:
            p.nomination = value if p.nomination is None else max(p.nomination, value)
        key = (pk, via, value)
        if key not in done:
            done.add(key)
            s.nominations.append(nom.Nomination(s.session, p.pair, p.agent, via, value, frame, ts, int(answer.frame)))
    for s in {id(v[5]): v[5] for v in flagged.values()}.values():
        s.nominations = nom.mark_renominations(s.nominations)


def _nominated_pair(s: _Session) -> _Pair | None:
    """The pair the controlling agent settled on: the highest NOMINATION number (renomination), else the
    first nominated pair of the lowest component (RTP, not the RTCP component)."""
    nominated = [p for p in s.pairs if p.nominated]
    if not nominated:
        return None
    numbered = [n for n in s.nominations if n.value is not None]
    if numbered:
        best = max(numbered, key=lambda n: (n.value, n.ts_ns))
        return s.pairs[best.pair]
    return min(nominated, key=lambda p: (p.component or 1, p.nominated_frame or 0, p.pair))


def _relay_side(r, book: CandidateBook) -> str:
    """Which end of a relayed check is the TURN allocation: the sender's when the outer packet went
    client -> server (Send, ChannelData from the client), the receiver's when it came back (Data)."""
    clients = {c for _, _, c in book.relayed.values()}
    to_server = (r.outer_src, int(r.outer_sport)) in clients or (
        int(r.outer_dport) in TURN_SERVER_PORTS and int(r.outer_sport) not in TURN_SERVER_PORTS
    )
    return "local" if to_server else "remote"


def _attach_media(sessions: dict[frozenset, _Session], paths: list[MediaPath], dtls: list[MediaPath]) -> set:
    """Media and its timing on each pair: by the media 5-tuple, or by the wire path for relayed media
    whose inner addresses the capture could not name. Returns the id() of every path a pair took."""
    covered: set[int] = set()
    by_ends: dict[frozenset, list[MediaPath]] = {}
    by_wire: dict[frozenset, list[MediaPath]] = {}
    for m in paths:
        if m.src:
            by_ends.setdefault(frozenset(((m.src, m.sport), (m.dst, m.dport))), []).append(m)
        if m.relayed:
            by_wire.setdefault(frozenset(((m.wire_src, m.wire_sport), (m.wire_dst, m.wire_dport))), []).append(m)
    dtls_by_ends: dict[frozenset, list[MediaPath]] = {}
    for m in dtls:
        dtls_by_ends.setdefault(frozenset(((m.src, m.sport), (m.dst, m.dport))), []).append(m)
    for s in sessions.values():
        for p in s.pairs:
            found = list(by_ends.get(p.ends, []))
            if len({m.file for m in found} | {p.file}) > 1:  # several capture points: the pair's own file's
                found = [m for m in found if m.file == p.file]  # packets, not another point's that share ends
            if p.relayed and not found:
                wire = frozenset(((p.wire[0], p.wire[1]), (p.wire[2], p.wire[3])))
                found = [m for m in by_wire.get(wire, []) if not m.src and m.file == p.file]
            for m in found:
                covered.add(id(m))
                p.media_packets += m.packets
                if p.media_first_ts is None or m.first_ts_ns < p.media_first_ts:
                    p.media_first_ts, p.media_first_frame = m.first_ts_ns, m.first_frame
                if p.media_last_ts is None or m.last_ts_ns > p.media_last_ts:
                    p.media_last_ts, p.media_last_frame = m.last_ts_ns, m.last_frame
            p.dtls_records += sum(m.packets for m in dtls_by_ends.get(p.ends, []))
            if p.media_first_ts is None and p.dtls_records:
                first = min(dtls_by_ends[p.ends], key=lambda m: m.first_ts_ns)
                last = max(dtls_by_ends[p.ends], key=lambda m: m.last_ts_ns)
                p.media_first_ts, p.media_first_frame = first.first_ts_ns, first.first_frame
                p.media_last_ts, p.media_last_frame = last.last_ts_ns, last.last_frame
    return covered


def _select(s: _Session) -> tuple[list[_Pair], list[str]]:
    """The pairs media used, in order of first use: the last is the selected one; each change a switch.

    Captures of one call taken at several points see the same path under different addresses (NAT),
    so the choice is made within each file, and the session takes the file whose view is the
    client's own (a host candidate on the local side), the first such file otherwise."""
    views = []
    for file in sorted({p.file for p in s.pairs}):
        used: dict[frozenset, _Pair] = {}
        # each used path described from the agent that nominated it, else the one whose relay it is
        mine = [p for p in s.pairs if p.file == file]
        for p in sorted(mine, key=lambda p: (not p.nominated, p.relay_side != "local", p.pair)):
            if (p.media_packets >= MIN_MEDIA or p.dtls_records) and p.ends not in used:
                used[p.ends] = p
        order = sorted(used.values(), key=lambda p: p.media_first_ts)
        rtp = [p for p in order if (p.component or 1) == 1]  # an RTCP component's pair is not a path of its own
        if order:
            views.append(rtp or order)
    if not views:
        s.view_selected = set()
        _legs(s, [])
        return [], []
    s.view_selected = {(o[-1].file, o[-1].ends) for o in views}  # what each capture point saw selected
    order = min(views, key=lambda o: (o[-1].local_type != "host", o[-1].file))
    legs = _legs(s, order)
    switches = [f"{_ts(b.first_ts_ns)}: {a.description} => {b.description}" for a, b in itertools.pairwise(legs)]
    return order, switches


def _legs(s: _Session, order: list[_Pair]) -> list[Leg]:
    """The session's path history: each used pair and each stray path of the same capture point, in
    order of first media, with the reason media is there."""
    file = order[-1].file if order else None
    legs = [
        Leg(s.session, 0, p.pair, "relay" if _relayed(p) else "direct", _desc(p), *p.local, *p.remote,
            p.media_first_frame or 0, p.media_last_frame or 0, p.media_first_ts, p.media_last_ts or p.media_first_ts,
            p.media_packets, "")
        for p in order
    ]  # fmt: skip
    legs += [g for g in s.strays if file is None or _leg_file(s, g) == file]
    legs.sort(key=lambda g: (g.first_ts_ns, g.first_frame))
    out = []
    for i, g in enumerate(legs):
        out.append(g._replace(leg=i, reason=_why(s, g, i)))
    s.legs = out
    return out


def _leg_file(s: _Session, g: Leg) -> int:
    return next((p.file for p in s.pairs if g.src in (p.local[0], p.wire[0]) or g.dst in (p.remote[0], p.wire[2])),
                0)  # fmt: skip


def _relayed(p: _Pair) -> bool:
    return p.relayed or "relay" in (p.local_type, p.remote_type)


def _why(s: _Session, g: Leg, i: int) -> str:
    """Why media is on this leg: the nomination answered before its first media, else what was seen."""
    if g.pair is None:
        return "first media, on a path no ICE check covered" if i == 0 else "media moved to a path no ICE check covered"
    p = s.pairs[g.pair]
    mine = [n for n in s.nominations if s.pairs[n.pair].ends == p.ends and n.frame <= (g.first_frame or n.frame)]
    if mine:
        n = max(mine, key=lambda n: (n.ts_ns, n.frame))
        what = f"{n.via}" + (f" {n.value}" if n.value is not None else "") + f" (frame {n.frame}, answered frame "
        what += f"{n.response_frame})"
        if i == 0:
            return f"first media; nominated by {what}"
        return ("renomination: " if n.renomination else "nominated: ") + what
    if i == 0:
        return "first media"
    if p.first_success_frame is not None:
        return f"media moved after checks succeeded on this pair (frame {p.first_success_frame}); no nomination seen"
    return "media moved to a pair with no successful check in the capture"


class IceTables(NamedTuple):
    sessions: pd.DataFrame
    pairs: pd.DataFrame
    nominations: pd.DataFrame  # each nomination that took effect (nominations.py)
    path_history: pd.DataFrame  # each path a session's media took (paths.Leg)


def _tables(sessions: dict[frozenset, _Session], end_ts: int) -> IceTables:
    srows, prows = [], []
    by_endpoints: dict[frozenset, int] = {}
    for s in sorted(sessions.values(), key=lambda s: s.start_ts):
        order, switches = _select(s)
        selected = order[-1] if order else None
        selected_by = ("media" if selected.media_packets else "DTLS") if selected else ""
        nominated = [p for p in s.pairs if p.nominated]
        settled = _nominated_pair(s)
        if selected is None and any(n.value is not None for n in s.nominations):
            selected = settled  # no media: the highest NOMINATION number is the pair the agents settled on
            selected_by = "highest NOMINATION number (no media in the capture)"
        elif selected is None and nominated:
            # no media in the capture: consent freshness keeps checking the selected pair after connection;
            # of a component's RTP and RTCP pairs, the RTP one (component 1) is the call's path
            selected = max(nominated, key=lambda p: (-(p.component or 1), p.last_check_ts, p.checks))
            selected_by = "latest checks on a nominated pair (no media in the capture)"
        for p in s.pairs:
            # selected in the session's view, or in its own file's view (the same path behind a NAT)
            p.selected = selected is not None and (
                p.ends == selected.ends or p.ends in {e for _, e in getattr(s, "view_selected", set())}
            )
        hosts = frozenset(p.local[0] for p in s.pairs) | frozenset(p.remote[0] for p in s.pairs)
        restart_of = by_endpoints.get(hosts)
        by_endpoints.setdefault(hosts, s.session)
        consent = sum(
            p.copies for p in s.pairs if p.selected and s.connected_ts is not None and p.last_check_ts > s.connected_ts
        )
        state = "connected" if s.connected_ts is not None else ("checking" if _recent(s.pairs, end_ts) else "failed")
        agents = sorted(s.ufrags)
        srows.append(
            {
                "session": s.session,
                "ufrags": ":".join(agents),
                "agent_a": agents[0],
                "agent_b": agents[-1],
                "controlling": s.controlling,
                "controlled": s.controlled,
                "role_conflicts": s.role_conflicts,
                "state": state,
                "start_frame": s.start_frame,
                "start_ts": _ts(s.start_ts),
                "start_file": s.start_file,
                "connected_frame": s.connected_frame,
                "connected_file": s.connected_file,
                "connected_ts": _ts(s.connected_ts),
                "nominated_pair": settled.pair if settled else None,
                "nominations": nom.describe(s.nominations),
                "renominations": sum(n.renomination for n in s.nominations),
                "selected_pair": selected.pair if selected else None,
                "path": _desc(selected) if selected else "",
                "selected_by": selected_by,
                "switches": "; ".join(switches),
                "restart_of": restart_of,
                "consent_checks": consent,
                "pairs": len(s.pairs),
                "files": sorted(int(f) for f in s.files),
            }
        )
        for p in s.pairs:
            state_p = (
                "succeeded"
                if p.successes
                else "failed"
                if p.errors
                else "in progress"
                if end_ts - p.last_check_ts < IN_PROGRESS_S * 1e9
                else "not answered"
            )
            prows.append(
                {
                    "session": p.session,
                    "pair": p.pair,
                    "agent": p.agent,
                    "local_address": p.local[0],
                    "local_port": p.local[1],
                    "local_type": p.local_type,
                    "remote_address": p.remote[0],
                    "remote_port": p.remote[1],
                    "remote_type": p.remote_type,
                    "transport": p.transport,
                    "relayed": p.relayed,
                    "wire": "{}:{} -> {}:{}".format(*p.wire),
                    "state": state_p,
                    "nominated": p.nominated,
                    "use_candidate": p.use_candidate,
                    "nominated_frame": p.nominated_frame,
                    "nomination": p.nomination,
                    "component": p.component,
                    "selected": p.selected,
                    "checks": p.checks,
                    "retransmissions": p.copies - p.checks,
                    "successes": p.successes,
                    "errors": "; ".join(p.errors),
                    "rtt_ms_min": min(p.rtts) if p.rtts else np.nan,
                    "rtt_ms_median": float(np.median(p.rtts)) if p.rtts else np.nan,
                    "first_check_frame": p.first_check_frame,
                    "first_check_ts": _ts(p.first_check_ts),
                    "first_success_frame": p.first_success_frame,
                    "first_success_ts": _ts(p.first_success_ts),
                    "media_packets": p.media_packets,
                    "file": p.file,
                    "dtls_records": p.dtls_records,
                    "description": _desc(p),
                }
            )
    legs = legs_table([g for s in sorted(sessions.values(), key=lambda s: s.start_ts) for g in s.legs])
    noms = nom.table([n for s in sorted(sessions.values(), key=lambda s: s.start_ts) for n in s.nominations])
    sdf = pd.DataFrame(srows, columns=_SESSION_COLUMNS)
    pdf = pd.DataFrame(prows, columns=_PAIR_COLUMNS)
    for c in ("connected_frame", "connected_file", "nominated_pair", "selected_pair", "restart_of"):
        sdf[c] = sdf[c].astype("Int64")
    for c in ("first_success_frame", "nominated_frame", "nomination", "component"):
        pdf[c] = pdf[c].astype("Int64")
    return IceTables(sdf, pdf, noms, legs)


_SESSION_COLUMNS = [
    "session",
    "ufrags",
    "agent_a",
    "agent_b",
    "controlling",
    "controlled",
    "role_conflicts",
    "state",
    "start_frame",
    "start_ts",
    "start_file",
    "connected_frame",
    "connected_file",
    "connected_ts",
    "nominated_pair",
    "nominations",
    "renominations",
    "selected_pair",
    "path",
    "selected_by",
    "switches",
    "restart_of",
    "consent_checks",
    "pairs",
    "files",
]
_PAIR_COLUMNS = [
    "session",
    "pair",
    "agent",
    "local_address",
    "local_port",
    "local_type",
    "remote_address",
    "remote_port",
    "remote_type",
    "transport",
    "relayed",
    "wire",
    "state",
    "nominated",
    "use_candidate",
    "nominated_frame",
    "nomination",
    "component",
    "selected",
    "checks",
    "retransmissions",
    "successes",
    "errors",
    "rtt_ms_min",
    "rtt_ms_median",
    "first_check_frame",
    "first_check_ts",
    "first_success_frame",
    "first_success_ts",
    "media_packets",
    "dtls_records",
    "file",
    "description",
]


def _recent(pairs: list[_Pair], end_ts: int) -> bool:
    return any(end_ts - p.last_check_ts < IN_PROGRESS_S * 1e9 for p in pairs)


def _ts(ns: int | None):
    return pd.Timestamp(ns, unit="ns", tz="UTC") if ns is not None else pd.NaT


def _desc(p: _Pair) -> str:
    """e.g. '10.1.0.5:50012 host/udp -> 52.113.4.9:3478 relay -> 203.0.113.9:61000 srflx'."""
    local = f"{p.local[0]}:{p.local[1]} {p.local_type}/{p.transport}"
    remote = f"{p.remote[0]}:{p.remote[1]} {p.remote_type}"
    if p.relay_side == "local":  # wire: client -> TURN server
        return f"{p.wire[0]}:{p.wire[1]} -> {p.wire[2]}:{p.wire[3]} TURN -> {local} -> {remote}"
    if p.relay_side == "remote":  # wire: TURN server -> client
        return f"{local} -> {remote} -> {p.wire[0]}:{p.wire[1]} TURN -> {p.wire[2]}:{p.wire[3]}"
    return f"{local} -> {remote}"
