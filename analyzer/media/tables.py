"""The media stage's rows as pandas DataFrames: `streams`, `media_timeseries`, `rtcp_reports`,
`media_directions` (the stable `streams` columns of docs/tables.md first, then the rest)."""

from __future__ import annotations

import pandas as pd

from .rtcp_track import REPORT_COLUMNS
from .streams import MediaResult

STREAM_COLUMNS = (
    "file", "stream", "ssrc", "src", "sport", "dst", "dport", "relayed", "payload_type", "kind", "packets", "lost",
    "loss_pct", "jitter_ms_max",
    "ssrc_hex", "channel", "wire_src", "wire_sport", "wire_dst", "wire_dport", "transport", "payload_types",
    "pt_changes", "kind_rule", "clock_rate", "clock_rate_rule", "clock_rate_measured", "clock_rate_fit",
    "first_ts", "last_ts", "first_ts_ns", "last_ts_ns", "duration_s", "first_frame", "last_frame", "bytes",
    "payload_bytes", "packet_rate", "bitrate_kbps_mean", "bitrate_kbps_peak", "expected", "duplicates",
    "out_of_order", "seq_resets", "loss_events", "loss_burst_max", "burst_ratio", "jitter_ms_mean",
    "jitter_ms_final", "longest_gap_ms", "gaps_over_200ms", "gaps",
    "markers", "video_frames", "frame_rate", "extension_packets", "extension_profiles", "dscp", "ptime_ms", "srtp",
    "srtp_rule", "dtls_session", "srtp_profile", "dtls_completed_ts", "dtls_to_media_ms", "rtcp_reports",
    "rtcp_fraction_lost", "rtcp_fraction_lost_max", "rtcp_cumulative_lost", "rtcp_jitter_ms", "rtcp_jitter_ms_max",
    "rtt_ms", "rtcp_feedback", "r_factor", "mos", "mos_codec", "mos_delay_ms", "mos_delay_source", "poor_loss",
    "poor_jitter", "poor_rtt", "poor_frame_rate", "poor", "confirmed", "clock_rate_known", "seq_wild",
    "padding_packets", "empty_packets",
)
_INT = ("video_frames", "dtls_session", "rtcp_reports", "rtcp_cumulative_lost")
_CATEGORIES = ("src", "dst", "wire_src", "wire_dst", "kind", "transport")
TS_COLUMNS = ("file", "stream", "ssrc", "second", "packets", "bytes", "bitrate_kbps", "expected", "lost", "loss_pct",
              "jitter_ms", "jitter_ms_max", "first_frame", "last_frame")
DIRECTION_COLUMNS = ("file", "conversation", "sender", "sender_port", "receiver", "receiver_port", "streams", "ssrcs",
                     "kinds", "packets", "first_ts", "last_ts", "path", "reverse_path", "asymmetric", "one_way",
                     "silent_s", "silent_intervals")


_FLOAT = ("jitter_ms_mean", "jitter_ms_max", "jitter_ms_final",
          "clock_rate_measured", "bitrate_kbps_mean", "bitrate_kbps_peak", "frame_rate", "dtls_to_media_ms",
          "rtcp_fraction_lost", "rtcp_fraction_lost_max", "rtcp_jitter_ms", "rtcp_jitter_ms_max", "rtt_ms", "r_factor",
          "mos", "mos_delay_ms")


def _ts(ns: pd.Series) -> pd.Series:
    return pd.to_datetime(ns.astype("Int64"), unit="ns", utc=True)


def streams_table(results: list[MediaResult], *, unconfirmed: bool = False) -> pd.DataFrame:
    """One row per RTP stream (SSRC, direction, path); streams that never looked like RTP (too few
    packets, sequence numbers all over the place) are left out unless `unconfirmed`."""
    rows = [r for res in results for r in res.streams if unconfirmed or r["confirmed"]]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(STREAM_COLUMNS))
    df["first_ts"] = _ts(df["first_ts_ns"])
    df["last_ts"] = _ts(df["last_ts_ns"])
    df["dtls_completed_ts"] = _ts(df["dtls_completed_ts_ns"])
    for c in _FLOAT:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in _INT:
        df[c] = df[c].astype("Int64")
    df["srtp"] = df["srtp"].astype("boolean")
    df["clock_rate_fit"] = df["clock_rate_fit"].astype("boolean")
    for c in ("poor_loss", "poor_jitter", "poor_rtt", "poor_frame_rate", "poor"):
        df[c] = df[c].astype("boolean")
    for c in _CATEGORIES:
        df[c] = df[c].astype("category")
    return df[list(STREAM_COLUMNS)].sort_values(["file", "first_frame", "stream"]).reset_index(drop=True)


def timeseries_table(results: list[MediaResult]) -> pd.DataFrame:
    """Per stream and second: packets, bytes, bitrate, expected, lost, loss %, jitter (mean, max) in ms."""
    parts = []
    for res in results:
        t = res.timeseries
        if not t or t["stream"].size == 0:
            continue
        ssrc = {r["stream"]: r["ssrc"] for r in res.streams}
        df = pd.DataFrame({k: v for k, v in t.items() if k != "second_ns"})
        df.insert(0, "file", res.file)
        df.insert(2, "ssrc", df["stream"].map(ssrc).astype("int64"))
        df.insert(3, "second", pd.to_datetime(t["second_ns"], unit="ns", utc=True))
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=list(TS_COLUMNS))
    return pd.concat(parts, ignore_index=True).sort_values(["file", "stream", "second"]).reset_index(drop=True)[
        list(TS_COLUMNS)]


def rtcp_reports_table(results: list[MediaResult]) -> pd.DataFrame:
    """One row per RTCP report block (an SR or RR without blocks, or an encrypted SRTCP compound: one row)."""
    rows = [r for res in results for r in res.rtcp_reports]
    df = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    df.insert(3, "ts", pd.to_datetime(df["ts_ns"].astype("int64"), unit="ns", utc=True))
    for c in ("reporter_ssrc", "source_ssrc", "cumulative_lost", "highest_seq", "jitter", "lsr", "dlsr", "sr_rtp_ts",
              "sr_packets", "sr_octets"):
        df[c] = df[c].astype("Int64")
    from ..dissect.tables import nullable_ints  # NTP timestamps are 64-bit: never through float64

    df["sr_ntp"] = nullable_ints([r.get("sr_ntp") for r in rows], "UInt64")
    return df.sort_values(["file", "frame"], kind="stable").reset_index(drop=True)


def directions_table(results: list[MediaResult]) -> pd.DataFrame:
    """One row per conversation direction: one-way media and asymmetric paths."""
    rows = [r for res in results for r in res.directions]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(DIRECTION_COLUMNS))
    df["first_ts"] = _ts(df["first_ts_ns"])
    df["last_ts"] = _ts(df["last_ts_ns"])
    return df[list(DIRECTION_COLUMNS)]
