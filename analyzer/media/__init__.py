"""Media stage: per-SSRC RTP streams measured from their headers (loss, jitter, bitrate, gaps, kind),
RTCP reports, per-direction one-way and asymmetric-path checks, and an E-model score for audio."""

from .streams import MediaResult, MediaStage

__all__ = ["MediaResult", "MediaStage"]
