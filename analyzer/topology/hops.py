"""Which hop dropped a packet, when several capture points are loaded: a STUN check keeps its
transaction id through a NAT, so a check seen leaving one point and missing at the next point on its
way (within that point's capture time) was dropped between the two. The next point is found from the
sites (sites.py): a private capture host's checks to a public address pass its NAT's outside, where
the capture host is that NAT's public address; checks arriving at that public address pass back in."""

from __future__ import annotations

import os
from typing import NamedTuple

from .profile import is_private
from .zones import ZoneMap


class Drop(NamedTuple):
    hop: str  # e.g. 'the customer edge (NAT 198.51.100.2)'
    seen: str  # 'client-a.pcap frame 10'
    missing: str  # 'nat-outside.pcap'
    what: str  # "10.1.0.11:41888 -> 203.0.113.2:55174 check"
    frame: int
    outbound: bool
    file: int | None = None  # the capture `frame` is in


def dropped_checks(a, zm: ZoneMap, ends: set[frozenset]) -> list[Drop]:
    """Checks on the endpoint pairs `ends` (frozensets of (address, port), as seen at any point) that one
    capture point saw and the next one on their way did not."""
    st = a.stun
    if len(a.files) < 2 or not len(st):
        return []
    req = st[(st.cls == "request") & ~st.relayed & (st.method == "Binding") & st.username.notna()]
    if not len(req):
        return []
    seen = req.groupby("transaction_id").file.agg(set).to_dict()
    spans = {i: (c.first_ts_ns or 0, c.last_ts_ns or 0) for i, c in enumerate(a.captures)}
    out: list[Drop] = []
    done: set[tuple] = set()
    for r in req.sort_values(["file", "frame"]).itertuples(index=False):
        pair = frozenset(((r.src, int(r.sport)), (r.dst, int(r.dport))))
        if pair not in ends:
            continue
        here = zm.sites.points.get(int(r.file))
        if here is None:
            continue
        for j, there in zm.sites.points.items():
            if j == r.file or not (spans[j][0] <= r.ts_ns <= spans[j][1]) or j in seen.get(r.transaction_id, ()):
                continue
            out_nat = r.src in here.private and not is_private(r.dst) and there.host in here.public
            in_nat = not here.private and r.dst == here.host and r.dst in there.public and there.private
            if not (out_nat or in_nat):
                continue
            nat = there.host if out_nat else here.host
            key = (nat, out_nat)
            if key in done:
                continue
            done.add(key)
            customer = nat in zm.sites.customer_public() or zm.zone(nat).zone == "customer"
            hop = f"the customer edge (NAT {nat})" if customer else f"the NAT {nat}"
            out.append(
                Drop(
                    hop,
                    f"{_name(a, r.file)} frame {int(r.frame)}",
                    _name(a, j),
                    f"{r.src}:{int(r.sport)} -> {r.dst}:{int(r.dport)}",
                    int(r.frame),
                    out_nat,
                    int(r.file),
                )
            )
    return out


def describe(drops: list[Drop]) -> str:
    """One sentence per hop: which checks it let through in neither direction."""
    parts = []
    for hop in dict.fromkeys(d.hop for d in drops):
        mine = [d for d in drops if d.hop == hop]
        said = "; ".join(
            f"the check {d.what} ({d.seen}) never shows on {d.missing}"
            if d.outbound
            else f"the check {d.what} ({d.seen}) never reaches {d.missing}"
            for d in mine
        )
        parts.append(f"{hop} dropped UDP: {said}")
    return "; ".join(parts)


def _name(a, file: int) -> str:
    return os.path.basename(str(a.files[file])) if file < len(a.files) else f"file {file}"
