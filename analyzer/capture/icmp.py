"""ICMP and ICMPv6 error messages and the packet they quote.

A port unreachable that quotes a STUN check or a media packet is evidence that its destination is not
listening (or a firewall says so). The quoted IP header and the first 8 bytes of its transport header
(RFC 792, RFC 4443 section 2.4) give the 5-tuple; it is decoded with the same gathers as any packet.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .addresses import addr_strs
from .headers import PROTO_ICMP, PROTO_ICMP6, PROTO_TCP, PROTO_UDP, Headers, Reader, network

# (family, type) -> name; the types that quote the offending packet
ERROR_TYPES = {
    (4, 3): "destination unreachable",
    (4, 4): "source quench",
    (4, 5): "redirect",
    (4, 11): "time exceeded",
    (4, 12): "parameter problem",
    (6, 1): "destination unreachable",
    (6, 2): "packet too big",
    (6, 3): "time exceeded",
    (6, 4): "parameter problem",
}
UNREACHABLE = {(4, 3), (6, 1)}
CODES = {
    (4, 3): {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
             4: "fragmentation needed", 5: "source route failed", 6: "destination network unknown",
             7: "destination host unknown", 9: "network administratively prohibited",
             10: "host administratively prohibited", 13: "communication administratively prohibited"},
    (4, 11): {0: "TTL exceeded in transit", 1: "fragment reassembly time exceeded"},
    (6, 1): {0: "no route to destination", 1: "communication administratively prohibited",
             2: "beyond scope of source address", 3: "address unreachable", 4: "port unreachable",
             5: "source address failed ingress/egress policy", 6: "reject route to destination"},
    (6, 3): {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"},
}  # fmt: skip
TRANSPORT = {PROTO_UDP: "udp", PROTO_TCP: "tcp"}
_V4_ERRORS = np.array([t for f, t in ERROR_TYPES if f == 4])
_V6_ERRORS = np.array([t for f, t in ERROR_TYPES if f == 6])


def kind(family: int, icmp_type: int, code: int) -> str:
    """'port unreachable', 'time exceeded', ... as Wireshark names them."""
    codes = CODES.get((family, icmp_type))
    if codes and code in codes:
        return codes[code]
    return ERROR_TYPES.get((family, icmp_type), f"type {icmp_type}") + f" (code {code})"


class IcmpErrors(NamedTuple):
    """The ICMP error messages of one batch: row indices into the batch and the quoted packet."""

    rows: np.ndarray
    family: np.ndarray  # 4 or 6
    type: np.ndarray
    code: np.ndarray
    quoted: Headers  # the quoted packet's addresses and ports (ipv 0 when the quote is unreadable)


def icmp_errors(r: Reader, h: Headers) -> IcmpErrors | None:
    """The ICMP/ICMPv6 error messages among decoded packets, with the packet each one quotes."""
    is4 = (h.ipv == 4) & (h.proto == PROTO_ICMP) & h.first_frag
    is6 = (h.ipv == 6) & (h.proto == PROTO_ICMP6) & h.first_frag
    if not (is4.any() or is6.any()):
        return None
    cand = np.flatnonzero(is4 | is6)
    sub = Reader(r.buf, r.start[cand], h.ip_end[cand])
    l4 = h.l4[cand]
    t, okt = sub.u8(l4)
    c, _ = sub.u8(l4 + 1)
    fam = np.where(is4[cand], 4, 6)
    err = okt & np.where(fam == 4, np.isin(t, _V4_ERRORS), np.isin(t, _V6_ERRORS))
    if not err.any():
        return None
    keep = np.flatnonzero(err)
    rows, sub = cand[keep], Reader(r.buf, r.start[cand][keep], h.ip_end[cand][keep])
    q3 = l4[keep] + 8
    nib, ok = sub.u8(q3)
    v = nib >> 4
    qv = np.where(ok & ((v == 4) | (v == 6)), v, 0)
    quoted = network(sub, q3, qv, h.ip_end[rows], np.zeros(rows.size, dtype=np.uint8))
    # a quote may hold only the 8 bytes RFC 792 asks for: a TCP header is cut, its ports are not
    ports = (quoted.ipv > 0) & quoted.first_frag & ((quoted.proto == PROTO_TCP) | (quoted.proto == PROTO_UDP))
    sp, ok1 = sub.u16(quoted.l4)
    dp, ok2 = sub.u16(quoted.l4 + 2)
    ports &= ok1 & ok2
    quoted.sport, quoted.dport = np.where(ports, sp, 0), np.where(ports, dp, 0)
    quoted.proto = np.where((quoted.ipv > 0) & ~ports & ((quoted.proto == PROTO_TCP) | (quoted.proto == PROTO_UDP)),
                            -1, quoted.proto)  # fmt: skip
    return IcmpErrors(rows, fam[keep], t[keep], c[keep], quoted)


class IcmpCollector:
    """ICMP error rows over a whole file (they are few), for the `icmp` table."""

    def __init__(self, file: int = 0) -> None:
        self.file = file
        self._parts: list[dict] = []

    def add(self, b) -> None:
        e = b.icmp
        if e is None:
            return
        i = e.rows
        q = e.quoted
        self._parts.append({
            "frame": b.frame[i], "ts_ns": b.ts_ns[i],
            "src": addr_strs(b.src_hi[i], b.src_lo[i]), "dst": addr_strs(b.dst_hi[i], b.dst_lo[i]),
            "family": e.family, "type": e.type, "code": e.code,
            "quoted_src": addr_strs(q.src_hi, q.src_lo), "quoted_dst": addr_strs(q.dst_hi, q.dst_lo),
            "quoted_sport": q.sport, "quoted_dport": q.dport, "quoted_proto": np.where(q.ipv > 0, q.proto, -1),
        })  # fmt: skip

    def __len__(self) -> int:
        return sum(len(p["frame"]) for p in self._parts)

    def rows(self) -> list[dict]:
        out = []
        for p in self._parts:
            for k in range(len(p["frame"])):
                fam, t, c = int(p["family"][k]), int(p["type"][k]), int(p["code"][k])
                qp = int(p["quoted_proto"][k])
                ports = qp in TRANSPORT
                out.append({
                    "file": self.file, "frame": int(p["frame"][k]), "ts_ns": int(p["ts_ns"][k]),
                    "src": p["src"][k], "dst": p["dst"][k], "type": t, "code": c, "kind": kind(fam, t, c),
                    "unreachable": (fam, t) in UNREACHABLE,
                    "quoted_src": p["quoted_src"][k] or None, "quoted_dst": p["quoted_dst"][k] or None,
                    "quoted_sport": int(p["quoted_sport"][k]) if ports else None,
                    "quoted_dport": int(p["quoted_dport"][k]) if ports else None,
                    "quoted_transport": TRANSPORT.get(qp, None if qp < 0 else str(qp)),
                })  # fmt: skip
        return out


COLUMNS = [
    "file", "frame", "ts", "src", "dst", "type", "code", "kind", "unreachable",
    "quoted_src", "quoted_sport", "quoted_dst", "quoted_dport", "quoted_transport",
]  # fmt: skip


def icmp_table(collectors: list[IcmpCollector]):
    """The `icmp` table: one row per ICMP/ICMPv6 error message, with the 5-tuple it quotes."""
    import pandas as pd

    rows = [r for c in collectors for r in c.rows()]
    df = pd.DataFrame(rows, columns=[*COLUMNS, "ts_ns"])
    df["ts"] = pd.to_datetime(df["ts_ns"].astype("int64"), unit="ns", utc=True)
    for col in ("quoted_sport", "quoted_dport", "file", "frame", "type", "code"):
        df[col] = df[col].astype("Int64")
    df["unreachable"] = df["unreachable"].astype(bool)
    return df[[*COLUMNS, "ts_ns"]]
