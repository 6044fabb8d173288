"""Media per call direction: one-way media and asymmetric paths.

Each stream is placed between its two real endpoints: for a direct stream its source and destination;
for a relayed one the TURN client (the wire endpoint that is not the TURN server) and the peer (the
inner endpoint on the far side of the relay; the relay itself when the capture missed the binding).
Two endpoints make a conversation with two directions. Per direction:

- activity: the union of its streams' [first, last] packet times minus their gaps longer than
  SILENCE_NS (from the stream gap lists, which keep the first 100 gaps over 200 ms);
- one-way media: the direction is silent for more than SILENCE_NS while the other direction is active
  for more than SILENCE_NS of that silence (a direction with no stream at all is silent throughout);
- asymmetric: both directions carry media, over different paths (e.g. relayed one way, direct the other).
"""

from __future__ import annotations

from ..dissect.control import TURN_PORTS
from ..dissect.stun_rows import STUN_COLUMNS

SILENCE_NS = 2_000_000_000
_M, _C = STUN_COLUMNS.index("method"), STUN_COLUMNS.index("cls")
_REL = STUN_COLUMNS.index("relayed")
_SRC, _SPORT, _DST, _DPORT = (STUN_COLUMNS.index(c) for c in ("src", "sport", "dst", "dport"))
_TURN_METHODS = frozenset(("Allocate", "Refresh", "CreatePermission", "ChannelBind", "Send", "Data"))

Interval = tuple[int, int]


def turn_servers(stun_rows: list[tuple]) -> set[tuple[str, int]]:
    """Endpoints that answered (or were sent) TURN requests in the capture."""
    out = set()
    for r in stun_rows:
        if r[_REL] or r[_M] not in _TURN_METHODS:
            continue
        if r[_C] in ("request", "indication") and r[_M] != "Data":
            out.add((r[_DST], r[_DPORT]))
        else:
            out.add((r[_SRC], r[_SPORT]))
    return out


def endpoints(row: dict, servers: set) -> tuple[tuple[str, int], tuple[str, int]]:
    """(sender, receiver) of a stream row, through the relay when relayed."""
    if not row["relayed"]:
        return (row["src"], row["sport"]), (row["dst"], row["dport"])
    ws, wd = (row["wire_src"], row["wire_sport"]), (row["wire_dst"], row["wire_dport"])
    to_server = wd in servers or (ws not in servers and row["wire_dport"] in TURN_PORTS)
    if to_server:
        return ws, ((row["dst"], row["dport"]) if row["dst"] else wd)
    return ((row["src"], row["sport"]) if row["src"] else ws), wd


def _merge(iv: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _activity(rows: list[dict]) -> list[Interval]:
    iv = []
    for r in rows:
        cuts = sorted((g["start_ts_ns"], g["end_ts_ns"]) for g in r["gaps"]
                      if g["end_ts_ns"] - g["start_ts_ns"] > SILENCE_NS)
        t = r["first_ts_ns"]
        for a, b in cuts:
            iv.append((t, a))
            t = b
        iv.append((t, r["last_ts_ns"]))
    return _merge(iv)


def _complement(active: list[Interval], span: Interval) -> list[Interval]:
    out, t = [], span[0]
    for a, b in active:
        if a > t:
            out.append((t, a))
        t = max(t, b)
    if t < span[1]:
        out.append((t, span[1]))
    return out


def _overlap(iv: Interval, active: list[Interval]) -> tuple[int, Interval | None]:
    total, first, last = 0, None, None
    for a, b in active:
        lo, hi = max(a, iv[0]), min(b, iv[1])
        if hi > lo:
            total += hi - lo
            first = lo if first is None else first
            last = hi
    return total, (first, last) if first is not None else None


def direction_rows(file: int, streams: list[dict], stun_rows: list[tuple]) -> list[dict]:
    servers = turn_servers(stun_rows)
    convs: dict[tuple, dict[tuple, list[dict]]] = {}
    for r in streams:
        s, d = endpoints(r, servers)
        a, b = (s, d) if s <= d else (d, s)
        convs.setdefault((a, b), {(a, b): [], (b, a): []})[(s, d)].append(r)
    out = []
    for ci, ((a, b), dirs) in enumerate(sorted(convs.items())):
        rows_ab, rows_ba = dirs[(a, b)], dirs[(b, a)]
        all_rows = rows_ab + rows_ba
        span = (min(r["first_ts_ns"] for r in all_rows), max(r["last_ts_ns"] for r in all_rows))
        act = {(a, b): _activity(rows_ab), (b, a): _activity(rows_ba)}
        for (s, d), mine, theirs in (((a, b), rows_ab, rows_ba), ((b, a), rows_ba, rows_ab)):
            silent = []
            for gap in _complement(act[(s, d)], span):
                if gap[1] - gap[0] <= SILENCE_NS:
                    continue
                flowing, piece = _overlap(gap, act[(d, s)])
                if flowing > SILENCE_NS and piece is not None:
                    silent.append({"start_ts_ns": piece[0], "end_ts_ns": piece[1], "duration_s": flowing / 1e9})
            paths = sorted({"relayed" if r["relayed"] else "direct" for r in mine})
            rpaths = sorted({"relayed" if r["relayed"] else "direct" for r in theirs})
            out.append({
                "file": file, "conversation": ci, "sender": s[0], "sender_port": s[1], "receiver": d[0],
                "receiver_port": d[1], "streams": len(mine), "ssrcs": ",".join(r["ssrc_hex"] for r in mine),
                "kinds": ",".join(sorted({r["kind"] for r in mine})), "packets": sum(r["packets"] for r in mine),
                "first_ts_ns": min((r["first_ts_ns"] for r in mine), default=None),
                "last_ts_ns": max((r["last_ts_ns"] for r in mine), default=None),
                "path": "+".join(paths) or None, "reverse_path": "+".join(rpaths) or None,
                "asymmetric": bool(paths and rpaths and paths != rpaths), "one_way": bool(silent),
                "silent_s": float(sum(x["duration_s"] for x in silent)), "silent_intervals": silent,
            })
    return out
