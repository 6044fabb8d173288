"""What a stream carries (audio, video, screen sharing) and at which RTP clock rate, from headers only.

Clock rate: a static payload type has its RFC 3551 rate. A dynamic one gets the nominal rate nearest
(in ratio) to the measured slope of RTP timestamp against arrival time, among DYNAMIC_RATES (Opus
48 kHz, video 90 kHz, and the narrow/wide/super-wideband rates), when within RATE_TOLERANCE; without a
usable slope, 90 kHz for large packets and 48 kHz otherwise (the WebRTC defaults).

Kind: the first rule that applies decides, and `kind_rule` names it:
1. MS-SERVICE-QUALITY (MS-ICE2 attribute 0x8055) on a STUN message of the same path: stream type
   1 audio, 2 video, 3 supplemental video (taken as screen sharing), 4 data (unknown);
2. a static payload type (RFC 3551 tables 4 and 5);
3. the relay-side port of Teams media: 3479 audio, 3480 video, 3481 screen sharing;
4. the DSCP mark: 46 (EF) audio, 34 (AF41) video, 18 (AF21) screen sharing;
5. the client port ranges of Teams with QoS: 50000-50019 audio, 50020-50039 video, 50040-50059 sharing;
   rules 3-5 are conventions, so they apply only where the clock rate agrees (90 kHz for video and
   screen sharing, an audio rate for audio): an ephemeral port or a blanket DSCP mark cannot turn
   a 90 kHz stream into audio;
6. the clock rate: 90 kHz is video; an audio rate with at most 120 packets/s of at most 600 bytes
   (mean payload) is audio;
7. packet size and rate alone: mean payload above 600 bytes is video; otherwise unknown.

Repair and probe streams (`repair_kinds`, decided after the rules above, over the streams of one path
and direction) carry no media of their own and are left out of a call's loss and quality:
- `padding`: at least PADDING_SHARE of the packets have the P bit set or no payload (bandwidth probes:
  libwebrtc sends padding-only packets, usually on the RTX SSRC);
- `rtx` (RFC 4588): another SSRC on the same path, with another payload type and more packets, sent
  packets with the same RTP timestamps (a retransmission keeps the original's timestamp, RFC 4588 4)
  for at least REPAIR_SHARE of this stream's packets without the P bit, and with a payload 2 bytes
  shorter (the original sequence number, OSN, that RTX prepends): SRTP keeps both, the tag being the
  same length;
- `fec` (ulpfec RFC 5109 / flexfec RFC 8627 on their own SSRC): the same timestamp match without the
  2-byte relation (a FEC packet is as long as the longest packet it protects plus its FEC header).
The timestamps compared are each stream's first core.KEEP_TS packets.
"""

from __future__ import annotations

import math

import numpy as np

from ..dissect.rtp_tables import payload_type_info
from .arith import signed32

DYNAMIC_RATES = (8000, 16000, 32000, 48000, 90000)
RATE_TOLERANCE = 0.25  # |measured / nominal - 1|, as a log ratio
VIDEO_PAYLOAD = 600  # bytes: mean payload above this looks like video
MAX_AUDIO_PPS = 120

PADDING_SHARE = 0.9
REPAIR_SHARE = 0.5
REPAIR_MIN_PACKETS = 4
REPAIR_KINDS = frozenset(("rtx", "fec", "padding"))

MS_STREAM_TYPES = {1: "audio", 2: "video", 3: "screen sharing", 4: "unknown"}
MS_STREAM_NAMES = {1: "audio", 2: "video", 3: "supplemental video", 4: "data"}
TEAMS_RELAY_PORTS = {3479: "audio", 3480: "video", 3481: "screen sharing"}
TEAMS_CLIENT_PORTS = ((50000, 50019, "audio"), (50020, 50039, "video"), (50040, 50059, "screen sharing"))
DSCP_KINDS = {46: ("audio", "EF"), 34: ("video", "AF41"), 18: ("screen sharing", "AF21")}


def measured_rate(ts_ns: np.ndarray, rtp_ts: np.ndarray) -> float | None:
    """RTP timestamp units per second of arrival time, first to last packet (None without a span)."""
    if ts_ns.size < 2 or ts_ns[-1] <= ts_ns[0]:
        return None
    span = float(np.sum(signed32(np.diff(rtp_ts.astype(np.int64)))))
    return span / ((ts_ns[-1] - ts_ns[0]) / 1e9) if span > 0 else None


def snap_rate(measured: float | None) -> int | None:
    """The nominal dynamic rate within RATE_TOLERANCE of the measured one, or None."""
    if not measured or measured <= 0:
        return None
    best = min(DYNAMIC_RATES, key=lambda r: abs(math.log(measured / r)))
    return best if abs(math.log(measured / best)) <= math.log(1 + RATE_TOLERANCE) else None


def rate_from_slope(ts_ns: np.ndarray, rtp_ts: np.ndarray, mean_payload: float) -> tuple[int, str, bool]:
    """(clock rate, rule, known) of a dynamic payload type from its first packets. Without a usable slope
    the rate is a default (known False): the stream's jitter and score are then absent."""
    m = measured_rate(ts_ns, rtp_ts)
    r = snap_rate(m)
    if r is not None:
        return r, f"dynamic payload type: timestamp slope {m:,.0f}/s over {ts_ns.size} packets fits {r} Hz", True
    if mean_payload > VIDEO_PAYLOAD:
        return 90000, "dynamic payload type, no usable timestamp slope: 90000 Hz for video-sized packets", False
    return 48000, "dynamic payload type, no usable timestamp slope: 48000 Hz (Opus) by default", False


def infer_kind(pt: int, rate: int, ports: tuple[int, int], dscp: int | None, packet_rate: float,
               mean_payload: float, ms_stream_type: int | None) -> tuple[str, str]:
    """(kind, rule) of a stream; ports = (wire sport, wire dport), dscp = the stream's usual mark."""
    if ms_stream_type in MS_STREAM_TYPES:
        return MS_STREAM_TYPES[ms_stream_type], (
            f"MS-SERVICE-QUALITY stream type {ms_stream_type} ({MS_STREAM_NAMES[ms_stream_type]}) on this path")
    info = payload_type_info(pt)
    if info is not None:
        return info.media, f"static payload type {pt} ({info.encoding}, RFC 3551)"
    def fits(k: str) -> bool:
        return (rate == 90000) == (k != "audio")

    for p in ports:
        if p in TEAMS_RELAY_PORTS and fits(TEAMS_RELAY_PORTS[p]):
            return TEAMS_RELAY_PORTS[p], f"Teams relay port {p} ({TEAMS_RELAY_PORTS[p]})"
    if dscp in DSCP_KINDS and fits(DSCP_KINDS[dscp][0]):
        k, name = DSCP_KINDS[dscp]
        return k, f"DSCP {dscp} ({name})"
    for p in ports:
        for lo, hi, k in TEAMS_CLIENT_PORTS:
            if lo <= p <= hi and fits(k):
                return k, f"Teams client port {p} in {lo}-{hi} ({k})"
    if rate == 90000:
        return "video", "90 kHz clock rate"
    if rate in DYNAMIC_RATES and packet_rate <= MAX_AUDIO_PPS and mean_payload <= VIDEO_PAYLOAD:
        return "audio", f"{rate} Hz clock, {packet_rate:.0f} packets/s of {mean_payload:.0f} bytes"
    if mean_payload > VIDEO_PAYLOAD:
        return "video", f"mean payload {mean_payload:.0f} bytes"
    return "unknown", "no rule applies"


def repair_kinds(rows: list[dict], keys: dict[int, np.ndarray]) -> dict[int, tuple[str, str]]:
    """{stream: (kind, rule)} for the padding, RTX and FEC streams among rows (see the module docstring).
    rows: stream rows with stream, ssrc, src, sport, dst, dport, relayed, channel, payload_type,
    packets, padding_packets, empty_packets; keys: stream -> (rtp_ts << 16 | payload_len) kept."""
    out: dict[int, tuple[str, str]] = {}
    paths: dict[tuple, list[dict]] = {}
    for r in rows:
        paths.setdefault((r["src"], r["sport"], r["dst"], r["dport"], r["relayed"], r["channel"]), []).append(r)
        pad = max(r["padding_packets"], r["empty_packets"])
        if r["packets"] and pad >= PADDING_SHARE * r["packets"]:
            out[r["stream"]] = ("padding", f"{pad} of {r['packets']} packets are padding only (P bit or no payload)")
    for group in paths.values():
        big = sorted(group, key=lambda r: -r["packets"])
        for s in group:
            if s["stream"] in out:
                continue
            ks = keys.get(s["stream"], np.zeros(0, np.int64))
            if ks.size < REPAIR_MIN_PACKETS:
                continue
            ts, ln = ks >> 16, ks & 0xFFFF
            for c in big:
                if c["packets"] <= s["packets"] or c["payload_type"] == s["payload_type"] or c["stream"] in out:
                    continue
                kc = keys.get(c["stream"], np.zeros(0, np.int64))
                inside = (ts >= (kc.min() >> 16)) & (ts <= (kc.max() >> 16)) if kc.size else ts < 0
                if inside.sum() < REPAIR_MIN_PACKETS:
                    continue
                same_ts = np.isin(ts[inside], kc >> 16)
                if same_ts.mean() < REPAIR_SHARE:
                    continue
                osn = np.isin(((ts[inside] << 16) | np.maximum(ln[inside] - 2, 0)), kc)
                what = f"{int(same_ts.sum())} of {int(inside.sum())} timestamps are those of SSRC {c['ssrc_hex']}"
                if osn.mean() >= REPAIR_SHARE:
                    out[s["stream"]] = ("rtx", f"{what}, payloads 2 bytes longer (RFC 4588 OSN)")
                else:
                    out[s["stream"]] = ("fec", f"{what}, payload lengths unrelated (FEC)")
                break
    return out
