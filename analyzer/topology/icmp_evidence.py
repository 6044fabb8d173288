"""ICMP errors tied to the flows and candidate pairs whose packets they quote.

An ICMP error quotes the packet that caused it, as its sender sent it: the quoted source is our end of
the flow, the quoted destination the end that is unreachable. A flow or pair is hit when the quoted
5-tuple is its own, in either direction.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

Key = tuple[frozenset, str]


def _key(a, ap, b, bp, transport) -> Key:
    return frozenset(((str(a), int(ap)), (str(b), int(bp)))), str(transport)


def quoted_frames(icmp: pd.DataFrame, *, by_file: bool, unreachable_only: bool = False) -> dict:
    """(file or None, 5-tuple key) -> the ICMP frames quoting that 5-tuple."""
    out: dict = {}
    if icmp is None or not len(icmp):
        return out
    rows = icmp[icmp.quoted_sport.notna() & icmp.quoted_dport.notna()]
    if unreachable_only:
        rows = rows[rows.unreachable]
    for r in rows.itertuples(index=False):
        k = (
            int(r.file) if by_file else None,
            _key(r.quoted_src, r.quoted_sport, r.quoted_dst, r.quoted_dport, r.quoted_transport),
        )
        out.setdefault(k, []).append(int(r.frame))
    return out


def _file_index(value, files: list[str]) -> int | None:
    """A table's `file` cell as the file's index, whether it holds the index or the file's name."""
    if isinstance(value, str):
        return files.index(value) if value in files else None
    return int(value) if pd.notna(value) else None


def with_flow_icmp(flows: pd.DataFrame, icmp: pd.DataFrame, files: list[str]) -> pd.DataFrame:
    """The flows table with `icmp_frames`: the ICMP errors (same file) quoting each flow's 5-tuple."""
    hits = quoted_frames(icmp, by_file=True)
    flows = flows.copy()
    if not len(flows):
        flows["icmp_frames"] = pd.Series([], dtype=object)
        return flows
    flows["icmp_frames"] = [
        hits.get((_file_index(f.file, files), _key(f.src, f.sport, f.dst, f.dport, f.transport)), [])
        if pd.notna(f.sport) and pd.notna(f.dport) else []
        for f in flows.itertuples(index=False)
    ]  # fmt: skip
    return flows


def with_pair_icmp(pairs: pd.DataFrame, icmp: pd.DataFrame) -> pd.DataFrame:
    """The pairs table with `icmp_frames`: the ICMP errors (any file: one call seen at several points)
    quoting the pair's 5-tuple."""
    hits = quoted_frames(icmp, by_file=False)
    pairs = pairs.copy()
    pairs["icmp_frames"] = [
        hits.get((None, _key(p.local_address, p.local_port, p.remote_address, p.remote_port, p.transport)), [])
        if pd.notna(p.local_port) and pd.notna(p.remote_port) else []
        for p in pairs.itertuples(index=False)
    ]  # fmt: skip
    return pairs


TEARDOWN_NS = 500_000_000  # an ICMP this soon after the far end's last packet is both ends closing together


class FarEnd(NamedTuple):
    """What the unreachable end sent on the 5-tuple around an ICMP error (STUN, DTLS and media seen)."""

    last_frame: int | None  # its last packet before the ICMP
    last_ns: int | None
    after_frame: int | None  # its first packet after the ICMP: it was still there


def far_end_activity(a, far: str, far_port: int, near: str, near_port: int, at_ns: int) -> FarEnd:
    """Only datagrams on this 5-tuple itself count: a relay forwarding the far end's earlier packets on
    another leg is not the far end sending."""
    events: list[tuple[int, int]] = []
    for t in (a.stun, a.dtls):
        m = (t.src == far) & (t.sport == far_port) & (t.dst == near) & (t.dport == near_port) & ~t.relayed.astype(bool)
        events += list(zip(t.ts_ns[m].astype("int64").tolist(), t.frame[m].astype("int64").tolist(), strict=True))
    for p in a.paths.paths():
        if not p.relayed and (p.src, p.sport, p.dst, p.dport) == (far, far_port, near, near_port):
            events += [(p.first_ts_ns, p.first_frame), (p.last_ts_ns, p.last_frame)]
    before = [e for e in events if e[0] <= at_ns]
    after = [e for e in events if e[0] > at_ns]
    last = max(before) if before else None
    return FarEnd(last[1] if last else None, last[0] if last else None, min(after)[1] if after else None)
