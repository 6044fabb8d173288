"""TURN framing (sans-I/O): ChannelData, MS-TURN multiplexed packets, Send/Data payloads, and a
deframer that splits a TCP byte stream into messages.

Stream framings the deframer recognises on its own, from the first bytes of each direction:

* plain TURN over TCP (RFC 8656 section 12.5): STUN messages (20 + length) and ChannelData
  (4 + length, padded to 4) back to back;
* RFC 4571 / RFC 6544 ICE-TCP: a 2-byte length before every packet; recognised, as Wireshark does,
  when bytes 6..9 of the stream are the STUN cookie;
* MS-TURN over TCP ([MS-TURN] 2.1.1 and 2.1.4): an optional pseudo-TLS hello (a TLS 1.0 handshake
  record whose only cipher suite is 0x0018), then frames of type (0x02 TURN control, 0x03 end-to-end
  data), one reserved zero byte and a 2-byte length of what follows;
* anything else (real TLS, HTTP, ...): reported once as kind 'other' with `malformed` saying why,
  after which the stream is ignored.

Each complete message comes out as a Framed value whose kind says what its payload holds: 'stun',
'channeldata', 'ms-multiplexed', 'pseudo-tls', or 'other' (an ICE-TCP / MS-TURN data frame carrying
something else, e.g. RTP or DTLS, with `malformed=None`; or skipped garbage / an abandoned stream, with
`malformed` set)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from .stun import Address, StunMessage, looks_like_stun
from .stun_tables import COOKIE, MS_COOKIE_ATTR, MS_SEND_REQUEST

__all__ = [
    "ChannelData",
    "Framed",
    "MsMultiplexed",
    "TcpDeframer",
    "parse_channeldata",
    "parse_ms_multiplexed",
    "relayed_payload",
]

MS_MULTIPLEX_CHANNEL = 0xFF10
MAX_GARBAGE = 64 * 1024  # give up on a resync after this many unrecognised bytes and say so
PSEUDO_TLS_CIPHER = 0x0018  # the single cipher suite of MS-TURN's pseudo-TLS hellos
_MAX_TLS_RECORD = 16384 + 2048
_MIDSTREAM_WINDOW = 4096  # how far into an unrecognised stream start a STUN header is looked for
# First bytes of HTTP on a TURN port (proxies, health checks); 'G' would otherwise read as ChannelData.
_TEXT_PROTOCOLS = frozenset({b"GET ", b"POST", b"PUT ", b"HEAD", b"HTTP", b"CONN", b"OPTI", b"PRI "})


class ChannelData(NamedTuple):
    channel: int
    length: int  # the header's length field
    data: bytes
    size: int  # bytes consumed, padding included when present
    padded: bool
    malformed: str | None = None


class MsMultiplexed(NamedTuple):
    session_id: str  # hex of the 8-byte MTURN_Session_ID
    data: bytes
    malformed: str | None = None


class Framed(NamedTuple):
    frame: int  # the frame in which this message completed
    kind: str  # 'stun' | 'channeldata' | 'ms-multiplexed' | 'pseudo-tls' | 'other'
    payload: bytes
    malformed: str | None = None


def parse_channeldata(data: bytes, *, tcp: bool = False) -> ChannelData:
    """TURN ChannelData (RFC 8656 section 12.4): channel (2), length (2), data, padding to 4 bytes
    (mandatory over TCP, optional over UDP). Never raises."""
    data = bytes(data)
    if len(data) < 4:
        return ChannelData(0, 0, b"", len(data), False, f"truncated: {len(data)} bytes, the header needs 4")
    channel, length = struct.unpack_from("!HH", data)
    problems = []
    if not 0x4000 <= channel <= 0x7FFF:
        problems.append(f"channel 0x{channel:04X} outside 0x4000-0x7FFF")
    body = data[4 : 4 + length]
    padded_size = 4 + ((length + 3) & ~3)
    if len(body) < length:
        problems.append(f"length {length} exceeds the {len(body)} bytes after the header")
        size = len(data)
    elif len(data) >= padded_size:
        size = padded_size
    else:
        size = len(data)
        if tcp:
            problems.append("padding to 4 bytes missing over TCP")
    return ChannelData(channel, length, body, size, size > 4 + length, "; ".join(problems) or None)


def parse_ms_multiplexed(data: bytes) -> MsMultiplexed | None:
    """MS-TURN multiplexed TURN packet, or None when data does not start with channel 0xFF10.

    Layout ([MS-TURN] 2.2.3, and Wireshark's packet-stun.c): Channel_ID 0xFF10 (2 bytes), Length
    (2 bytes: the bytes after the Length field, i.e. session id + data), MTURN_Session_ID (8 bytes),
    Data. In ntop_nDPI/teams.pcap frame 1424 the length is 96 = 8 + an 88-byte STUN message."""
    data = bytes(data)
    if len(data) < 2 or struct.unpack_from("!H", data)[0] != MS_MULTIPLEX_CHANNEL:
        return None
    if len(data) < 4:
        return MsMultiplexed("", b"", "truncated header")
    length = struct.unpack_from("!H", data, 2)[0]
    body = data[4 : 4 + length]
    if length < 8:
        return MsMultiplexed(body.hex(), b"", f"length {length} too short for the 8-byte session id")
    if len(body) < length:
        return MsMultiplexed(body[:8].hex(), body[8:], f"length {length} exceeds the {len(body)} bytes present")
    return MsMultiplexed(body[:8].hex(), body[8:])


def relayed_payload(msg: StunMessage) -> tuple[Address, bytes] | None:
    """(peer address, inner bytes) of a TURN Send/Data indication, or of an MS-TURN Send request or
    Data indication; None for other messages or when either attribute is missing. The inner bytes are
    a packet between the relayed address and the peer and should be dissected again as such."""
    relaying = msg.method_name in ("Send", "Data") and (
        msg.cls == "indication" or (msg.legacy_ms and msg.msg_type == MS_SEND_REQUEST)
    )
    peer, data = msg.xor_peer, msg.data
    if not relaying or peer is None or data is None:
        return None
    return peer, data


def classify(payload: bytes) -> str:
    """What a framed payload holds: 'stun', 'channeldata', 'ms-multiplexed' or 'other'."""
    if looks_like_stun(payload):
        return "stun"
    if payload[:2] == b"\xff\x10" and len(payload) >= 12:
        return "ms-multiplexed"
    if len(payload) >= 4 and 0x40 <= payload[0] <= 0x7F:
        return "channeldata"
    return "other"


def _hello_cipher_suites(record: bytes) -> tuple[int, ...] | None:
    """Cipher suites offered by a TLS ClientHello record or chosen by a ServerHello, else None."""
    if len(record) < 9 + 2 + 32 + 1 or record[5] not in (1, 2):
        return None
    off = 9 + 2 + 32  # record header, handshake header, version, random
    off += 1 + record[off]  # session id
    if record[5] == 2:
        return struct.unpack_from("!H", record, off) if off + 2 <= len(record) else None
    if off + 2 > len(record):
        return None
    n = struct.unpack_from("!H", record, off)[0]
    if off + 2 + n > len(record):
        return None
    return struct.unpack_from(f"!{n // 2}H", record, off + 2)


def _stun_start(buf: bytearray, pos: int) -> bool | None:
    """Is there a plausible STUN header at buf[pos:]? None while too few bytes tell."""
    if len(buf) - pos < 8:
        return None if len(buf) <= pos or not buf[pos] & 0xC0 else False
    if buf[pos] & 0xC0:
        return False
    if buf[pos + 4 : pos + 8] == COOKIE:
        return True
    if len(buf) - pos < 28:
        return None
    return buf[pos + 20 : pos + 28] == MS_COOKIE_ATTR


class TcpDeframer:
    """Splits one direction of a TCP stream (in-order bytes, the caller reassembles) into messages.

    Memory stays bounded: the buffer holds at most one incomplete message (< 64 KiB + 20 bytes) plus
    the last chunk fed, and unrecognised bytes are dropped as they are skipped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._mode: str | None = None  # None until detected, then 'turn' | 'rfc4571' | 'ms' | 'stopped'
        self._skipped = bytearray()

    @property
    def mode(self) -> str | None:
        """The framing detected so far: None, 'turn', 'rfc4571', 'ms' or 'stopped'."""
        return self._mode

    def feed(self, data: bytes, frame: int) -> list[Framed]:
        """Consume the next stream bytes (carried by `frame`); return every message completed."""
        if self._mode == "stopped":
            return []
        self._buf += data
        out: list[Framed] = []
        if self._mode is None:
            self._detect(frame, out)
        pos = 0
        if self._mode == "turn":
            pos = self._turn(frame, out)
        elif self._mode == "rfc4571":
            pos = self._rfc4571(frame, out)
        elif self._mode == "ms":
            pos = self._ms(frame, out)
        if pos:
            del self._buf[:pos]
        return out

    # -- detection ---------------------------------------------------------------------------

    def _detect(self, frame: int, out: list[Framed]) -> None:
        buf = self._buf
        if len(buf) < 2:
            return
        if buf[:2] == b"\x16\x03":  # a TLS handshake record: MS-TURN's pseudo-TLS, or the real thing
            if len(buf) < 5:
                return
            rec_len = struct.unpack_from("!H", buf, 3)[0]
            if rec_len > _MAX_TLS_RECORD:
                return self._stop(frame, out, "not a TURN stream: TLS-like record with a bad header")
            if len(buf) < 5 + rec_len:
                return
            record = bytes(buf[: 5 + rec_len])
            if _hello_cipher_suites(record) != (PSEUDO_TLS_CIPHER,):
                return self._stop(frame, out, "not a TURN stream: TLS")
            out.append(Framed(frame, "pseudo-tls", record))
            del buf[: 5 + rec_len]
            self._mode = "ms"
            return
        if len(buf) < 4:
            return
        if bytes(buf[:4]) in _TEXT_PROTOCOLS:
            return self._stop(frame, out, "not a TURN stream: HTTP")
        if len(buf) >= 10 and buf[6:10] == COOKIE:
            self._mode = "rfc4571"
            return
        if buf[0] in (2, 3) and buf[1] == 0:  # MS-TURN framing without pseudo-TLS: a TURN message inside
            inside = _stun_start(buf, 4)
            if inside is None:
                return
            if inside:
                self._mode = "ms"
                return
        if 0x40 <= buf[0] <= 0x7F:
            self._mode = "turn"
            return
        start = _stun_start(buf, 0)
        if start is None and len(buf) < 28:
            return
        if start:
            self._mode = "turn"
            return
        if not self._join_midstream(frame, out):
            self._stop(frame, out, "not a TURN stream: unknown bytes")

    def _join_midstream(self, frame: int, out: list[Framed]) -> bool:
        """The capture may start inside a message: look for a STUN header (cookie) in the first
        bytes, skip what precedes it as garbage, and take the framing it shows."""
        buf = self._buf
        hit = buf.find(COOKIE, 4, _MIDSTREAM_WINDOW)
        while hit != -1 and buf[hit - 4] & 0xC0:
            hit = buf.find(COOKIE, hit + 1, _MIDSTREAM_WINDOW)
        if hit == -1:
            return False
        start, self._mode = hit - 4, "turn"
        if hit >= 6 and struct.unpack_from("!H", buf, hit - 6)[0] == 20 + struct.unpack_from("!H", buf, hit - 2)[0]:
            start, self._mode = hit - 6, "rfc4571"
        self._skip(frame, out, 0, start)
        del buf[:start]
        return True

    def _stop(self, frame: int, out: list[Framed], reason: str) -> None:
        out.append(Framed(frame, "other", bytes(self._buf[:MAX_GARBAGE]), reason))
        self._buf.clear()
        self._mode = "stopped"

    # -- per framing -------------------------------------------------------------------------

    def _emit(self, frame: int, out: list[Framed], kind: str, payload: bytes) -> None:
        if self._skipped:
            out.append(self._garbage(frame))
        out.append(Framed(frame, kind, payload))

    def _garbage(self, frame: int) -> Framed:
        skipped = bytes(self._skipped)
        self._skipped.clear()
        return Framed(frame, "other", skipped, f"{len(skipped)} bytes of garbage skipped")

    def _skip(self, frame: int, out: list[Framed], pos: int, upto: int) -> int:
        self._skipped += self._buf[pos:upto]
        while len(self._skipped) >= MAX_GARBAGE:  # report in 64 KiB pieces, keep nothing more
            chunk = bytes(self._skipped[:MAX_GARBAGE])
            del self._skipped[:MAX_GARBAGE]
            out.append(Framed(frame, "other", chunk, f"{len(chunk)} bytes of garbage skipped"))
        return upto

    def _resync(self, frame: int, out: list[Framed], pos: int, cookie_at: int) -> tuple[int, bool]:
        """Skip garbage up to the next frame start whose STUN cookie sits `cookie_at` bytes in.
        Returns (new position, found); when nothing is found yet only a short tail is kept."""
        buf = self._buf
        hit = buf.find(COOKIE, pos + cookie_at + 1)
        while hit != -1:
            start = hit - cookie_at
            if cookie_at == 4 and not buf[start] & 0xC0:
                return self._skip(frame, out, pos, start), True
            if cookie_at == 8 and buf[start] in (2, 3) and buf[start + 1] == 0 and not buf[start + 4] & 0xC0:
                return self._skip(frame, out, pos, start), True
            hit = buf.find(COOKIE, hit + 1)
        return self._skip(frame, out, pos, max(pos, len(buf) - cookie_at - 3)), False

    def _turn(self, frame: int, out: list[Framed]) -> int:
        buf, pos = self._buf, 0
        while len(buf) - pos >= 4:
            first = buf[pos]
            length = struct.unpack_from("!H", buf, pos + 2)[0]
            if first & 0xC0 == 0:
                start = _stun_start(buf, pos)
                if start is None:
                    break
                if not start:
                    pos, found = self._resync(frame, out, pos, 4)
                    if not found:
                        break
                    continue
                size, kind = 20 + length, "stun"
            elif first & 0xC0 == 0x40:
                size, kind = 4 + ((length + 3) & ~3), "channeldata"
            elif buf[pos : pos + 2] == b"\xff\x10":
                size, kind = 4 + length, "ms-multiplexed"
            else:
                pos, found = self._resync(frame, out, pos, 4)
                if not found:
                    break
                continue
            if len(buf) - pos < size:
                break
            self._emit(frame, out, kind, bytes(buf[pos : pos + size]))
            pos += size
        return pos

    def _rfc4571(self, frame: int, out: list[Framed]) -> int:
        buf, pos = self._buf, 0
        while len(buf) - pos >= 2:
            size = struct.unpack_from("!H", buf, pos)[0]
            if len(buf) - pos - 2 < size:
                break
            payload = bytes(buf[pos + 2 : pos + 2 + size])
            self._emit(frame, out, classify(payload), payload)
            pos += 2 + size
        return pos

    def _ms(self, frame: int, out: list[Framed]) -> int:
        buf, pos = self._buf, 0
        while len(buf) - pos >= 4:
            ftype, reserved, size = struct.unpack_from("!BBH", buf, pos)
            if ftype not in (2, 3) or reserved:
                pos, found = self._resync(frame, out, pos, 8)
                if not found:
                    break
                continue
            if len(buf) - pos - 4 < size:
                break
            payload = bytes(buf[pos + 4 : pos + 4 + size])
            self._emit(frame, out, classify(payload), payload)
            pos += 4 + size
        return pos
