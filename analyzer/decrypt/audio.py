"""What the audio says: RTP payloads decoded (Opus, G.711, G.722 through PyAV's FFmpeg decoders), a
level per second, the dominant frequency, WAV files.

Payloads are collected during the capture pass (after decryption, or from plain RTP) only when the
caller asks for audio: at most MAX_PACKETS per stream, so memory stays bounded by streams. Decoding
happens after the pass, when the media stage has said which streams are audio and at what clock rate:
packets in sequence order (extended over wrap), duplicates dropped, lost ones skipped.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..capture.addresses import addr_str
from ..dissect.media_rows import MediaBatch
from ..dissect.rtp import rtp_columns

MAX_PACKETS = 60_000  # 20 minutes of 20 ms packets per stream
MAX_PAYLOAD = 1_000  # bytes: larger RTP payloads are video, not audio
SILENCE_DBFS = -60.0  # below this a second is silence (digital silence decodes to -inf; room noise is ~-50)
SILENT_SHARE = 0.8  # a stream is silent when this share of its seconds is
MIN_TONE_HZ = 50.0

# codec by static payload type (RFC 3551); a dynamic type is Opus when its clock rate is 48 kHz
STATIC = {0: ("pcm_mulaw", 8_000), 8: ("pcm_alaw", 8_000), 9: ("g722", 16_000)}
Key = tuple[str, int, str, int, str, int, str, int, int]  # media 5-tuple, wire 5-tuple, ssrc


@dataclass
class _Stream:
    seq: list[int] = field(default_factory=list)
    ts_ns: list[int] = field(default_factory=list)
    frame: list[int] = field(default_factory=list)
    pt: list[int] = field(default_factory=list)
    payload: list[bytes] = field(default_factory=list)


class AudioCollector:
    """RTP payloads per stream, as the media stage will see them (plaintext when a key opened them)."""

    def __init__(self, file: int = 0) -> None:
        self.file = file
        self.streams: dict[Key, _Stream] = {}

    def add(self, mb: MediaBatch) -> None:
        idx = np.flatnonzero(~mb.rtcp & (mb.payload_len > 0) & (mb.payload_len <= MAX_PAYLOAD))
        if idx.size == 0:
            return
        cols = rtp_columns(mb.buf, mb.off[idx], mb.length[idx])
        for j, i in enumerate(idx.tolist()):
            if not cols.valid[j]:
                continue
            key = (addr_str(int(mb.src_hi[i]), int(mb.src_lo[i])), int(mb.sport[i]),
                   addr_str(int(mb.dst_hi[i]), int(mb.dst_lo[i])), int(mb.dport[i]),
                   addr_str(int(mb.wire_src_hi[i]), int(mb.wire_src_lo[i])), int(mb.wire_sport[i]),
                   addr_str(int(mb.wire_dst_hi[i]), int(mb.wire_dst_lo[i])), int(mb.wire_dport[i]), int(mb.ssrc[i]))
            s = self.streams.get(key)
            if s is None:
                s = self.streams[key] = _Stream()
            if len(s.seq) >= MAX_PACKETS:
                continue
            start = int(mb.off[i]) + int(cols.header_len[j])
            s.seq.append(int(mb.seq[i]))
            s.ts_ns.append(int(mb.ts_ns[i]))
            s.frame.append(int(mb.frame[i]))
            s.pt.append(int(mb.pt[i]))
            s.payload.append(mb.buf[start : start + int(cols.payload_len[j])].tobytes())


class Decoded:
    """One stream's decoded audio: mono float samples in [-1, 1] and the packet each sample came from."""

    def __init__(self, codec: str, rate: int, samples: np.ndarray, packet_ts_ns: np.ndarray,
                 packet_frames: np.ndarray, packet_start: np.ndarray, failed: int) -> None:
        self.codec, self.rate, self.samples, self.failed = codec, rate, samples, failed
        self.packet_ts_ns, self.packet_frames, self.packet_start = packet_ts_ns, packet_frames, packet_start


def codec_for(pt: int, clock_rate: int | None) -> tuple[str, int] | None:
    """(FFmpeg decoder, sample rate) for a payload type, or None when it cannot be known."""
    if pt in STATIC:
        return STATIC[pt]
    if pt >= 96 and clock_rate == 48_000:
        return "opus", 48_000
    return None


def decode(s: _Stream, codec: str, rate: int) -> Decoded:
    import av

    order = _sequence_order(np.asarray(s.seq, dtype=np.int64))
    ctx = av.CodecContext.create(codec, "r")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    chunks, starts, ts, frames, failed, total = [], [], [], [], 0, 0
    for i in order.tolist():
        try:
            out = ctx.decode(av.Packet(s.payload[i]))
        except (av.error.FFmpegError, ValueError):
            failed += 1
            continue
        got = [f.to_ndarray().astype(np.float64).reshape(f.samples, -1).mean(axis=1) if f.format.is_packed
               else f.to_ndarray().astype(np.float64).mean(axis=0) for f in out]
        if not got:
            continue
        pcm = np.concatenate(got)
        if out[0].format.name.startswith("s16"):
            pcm /= 32768.0
        elif out[0].format.name.startswith("s32"):
            pcm /= 2147483648.0
        starts.append(total)
        ts.append(s.ts_ns[i])
        frames.append(s.frame[i])
        chunks.append(pcm)
        total += pcm.size
    samples = np.concatenate(chunks) if chunks else np.zeros(0)
    return Decoded(codec, rate, samples, np.asarray(ts, dtype=np.int64), np.asarray(frames, dtype=np.int64),
                   np.asarray(starts, dtype=np.int64), failed)


def _sequence_order(seq: np.ndarray) -> np.ndarray:
    """Indices in extended sequence order, each sequence number once (the first arrival)."""
    if seq.size == 0:
        return seq
    step = np.diff(seq)
    wraps = np.concatenate([[0], np.cumsum(np.where(step < -0x8000, 1, 0) - np.where(step > 0x8000, 1, 0))])
    ext = seq + wraps * 0x10000
    _, first = np.unique(ext, return_index=True)
    return first[np.argsort(ext[first], kind="stable")]


def levels_per_second(d: Decoded) -> tuple[np.ndarray, np.ndarray]:
    """(epoch second, level in dBFS) for each capture second that holds decoded audio."""
    if d.samples.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ends = np.concatenate([d.packet_start[1:], [d.samples.size]])
    energy = np.add.reduceat(d.samples**2, d.packet_start) if d.packet_start.size else np.zeros(0)
    count = ends - d.packet_start
    sec = d.packet_ts_ns // 1_000_000_000
    secs, inv = np.unique(sec, return_inverse=True)
    e = np.bincount(inv, weights=energy)
    n = np.bincount(inv, weights=count)
    with np.errstate(divide="ignore"):
        level = 10 * np.log10(np.where(n > 0, e / np.maximum(n, 1), 0.0))
    return secs, np.maximum(level, -120.0)


def dominant_hz(d: Decoded) -> float | None:
    """The strongest frequency of the whole stream (FFT of up to 10 s of its samples), None for silence."""
    x = d.samples[: d.rate * 10]
    if x.size < d.rate or float(np.sqrt(np.mean(x**2))) < 10 ** (SILENCE_DBFS / 20):
        return None  # under a second a "strongest tone" is not worth saying
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freq = np.fft.rfftfreq(x.size, 1 / d.rate)
    spec[freq < MIN_TONE_HZ] = 0.0  # DC and rumble are not a tone
    return float(freq[int(np.argmax(spec))])


def write_wav(d: Decoded, path: Path) -> Path:
    pcm = np.clip(np.round(d.samples * 32768.0), -32768, 32767).astype("<i2")  # the inverse of decode()'s scale
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(d.rate)
        w.writeframes(pcm.tobytes())
    return path
