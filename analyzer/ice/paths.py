"""Where media actually went: packets per media 5-tuple (inner when relayed) and wire 5-tuple.

Fed with the dissect stage's MediaBatches; memory is one entry per distinct path. The ICE stage uses
it to find the pair that carried media (the selected pair) and when media moved to another pair: the
legs below are each session's path history (relay, then direct, ...), with the frames and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..capture.addresses import addr_str
from ..dissect.media_rows import MediaBatch

if TYPE_CHECKING:  # the media pass runs without pandas; only the tables need it
    import pandas as pd


class MediaPath(NamedTuple):
    src: str
    sport: int
    dst: str
    dport: int
    wire_src: str
    wire_sport: int
    wire_dst: str
    wire_dport: int
    relayed: bool
    channel: int
    packets: int
    bytes: int
    first_frame: int
    first_ts_ns: int
    last_frame: int
    last_ts_ns: int
    file: int = 0


@dataclass
class PathCounter:
    _acc: dict[tuple, list[int]] = field(default_factory=dict)

    def add(self, mb: MediaBatch) -> None:
        if len(mb) == 0:
            return
        cols = (
            mb.src_hi,
            mb.src_lo,
            mb.sport,
            mb.dst_hi,
            mb.dst_lo,
            mb.dport,
            mb.wire_src_hi,
            mb.wire_src_lo,
            mb.wire_sport,
            mb.wire_dst_hi,
            mb.wire_dst_lo,
            mb.wire_dport,
            mb.relayed,
            mb.channel,
        )
        # one 64-bit hash per row instead of a 14-column unique (a lexicographic sort is 10x slower)
        h = np.full(len(mb), np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for c in cols:
                h = (h ^ np.asarray(c).astype(np.uint64)) * np.uint64(0xBF58476D1CE4E5B9)
                h ^= h >> np.uint64(31)
        _, first, inv = np.unique(h, return_index=True, return_inverse=True)
        inv = inv.ravel()
        g_n = first.size
        n = np.bincount(inv, minlength=g_n)
        nbytes = np.bincount(inv, weights=mb.wire_len, minlength=g_n)
        last = np.zeros(g_n, dtype=np.int64)
        np.maximum.at(last, inv, np.arange(inv.size))
        rows = np.stack([np.asarray(c)[first].astype(np.int64).astype(np.uint64) for c in cols], axis=1)
        for g in range(g_n):
            k = (mb.file, *rows[g].tolist())  # per capture point: two points seeing one 5-tuple are two views
            f, lst = int(first[g]), int(last[g])
            acc = self._acc.get(k)
            if acc is None:
                self._acc[k] = [
                    int(n[g]),
                    int(nbytes[g]),
                    int(mb.frame[f]),
                    int(mb.ts_ns[f]),
                    int(mb.frame[lst]),
                    int(mb.ts_ns[lst]),
                    mb.file,
                ]
            else:
                acc[0] += int(n[g])
                acc[1] += int(nbytes[g])
                acc[4], acc[5] = int(mb.frame[lst]), int(mb.ts_ns[lst])

    def paths(self) -> list[MediaPath]:
        out = []
        for k, (n, b, ff, ft, lf, lt, file) in self._acc.items():
            _, sh, sl, sp, dh, dl, dp, wsh, wsl, wsp, wdh, wdl, wdp, rel, ch = k
            ch = ch - (1 << 64) if ch >= 1 << 63 else ch
            out.append(
                MediaPath(
                    addr_str(sh, sl),
                    int(sp),
                    addr_str(dh, dl),
                    int(dp),
                    addr_str(wsh, wsl),
                    int(wsp),
                    addr_str(wdh, wdl),
                    int(wdp),
                    bool(rel),
                    int(ch),
                    n,
                    b,
                    ff,
                    ft,
                    lf,
                    lt,
                    file,
                )
            )
        return sorted(out, key=lambda p: p.first_ts_ns)


# ---------------------------------------------------------------------------------------- history


class Leg(NamedTuple):
    """One path a session's media took, in the order media first used it. `pair` is None for media
    on one of the session's sockets that no check covered (a relay leg set up without ICE)."""

    session: int
    leg: int
    pair: int | None
    kind: str  # 'relay' | 'direct'
    description: str
    src: str
    sport: int
    dst: str
    dport: int
    first_frame: int
    last_frame: int
    first_ts_ns: int
    last_ts_ns: int
    packets: int
    reason: str  # why media is on this path: the nomination that moved it there, or what the capture shows


LEG_COLUMNS = [
    "session",
    "leg",
    "pair",
    "kind",
    "description",
    "src",
    "sport",
    "dst",
    "dport",
    "first_frame",
    "last_frame",
    "first_ts",
    "last_ts",
    "packets",
    "reason",
]


def strays(paths: list[MediaPath], sockets: dict[tuple[int, str, int], int], covered: set[int]) -> dict[int, list]:
    """Media paths no pair covered (`covered` holds their id()) that start or end at a session's socket
    ((file, address, port) -> session), grouped per session and endpoint pair: [(ends, [MediaPath])]."""
    out: dict[int, dict[frozenset, list[MediaPath]]] = {}
    for m in paths:
        if id(m) in covered or not m.src:
            continue
        s = sockets.get((m.file, m.src, m.sport), sockets.get((m.file, m.dst, m.dport)))
        if s is None:
            continue
        ends = frozenset(((m.src, m.sport), (m.dst, m.dport)))
        out.setdefault(s, {}).setdefault(ends, []).append(m)
    return {s: list(g.items()) for s, g in out.items()}


def stray_leg(session: int, ms: list[MediaPath], is_relay) -> Leg:
    """A leg for media without checks: a relay when an end is one (is_relay(address, port) says)."""
    first = min(ms, key=lambda m: m.first_ts_ns)
    last = max(ms, key=lambda m: m.last_ts_ns)
    relay = [(a, p) for m in ms for a, p in ((m.src, m.sport), (m.dst, m.dport)) if is_relay(a, p)]
    kind = "relay" if relay else "direct"
    far = f" ({relay[0][0]}:{relay[0][1]} a relay)" if relay else ""
    return Leg(
        session,
        0,
        None,
        kind,
        f"{first.src}:{first.sport} -> {first.dst}:{first.dport}{far}, no ICE checks seen on it",
        first.src,
        first.sport,
        first.dst,
        first.dport,
        first.first_frame,
        last.last_frame,
        first.first_ts_ns,
        last.last_ts_ns,
        sum(m.packets for m in ms),
        "",
    )


def legs_table(legs: list[Leg]) -> pd.DataFrame:
    import pandas as pd

    rows = [
        {
            **{k: v for k, v in g._asdict().items() if k not in ("first_ts_ns", "last_ts_ns")},
            "first_ts": pd.Timestamp(g.first_ts_ns, unit="ns", tz="UTC"),
            "last_ts": pd.Timestamp(g.last_ts_ns, unit="ns", tz="UTC"),
        }
        for g in legs
    ]
    df = pd.DataFrame(rows, columns=LEG_COLUMNS)
    df["pair"] = df["pair"].astype("Int64")
    return df
