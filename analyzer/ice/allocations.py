"""TURN allocations rebuilt from the TURN messages: one row per allocation.

An allocation lives on one client <-> server path (5-tuple and transport). Its story is the Allocate
requests (the 401 challenge, the authenticated retry, 438 stale nonces and other errors), the success
with the relayed and mapped addresses, Refreshes, CreatePermission and ChannelBind, and a Refresh with
LIFETIME 0 that ends it. Responses are tied to requests by transaction id, not by address: MS-TURN
relays may answer from another address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

Endpoint = tuple[str, int]

COLUMNS = [
    "file",
    "allocation",
    "client",
    "client_port",
    "server",
    "server_port",
    "transport",
    "relayed_address",
    "relayed_port",
    "mapped_address",
    "mapped_port",
    "state",
    "first_frame",
    "first_ts",
    "allocated_frame",
    "allocated_ts",
    "challenged",
    "realm",
    "nonce_changes",
    "errors",
    "lifetime",
    "refreshes",
    "deallocated_frame",
    "deallocated_ts",
    "ended_by",
    "permissions",
    "permissions_not_installed",
    "channels",
    "packets_to_relay",
    "bytes_to_relay",
    "packets_from_relay",
    "bytes_from_relay",
    "channel_traffic",
    "legacy_ms",
    "software",
    "answered_from",
]


@dataclass
class _Permission:
    """One peer's permission on an allocation: installed only by a success; a refusal (403 Forbidden,
    or an error response without ERROR-CODE) or no answer at all installs nothing."""

    peer: str
    request_frame: int
    request_ts: int
    response_frame: int | None = None
    state: str = "unanswered"  # 'installed' | 'refused' | 'unanswered'
    error: str = ""
    first_frame: int = 0  # the first request for this peer
    installed_frame: int | None = None  # the first request for this peer that succeeded

    def answer(self, frame: int, cls: str, error: str) -> None:
        self.response_frame, self.error = frame, error
        self.state = "installed" if cls == "success" else "refused"
        if cls == "success" and self.installed_frame is None:
            self.installed_frame = self.request_frame


@dataclass
class _Alloc:
    file: int
    client: Endpoint
    server: Endpoint
    transport: str
    first_frame: int
    first_ts: int
    relayed: Endpoint | None = None
    mapped: Endpoint | None = None
    allocated_frame: int | None = None
    allocated_ts: int | None = None
    allocated_tid: str | None = None
    challenged: bool = False
    realm: str | None = None
    nonces: set = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    last_error: int | None = None
    lifetime: int | None = None
    refreshes: int = 0
    deallocated_frame: int | None = None
    deallocated_ts: int | None = None
    ended_by: str = ""  # the request that ended it: 'Refresh LIFETIME 0 (frame N)' or 'Allocate LIFETIME 0 ...'
    permissions: dict[str, _Permission] = field(default_factory=dict)  # peer address -> its latest request
    # ch -> (peer or None when the request named none, frame, confirmed)
    channels: dict[int, tuple[Endpoint | None, int, bool]] = field(default_factory=dict)
    legacy_ms: bool = False
    software: str | None = None
    answered_from: set = field(default_factory=set)

    @property
    def state(self) -> str:
        if self.deallocated_frame is not None:
            return "deallocated"
        if self.allocated_frame is not None:
            return "allocated"
        if self.last_error is not None:
            return "challenged" if self.last_error == 401 else "failed"
        return "unanswered"


def build_allocations(stun: pd.DataFrame, relay_traffic: list[dict]) -> pd.DataFrame:
    """stun: the stun table; relay_traffic: per file, {(src, sport, dst, dport, channel): [packets, bytes]}."""
    turn = stun[
        (~stun.relayed)
        & stun.method.isin(["Allocate", "Refresh", "CreatePermission", "ChannelBind", "SetActiveDestination"])
    ]
    allocs: list[_Alloc] = []
    current: dict[tuple, _Alloc] = {}
    requests: dict[tuple[int, str], tuple[_Alloc, object]] = {}
    for r in turn.sort_values(["file", "frame"]).itertuples(index=False):
        if r.cls == "request":
            key = (r.file, (r.src, int(r.sport)), (r.dst, int(r.dport)), r.transport)
            a = current.get(key)
            if a is None or (r.method == "Allocate" and a.state == "deallocated"):
                a = _Alloc(r.file, key[1], key[2], r.transport, int(r.frame), int(r.ts_ns))
                allocs.append(a)
                current[key] = a
            a.legacy_ms |= bool(r.legacy_ms)
            a.software = a.software or (r.software if isinstance(r.software, str) else None)
            if isinstance(r.realm, str):
                a.realm = r.realm
            if isinstance(r.nonce, str):
                a.nonces.add(r.nonce)
            if r.method == "CreatePermission" and isinstance(r.peer_address, str):
                old = a.permissions.get(r.peer_address)
                if old is None or old.request_frame != int(r.frame):
                    perm = _Permission(r.peer_address, int(r.frame), int(r.ts_ns), first_frame=int(r.frame))
                    if old is not None:  # a later request: its answer decides; an unanswered one keeps the last
                        perm.first_frame, perm.installed_frame = old.first_frame, old.installed_frame
                        if old.state != "unanswered":
                            perm.state, perm.response_frame, perm.error = old.state, old.response_frame, old.error
                    a.permissions[r.peer_address] = perm
            if r.method == "ChannelBind" and pd.notna(r.channel):
                a.channels.setdefault(int(r.channel), (_peer(r), int(r.frame), False))
            requests[(r.file, r.transaction_id)] = (a, r)
            continue
        got = requests.get((r.file, r.transaction_id))
        if got is None:
            continue
        a, req = got
        a.answered_from.add(f"{r.src}:{r.sport}")
        if isinstance(r.realm, str):
            a.realm = r.realm
        if isinstance(r.nonce, str):
            a.nonces.add(r.nonce)
        ends = pd.notna(req.lifetime) and int(req.lifetime) == 0 and req.method in ("Allocate", "Refresh")
        perm = a.permissions.get(req.peer_address) if req.method == "CreatePermission" else None
        if perm is not None and perm.request_frame != int(req.frame):
            perm = None  # an answer to an older request for this peer: the latest request decides
        if r.cls == "error":
            text = _error_text(r)
            a.errors.append(f"{r.method} {text} (frame {r.frame})")
            if perm is not None:
                perm.answer(int(r.frame), "error", text)
            if r.method == "Allocate" and not ends:  # a refused deallocation leaves the allocation as it was
                a.last_error = int(r.error_code) if pd.notna(r.error_code) else 0
                a.challenged |= a.last_error == 401
            continue
        if perm is not None:
            perm.answer(int(r.frame), "success", "")
        if ends:  # RFC 8656 7.2 (and MS-TURN's Allocate with LIFETIME 0): the allocation is deleted
            a.deallocated_frame, a.deallocated_ts = int(r.frame), int(r.ts_ns)
            a.ended_by = f"{req.method} LIFETIME 0 (frame {req.frame})"
            a.refreshes += req.method == "Refresh"
        elif r.method == "Allocate" and a.allocated_frame is not None:
            # MS-TURN follows draft-ietf-behave-turn-08, which has no Refresh: a later Allocate on a live
            # allocation refreshes it; a second answer to the allocating request is a retransmitted response
            if r.transaction_id != a.allocated_tid:
                a.refreshes += 1
                a.lifetime = int(r.lifetime) if pd.notna(r.lifetime) else a.lifetime
        elif r.method == "Allocate":
            a.allocated_frame, a.allocated_ts, a.allocated_tid = int(r.frame), int(r.ts_ns), r.transaction_id
            if isinstance(r.relayed_address, str):
                a.relayed = (r.relayed_address, int(r.relayed_port))
            if isinstance(r.mapped_address, str):
                a.mapped = (r.mapped_address, int(r.mapped_port))
            a.lifetime = int(r.lifetime) if pd.notna(r.lifetime) else a.lifetime
            a.last_error = None
        elif r.method == "Refresh":
            a.refreshes += 1
            if pd.notna(r.lifetime):
                a.lifetime = int(r.lifetime)
        elif r.method == "ChannelBind" and pd.notna(req.channel):
            ch = int(req.channel)
            peer, frame, _ = a.channels.get(ch) or (_peer(req), int(req.frame), False)
            a.channels[ch] = (peer, frame, True)
    return _frame(allocs, relay_traffic)


def _frame(allocs: list[_Alloc], relay_traffic: list[dict]) -> pd.DataFrame:
    rows = []
    for i, a in enumerate(allocs):
        traffic = relay_traffic[a.file] if a.file < len(relay_traffic) else {}
        up = [0, 0]
        down = [0, 0]
        per_channel = []
        for (src, sport, dst, dport, ch), (n, b) in traffic.items():
            if (src, sport) == a.client and (dst, dport) == a.server:
                up[0] += n
                up[1] += b
                per_channel.append(f"{_ch(ch)} out {n} pkts {b} B")
            elif (dst, dport) == a.client and (src, sport) == a.server:
                down[0] += n
                down[1] += b
                per_channel.append(f"{_ch(ch)} in {n} pkts {b} B")
        rows.append(
            {
                "file": a.file,
                "allocation": i,
                "client": a.client[0],
                "client_port": a.client[1],
                "server": a.server[0],
                "server_port": a.server[1],
                "transport": a.transport,
                "relayed_address": a.relayed[0] if a.relayed else None,
                "relayed_port": a.relayed[1] if a.relayed else None,
                "mapped_address": a.mapped[0] if a.mapped else None,
                "mapped_port": a.mapped[1] if a.mapped else None,
                "state": a.state,
                "first_frame": a.first_frame,
                "first_ts": _ts(a.first_ts),
                "allocated_frame": a.allocated_frame,
                "allocated_ts": _ts(a.allocated_ts),
                "challenged": a.challenged,
                "realm": a.realm,
                "nonce_changes": max(len(a.nonces) - 1, 0),
                "errors": "; ".join(a.errors),
                "lifetime": a.lifetime,
                "refreshes": a.refreshes,
                "deallocated_frame": a.deallocated_frame,
                "deallocated_ts": _ts(a.deallocated_ts),
                "ended_by": a.ended_by,
                "permissions": ", ".join(
                    f"{p.peer} (frame {p.installed_frame})" for p in a.permissions.values() if p.state == "installed"
                ),
                "permissions_not_installed": ", ".join(
                    f"{p.peer} (frame {p.request_frame}, {p.state}"
                    + (f" {p.error} frame {p.response_frame})" if p.state == "refused" else ")")
                    for p in a.permissions.values()
                    if p.state != "installed"
                ),
                "channels": ", ".join(
                    f"0x{c:04X} -> {f'{p[0]}:{p[1]}' if p else 'no XOR-PEER-ADDRESS'}"
                    f" (frame {f}{'' if ok else ', unconfirmed'})"
                    for c, (p, f, ok) in sorted(a.channels.items())
                ),
                "packets_to_relay": up[0],
                "bytes_to_relay": up[1],
                "packets_from_relay": down[0],
                "bytes_from_relay": down[1],
                "channel_traffic": "; ".join(sorted(per_channel)),
                "legacy_ms": a.legacy_ms,
                "software": a.software,
                "answered_from": ", ".join(sorted(a.answered_from)),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in (
        "client_port",
        "server_port",
        "relayed_port",
        "mapped_port",
        "allocated_frame",
        "lifetime",
        "deallocated_frame",
    ):
        df[c] = df[c].astype("Int64")
    return df


def _error_text(r) -> str:
    """'403 Forbidden' from an error response; one without ERROR-CODE says so (not '0 nan')."""
    if pd.isna(r.error_code):
        return "error without ERROR-CODE"
    reason = r.error_reason if isinstance(r.error_reason, str) else ""
    return f"{int(r.error_code)} {reason}".strip()


def _peer(r) -> Endpoint | None:
    """The XOR-PEER-ADDRESS of a request, or None when it carries none (a malformed ChannelBind)."""
    if isinstance(r.peer_address, str) and pd.notna(r.peer_port):
        return r.peer_address, int(r.peer_port)
    return None


def _ch(ch: int) -> str:
    return "indications" if ch == -1 else ("0xFF10" if ch == 0xFF10 else f"0x{ch:04X}")


def _ts(ns: int | None):
    """A time from nanoseconds; 0 (1970-01-01) is a time, only None is missing."""
    return pd.NaT if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")
