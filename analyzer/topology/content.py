"""Findings from what the media carries, when it could be decoded (decrypted with the user's keys, or
plain RTP): a stream whose packets flow but whose audio is silence, and one-way audio confirmed by
content. No decoded audio, no finding: packet counts alone cannot tell a muted microphone."""

from __future__ import annotations

from .calls import Call
from .findings import Finding, Frame, _frames, _joins


def content_findings(a, calls: list[Call]) -> list[Finding]:
    if "audio" not in a.tables:
        return []
    au = a.audio
    if len(au) == 0:
        return []
    out: list[Finding] = []
    ends_of = {}
    for r in au.itertuples(index=False):
        ends = {(r.src, int(r.sport)), (r.dst, int(r.dport))}
        ends_of[r.stream, r.file] = frozenset(ends)
        if not r.silent:
            continue
        call = next((c.call for c in calls if _joins(c, ends)), None)
        out.append(Finding(
            call, "silent-media", "warning", "Audio packets flow, but the audio is silence",
            "The stream's packets arrive as they should; decoded, they carry no sound. That is a muted or "
            "broken microphone, or a sender that sends comfort silence: no network fault explains it.",
            f"{r.src}:{r.sport} -> {r.dst}:{r.dport} SSRC 0x{r.ssrc:08x} ({r.codec}): {r.silent_seconds} of "
            f"{r.seconds} seconds below -60 dBFS (mean level {r.level_dbfs_mean:.1f} dBFS), "
            f"{r.packets_decoded} packets decoded",
            "Check the sender's microphone, its mute state and the device the client uses.",
            _frames([Frame(x, r.file) for x in [r.first_frame, *r.silent_frames, r.last_frame]]),
        ))
    # one-way audio: a conversation (both directions decoded) where one side is silent, the other not
    for (stream, file), ends in ends_of.items():
        r = au[(au.stream == stream) & (au.file == file)].iloc[0]
        back = au[[ends_of[(s, f)] == ends and (s, f) != (stream, file) for s, f in zip(au.stream, au.file,
                                                                                         strict=True)]]
        if not r.silent or back.empty or back.silent.all():
            continue
        b = back[~back.silent].iloc[0]
        call = next((c.call for c in calls if _joins(c, set(ends))), None)
        out.append(Finding(
            call, "one-way-audio", "error", "One-way audio: one side's audio is silence",
            "Both directions carry packets, but only one carries sound: the other side will say it cannot "
            "hear. Confirmed from the decoded audio, not from packet counts.",
            f"{r.src}:{r.sport} -> {r.dst}:{r.dport} silent ({r.silent_seconds}/{r.seconds} s); "
            f"{b.src}:{b.sport} -> {b.dst}:{b.dport} audible (mean {b.level_dbfs_mean:.1f} dBFS"
            + (f", strongest tone {b.dominant_hz:.0f} Hz" if b.dominant_hz == b.dominant_hz else "") + ")",
            f"The silent sender is {r.src}: check its microphone and mute state.",
            _frames([Frame(x, r.file) for x in [r.first_frame, r.last_frame, b.first_frame, b.last_frame]]),
        ))
    return out
