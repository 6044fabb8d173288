"""From the media stage's running aggregates to result rows: one dict per stream, the 1-s bins, the
RTCP report rows and the per-direction rows.

Per stream this adds what needs the whole capture: the DTLS handshake that keyed it (same endpoint
pair, the last one completed before the first packet, else the first with an SRTP profile), whether
it is SRTP, its kind, the RTCP view of it (reports about its SSRC from its receiver), the E-model score.

SRTP or plain (`srtp`, with `srtp_rule`): a DTLS-SRTP session on the path says SRTP; else SRTCP or plain
RTCP on the path (or on the ports one above: RTCP without rtcp-mux) says so; else payload bytes far from
uniform (chi-square against 256 equally likely values, more than CHI2_PLAIN) say plain -- ciphertext is
uniform; compressed audio can be nearly so, so a uniform sample decides nothing (None). SRTP keyed by
SDES (no DTLS, no RTCP in the capture) therefore stays None.

Loss: expected (the span of the in-sequence numbers) less the distinct packets received (duplicates,
e.g. RFC 4733's end-of-event packet sent three times, fill nothing; out-of-sequence `seq_wild` packets
count as received, as tshark counts them), never below 0.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import TYPE_CHECKING

import numpy as np

from ..capture.addresses import addr_str
from ..dissect.stun_rows import STUN_COLUMNS
from . import kind as K
from . import quality as Q
from .directions import direction_rows

if TYPE_CHECKING:
    from .streams import MediaResult, MediaStage

MIN_PACKETS = 4  # a direct stream needs this many packets to be believed (relayed ones are framed by TURN)
# RFC 3550 A.8's filter has gain 1/16: after 32 packets (15/16)^32 = 13 % of its zero start remains, so
# fewer packets give a jitter that is mostly the start value; and without a known clock rate the
# timestamp units cannot be turned into ms. Either way the jitter is absent, not a guess.
MIN_JITTER_PACKETS = 32
# a score (MOS, R-factor, the poor thresholds) needs a second of 20-ms audio: below that one lost packet
# is already 2 %
MIN_SCORE_PACKETS = 50
CHI2_PLAIN = 480.0  # 255 degrees of freedom: mean 255, sd 22.6; 10 sd above the mean
TRANSPORTS = {17: "udp", 6: "tcp"}
_ST = STUN_COLUMNS.index("stream_type")
_SRC, _SPORT, _DST, _DPORT = (STUN_COLUMNS.index(c) for c in ("src", "sport", "dst", "dport"))
_OUTER = tuple(STUN_COLUMNS.index(c) for c in ("outer_src", "outer_sport", "outer_dst", "outer_dport"))


def _pair(a: tuple, b: tuple) -> tuple:
    return (a, b) if a <= b else (b, a)


def _chi2(samples: list[bytes]) -> tuple[float, int]:
    data = b"".join(samples)
    if len(data) < 256:
        return 0.0, len(data)
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    e = len(data) / 256.0
    return float(np.sum((counts - e) ** 2) / e), len(data)


def _service_quality(stun_rows: list[tuple]) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for r in stun_rows:
        if r[_ST] is None:
            continue
        out.setdefault(_pair((r[_SRC], r[_SPORT]), (r[_DST], r[_DPORT])), r[_ST])
        if r[_OUTER[0]] is not None:
            out.setdefault(_pair((r[_OUTER[0]], r[_OUTER[1]]), (r[_OUTER[2]], r[_OUTER[3]])), r[_ST])
    return out


def _dtls_for(sessions: list, pairs: list[tuple], first_t: int) -> tuple[int, object] | None:
    for p in pairs:
        cands = [(i, s) for i, s in enumerate(sessions) if _pair(tuple(s.client), tuple(s.server)) == p]
        done = [(i, s) for i, s in cands if s.completed_ts_ns is not None and s.completed_ts_ns <= first_t]
        if done:
            return max(done, key=lambda c: c[1].completed_ts_ns)
        keyed = [(i, s) for i, s in cands if s.srtp_profile]
        if keyed or cands:
            return (keyed or cands)[0]
    return None


def _bins(stage: MediaStage, keep: set[int]) -> dict[str, np.ndarray]:
    st = stage.state
    cols = [np.concatenate(c) for c in zip(*st.bins, strict=True)] if st.bins else [np.zeros(0, np.int64)] * 9
    sid, sec, pk, by, ex, js, jm, ff, lf = cols
    key = sid.astype(np.int64) * (1 << 33) + sec
    uk, inv = np.unique(key, return_inverse=True)
    inv = inv.ravel()

    def tot(v):
        return np.bincount(inv, weights=v, minlength=uk.size)

    jmax = np.full(uk.size, -np.inf)
    np.maximum.at(jmax, inv, jm)
    first_frame = np.full(uk.size, np.iinfo(np.int64).max)
    np.minimum.at(first_frame, inv, ff)
    last_frame = np.zeros(uk.size, dtype=np.int64)
    np.maximum.at(last_frame, inv, lf)
    s_id, s_sec = uk >> 33, uk & ((1 << 33) - 1)
    packets, nbytes, expected = tot(pk).astype(np.int64), tot(by).astype(np.int64), tot(ex).astype(np.int64)
    lost = expected - packets
    mask = np.isin(s_id, np.fromiter(keep, dtype=np.int64, count=len(keep)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "stream": s_id, "second_ns": s_sec * 1_000_000_000, "packets": packets, "bytes": nbytes,
            "bitrate_kbps": nbytes * 8 / 1000.0, "expected": expected, "lost": lost,
            "loss_pct": np.where(expected > 0, np.maximum(lost, 0) / np.maximum(expected, 1) * 100.0, 0.0),
            "jitter_ms": tot(js) / np.maximum(packets, 1), "jitter_ms_max": jmax,
            "first_frame": first_frame, "last_frame": last_frame,
        }
    return {k: v[mask] for k, v in out.items()}


def build_result(stage: MediaStage, dtls_sessions: list, stun_rows: list[tuple]) -> MediaResult:
    from .streams import MediaResult

    st, file = stage.state, stage.file
    msq = _service_quality(stun_rows)
    rows = []
    for s in range(st.n):
        if st.packets[s] == 0:
            continue
        rows.append(_stream_row(stage, s, msq, dtls_sessions))
    confirmed = {r["stream"] for r in rows if r["confirmed"]}
    bins = _bins(stage, confirmed)
    peak: dict[int, float] = {}
    for sid, kbps in zip(bins["stream"].tolist(), bins["bitrate_kbps"].tolist(), strict=True):
        peak[sid] = max(peak.get(sid, 0.0), kbps)
    conf = [r for r in rows if r["confirmed"]]
    for sid, (kind, rule) in K.repair_kinds(conf, {r["stream"]: _kept(st, r["stream"]) for r in conf}).items():
        row = next(r for r in conf if r["stream"] == sid)
        row.update(kind=kind, kind_rule=rule)
    no_jitter = {r["stream"] for r in rows if r["jitter_ms_mean"] is None}
    if no_jitter and bins["stream"].size:
        mask = np.isin(bins["stream"], np.fromiter(no_jitter, dtype=np.int64, count=len(no_jitter)))
        for c in ("jitter_ms", "jitter_ms_max"):
            bins[c] = np.where(mask, np.nan, bins[c])
    rates = {r["ssrc"]: r["clock_rate"] for r in rows if r["confirmed"]}
    reports = stage.rtcp.finish(rates)
    _rtcp_columns(rows, reports, stage.rtcp.feedback)
    for r in rows:
        r["bitrate_kbps_peak"] = peak.get(r["stream"])
        _score(r)
    dirs = direction_rows(file, [r for r in rows if r["confirmed"]], stun_rows)
    return MediaResult(file=file, streams=rows, timeseries=bins, rtcp_reports=reports, directions=dirs)


def _kept(st, s: int) -> np.ndarray:
    parts = st.ts_keep[s]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _stream_row(stage: MediaStage, s: int, msq: dict, dtls_sessions: list) -> dict:
    st, k = stage.state, stage.keys[s]
    src, dst = addr_str(k.src_hi, k.src_lo), addr_str(k.dst_hi, k.dst_lo)
    wsrc, wdst = addr_str(k.wire_src_hi, k.wire_src_lo), addr_str(k.wire_dst_hi, k.wire_dst_lo)
    packets, rate = int(st.packets[s]), int(st.rate[s])
    expected = int(st.max_ext[s] - st.min_ext[s] + 1)
    lost = max(expected - (packets - int(st.dups[s])), 0)
    known = stage.rate_known[s]
    with_jitter = known and packets >= MIN_JITTER_PACKETS
    dur = (int(st.last_t[s]) - int(st.first_t[s])) / 1e9
    pts = st.pt_counts[s]
    pt = max(pts, key=lambda p: (pts[p], -p))
    mean_payload = int(st.payload_bytes[s]) / packets
    pps = (packets - 1) / dur if dur > 0 else 0.0
    dscp_counts = st.dscp[s]
    dscp = int(np.argmax(dscp_counts))
    media_pair, wire_pair = _pair((src, k.sport), (dst, k.dport)), _pair((wsrc, k.wire_sport), (wdst, k.wire_dport))
    ms_type = msq.get(wire_pair, msq.get(media_pair))
    kind, kind_rule = K.infer_kind(pt, rate, (k.wire_sport, k.wire_dport), dscp, pps, mean_payload, ms_type)
    measured = int(st.rtp_span[s]) / dur if dur > 0 and st.rtp_span[s] > 0 else None
    good_ok = int(st.good[s]) * 2 >= packets - 1
    confirmed = good_ok and (packets >= MIN_PACKETS or k.relayed)
    video = kind in ("video", "screen sharing")
    ms = 1000.0 / rate
    row = {
        "file": stage.file, "stream": s, "ssrc": k.ssrc, "ssrc_hex": f"0x{k.ssrc:08X}", "src": src, "sport": k.sport,
        "dst": dst, "dport": k.dport, "relayed": k.relayed, "channel": k.channel, "wire_src": wsrc,
        "wire_sport": k.wire_sport, "wire_dst": wdst, "wire_dport": k.wire_dport,
        "transport": TRANSPORTS.get(k.transport, str(k.transport)), "payload_type": pt,
        "payload_types": ",".join(str(p) for p in sorted(pts)), "pt_changes": int(st.pt_changes[s]),
        "kind": kind, "kind_rule": kind_rule, "clock_rate": rate, "clock_rate_rule": stage.rate_rule[s],
        "clock_rate_known": known,
        "clock_rate_measured": measured,
        "clock_rate_fit": bool(measured and K.snap_rate(measured) == rate) if rate in K.DYNAMIC_RATES else None,
        "first_ts_ns": int(st.first_t[s]), "last_ts_ns": int(st.last_t[s]), "duration_s": dur,
        "first_frame": int(st.first_frame[s]), "last_frame": int(st.last_frame[s]), "packets": packets,
        "bytes": int(st.bytes[s]), "payload_bytes": int(st.payload_bytes[s]), "packet_rate": pps,
        "bitrate_kbps_mean": int(st.bytes[s]) * 8 / dur / 1000.0 if dur > 0 else None,
        "expected": expected, "lost": lost, "loss_pct": max(lost, 0) / expected * 100.0,
        "duplicates": int(st.dups[s]), "out_of_order": int(st.ooo[s]), "seq_resets": int(st.resets[s]),
        "seq_wild": int(st.wild[s]), "padding_packets": int(st.pad_pkts[s]), "empty_packets": int(st.empty_pkts[s]),
        **_bursts(packets, lost, int(st.loss_events[s]), int(st.burst_max[s])),
        "jitter_ms_mean": float(st.jitter_sum[s]) / packets * ms if with_jitter else None,
        "jitter_ms_max": float(st.jitter_max[s]) * ms if with_jitter else None,
        "jitter_ms_final": float(st.jitter[s]) * ms if with_jitter else None,
        "longest_gap_ms": int(st.longest_gap[s]) / 1e6,
        "gaps_over_200ms": int(st.gaps_n[s]),
        "gaps": [{"start_ts_ns": a, "end_ts_ns": b, "duration_ms": (b - a) / 1e6, "frame_before": fa,
                  "frame_after": fb} for a, b, fa, fb in st.gaps[s]],
        "markers": int(st.markers[s]), "video_frames": int(st.markers[s]) if video else None,
        # frames end with the marker bit (RFC 3551 5.1 for video); a sender that never sets it tells nothing
        "frame_rate": int(st.markers[s]) / dur if video and dur > 0 and st.markers[s] else None,
        "extension_packets": int(st.ext_pkts[s]),
        "extension_profiles": ",".join(f"0x{p:04X}" for p in sorted(st.ext_profiles[s])) or None,
        "dscp": dscp, "ptime_ms": min(int(st.rtp_span[s]) / max(expected - 1, 1) * ms, 120.0),
        "confirmed": confirmed,
    }
    row.update(_keying(stage, s, media_pair, wire_pair, dtls_sessions))
    return row


def _bursts(received: int, lost: int, runs: int, longest: int) -> dict:
    """Loss runs as the stage counted them (holes opened on arrival, less those late packets closed, plus
    those they split), bounded by the packets lost: duplicates count as received and lower `lost`, and
    a run needs a lost packet. The longest run is the largest hole seen on arrival, at most `lost`."""
    lost = max(lost, 0)
    runs = min(max(runs, 0), lost)
    return {"loss_events": runs, "loss_burst_max": min(longest, lost) if runs else 0,
            "burst_ratio": Q.burst_ratio(received, runs, lost)}


def _keying(stage: MediaStage, s: int, media_pair: tuple, wire_pair: tuple, sessions: list) -> dict:
    first_t = int(stage.state.first_t[s])
    hit = _dtls_for(sessions, [media_pair, wire_pair], first_t)
    out = {"dtls_session": None, "srtp_profile": None, "dtls_completed_ts_ns": None, "dtls_to_media_ms": None}
    if hit is not None:
        i, sess = hit
        out.update(dtls_session=i, srtp_profile=sess.srtp_profile, dtls_completed_ts_ns=sess.completed_ts_ns)
        if sess.completed_ts_ns is not None:
            out["dtls_to_media_ms"] = (first_t - sess.completed_ts_ns) / 1e6
        if sess.srtp_profile:
            return dict(out, srtp=True, srtp_rule=f"DTLS-SRTP session {i} ({sess.srtp_profile}) on the path")
    rt = stage.rtcp
    (a, ap), (b, bp) = media_pair
    seen: Counter = rt.srtcp_on(*media_pair) + rt.srtcp_on(*wire_pair) + rt.srtcp_on((a, ap + 1), (b, bp + 1))
    if seen["srtcp"]:
        return dict(out, srtp=True, srtp_rule=f"SRTCP on the path ({seen['srtcp']} packets)")
    if seen["plain"]:
        return dict(out, srtp=False, srtp_rule=f"plain RTCP on the path ({seen['plain']} packets)")
    chi2, n = _chi2(stage.samples[s])
    if chi2 > CHI2_PLAIN:
        return dict(out, srtp=False, srtp_rule=f"payload bytes not uniform (chi-square {chi2:.0f} over {n} bytes)")
    return dict(out, srtp=None, srtp_rule="no evidence")


def _rtcp_columns(rows: list[dict], reports: list[dict], feedback: dict) -> None:
    by_src: dict[int, list[dict]] = {}
    rtt_pair: dict[tuple, list[float]] = {}
    for r in reports:
        if r.get("source_ssrc") is not None:
            by_src.setdefault(r["source_ssrc"], []).append(r)
        if r.get("rtt_ms") is not None:
            rtt_pair.setdefault(tuple(sorted((r["src"], r["dst"]))), []).append(r["rtt_ms"])
    for row in rows:
        rep = by_src.get(row["ssrc"], [])
        rtts = [r["rtt_ms"] for r in rep if r.get("rtt_ms") is not None]
        if not rtts:
            rtts = rtt_pair.get(tuple(sorted((row["src"], row["dst"]))), [])
        last = rep[-1] if rep else {}
        jit = [r["jitter_ms"] for r in rep if r.get("jitter_ms") is not None]
        fb = feedback.get(row["ssrc"])
        row.update(
            rtcp_reports=len(rep), rtcp_fraction_lost=last.get("fraction_lost"),
            rtcp_fraction_lost_max=max((r["fraction_lost"] for r in rep), default=None),
            rtcp_cumulative_lost=last.get("cumulative_lost"), rtcp_jitter_ms=last.get("jitter_ms"),
            rtcp_jitter_ms_max=max(jit, default=None), rtt_ms=median(rtts) if rtts else None,
            rtcp_feedback=",".join(f"{k}:{v}" for k, v in sorted(fb.items())) if fb else None,
        )


def scoreable(row: dict) -> bool:
    """A stream the thresholds and the E-model may judge: media of its own (not a repair or probe stream),
    a known clock rate (so a jitter) and at least MIN_SCORE_PACKETS packets."""
    return (row["kind"] not in K.REPAIR_KINDS and row["jitter_ms_mean"] is not None
            and row["packets"] >= MIN_SCORE_PACKETS)


def _score(row: dict) -> None:
    none = dict(r_factor=None, mos=None, mos_codec=None, mos_delay_ms=None, mos_delay_source=None)
    if not scoreable(row):
        row.update(poor_loss=None, poor_jitter=None, poor_rtt=None, poor_frame_rate=None, poor=None, **none)
        return
    row.update(Q.thresholds(row["loss_pct"], row["jitter_ms_mean"], row["rtt_ms"], row["kind"], row["frame_rate"]))
    if row["kind"] != "audio":
        row.update(none)
        return
    sc = Q.score(row["loss_pct"], row["jitter_ms_mean"], row["rtt_ms"], row["ptime_ms"],
                 Q.codec_for(row["payload_type"], row["clock_rate"]), row["burst_ratio"])
    row.update(r_factor=sc.r_factor, mos=sc.mos, mos_codec=sc.codec, mos_delay_ms=sc.one_way_delay_ms,
               mos_delay_source=sc.delay_source)
    row["poor"] = bool(row["poor"] or sc.mos < Q.POOR_MOS)
