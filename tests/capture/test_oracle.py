"""Per-frame agreement with tshark on every shared public capture (and the ones we ship)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from analyzer.capture import CaptureFile, addr_strs, iter_batches, summarize
from tests.conftest import CAPTURES, public_captures, tshark_fields

FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
    "icmp.type",
    "icmpv6.type",
    "_ws.col.Protocol",
]


def _ours(path):
    rows = {}
    with CaptureFile(path) as cap:
        for b in iter_batches(cap):
            src = addr_strs(b.src_hi, b.src_lo)
            dst = addr_strs(b.dst_hi, b.dst_lo)
            for i in range(len(b)):
                rows[int(b.frame[i])] = (
                    int(b.ts_ns[i]),
                    src[i],
                    dst[i],
                    int(b.sport[i]),
                    int(b.dport[i]),
                    int(b.proto[i]),
                )
    return rows


def _shipped():
    return sorted(p for p in CAPTURES.rglob("*.pcap*")) if CAPTURES.is_dir() else []


CASES = public_captures() + _shipped()


@pytest.mark.skipif(not CASES, reason="no captures: ../shared/captures/public is absent and captures/ is empty")
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_frames_agree_with_tshark(path):
    theirs = tshark_fields(path, FIELDS)
    ours = _ours(path)
    assert summarize(path).packets == len(theirs) == len(ours)
    for row in theirs:
        frame, epoch, ip_src, ip_dst, ip6_src, ip6_dst, us, ud, ts_, td, icmp, icmp6, _proto = row
        f = int(frame)
        ts_ns, src, dst, sport, dport, proto = ours[f]
        assert ts_ns == int(Decimal(epoch) * 1_000_000_000), f"frame {f} time"
        # tshark lists the outer and the quoted header of ICMP errors (and tunnels): the first one is the outer
        t_src = (ip_src or ip6_src).split(",")[0]
        t_dst = (ip_dst or ip6_dst).split(",")[0]
        if ip_src and ip6_src:  # 6in4 or 4in6: the outer family is the one we decode
            t_src, t_dst = (ip_src.split(",")[0], ip_dst.split(",")[0]) if proto != 41 else (t_src, t_dst)
        assert (src, dst) == (t_src, t_dst), f"frame {f} addresses"
        if icmp or icmp6:
            # ICMP errors quote the offending packet; tshark's udp/tcp ports are the quoted packet's, while
            # the outer packet has none. We report no ports for ICMP.
            assert (sport, dport) == (0, 0)
            continue
        t_sport = int((us or ts_ or "0").split(",")[0])
        t_dport = int((ud or td or "0").split(",")[0])
        assert (sport, dport) == (t_sport, t_dport), f"frame {f} ports"


def test_lockstep_walk_equals_serial_walk():
    """The parallel record walk must give exactly the serial walk's record offsets."""
    from analyzer.capture.chain import lockstep_walk, serial_walk

    rng = np.random.default_rng(7)
    sizes = rng.integers(16, 1600, size=20_000)
    buf = np.zeros(int(sizes.sum()) + 16 * sizes.size, dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(sizes + 4)[:-1]])
    for s_, n in zip(starts.tolist(), sizes.tolist(), strict=True):
        buf[s_ : s_ + 4] = np.frombuffer(int(n).to_bytes(4, "little"), dtype=np.uint8)
        buf[s_ + 4 : s_ + 4 + n] = rng.integers(0, 256, size=n, dtype=np.uint8)
    limit = int(starts[-1] + sizes[-1] + 4)
    view = np.ndarray(shape=(len(buf) - 3,), dtype="<u4", buffer=buf, strides=(1,))

    def step(p):
        return view[p].astype(np.int64) + 4

    def bad_guess(seg, window):  # deliberately wrong guesses everywhere: every lane must be re-walked
        return seg + 1

    def good_guess(seg, window):
        i = np.searchsorted(starts, seg)
        return np.where(i < starts.size, starts[np.minimum(i, starts.size - 1)], -1)

    ref = serial_walk(step, 0, limit, 4)
    assert ref.offsets.size == sizes.size
    for g in (bad_guess, good_guess):
        got = lockstep_walk(step, g, 0, limit, 4, avg_record=800)
        assert np.array_equal(got.offsets, ref.offsets)
        assert got.stop == ref.stop == limit
