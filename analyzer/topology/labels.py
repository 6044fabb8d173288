"""The `flows` table: every bidirectional 5-tuple (and every relayed inner one) with its initiator,
the zones of both ends, what it carries, and its documented label (Flow 2 ... Flow 6, or 'other')."""

from __future__ import annotations

import pandas as pd

from ..capture.decode import PROTO_TCP, PROTO_UDP
from ..ice.paths import MediaPath
from .flows import FlowAcc, protocols
from .zones import ZoneMap

COLUMNS = [
    "file",
    "src",
    "sport",
    "dst",
    "dport",
    "transport",
    "initiator",
    "initiator_rule",
    "src_zone",
    "dst_zone",
    "src_rule",
    "dst_rule",
    "label",
    "label_reason",
    "media",
    "protocols",
    "packets",
    "bytes",
    "packets_fwd",
    "packets_rev",
    "first_frame",
    "first_ts",
    "last_ts",
    "relayed",
    "outer",
    "vpn",
    "vpn_evidence",
    "dscp_fwd",
    "dscp_rev",
    "ttl_fwd",
    "ttl_rev",
]
MIN_MEDIA_PACKETS = 5
TRANSPORT = {PROTO_UDP: "udp", PROTO_TCP: "tcp", 1: "icmp", 58: "icmpv6", 50: "esp", 51: "ah"}


def _ts(ns: int | None) -> int | None:
    """Nanoseconds kept as an int per row; the column becomes UTC timestamps at once (_as_times)."""
    return ns or None


def _as_times(col: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.array(col, dtype="Int64"), unit="ns", utc=True)


def build_flows(
    accs: list[FlowAcc], zm: ZoneMap, stun: pd.DataFrame, paths: list[MediaPath], dtls: pd.DataFrame | None = None
) -> pd.DataFrame:
    first_request: dict[frozenset, tuple[str, int]] = {}
    dissected: dict[frozenset, set[str]] = {}
    for df, name in ((stun, "stun"), (dtls, "dtls")):
        if df is None or not len(df):
            continue
        outer = df[~df.relayed]
        for ends in set(zip(outer.src, outer.sport, outer.dst, outer.dport, strict=True)):
            dissected.setdefault(frozenset(((ends[0], int(ends[1])), (ends[2], int(ends[3])))), set()).add(name)
        inner = df[df.relayed & df.outer_src.notna()]
        for ends in set(zip(inner.outer_src, inner.outer_sport, inner.outer_dst, inner.outer_dport, strict=True)):
            key = frozenset(((ends[0], int(ends[1])), (ends[2], int(ends[3]))))
            dissected.setdefault(key, set()).add("turn-channel" if name == "stun" else name)
    for p in paths:
        if p.relayed and p.channel > 0:
            key = frozenset(((p.wire_src, p.wire_sport), (p.wire_dst, p.wire_dport)))
            dissected.setdefault(key, set()).add("turn-channel")
    if len(stun):
        req = stun[(stun.cls == "request") & ~stun.relayed].sort_values(["file", "frame"])
        for src, sport, dst, dport in zip(req.src, req.sport, req.dst, req.dport, strict=True):
            key = frozenset(((src, int(sport)), (dst, int(dport))))
            first_request.setdefault(key, (src, int(sport)))
    # RTP-looking packets become media only in numbers: a DNS answer can start like RTP
    media_wire = {
        frozenset(((p.wire_src, p.wire_sport), (p.wire_dst, p.wire_dport)))
        for p in paths
        if p.packets >= MIN_MEDIA_PACKETS
    }
    rows = []
    for f in accs:
        a, b = f.a, f.b
        ends = frozenset((a, b))
        fwd, rev = ("ab", "ba")
        rule = "sent the first packet seen"
        if f.proto == PROTO_TCP and f.syn_from_b:
            a, b, fwd, rev, rule = b, a, "ba", "ab", "sent the SYN"
        elif ends in first_request:
            rule = "sent the first STUN request"
            if first_request[ends] == b:
                a, b, fwd, rev = b, a, "ba", "ab"
        elif f.proto == PROTO_TCP:
            rule = "sent the first packet seen (no SYN in the capture)"
        za, zb = zm.zone(a[0]), zm.zone(b[0])
        label, reason = zm.label(a[0], b[0])
        if f.vpn:
            label, reason = "other", f"VPN tunnel ({', '.join(sorted(f.vpn))}): carries the VPN user's traffic"
        n = {"ab": f.packets_ab, "ba": f.packets_ba}
        by = {"ab": f.bytes_ab, "ba": f.bytes_ba}
        protos = protocols(f, dissected.get(ends, set()))
        rows.append(
            {
                "file": f.file,
                "src": a[0],
                "sport": a[1],
                "dst": b[0],
                "dport": b[1],
                "transport": TRANSPORT.get(f.proto, str(f.proto)),
                "initiator": a[0],
                "initiator_rule": rule,
                "src_zone": za.zone,
                "dst_zone": zb.zone,
                "src_rule": za.rule,
                "dst_rule": zb.rule,
                "label": label,
                "label_reason": reason,
                "media": ends in media_wire or "rtp" in protos,
                "protocols": ",".join(protos),
                "packets": n["ab"] + n["ba"],
                "bytes": by["ab"] + by["ba"],
                "packets_fwd": n[fwd],
                "packets_rev": n[rev],
                "first_frame": f.first_frame,
                "first_ts": _ts(f.first_ts),
                "last_ts": _ts(f.last_ts),
                "relayed": False,
                "outer": None,
                "vpn": ",".join(sorted(f.vpn)) or None,
                "vpn_evidence": f.vpn_evidence
                or (", ".join(f"{k}: {v} packets with its signature" for k, v in sorted(f.vpn.items())) or None),
                "dscp_fwd": _fmt(f.dscp[fwd]),
                "dscp_rev": _fmt(f.dscp[rev]),
                "ttl_fwd": _rng(f.ttl[fwd]),
                "ttl_rev": _rng(f.ttl[rev]),
            }
        )
    rows += _inner_flows(paths, zm)
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in ("first_ts", "last_ts"):
        df[c] = _as_times(df[c])
    for c in ("sport", "dport"):
        df[c] = df[c].astype("Int64")
    for c in ("transport", "src_zone", "dst_zone", "label"):
        df[c] = df[c].astype("category")
    return df


def _inner_flows(paths: list[MediaPath], zm: ZoneMap) -> list[dict]:
    """Relayed media between a relayed address and a peer: labelled by the peer's zone (the peer's leg
    of the relayed path: Flow 3 from the internet, Flow 4 from the customer network)."""
    groups: dict[tuple, list[MediaPath]] = {}
    for p in paths:  # one row per capture point, like the outer flows: two points are two views
        if p.relayed and p.src and p.dst:
            groups.setdefault((p.file, frozenset(((p.src, p.sport), (p.dst, p.dport)))), []).append(p)
    rows = []
    for ps in groups.values():
        first = min(ps, key=lambda p: p.first_ts_ns)
        a, b = (first.src, first.sport), (first.dst, first.dport)
        relay_is_a = a[0] in zm.relays
        relay, peer = (a, b) if relay_is_a else (b, a)
        zpeer, zrelay = zm.zone(peer[0]), zm.zone(relay[0])
        label, reason = {
            "internet": ("Flow 3", "remote user's leg of a relayed path"),
            "customer": ("Flow 4", "customer network's leg of a relayed path"),
        }.get(zpeer.zone, ("other", f"relayed leg to a {zpeer.zone} address"))
        fwd = sum(p.packets for p in ps if (p.src, p.sport) == a)
        rows.append(
            {
                "file": first.file,
                "src": a[0],
                "sport": a[1],
                "dst": b[0],
                "dport": b[1],
                "transport": "udp",
                "initiator": a[0],
                "initiator_rule": "sent the first media packet seen",
                "src_zone": zm.zone(a[0]).zone,
                "dst_zone": zm.zone(b[0]).zone,
                "src_rule": zm.zone(a[0]).rule,
                "dst_rule": zm.zone(b[0]).rule,
                "label": label,
                "label_reason": f"{reason} (relay {relay[0]}: {zrelay.zone})",
                "media": True,
                "protocols": "rtp",
                "packets": sum(p.packets for p in ps),
                "bytes": sum(p.bytes for p in ps),
                "packets_fwd": fwd,
                "packets_rev": sum(p.packets for p in ps) - fwd,
                "first_frame": first.first_frame,
                "first_ts": _ts(first.first_ts_ns),
                "last_ts": _ts(max(p.last_ts_ns for p in ps)),
                "relayed": True,
                "outer": f"{first.wire_src}:{first.wire_sport} <-> {first.wire_dst}:{first.wire_dport}"
                + (f" channel 0x{first.channel:04X}" if first.channel > 0 else " indications"),
                "vpn": None,
                "vpn_evidence": None,
                "dscp_fwd": None,
                "dscp_rev": None,
                "ttl_fwd": None,
                "ttl_rev": None,
            }
        )
    return rows


def _fmt(values: set) -> str | None:
    return ",".join(str(v) for v in sorted(values)) or None


def _rng(r: list[int]) -> str | None:
    if not r:
        return None
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"
