"""Per-flow running aggregates over the packet batches: who spoke first, how much, which protocols,
VPN signatures, and the per-direction DSCP and TTL ranges (a middlebox rewrites them).

One entry per bidirectional 5-tuple: memory follows the number of flows, not the capture's size.
Per batch the work is numpy (unique flow keys, bincounts); Python touches each flow once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..capture.addresses import addr_str
from ..capture.decode import CLASS_NAMES, PROTO_TCP, PROTO_UDP, PacketBatch
from ..capture.reader import flow_keys
from ..dissect.openvpn_flow import RESET_OPCODES, FlowEvidence
from ..dissect.openvpn_flow import Features as OvpnFeatures
from ..dissect.openvpn_flow import features as ovpn_features
from ..dissect.vpn import VPN_KINDS, credible_kinds, vpn_columns

N_CLASSES = len(CLASS_NAMES)
MEDIA_CLASSES = np.array([CLASS_NAMES.index("rtp"), CLASS_NAMES.index("rtcp")])
OPENVPN_CODE = VPN_KINDS.index("openvpn")
SYN = 0x02


@dataclass(slots=True)
class FlowAcc:
    """Running state of one flow. `a` is the side that sent the first packet seen. Slotted: a perimeter
    capture holds hundreds of thousands of them."""

    file: int
    a: tuple[str, int]
    b: tuple[str, int]
    proto: int
    first_frame: int
    first_ts: int
    last_ts: int = 0
    packets_ab: int = 0
    packets_ba: int = 0
    bytes_ab: int = 0
    bytes_ba: int = 0
    classes: np.ndarray = field(default_factory=lambda: np.zeros(N_CLASSES, dtype=np.int64))
    vpn: dict[str, int] = field(default_factory=dict)
    syn_from_b: bool = False  # the SYN (not SYN-ACK) came from b: b initiated
    syn_seen: bool = False
    vpn_seconds: dict[int, int] = field(default_factory=dict)  # tunnel packets per second (VPN flows only)
    dscp: dict[str, set] = field(default_factory=lambda: {"ab": set(), "ba": set()})
    ttl: dict[str, list[int]] = field(default_factory=lambda: {"ab": [], "ba": []})  # [min, max]
    # per direction, TTL of the media (RTP/RTCP) packets -> [first frame, last frame, packets]: a path change
    # shows as one TTL ending before another begins; two senders behind one address interleave theirs
    media_ttl: dict[str, dict[int, list[int]]] = field(default_factory=lambda: {"ab": {}, "ba": {}})
    dscp_frame: dict[str, dict[int, int]] = field(default_factory=lambda: {"ab": {}, "ba": {}})  # first frame
    vpn_evidence: str | None = None  # why a tunnel found from the flow as a whole is one


class FlowTable:
    """Feed with `add(batch)`; `flows` holds a FlowAcc per flow key of each file."""

    def __init__(self, file: int = 0) -> None:
        self.file = file
        self.flows: dict[int, FlowAcc] = {}
        self._ovpn: dict[int, FlowEvidence] = {}  # UDP flows that may still be OpenVPN mid-session
        self._not_ovpn: set[int] = set()

    def add(self, b: PacketBatch) -> None:
        ip = (b.ip_version > 0) & (b.sport >= 0)
        idx = np.flatnonzero(ip)
        if idx.size == 0:
            return
        keys = flow_keys(b)[idx]
        uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        inv = inv.ravel()
        g = len(uniq)
        # direction of each packet relative to its flow's first packet in this batch
        f_src = (b.src_hi[idx][first], b.src_lo[idx][first], b.sport[idx][first])
        fwd = (b.src_hi[idx] == f_src[0][inv]) & (b.src_lo[idx] == f_src[1][inv]) & (b.sport[idx] == f_src[2][inv])
        size = b.origlen[idx]
        n_f = np.bincount(inv[fwd], minlength=g)
        n_r = np.bincount(inv[~fwd], minlength=g)
        by_f = np.bincount(inv[fwd], weights=size[fwd], minlength=g)
        by_r = np.bincount(inv[~fwd], weights=size[~fwd], minlength=g)
        cls = np.bincount(inv * N_CLASSES + b.cls[idx], minlength=g * N_CLASSES).reshape(g, N_CLASSES)
        last = np.zeros(g, dtype=np.int64)
        np.maximum.at(last, inv, b.ts_ns[idx])
        proto = b.proto[idx]
        vpn = vpn_columns(b.buf, b.payload_off[idx], b.payload_len[idx], proto, b.sport[idx], b.dport[idx])
        has_vpn = vpn > 0
        syn = (proto == PROTO_TCP) & ((b.tcp_flags[idx] & 0x12) == SYN)
        ttl, dscp = b.ttl[idx], b.dscp[idx]
        fr = b.frame[idx]
        same_arr = np.ones(g, dtype=bool)
        # each batch's first packet of each flow, as Python values once (not an array index per flow)
        rows0 = idx[first]
        s_hi, s_lo, d_hi, d_lo = (x[rows0].tolist() for x in (b.src_hi, b.src_lo, b.dst_hi, b.dst_lo))
        sp0, dp0 = b.sport[rows0].tolist(), b.dport[rows0].tolist()
        pr0, fr0, ts0 = proto[first].tolist(), fr[first].tolist(), b.ts_ns[rows0].tolist()
        nfl, nrl, bfl, brl = n_f.tolist(), n_r.tolist(), by_f.tolist(), by_r.tolist()
        lastl = last.tolist()
        flows = self.flows
        for j, k in enumerate(uniq.tolist()):
            acc = flows.get(k)
            if acc is None:
                acc = flows[k] = FlowAcc(
                    self.file,
                    (addr_str(s_hi[j], s_lo[j]), sp0[j]),
                    (addr_str(d_hi[j], d_lo[j]), dp0[j]),
                    pr0[j],
                    fr0[j],
                    ts0[j],
                )
                same = True
            else:  # is this batch's first packet in the flow's a->b direction?
                same = sp0[j] == acc.a[1] and addr_str(s_hi[j], s_lo[j]) == acc.a[0]
                same_arr[j] = same
            nf, nr, bf, br = nfl[j], nrl[j], int(bfl[j]), int(brl[j])
            if not same:
                nf, nr, bf, br = nr, nf, br, bf
            acc.packets_ab += nf
            acc.packets_ba += nr
            acc.bytes_ab += bf
            acc.bytes_ba += br
            acc.classes += cls[j]
            if lastl[j] > acc.last_ts:
                acc.last_ts = lastl[j]
        # the rarer per-packet facts: VPN kinds, SYNs, DSCP/TTL per direction (grouped, not per packet)
        self._details(uniq, inv, fwd == same_arr[inv], has_vpn, vpn, syn, ttl, dscp, b, idx)

    def _details(self, uniq, inv, ab, has_vpn, vpn, syn, ttl, dscp, b, idx) -> None:
        """ab: per packet, True when it travels a -> b."""
        if has_vpn.any():
            pairs, counts = np.unique(np.stack([inv[has_vpn], vpn[has_vpn]], axis=1), axis=0, return_counts=True)
            for (j, code), c in zip(pairs.tolist(), counts.tolist(), strict=True):
                acc = self.flows[int(uniq[j])]
                name = VPN_KINDS[code]
                acc.vpn[name] = acc.vpn.get(name, 0) + c
        # OpenVPN away from port 1194 shows its signature only in the hard reset: once a flow is known to be
        # OpenVPN, all of its packets are tunnel packets
        ovpn_j = [j for j, k in enumerate(uniq.tolist()) if "openvpn" in self.flows[k].vpn]
        for j in ovpn_j:  # a reset later in a flow already followed as a possible tunnel: its earlier seconds
            ev = self._ovpn.get(int(uniq[j]))
            if ev is not None and ev.track_seconds:
                acc = self.flows[int(uniq[j])]
                for sec, n in ev.seconds.items():
                    acc.vpn_seconds[sec] = acc.vpn_seconds.get(sec, 0) + n
                ev.seconds, ev.track_seconds = {}, False
        tunnel = has_vpn | np.isin(inv, ovpn_j) if ovpn_j else has_vpn
        if tunnel.any():
            # packets per second of each tunnel: a call inside a tunnel shows as seconds of ~100 packets
            sec = b.ts_ns[idx][tunnel] // 1_000_000_000
            codes_, counts_ = np.unique((inv[tunnel].astype(np.int64) << 40) | sec, return_counts=True)
            for code, c in zip(codes_.tolist(), counts_.tolist(), strict=True):
                acc = self.flows[int(uniq[code >> 40])]
                second = code & ((1 << 40) - 1)
                acc.vpn_seconds[second] = acc.vpn_seconds.get(second, 0) + c
        self._openvpn(uniq, inv, ab, b, idx, vpn)
        if syn.any():
            at = np.flatnonzero(syn)
            rows_ = idx[at]
            for j, hi, lo, port in zip(inv[at].tolist(), b.src_hi[rows_].tolist(), b.src_lo[rows_].tolist(),
                                       b.sport[rows_].tolist(), strict=True):
                acc = self.flows[int(uniq[j])]
                src = (addr_str(hi, lo), port)
                acc.syn_from_b = src == acc.b
                acc.syn_seen = True
        # DSCP values and TTL ranges per direction: unique (flow, media, direction, dscp, ttl), with the first
        # and last frame and the count of each (one pass: the frames cite a DSCP's first packet and a media
        # TTL's span)
        media = np.isin(b.cls[idx], MEDIA_CLASSES)
        code = ((inv.astype(np.int64) << 18) | (media.astype(np.int64) << 17) | (ab.astype(np.int64) << 16)
                | (dscp.astype(np.int64) << 8) | ttl)
        for c, lo, hi, n in _frame_spans(code, b.frame[idx].astype(np.int64)):
            j, m, f, d, t = c >> 18, (c >> 17) & 1, (c >> 16) & 1, (c >> 8) & 0xFF, c & 0xFF
            acc = self.flows[int(uniq[j])]
            d_name = "ab" if f else "ba"
            acc.dscp[d_name].add(int(d))
            first = acc.dscp_frame[d_name]
            first[d] = min(first.get(d, lo), lo)
            rng = acc.ttl[d_name]
            if not rng:
                rng.extend([t, t])
            else:
                rng[0], rng[1] = min(rng[0], t), max(rng[1], t)
            if m:
                span = acc.media_ttl[d_name].setdefault(t, [lo, hi, 0])
                span[0], span[1], span[2] = min(span[0], lo), max(span[1], hi), span[2] + n

    def _openvpn(self, uniq, inv, ab, b, idx, vpn) -> None:
        """Evidence for OpenVPN recognised by its flow (openvpn_flow.py), for the UDP flows not already
        named by a packet signature nor ruled out."""
        keys = uniq.tolist()
        open_j = [j for j, k in enumerate(keys) if k not in self._not_ovpn
                  and set(self.flows[k].vpn) <= {"openvpn"} and self.flows[k].proto == PROTO_UDP]
        if not open_j:
            return
        pick = np.flatnonzero(np.isin(inv, open_j))
        order = pick[np.argsort(inv[pick], kind="stable")]
        rows = idx[order]
        f = ovpn_features(b.buf, b.payload_off[rows], b.payload_len[rows])
        reset = np.isin(f.op, RESET_OPCODES) & (vpn[order] == OPENVPN_CODE)  # vpn.py's exact check
        sec = b.ts_ns[rows] // 1_000_000_000
        groups = inv[order]
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, groups.size].tolist(), strict=True):
            k = keys[int(groups[lo])]
            ev = self._ovpn.get(k)
            if ev is None:  # a flow a reset already named: its seconds are counted by the flow table
                ev = self._ovpn[k] = FlowEvidence(self.flows[k].first_frame,
                                                  track_seconds="openvpn" not in self.flows[k].vpn)
            ev.add(OvpnFeatures(*(a[lo:hi] for a in f)), ab[order[lo:hi]], sec[lo:hi], reset[lo:hi])
            if ev.excluded:
                del self._ovpn[k]
                self._not_ovpn.add(k)

    def rows(self) -> list[FlowAcc]:
        for k, ev in list(self._ovpn.items()):  # settle the flow-level evidence once, at the end
            acc = self.flows[k]
            del self._ovpn[k]
            if set(acc.vpn) - {"openvpn"}:
                continue  # another tunnel's signature named the flow later: its count and seconds stand
            why = ev.verdict()
            if why and not acc.vpn:
                acc.vpn["openvpn"] = ev.packets
                acc.vpn_seconds = dict(ev.seconds)
            acc.vpn_evidence = acc.vpn_evidence or why
        for acc in self.flows.values():
            acc.vpn = credible_kinds(acc.vpn)
        return list(self.flows.values())


def _frame_spans(codes: np.ndarray, frames: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(code, first frame, last frame, packets) per distinct code."""
    u, inv = np.unique(codes, return_inverse=True)
    inv = inv.ravel()
    lo = np.full(u.size, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.zeros(u.size, dtype=np.int64)
    np.minimum.at(lo, inv, frames)
    np.maximum.at(hi, inv, frames)
    n = np.bincount(inv, minlength=u.size)
    return list(zip(u.tolist(), lo.tolist(), hi.tolist(), n.tolist(), strict=True))


def protocols(acc: FlowAcc, dissected: set[str] | None = None) -> list[str]:
    """What a flow carries: VPN signatures, well-known ports, and the protocols the dissectors confirmed
    on it (`dissected`: 'stun', 'dtls', 'turn-channel'); without that set, first-byte classes."""
    out = []
    c = dict(zip(CLASS_NAMES, acc.classes.tolist(), strict=True))
    ports = {acc.a[1], acc.b[1]}
    if acc.vpn:
        out += sorted({k.split("-")[0] if k.startswith(("wireguard", "nat-t")) else k for k in acc.vpn})
    if 53 in ports and acc.proto in (PROTO_UDP, PROTO_TCP):
        out.append("dns")
    if acc.proto == PROTO_TCP and ports & {443, 5349} and c["dtls"] and not (dissected or set()) & {"stun"}:
        out.append("tls")
    udp = acc.proto == PROTO_UDP and not acc.vpn
    if dissected is not None:
        out += [p for p in ("stun", "turn-channel", "dtls") if p in dissected]
    else:
        out += [p for p in ("stun", "turn-channel") if c[p] and not acc.vpn]
        if c["dtls"] and udp:
            out.append("dtls")
    if c["rtp"] >= 5 and udp and 53 not in ports:  # a few stray first bytes do not make a media flow
        out.append("rtp")
    if c["rtcp"] and udp and c["rtp"] >= 5:
        out.append("rtcp")
    return out or ["other"]
