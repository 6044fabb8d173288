"""The decrypt stage's tables: what each key opened, per sender and SSRC, and the key status of each
DTLS handshake."""

from __future__ import annotations

import pandas as pd

COUNTERS = ("decrypted", "auth_failed", "repeated", "failed_other")  # what the stage counts per packet
COLUMNS = ("file", "src", "sport", "dst", "dport", "wire_src", "wire_sport", "wire_dst", "wire_dport", "ssrc", "rtcp",
           *COUNTERS)
KEYS = ["file", "src", "sport", "dst", "dport", "wire_src", "wire_sport", "wire_dst", "wire_dport", "ssrc"]


def decryption_table(stages: list) -> pd.DataFrame:
    rows = [r for st in stages for r in st.stream_counts()]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in ("sport", "dport", "wire_sport", "wire_dport", "ssrc", *COUNTERS):
        df[c] = df[c].astype("int64")
    df["rtcp"] = df["rtcp"].astype(bool)
    df["ssrc_hex"] = df.ssrc.map(lambda v: f"0x{v:08x}")
    return df.sort_values(["file", "rtcp", "src", "sport", "ssrc"], ignore_index=True)


def with_decryption(streams: pd.DataFrame, dec: pd.DataFrame) -> pd.DataFrame:
    """streams + srtp_decrypted / srtp_auth_failed / srtp_repeated; a stream the key opened is SRTP."""
    rtp = dec[~dec.rtcp][[*KEYS, "decrypted", "auth_failed", "repeated"]].rename(
        columns={"decrypted": "srtp_decrypted", "auth_failed": "srtp_auth_failed", "repeated": "srtp_repeated"})
    left = streams.astype({"src": str, "dst": str, "wire_src": str, "wire_dst": str}) if len(streams) else streams
    out = left.merge(rtp, on=KEYS, how="left") if len(streams) else streams.assign(
        srtp_decrypted=pd.Series(dtype="Int64"), srtp_auth_failed=pd.Series(dtype="Int64"),
        srtp_repeated=pd.Series(dtype="Int64"))
    for c in ("srtp_decrypted", "srtp_auth_failed", "srtp_repeated"):
        out[c] = out[c].astype("Int64")
    opened = out.srtp_decrypted.fillna(0) > 0
    if opened.any():
        out["srtp"] = out.srtp.astype("boolean").mask(opened, True)
        out["srtp_rule"] = out.srtp_rule.where(~opened, "decrypted with the user's key (authenticated)")
    for c in ("src", "dst", "wire_src", "wire_dst"):
        if c in streams and isinstance(streams[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("category")
    return out


def with_keys(sessions: pd.DataFrame, stages: list) -> pd.DataFrame:
    """dtls_sessions + `keys`: derived, or why not ('keys not available: ...'; never an error)."""
    status = {(st.file, i): k.status for st in stages for i, k in st.dtls_keys.items()}
    out = sessions.copy()
    out["keys"] = [status.get((f, s), "keys not available: no SRTP of this handshake was seen")
                   for f, s in zip(out.file, out.session, strict=True)]
    return out


AUDIO_COLUMNS = (
    "file", "stream", "ssrc", "src", "sport", "dst", "dport", "payload_type", "codec", "sample_rate",
    "packets_decoded", "decode_failed", "audio_s", "seconds", "silent_seconds", "silent_share", "silent",
    "level_dbfs_mean", "level_dbfs_max", "dominant_hz", "first_frame", "last_frame", "silent_frames",
)


def decode_streams(streams: pd.DataFrame, collectors: list) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(audio table, {(file, stream): Decoded}, level series) for every audio stream with a known codec."""
    from .audio import SILENCE_DBFS, SILENT_SHARE, codec_for, decode, dominant_hz, levels_per_second

    by_key = {(c.file, *k): s for c in collectors for k, s in c.streams.items()}
    rows, decoded, series = [], {}, []
    audio = streams[streams.kind.astype(str) == "audio"] if len(streams) else streams
    opened = audio.srtp_decrypted.fillna(0) > 0 if "srtp_decrypted" in audio else False
    plain = audio.srtp.astype("boolean").fillna(True) == False  # noqa: E712  (unknown counts as encrypted)
    audio = audio[plain | opened]  # ciphertext decodes to noise, never to audio: only plaintext is decoded
    for r in audio.itertuples(index=False):
        s = by_key.get((r.file, str(r.src), int(r.sport), str(r.dst), int(r.dport), str(r.wire_src),
                        int(r.wire_sport), str(r.wire_dst), int(r.wire_dport), int(r.ssrc)))
        if s is None or not s.payload:
            continue
        rate = int(r.clock_rate) if pd.notna(r.clock_rate) else None
        codec = codec_for(int(r.payload_type), rate)
        if codec is None:
            continue
        d = decode(s, *codec)
        decoded[(r.file, r.stream)] = d
        secs, level = levels_per_second(d)
        silent = level < SILENCE_DBFS
        quiet_frames = sorted({f for f, t in zip(d.packet_frames.tolist(), (d.packet_ts_ns // 1_000_000_000).tolist(),
                                                 strict=True) if t in set(secs[silent].tolist())})
        series.append(pd.DataFrame({"file": r.file, "stream": r.stream,
                                    "second": pd.to_datetime(secs, unit="s", utc=True), "level_dbfs": level}))
        share = float(silent.mean()) if secs.size else float("nan")
        rows.append({
            "file": r.file, "stream": r.stream, "ssrc": int(r.ssrc), "src": str(r.src), "sport": int(r.sport),
            "dst": str(r.dst), "dport": int(r.dport), "payload_type": int(r.payload_type), "codec": codec[0],
            "sample_rate": codec[1], "packets_decoded": int(d.packet_start.size), "decode_failed": d.failed,
            "audio_s": d.samples.size / codec[1], "seconds": int(secs.size), "silent_seconds": int(silent.sum()),
            "silent_share": share, "silent": bool(secs.size >= 2 and share >= SILENT_SHARE),
            "level_dbfs_mean": float(level.mean()) if level.size else float("nan"),
            "level_dbfs_max": float(level.max()) if level.size else float("nan"),
            "dominant_hz": dominant_hz(d), "first_frame": int(d.packet_frames.min()) if d.packet_frames.size else None,
            "last_frame": int(d.packet_frames.max()) if d.packet_frames.size else None,
            "silent_frames": quiet_frames[:1] + quiet_frames[-1:] if quiet_frames else [],
        })
    table = pd.DataFrame(rows, columns=list(AUDIO_COLUMNS))
    for c in ("first_frame", "last_frame"):
        table[c] = table[c].astype("Int64")
    table["dominant_hz"] = table["dominant_hz"].astype("float64")
    levels = pd.concat(series, ignore_index=True) if series else pd.DataFrame(
        {"file": pd.Series(dtype="int64"), "stream": pd.Series(dtype="int64"),
         "second": pd.Series(dtype="datetime64[ns, UTC]"), "level_dbfs": pd.Series(dtype="float64")})
    return table, decoded, levels
