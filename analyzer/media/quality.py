"""Listening-quality estimate for audio streams (ITU-T G.107 E-model, simplified) and the thresholds
of Teams' Call Quality Dashboard.

R = R0 - Is - Id - Ie_eff + A with G.107's default terminal, noise and echo parameters, which make
R0 - Is = 93.2; A = 0 (no advantage factor). Two terms depend on the network:

- Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl) (G.107 7.4), Ppl the packet loss in percent,
  BurstR from the stream's own loss runs (burst_ratio: 1 for random loss), Ie and Bpl per codec (CODECS).
- Id = Idd, the delay impairment of G.107 for the absolute one-way delay Ta (ms):
  Idd = 0 for Ta <= 100; else with X = log2(Ta / 100),
  Idd = 25 * ((1 + X^6)^(1/6) - 3 * (1 + (X / 3)^6)^(1/6) + 2).
  The echo terms Idte and Idle are left out (echo assumed cancelled). Ta is estimated as
  RTT / 2 (RTCP, else 0: the network delay is then not counted, `mos_delay_source` says so)
  + jitter buffer (JITTER_BUFFER_FACTOR x mean interarrival jitter, at least JITTER_BUFFER_MIN_MS)
  + packetisation time + codec look-ahead.

MOS from R (G.107 Annex B): 1 for R < 0, 4.5 for R > 100, else 1 + 0.035 R + R (R - 60) (100 - R) 7e-6,
kept at 1 or more (the polynomial dips to 0.99 for R below about 6.5).

Codec parameters (narrowband scale): ITU-T G.113 Appendix I: G.711 Ie 0 with Bpl 4.3 without packet
loss concealment and 25.1 with it (every current endpoint conceals, so 25.1 is used); G.729(A) Ie 11,
Bpl 19.0; G.723.1 (6.3 kbit/s) Ie 15, Bpl 16.1; GSM-EFR Ie 5, Bpl 10.0. Opus has no G.113 entry: we
take Ie 0 (transparent on the narrowband scale at speech bitrates) and Bpl 25.1, i.e. loss robustness
no better than G.711 with concealment -- a conservative, documented choice (Opus' own PLC and in-band
FEC do better). Unknown audio codecs get the G.711-with-PLC values.

Thresholds (docs/quality.md gives the sources): audio as the Teams Call Quality Dashboard's audio stream
classifier, poor when packet loss rate > 10 %, mean jitter > 30 ms or round trip > 500 ms, and also when
the E-model MOS is below POOR_MOS. CQD judges only streams of more than 500 packets; here a stream needs
only enough packets for its numbers to mean something (assemble.MIN_SCORE_PACKETS): a 500-packet floor
hid the worst streams, whose loss leaves fewer packets. Video: loss > 10 % or a frame rate below
7 frames/s (Lync/Skype QoE video classifier: VideoPacketLossRate > 0.1, RecvFrameRateAverage < 7), round
trip > 500 ms; no jitter threshold (a video frame's packets leave in a burst with one timestamp, so
interarrival jitter measures the pacing, not the network). Screen sharing: loss > 10 %, round trip > 500
ms; its frame rate follows the content, so no frame-rate threshold.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Codec(NamedTuple):
    name: str
    ie: float
    bpl: float
    lookahead_ms: float


CODECS: dict[str, Codec] = {
    "G711": Codec("G.711", 0.0, 25.1, 0.0),
    "G711-noplc": Codec("G.711 without PLC", 0.0, 4.3, 0.0),
    "G729": Codec("G.729", 11.0, 19.0, 5.0),
    "G723": Codec("G.723.1", 15.0, 16.1, 7.5),
    "GSM-EFR": Codec("GSM-EFR", 5.0, 10.0, 0.0),
    "opus": Codec("Opus (assumed values)", 0.0, 25.1, 6.5),
}
STATIC_CODECS = {0: "G711", 8: "G711", 18: "G729", 4: "G723"}
DEFAULT_CODEC = "G711"

R0_MINUS_IS = 93.2
JITTER_BUFFER_FACTOR = 2.0
JITTER_BUFFER_MIN_MS = 20.0

POOR_LOSS_PCT = 10.0
POOR_JITTER_MS = 30.0
POOR_RTT_MS = 500.0
POOR_MOS = 3.5
POOR_VIDEO_FPS = 7.0
UNUSABLE_LOSS_PCT = 40.0  # poor-media becomes an error: most speech is concealment, video freezes
UNUSABLE_MOS = 2.0


def codec_for(pt: int, clock_rate: int) -> Codec:
    """The codec parameters for a stream: static payload types by number, 48 kHz dynamic ones as Opus."""
    if pt in STATIC_CODECS:
        return CODECS[STATIC_CODECS[pt]]
    if pt >= 96 and clock_rate == 48000:
        return CODECS["opus"]
    return CODECS[DEFAULT_CODEC]


def ie_eff(codec: Codec, loss_pct: float, burst_ratio: float = 1.0) -> float:
    ppl = max(0.0, loss_pct)
    return codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)


def idd(ta_ms: float) -> float:
    """G.107 delay impairment for absolute one-way delay Ta in ms."""
    if ta_ms <= 100.0:
        return 0.0
    x = math.log2(ta_ms / 100.0)
    return 25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)


def r_to_mos(r: float) -> float:
    if r < 0:
        return 1.0
    if r > 100:
        return 4.5
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


class Score(NamedTuple):
    r_factor: float
    mos: float
    codec: str
    one_way_delay_ms: float
    delay_source: str
    ie_eff: float
    id: float


def burst_ratio(received: int, events: int, lost: int) -> float:
    """G.107's BurstR from the stream's own loss pattern, by the two-state (Gilbert) model the
    recommendation defines it with: p = losses starting per packet received, q = losses ending per packet
    lost, BurstR = 1 / (p + q). Random loss gives 1, loss in runs more; no loss, 1 (it then does not matter)."""
    if events <= 0 or lost <= 0 or received <= 0:
        return 1.0
    return 1.0 / (events / received + events / lost)


def score(
    loss_pct: float, jitter_ms: float, rtt_ms: float | None, ptime_ms: float, codec: Codec, burst: float = 1.0
) -> Score:
    """E-model estimate for one audio stream (see the module docstring for every parameter)."""
    buffer_ms = max(JITTER_BUFFER_MIN_MS, JITTER_BUFFER_FACTOR * max(jitter_ms, 0.0))
    network = rtt_ms / 2.0 if rtt_ms is not None and rtt_ms >= 0 else 0.0
    ta = network + buffer_ms + max(ptime_ms, 0.0) + codec.lookahead_ms
    source = "rtcp rtt / 2" if rtt_ms is not None and rtt_ms >= 0 else "no rtt: network delay not counted"
    i_e, i_d = ie_eff(codec, loss_pct, burst), idd(ta)
    r = R0_MINUS_IS - i_d - i_e
    return Score(r, r_to_mos(r), codec.name, ta, source, i_e, i_d)


def thresholds(loss_pct: float | None, jitter_ms_mean: float | None, rtt_ms: float | None,
               kind: str = "audio", frame_rate: float | None = None) -> dict[str, bool]:
    """poor_loss, poor_jitter, poor_rtt, poor_frame_rate and poor (any of them) for a stream of `kind`."""
    pl = loss_pct is not None and loss_pct > POOR_LOSS_PCT
    pj = kind == "audio" and jitter_ms_mean is not None and jitter_ms_mean > POOR_JITTER_MS
    pr = rtt_ms is not None and rtt_ms > POOR_RTT_MS
    pf = kind == "video" and frame_rate is not None and frame_rate < POOR_VIDEO_FPS
    return {"poor_loss": pl, "poor_jitter": pj, "poor_rtt": pr, "poor_frame_rate": pf, "poor": pl or pj or pr or pf}
