"""The capture with its SRTP and SRTCP replaced by their plaintext, for Wireshark to play and analyse.

During the capture pass the decrypt stage spills each opened packet (frame, the clear header that finds
it again in the frame, its length, the plaintext) to a temporary file, so memory stays bounded whatever
the capture's size. The copy (annotate.copy) then streams the capture and rewrites those frames.

The rewrite keeps every packet's length, so no IP, UDP, TURN or TCP length or sequence number changes:
the bytes the authentication tag (and SRTCP's index) took become padding. An RTP packet gets the P bit
and a padding count (RFC 3550 5.1), so Wireshark's RTP dissector and player see exactly the payload.
An RTCP compound gets its last packet padded (RFC 3550 6.4.1) when the freed bytes are a whole number
of 32-bit words (AEAD profiles, HMAC_SHA1_32); with HMAC_SHA1_80's 14 bytes they are not, and that SRTCP
packet stays as it was (counted).
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable

_HEAD = struct.Struct("<QBBII")  # frame, rtcp, needle length, original length, plaintext length


class Spill:
    """Append-only store of opened packets, read back in frame order, one chunk of frames at a time."""

    def __init__(self) -> None:
        self.f = tempfile.TemporaryFile(prefix="callflow-plain-")  # noqa: SIM115 (lives as long as the Analysis)
        self.count = 0
        self.not_rewritable = 0
        self._reading = False
        self._next: tuple | None = None

    def add(self, frame: int, rtcp: bool, needle: bytes, orig_len: int, plain: bytes) -> None:
        self.f.write(_HEAD.pack(frame, rtcp, len(needle), orig_len, len(plain)) + needle + plain)
        self.count += 1

    def _read(self) -> tuple | None:
        head = self.f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return None
        frame, rtcp, nl, ol, pl = _HEAD.unpack(head)
        body = self.f.read(nl + pl)
        return frame, bool(rtcp), body[:nl], ol, body[nl:]

    def take(self, first: int, stop: int) -> dict[int, Callable[[bytes], bytes | None]]:
        """{frame: rewrite} for frames in [first, stop) (the copy asks for each chunk in order)."""
        if not self._reading:
            self.f.seek(0)
            self._reading, self._next = True, self._read()
        out: dict[int, list] = {}
        while self._next is not None and self._next[0] < stop:
            frame, *rest = self._next
            if frame >= first:
                out.setdefault(frame, []).append(rest)
            self._next = self._read()
        return {frame: _rewriter(items, self) for frame, items in out.items()}

    def close(self) -> None:
        self.f.close()


def _rewriter(items: list, spill: Spill) -> Callable[[bytes], bytes | None]:
    def rewrite(data: bytes) -> bytes | None:
        buf = bytearray(data)
        done = False
        for rtcp, needle, orig_len, plain in items:
            at = buf.find(needle)
            if at < 0 or at + orig_len > len(buf):
                continue
            new = rtcp_in_place(plain, orig_len) if rtcp else rtp_in_place(plain, orig_len)
            if new is None:
                spill.not_rewritable += 1
                continue
            buf[at : at + orig_len] = new
            done = True
        return bytes(buf) if done else None

    return rewrite


def rtp_in_place(plain: bytes, size: int) -> bytes | None:
    """The RTP packet `plain` grown to `size` bytes with RTP padding (P bit, count in the last byte)."""
    extra = size - len(plain)
    if extra < 0 or len(plain) < 12:
        return None
    if extra == 0:
        return plain
    had = plain[-1] if plain[0] & 0x20 else 0
    count = had + extra
    if count > 255:
        return None
    body = bytearray(plain[: len(plain) - had])
    body[0] |= 0x20
    return bytes(body) + bytes(count - 1) + bytes([count])


def rtcp_in_place(plain: bytes, size: int) -> bytes | None:
    """The RTCP compound `plain` grown to `size` bytes by padding its last packet, when whole words."""
    extra = size - len(plain)
    if extra < 0 or len(plain) < 4:
        return None
    if extra == 0:
        return plain
    if extra % 4:
        return None
    pos, last = 0, None
    while pos + 4 <= len(plain):  # find the last packet of the compound
        words = struct.unpack_from(">H", plain, pos + 2)[0]
        last, pos = pos, pos + 4 * (words + 1)
    if last is None or pos != len(plain):
        return None
    had = plain[-1] if plain[last] & 0x20 else 0
    count = had + extra
    if count > 255:
        return None
    body = bytearray(plain[: len(plain) - had])
    body[last] |= 0x20
    words = struct.unpack_from(">H", body, last + 2)[0] + extra // 4
    struct.pack_into(">H", body, last + 2, words)
    return bytes(body) + bytes(count - 1) + bytes([count])
