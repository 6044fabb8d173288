"""Quality findings: does the call sound (or look) bad, and where is the damage?

Codes (stable): `poor-media`, `media-gap`, `high-rtt`, `far-end-not-receiving`. Each rule fires only on
evidence the capture holds and cites its frames; docs/quality.md gives the thresholds and their sources.

- poor-media: a stream the media stage could score (media of its own, known clock rate, enough packets:
  media.assemble.scoreable) that breaks a threshold of media.quality (Teams CQD for audio, our own for
  video and screen sharing), or whose receiver reports (RTCP RR, RFC 3550 6.4.2) more loss than
  POOR_LOSS_PCT. Loss the capture saw happened before the capture point (between the sender and it);
  loss the receiver reports beyond what the capture saw happened after it. Error when unusable (loss
  over UNUSABLE_LOSS_PCT or MOS below UNUSABLE_MOS). Evidence: the WORST seconds with their frames.
- media-gap: a stream with no packet for more than GAP_S in the middle (a freeze, a route change, a
  sender that stopped), with the frames before and after.
- high-rtt: the round trip on the call's path above POOR_RTT_MS, from RTCP SR/RR (RFC 3550 6.4.1), the
  ICE checks and consent checks of the selected pair, and TURN Allocate/Refresh transactions.
- far-end-not-receiving: the far end's readable receiver reports say it lost nearly everything of our
  stream (fraction lost >= FAR_LOST), or it keeps reporting (FAR_MIN_REPORTS readable reports while
  our stream flows) without ever naming our SSRC. SRTCP hides the report blocks: no finding then.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..media import quality as Q
from .calls import parse_endpoint
from .findings import Finding, Frame, _frames, _joins, ff

GAP_S = 1.0
WORST = 3
FAR_LOST = 0.9
FAR_MIN_REPORTS = 2
REPORT_GRACE_NS = 2_000_000_000  # a receiver's first report comes up to a few seconds after the media starts
_SAMPLE_COLUMNS = [
    "file",
    "source",
    "method",
    "src",
    "sport",
    "dst",
    "dport",
    "request_frame",
    "response_frame",
    "ts_ns",
    "rtt_ms",
]


def round_trips(a) -> pd.DataFrame:
    """Every round-trip sample of the capture: RTCP (RR answering an SR), STUN Binding transactions (ICE
    checks, consent) and TURN Allocate/Refresh transactions. src/dst: requester -> responder (for RTCP,
    the SR sender -> the reporter). Retransmitted transactions are left out (Karn: which copy was
    answered is unknown). The capture clock measures the round trip beyond the capture point."""
    parts = []
    rr = a.rtcp_reports
    if len(rr):
        r = rr[rr.rtt_ms.notna()]
        if len(r):
            parts.append(
                pd.DataFrame(
                    {
                        "file": r.file.astype("int64"),
                        "source": "rtcp",
                        "method": r.packet_type.astype(str),
                        "src": r.dst.astype(str),
                        "sport": r.dport.astype("int64"),
                        "dst": r.src.astype(str),
                        "dport": r.sport.astype("int64"),
                        "request_frame": pd.array([pd.NA] * len(r), dtype="Int64"),
                        "response_frame": r.frame.astype("int64"),
                        "ts_ns": r.ts_ns.astype("int64"),
                        "rtt_ms": r.rtt_ms.astype("float64"),
                    }
                )
            )
    s = a.stun
    if len(s):
        s = s[~s.relayed.astype(bool) & s.method.isin(["Binding", "Allocate", "Refresh"])]
        s = s[["file", "frame", "ts_ns", "src", "sport", "dst", "dport", "method", "cls", "transaction_id"]].astype(
            {"src": str, "dst": str, "method": str, "cls": str}
        )
        req = s[s.cls == "request"]
        resp = s[s.cls.isin(["success", "error"])]
        copies = req.groupby(["file", "transaction_id"]).transaction_id.transform("size")
        single = req[copies == 1]
        m = single.merge(resp, on=["file", "transaction_id"], suffixes=("", "_r"))
        m = m[(m.src == m.dst_r) & (m.sport == m.dport_r) & (m.ts_ns_r >= m.ts_ns)]
        m = m.sort_values("ts_ns_r").drop_duplicates(["file", "transaction_id"])
        if len(m):
            parts.append(
                pd.DataFrame(
                    {
                        "file": m.file.astype("int64"),
                        "source": np.where(m.method == "Binding", "stun", "turn"),
                        "method": m.method.astype(str),
                        "src": m.src.astype(str),
                        "sport": m.sport.astype("int64"),
                        "dst": m.dst.astype(str),
                        "dport": m.dport.astype("int64"),
                        "request_frame": m.frame.astype("Int64"),
                        "response_frame": m.frame_r.astype("int64"),
                        "ts_ns": m.ts_ns.astype("int64"),
                        "rtt_ms": (m.ts_ns_r - m.ts_ns).astype("float64") / 1e6,
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=_SAMPLE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)[_SAMPLE_COLUMNS]
    return out.sort_values("ts_ns", kind="stable").reset_index(drop=True)


def quality_findings(a, calls, capture_host: str | None = None) -> list[Finding]:
    """The four quality rules over the capture's streams, RTCP reports and round trips. capture_host: the
    host the capture was taken on, when known (it changes what loss seen in the capture means)."""
    st = a.streams
    if not len(st):
        return []
    out: list[Finding] = []
    ts = a.media_timeseries
    rr = a.rtcp_reports
    for s in st.itertuples(index=False):
        call = _call_of(s, calls)
        out += _poor(s, call, ts, rr, capture_host)
        out += _gaps(s, call)
        out += _far_end(s, call, rr)
    out += _high_rtt(a, calls, round_trips(a))
    return out


def _call_of(s, calls) -> int | None:
    for ends in (
        {(s.src, int(s.sport)), (s.dst, int(s.dport))},
        {(s.wire_src, int(s.wire_sport)), (s.wire_dst, int(s.wire_dport))},
    ):
        for c in calls:
            if _joins(c, ends):
                return c.call
    return None


def _own_media(s) -> bool:
    return s.kind not in ("rtx", "fec", "padding") and bool(s.confirmed)


def _receiver_view(s, rr: pd.DataFrame) -> tuple[float | None, int | None]:
    """(loss % the receiver reports for the stream, frame of that report); None without a readable RR."""
    if pd.isna(s.rtcp_cumulative_lost) or not s.expected:
        return None, None
    mine = rr[(rr.source_ssrc == s.ssrc) & rr.cumulative_lost.notna()]
    frame = int(mine.frame.iloc[-1]) if len(mine) else None
    return max(float(s.rtcp_cumulative_lost), 0.0) / float(s.expected) * 100.0, frame


def worst_seconds(ts: pd.DataFrame, file: int, stream: int, n: int = WORST) -> pd.DataFrame:
    """The stream's n worst seconds (most loss, then most jitter) that show any loss or jitter."""
    t = ts[(ts.file == file) & (ts.stream == stream)]
    t = t[(t.loss_pct > 0) | (t.jitter_ms.fillna(0) > Q.POOR_JITTER_MS)]
    return t.sort_values(["loss_pct", "jitter_ms"], ascending=False, kind="stable").head(n).sort_values("second")


def _poor(s, call, ts: pd.DataFrame, rr: pd.DataFrame, capture_host: str | None) -> list[Finding]:
    if not _own_media(s) or pd.isna(s.poor):
        return []
    reported, rr_frame = _receiver_view(s, rr)
    far_poor = reported is not None and reported > Q.POOR_LOSS_PCT
    if not (bool(s.poor) or far_poor):
        return []
    seen = float(s.loss_pct)
    worst_loss = max(seen, reported or 0.0)
    unusable = worst_loss > Q.UNUSABLE_LOSS_PCT or (pd.notna(s.mos) and s.mos < Q.UNUSABLE_MOS)
    why = []
    if s.poor_loss:
        why.append(f"loss {seen:.1f} % > {Q.POOR_LOSS_PCT:.0f} %")
    if far_poor:
        why.append(f"receiver-reported loss {reported:.1f} % > {Q.POOR_LOSS_PCT:.0f} %")
    if s.poor_jitter:
        why.append(f"mean jitter {s.jitter_ms_mean:.1f} ms > {Q.POOR_JITTER_MS:.0f} ms")
    if s.poor_rtt:
        why.append(f"round trip {s.rtt_ms:.0f} ms > {Q.POOR_RTT_MS:.0f} ms")
    if s.poor_frame_rate:
        why.append(f"frame rate {s.frame_rate:.1f}/s < {Q.POOR_VIDEO_FPS:.0f}/s")
    if pd.notna(s.mos) and s.mos < Q.POOR_MOS:
        why.append(f"MOS {s.mos:.2f} < {Q.POOR_MOS}")
    side = []
    if seen > 0 and capture_host is not None and s.src == capture_host:
        side.append(
            f"{seen:.1f} % missing in the sender's own capture: not sent, or dropped by the capture (not network loss)"
        )
    elif seen > 0:
        side.append(f"{seen:.1f} % lost before the capture point (between the sender {s.src} and it)")
    if reported is None:
        side.append(
            "the receiver's view is absent (no readable RTCP receiver report: SRTCP or none): loss after "
            "the capture point is undetermined; plain RTCP or a capture at the receiver would settle it"
        )
    elif reported - seen > 1.0:
        side.append(
            f"the receiver reports {reported:.1f} %, the capture saw {seen:.1f} %: "
            f"{reported - seen:.1f} % lost after the capture point (between it and {s.dst})"
        )
    worst = worst_seconds(ts, s.file, s.stream)
    secs = [
        f"{w.second:%H:%M:%S} UTC (loss {w.loss_pct:.0f} %, jitter "
        f"{_ms(w.jitter_ms)}, frames {int(w.first_frame)}-{int(w.last_frame)})"
        for w in worst.itertuples()
    ]
    frames = [Frame(f, s.file) for w in worst.itertuples() for f in (w.first_frame, w.last_frame)]
    if rr_frame is not None and far_poor:
        frames.append(Frame(rr_frame, s.file))
    if not frames:
        frames = ff(s, "first_frame", "last_frame")
    evidence = (
        f"SSRC {s.ssrc_hex} {s.kind} {s.src}:{s.sport} -> {s.dst}:{s.dport}: {int(s.packets)} packets, "
        f"{int(s.lost)} of {int(s.expected)} lost ({seen:.1f} %), jitter mean {_ms(s.jitter_ms_mean)} / max "
        f"{_ms(s.jitter_ms_max)}, RTT {_ms(s.rtt_ms)}, MOS {_num(s.mos)}; "
        + "; ".join(side)
        + ("; worst seconds: " + ", ".join(secs) if secs else "")
    )
    return [
        Finding(
            call,
            "poor-media",
            "error" if unusable else "warning",
            f"Poor {s.kind} from {s.src}" + (" (unusable)" if unusable else ""),
            "Poor by the Call Quality Dashboard's thresholds (docs/quality.md): " + "; ".join(why) + ".",
            evidence,
            "Find where the loss happens (the side named in the evidence): Wi-Fi, an uplink at capacity, a shaper "
            "or a VPN on that side; compare with a capture on the other side of the path.",
            _frames(frames),
        )
    ]


def _gaps(s, call) -> list[Finding]:
    if not _own_media(s) or not isinstance(s.gaps, list):
        return []
    out = []
    for g in s.gaps:
        if g["duration_ms"] <= GAP_S * 1000:
            continue
        out.append(
            Finding(
                call,
                "media-gap",
                "warning",
                f"Media stopped for {g['duration_ms'] / 1000:.1f} s ({s.kind} from {s.src})",
                f"No packet of this stream for more than {GAP_S:.0f} s in the middle of the call: a freeze or dropout "
                "for the listener, a route change, or a sender that stopped (hold, mute without comfort noise).",
                f"SSRC {s.ssrc_hex} {s.src}:{s.sport} -> {s.dst}:{s.dport}: last packet before the gap frame "
                f"{g['frame_before']}, first after it frame {g['frame_after']} ({g['duration_ms']:.0f} ms)",
                "Look at the frames around the gap: ICE checks or a new pair mean a route change; nothing at all on "
                "this path means loss of connectivity.",
                [int(g["frame_before"]), int(g["frame_after"])],
            )
        )
    return out


def _far_end(s, call, rr: pd.DataFrame) -> list[Finding]:
    if not _own_media(s) or pd.isna(s.poor) or not len(rr):
        return []
    far = rr[
        (rr.src == s.dst)
        & (rr.dst == s.src)
        & rr.sport.isin([s.dport, s.dport + 1])
        & ~rr.encrypted.astype(bool)
        & rr.packet_type.isin(["SR", "RR"])
    ]
    if not len(far):
        return []
    about = far[far.source_ssrc == s.ssrc]
    what = f"SSRC {s.ssrc_hex} {s.src}:{s.sport} -> {s.dst}:{s.dport} ({int(s.packets)} packets seen sent)"
    if len(about):
        last = about.iloc[-1]
        if pd.notna(last.fraction_lost) and last.fraction_lost >= FAR_LOST:
            return [
                Finding(
                    call,
                    "far-end-not-receiving",
                    "error",
                    f"The far end ({s.dst}) receives almost none of our {s.kind}",
                    "Its RTCP receiver reports say it lost nearly everything of this stream, which the capture "
                    "saw sent.",
                    f"{what}; last report frame {int(last.frame)}: fraction lost {last.fraction_lost:.0%}, cumulative "
                    f"lost {_num(last.cumulative_lost)}",
                    "The loss is after the capture point: check the path towards the far end (its NAT/firewall, "
                    "a relay, a VPN).",
                    _frames([Frame(x, s.file) for x in [s.first_frame, *about.frame.tolist()[-5:]]]),
                )
            ]
        return []
    window = far[(far.ts_ns >= s.first_ts_ns + REPORT_GRACE_NS) & (far.ts_ns <= s.last_ts_ns + REPORT_GRACE_NS)]
    if len(window) < FAR_MIN_REPORTS:
        return []
    return [
        Finding(
            call,
            "far-end-not-receiving",
            "error",
            f"The far end ({s.dst}) never reports receiving our {s.kind}",
            "It sends readable RTCP reports while our stream flows, none of which names our SSRC: it is not "
            "receiving this stream.",
            f"{what}; {len(window)} reports from {s.dst} during it, SSRCs reported: "
            f"{sorted({f'0x{int(x):08X}' for x in window.source_ssrc.dropna()}) or 'none'}",
            "The media is lost after the capture point: check the path towards the far end.",
            _frames([Frame(x, s.file) for x in [s.first_frame, *window.frame.tolist()[:5]]]),
        )
    ]


def _high_rtt(a, calls, samples: pd.DataFrame) -> list[Finding]:
    if not len(samples):
        return []
    out = []
    for c in calls:
        ends = set()
        for p in c.selected:
            ends |= {(p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port))}
            if isinstance(p.wire, str):
                ends |= {parse_endpoint(x) for x in p.wire.split(" -> ")}
        for e in c.media_ends:
            ends |= set(e)
        if not ends:
            continue
        on = samples[
            [
                ((x, int(y)) in ends and (u, int(v)) in ends)
                or (c.relayed and m in ("Allocate", "Refresh") and (x, int(y)) in ends)
                for x, y, u, v, m in zip(
                    samples.src, samples.sport, samples.dst, samples.dport, samples.method, strict=True
                )
            ]
        ]
        if not len(on):
            continue
        med = on.groupby(["source", "src", "sport", "dst", "dport"]).rtt_ms.median()
        worst = med.max()
        if worst <= Q.POOR_RTT_MS:
            continue
        (source, src, sport, dst, dport) = med.idxmax()
        hit = on[(on.source == source) & (on.src == src) & (on.sport == sport) & (on.rtt_ms > Q.POOR_RTT_MS)]
        frames = ff(hit, "request_frame", "response_frame")
        out.append(
            Finding(
                c.call,
                "high-rtt",
                "warning",
                f"Round trip {worst:.0f} ms on the call's path",
                f"Above the {Q.POOR_RTT_MS:.0f} ms the Call Quality Dashboard marks as poor: conversation becomes "
                "hard (people talk over each other).",
                f"{source} {src}:{sport} -> {dst}:{dport}: median {worst:.0f} ms, {len(hit)} samples above the "
                f"threshold; every source and direction: "
                + ", ".join(f"{k[0]} {k[1]}:{k[2]} -> {k[3]}:{k[4]} {v:.0f} ms" for k, v in med.items()),
                "Look for a long or congested path: a far-away relay, a VPN hairpin, a satellite or mobile link, "
                "bufferbloat on an uplink.",
                _frames(frames),
            )
        )
    return out


def _ms(v) -> str:
    return "absent" if v is None or pd.isna(v) else f"{float(v):.1f} ms"


def _num(v) -> str:
    return "absent" if v is None or pd.isna(v) else f"{float(v):.2f}".rstrip("0").rstrip(".")
