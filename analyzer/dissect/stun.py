"""STUN / TURN / MS-TURN message dissector (sans-I/O): bytes in, one immutable StunMessage out.

Two wire formats are understood:

* RFC 5389/8489 (and TURN, ICE): 20-byte header with the 0x2112A442 cookie, attributes padded to 4.
* MS-TURN ([MS-TURN] 2.2): the MAGIC-COOKIE attribute (0x000F, value 0x72C64BC6) comes first,
  attributes are not padded (the message length may be odd), NONCE/REALM codes are swapped, 0x0012 is
  the plain REMOTE-ADDRESS, and whole message types name the method (0x0115 Data indication, 0x0004
  Send request, 0x0006 Set Active Destination). The transaction id is 16 bytes; newer Teams relays
  put the RFC cookie in its first 4 bytes, older ones (and MS Data indications) do not. Either way the
  message is reported with `legacy_ms=True`. Wireshark 4.0 only dissects those with the RFC cookie
  and then pads attributes, so it gets the odd-length ones wrong (see tests/dissect/test_stun.py).

Parsing never raises: a damaged message comes back with `malformed` saying why, keeping whatever could
be decoded; a damaged attribute keeps its raw bytes, `value=None` and its own `malformed` reason."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from .stun_tables import (
    A_CANDIDATE_ID,
    A_CHANNEL,
    A_DATA,
    A_DESTINATION,
    A_ERROR,
    A_FINGERPRINT,
    A_GOOG_NETWORK_INFO,
    A_ICE_CONTROLLED,
    A_ICE_CONTROLLING,
    A_INTEGRITY,
    A_INTEGRITY_SHA256,
    A_LIFETIME,
    A_MAPPED,
    A_MS_ALT_MAPPED,
    A_MS_VERSION,
    A_MS_XOR_MAPPED,
    A_PEER,
    A_PRIORITY,
    A_RELAYED,
    A_SERVICE_QUALITY,
    A_SOFTWARE,
    A_TRANSPORT,
    A_USE_CANDIDATE,
    A_USERNAME,
    A_XOR_MAPPED,
    ATTRIBUTE_TABLE,
    CLASS_NAMES,
    COOKIE,
    FINGERPRINT_XOR,
    HEADER_LEN,
    METHOD_NAMES,
    MS_ATTRIBUTE_TABLE,
    MS_COOKIE_ATTR,
    MS_TYPES,
    Address,
    ErrorCode,
    MsSequence,
    NetworkInfo,
    ServiceQuality,
)

__all__ = [
    "Address",
    "ErrorCode",
    "MsSequence",
    "NetworkInfo",
    "ServiceQuality",
    "StunAttribute",
    "StunMessage",
    "looks_like_stun",
    "parse_stun",
    "split_type",
]


class StunAttribute(NamedTuple):
    type: int
    name: str  # e.g. 'XOR-MAPPED-ADDRESS', or 'unknown-0xC001'
    value: Any  # Address, ErrorCode, int, str, bytes, bool, tuple...; None when malformed
    raw: bytes  # the value bytes as sent, padding excluded
    malformed: str | None = None


@dataclass(frozen=True, slots=True)
class StunMessage:
    msg_type: int
    method: int  # the method bits of msg_type (for MS-TURN types: as the RFC layout reads them)
    method_name: str
    cls: str  # 'request' | 'success' | 'error' | 'indication'
    length: int  # the header's length field
    magic_cookie_ok: bool
    transaction_id: str  # hex of the 12 bytes after the cookie, or of the 16 bytes after the length
    attributes: tuple[StunAttribute, ...] = ()
    legacy_ms: bool = False
    fingerprint_ok: bool | None = None
    has_integrity: bool = False
    has_integrity_sha256: bool = False
    size: int = 0  # bytes consumed, padding included
    malformed: str | None = None

    # -- generic access ------------------------------------------------------------------------

    def attr(self, name_or_code: str | int) -> Any:
        """Value of the first attribute with this name or code, or None."""
        key = "type" if isinstance(name_or_code, int) else "name"
        for a in self.attributes:
            if getattr(a, key) == name_or_code:
                return a.value
        return None

    def _first(self, *codes: int) -> Any:
        for code in codes:
            for a in self.attributes:
                if a.type == code and a.value is not None:
                    return a.value
        return None

    # -- ICE -----------------------------------------------------------------------------------

    @property
    def username(self) -> str | None:
        return self._first(A_USERNAME)

    @property
    def ufrags(self) -> tuple[str, str] | None:
        """USERNAME split on the first ':' (ICE: 'receiver-ufrag:sender-ufrag'), or None."""
        user = self.username
        if not isinstance(user, str) or ":" not in user:
            return None
        left, right = user.split(":", 1)
        return left, right

    @property
    def priority(self) -> int | None:
        return self._first(A_PRIORITY)

    @property
    def use_candidate(self) -> bool:
        return any(a.type == A_USE_CANDIDATE for a in self.attributes)

    @property
    def ice_role(self) -> str | None:
        for a in self.attributes:
            if a.type == A_ICE_CONTROLLING:
                return "controlling"
            if a.type == A_ICE_CONTROLLED:
                return "controlled"
        return None

    @property
    def tie_breaker(self) -> int | None:
        return self._first(A_ICE_CONTROLLING, A_ICE_CONTROLLED)

    @property
    def candidate_identifier(self) -> str | None:
        return self._first(A_CANDIDATE_ID)

    @property
    def goog_network_info(self) -> NetworkInfo | None:
        return self._first(A_GOOG_NETWORK_INFO)

    # -- addresses -----------------------------------------------------------------------------

    @property
    def xor_mapped(self) -> Address | None:
        """The sender's reflexive address: XOR-MAPPED-ADDRESS (0x0020, or MS-TURN's 0x8020); for a
        non MS-TURN message without one (RFC 3489 servers), MAPPED-ADDRESS."""
        if self.legacy_ms:
            return self._first(A_XOR_MAPPED, A_MS_XOR_MAPPED)
        return self._first(A_XOR_MAPPED, A_MS_XOR_MAPPED, A_MAPPED)

    @property
    def xor_relayed(self) -> Address | None:
        """XOR-RELAYED-ADDRESS; in MS-TURN the allocated address is MAPPED-ADDRESS (IPv6:
        MS-ALT-MAPPED-ADDRESS), [MS-TURN] 2.2.2.1."""
        if self.legacy_ms:
            return self._first(A_RELAYED, A_MAPPED, A_MS_ALT_MAPPED)
        return self._first(A_RELAYED)

    @property
    def xor_peer(self) -> Address | None:
        """XOR-PEER-ADDRESS; in MS-TURN the plain REMOTE-ADDRESS (same code) or, in Send requests
        and Set Active Destination, DESTINATION-ADDRESS."""
        if self.legacy_ms:
            return self._first(A_PEER, A_DESTINATION)
        return self._first(A_PEER)

    # -- TURN ----------------------------------------------------------------------------------

    @property
    def error(self) -> ErrorCode | None:
        return self._first(A_ERROR)

    @property
    def lifetime(self) -> int | None:
        return self._first(A_LIFETIME)

    @property
    def channel(self) -> int | None:
        return self._first(A_CHANNEL)

    @property
    def data(self) -> bytes | None:
        return self._first(A_DATA)

    @property
    def requested_transport(self) -> int | None:
        return self._first(A_TRANSPORT)

    @property
    def software(self) -> str | None:
        return self._first(A_SOFTWARE)

    @property
    def service_quality(self) -> ServiceQuality | None:
        return self._first(A_SERVICE_QUALITY)

    @property
    def ms_version(self) -> int | None:
        return self._first(A_MS_VERSION)

    @property
    def ms_sequence(self) -> MsSequence | None:
        return self.attr("MS-SEQUENCE-NUMBER")


def split_type(msg_type: int) -> tuple[int, int]:
    """(method, class) of an RFC 5389 message type: the class bits sit at bits 8 and 4."""
    cls = ((msg_type >> 7) & 0x2) | ((msg_type >> 4) & 0x1)
    method = (msg_type & 0x000F) | ((msg_type >> 1) & 0x0070) | ((msg_type >> 2) & 0x0F80)
    return method, cls


def looks_like_stun(data: bytes) -> bool:
    """Cheap structural test: the first two bits 0, the whole message present, and either the RFC
    cookie with a length that is a multiple of 4 (or attributes that tile the message, the last one
    unpadded: WhatsApp's vendor attributes in the 0x4000 range, which Wireshark reads too), or the
    MS-TURN MAGIC-COOKIE attribute first. Unknown attributes are no reason to reject."""
    if len(data) < HEADER_LEN or data[0] & 0xC0:
        return False
    length = (data[2] << 8) | data[3]
    if HEADER_LEN + length > len(data):
        return False
    ms = data[20:28] == MS_COOKIE_ATTR
    if data[4:8] == COOKIE:
        return length % 4 == 0 or ms or _tiles_last_unpadded(data, HEADER_LEN + length)
    return ms


def _tiles_last_unpadded(data: bytes, end: int) -> bool:
    """The attribute headers, padded to 4, reach exactly `end` once the last one's padding is dropped."""
    off = HEADER_LEN
    while off + 4 <= end:
        vend = off + 4 + ((data[off + 2] << 8) | data[off + 3])
        if vend >= end:
            return vend == end
        off = vend + (-vend % 4)
    return False


class _Walk(NamedTuple):
    attributes: tuple[StunAttribute, ...]
    fingerprint_ok: bool | None
    problem: str | None


def _walk(data: bytes, end: int, padded: bool, ms: bool) -> _Walk:
    """Decode the attributes in data[20:end], padded to 4 bytes or not."""
    table = MS_ATTRIBUTE_TABLE if ms else ATTRIBUTE_TABLE
    key = data[4:20]
    attrs: list[StunAttribute] = []
    fingerprint_ok: bool | None = None
    problem = None
    off = HEADER_LEN
    while off + 4 <= end:
        atype, alen = struct.unpack_from("!HH", data, off)
        name, decoder = table.get(atype, (f"unknown-0x{atype:04X}", None))
        vstart, vend = off + 4, off + 4 + alen
        if vend > end:
            problem = f"attribute {name} length {alen} runs past the message end"
            attrs.append(StunAttribute(atype, name, None, data[vstart:end], "truncated"))
            off = end
            break
        raw = data[vstart:vend]
        value, bad = raw, None
        if decoder is not None:
            try:
                value = decoder(raw, key)
            except Exception as exc:  # a decoder's complaint becomes the attribute's reason
                value, bad = None, f"{name}: {exc}"
        if atype == A_FINGERPRINT and fingerprint_ok is None:
            fingerprint_ok = value is not None and (zlib.crc32(data[:off]) ^ FINGERPRINT_XOR) == value
        attrs.append(StunAttribute(atype, name, value, raw, bad))
        nxt = vstart + ((alen + 3) & ~3 if padded else alen)
        if nxt > end and vend == end:  # the last attribute sent without its padding (Wireshark reads it)
            off = end
            break
        if nxt > end:
            problem = f"padding of attribute {name} missing at the message end"
            off = end
            break
        off = nxt
    if problem is None and off != end:
        problem = f"{end - off} stray bytes after the last attribute"
    return _Walk(tuple(attrs), fingerprint_ok, problem)


def _bad(data: bytes, reason: str) -> StunMessage:
    msg_type = struct.unpack_from("!H", data)[0] if len(data) >= 2 else 0
    length = struct.unpack_from("!H", data, 2)[0] if len(data) >= 4 else 0
    method, cls = split_type(msg_type)
    cookie_ok = data[4:8] == COOKIE
    tid = data[8:20] if cookie_ok else data[4:20]
    return StunMessage(
        msg_type=msg_type,
        method=method,
        method_name=METHOD_NAMES.get(method, f"unknown-0x{method:03X}"),
        cls=CLASS_NAMES[cls],
        length=length,
        magic_cookie_ok=cookie_ok,
        transaction_id=tid.hex(),
        size=len(data),
        malformed=reason,
    )


def parse_stun(data: bytes) -> StunMessage:
    """Dissect the STUN message at data[0:]; bytes after its end are ignored. Never raises."""
    data = bytes(data)
    if len(data) < HEADER_LEN:
        return _bad(data, f"truncated: {len(data)} bytes, a STUN header needs 20")
    msg_type, length = struct.unpack_from("!HH", data)
    if msg_type & 0xC000:
        return _bad(data, "first two bits are not 0: not a STUN message")
    cookie_ok = data[4:8] == COOKIE
    ms = data[20:28] == MS_COOKIE_ATTR
    method, cls_bits = split_type(msg_type)
    if ms and msg_type in MS_TYPES:
        method_name, cls = MS_TYPES[msg_type]
    else:
        method_name = METHOD_NAMES.get(method, f"unknown-0x{method:03X}")
        cls = CLASS_NAMES[cls_bits]
    problems = []
    end = HEADER_LEN + length
    if end > len(data):
        problems.append(f"length {length} exceeds the {len(data) - HEADER_LEN} bytes after the header")
        end = len(data)
    # RFC messages are padded, MS-TURN ones are not; try the other layout when the expected one does
    # not land exactly on the message end.
    walk = _walk(data, end, not ms, ms)
    if walk.problem is not None:
        other = _walk(data, end, ms, ms)
        if other.problem is None:
            walk = other
    if walk.problem is not None:
        problems.append(walk.problem)
    attrs = walk.attributes
    problems.extend(a.malformed for a in attrs if a.malformed and a.malformed != "truncated")
    return StunMessage(
        msg_type=msg_type,
        method=method,
        method_name=method_name,
        cls=cls,
        length=length,
        magic_cookie_ok=cookie_ok,
        transaction_id=(data[8:20] if cookie_ok else data[4:20]).hex(),
        attributes=attrs,
        legacy_ms=ms,
        fingerprint_ok=walk.fingerprint_ok,
        has_integrity=any(a.type == A_INTEGRITY for a in attrs),
        has_integrity_sha256=any(a.type == A_INTEGRITY_SHA256 for a in attrs),
        size=end,
        malformed="; ".join(problems) or None,
    )
