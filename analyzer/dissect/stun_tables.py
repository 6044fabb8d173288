"""STUN / TURN / MS-TURN protocol knowledge in one place: methods, classes, MS-TURN message types and
one table of (code, name, decoder) rows for the attributes (RFC 8489, RFC 8656, RFC 6062, RFC 8445,
RFC 5780, [MS-TURN], [MS-TURNBWM], [MS-ICE2] and the Google attributes Wireshark knows).

A decoder takes the attribute value (padding excluded) and the 16 header bytes after the length
(magic cookie + transaction id, or a legacy 16-byte transaction id) that XOR-ed addresses are masked
with. It returns the typed value or raises ValueError, which the parser turns into a malformed
attribute; nothing here is ever seen by the caller as an exception."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Any, NamedTuple

MAGIC_COOKIE = 0x2112A442
COOKIE = struct.pack("!I", MAGIC_COOKIE)
MS_MAGIC_COOKIE = 0x72C64BC6
# The whole MAGIC-COOKIE attribute (type 0x000F, length 4, value) that opens every MS-TURN message.
MS_COOKIE_ATTR = struct.pack("!HHI", 0x000F, 4, MS_MAGIC_COOKIE)
FINGERPRINT_XOR = 0x5354554E
HEADER_LEN = 20


class Address(NamedTuple):
    """A transport address with any XOR undone."""

    family: str  # 'IPv4' | 'IPv6'
    address: str
    port: int


class ErrorCode(NamedTuple):
    code: int  # class * 100 + number
    reason: str


class MsSequence(NamedTuple):
    """MS-SEQUENCE-NUMBER: the TURN connection id (20 bytes, hex) and the sequence number."""

    connection_id: str
    sequence: int


class ServiceQuality(NamedTuple):
    """MS-SERVICE-QUALITY: stream type (1 audio, 2 video, 3 supplemental video, 4 data) and service
    (0 best effort, 1 reliable delivery)."""

    stream_type: int
    service: int


class NetworkInfo(NamedTuple):
    """GOOG-NETWORK-INFO (Chrome): network id and network cost."""

    network_id: int
    cost: int


class Method(IntEnum):
    BINDING = 0x001
    SHARED_SECRET = 0x002
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C
    GOOGLE_PING = 0x080


# 'CREATE_PERMISSION' -> 'CreatePermission', the way the RFCs (and Wireshark) spell the methods
METHOD_NAMES: dict[int, str] = {m: m.name.title().replace("_", "") for m in Method}


class MsgClass(IntEnum):
    """The two class bits (C1 at type bit 8, C0 at bit 4)."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


CLASS_NAMES: dict[int, str] = {0: "request", 1: "indication", 2: "success", 3: "error"}

# [MS-TURN] 2.2.1: the legacy format predates the class/method split and lists whole message types.
# 0x0115 (Data indication) would read as an error response and 0x0004 (Send request, never answered)
# as a Refresh request under RFC rules, so messages in MS-TURN format are named from this table.
MS_TYPES: dict[int, tuple[str, str]] = {
    0x0003: ("Allocate", "request"),
    0x0103: ("Allocate", "success"),
    0x0113: ("Allocate", "error"),
    0x0004: ("Send", "request"),
    0x0115: ("Data", "indication"),
    0x0006: ("SetActiveDestination", "request"),
    0x0106: ("SetActiveDestination", "success"),
    0x0116: ("SetActiveDestination", "error"),
}
MS_SEND_REQUEST = 0x0004

# Error reasons (IANA "STUN Error Codes", plus MS-TURN 434-436 and MS-ICE2BWM 274/275).
ERROR_REASONS: dict[int, str] = {
    274: "Disable Candidate", 275: "Disable Candidate Pair", 300: "Try Alternate", 400: "Bad Request",
    401: "Unauthenticated", 403: "Forbidden", 405: "Mobility Forbidden", 420: "Unknown Attribute",
    434: "Missing Realm", 435: "Missing Nonce", 436: "Unknown User", 437: "Allocation Mismatch",
    438: "Stale Nonce", 440: "Address Family not Supported", 441: "Wrong Credentials",
    442: "Unsupported Transport Protocol", 443: "Peer Address Family Mismatch", 446: "Connection Already Exists",
    447: "Connection Timeout or Failure", 486: "Allocation Quota Reached", 487: "Role Conflict",
    500: "Server Error", 508: "Insufficient Port Capacity",
}

MS_VERSIONS: dict[int, str] = {
    1: "ICE", 2: "MS-ICE2", 3: "MS-ICE2 with SHA256", 4: "MS-ICE2 with SHA256 and IPv6",
    5: "multiplexed TURN over UDP only", 6: "multiplexed TURN over UDP and TCP",
}

# ---------------------------------------------------------------------------------------------
# Decoders

Decoder = Callable[[bytes, bytes], Any]


def _need(value: bytes, n: int) -> None:
    if len(value) < n:
        raise ValueError(f"needs {n} bytes, has {len(value)}")


def _address(value: bytes, key: bytes, *, xor: bool) -> Address:
    _need(value, 8)
    family = value[1]
    port = struct.unpack_from("!H", value, 2)[0]
    if family == 1:
        raw = value[4:8]
    elif family == 2:
        _need(value, 20)
        raw = value[4:20]
    else:
        raise ValueError(f"unknown address family {family}")
    if xor:
        port ^= struct.unpack_from("!H", key, 0)[0]
        raw = bytes(a ^ b for a, b in zip(raw, key, strict=False))
    if family == 1:
        return Address("IPv4", str(ipaddress.IPv4Address(raw)), port)
    return Address("IPv6", str(ipaddress.IPv6Address(raw)), port)


def d_addr(value: bytes, key: bytes) -> Address:
    return _address(value, key, xor=False)


def d_xaddr(value: bytes, key: bytes) -> Address:
    return _address(value, key, xor=True)


def d_text(value: bytes, key: bytes = b"") -> str:
    """UTF-8 text; opaque (non UTF-8) values, e.g. MS-TURN binary usernames and nonces, as hex."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


def d_raw(value: bytes, key: bytes) -> bytes:
    return value


def d_hex(value: bytes, key: bytes) -> str:
    return value.hex()


def d_flag(value: bytes, key: bytes) -> bool:
    return True


def d_u8(value: bytes, key: bytes) -> int:
    _need(value, 1)
    return value[0]


def d_u16(value: bytes, key: bytes) -> int:
    _need(value, 2)
    return struct.unpack_from("!H", value)[0]


def d_u32(value: bytes, key: bytes) -> int:
    _need(value, 4)
    return struct.unpack_from("!I", value)[0]


def d_u64(value: bytes, key: bytes) -> int:
    _need(value, 8)
    return struct.unpack_from("!Q", value)[0]


def d_error(value: bytes, key: bytes) -> ErrorCode:
    _need(value, 4)
    return ErrorCode((value[2] & 0x07) * 100 + value[3], d_text(value[4:]))


def d_u16_list(value: bytes, key: bytes) -> tuple[int, ...]:
    return tuple(struct.unpack_from("!H", value, i)[0] for i in range(0, len(value) - 1, 2))


def d_even_port(value: bytes, key: bytes) -> bool:
    _need(value, 1)
    return bool(value[0] & 0x80)


def d_icmp(value: bytes, key: bytes) -> tuple[int, int]:
    """RFC 8656 ICMP: 18 reserved bits, ICMP type (7 bits), code (8 bits), error data: (type, code)."""
    _need(value, 4)
    return value[2] & 0x7F, value[3]


def d_counter(value: bytes, key: bytes) -> tuple[int, int]:
    """TRANSACTION-TRANSMIT-COUNTER (RFC 7982): (request count, response count)."""
    _need(value, 4)
    return value[2], value[3]


def d_password_algorithms(value: bytes, key: bytes) -> tuple[tuple[int, bytes], ...]:
    out, off = [], 0
    while off + 4 <= len(value):
        alg, plen = struct.unpack_from("!HH", value, off)
        out.append((alg, value[off + 4 : off + 4 + plen]))
        off += 4 + (plen + 3 & ~3)
    return tuple(out)


def d_ms_sequence(value: bytes, key: bytes) -> MsSequence:
    """Connection id (20 bytes) + sequence number ([MS-TURN] 2.2.2.21). Teams clients also send a
    4-byte form with the sequence number alone (ntop_nDPI/teams.pcap frame 1485): connection id ''."""
    if len(value) == 4:
        return MsSequence("", struct.unpack_from("!I", value)[0])
    _need(value, 24)
    return MsSequence(value[:20].hex(), struct.unpack_from("!I", value, 20)[0])


def d_service_quality(value: bytes, key: bytes) -> ServiceQuality:
    _need(value, 4)
    return ServiceQuality(*struct.unpack_from("!HH", value))


def d_network_info(value: bytes, key: bytes) -> NetworkInfo:
    _need(value, 4)
    return NetworkInfo(*struct.unpack_from("!HH", value))


def d_foundation(value: bytes, key: bytes) -> str:
    """CANDIDATE-IDENTIFIER (MS-ICE2): the candidate's foundation, 4 bytes of text."""
    return d_text(value.rstrip(b"\x00"))


def d_bw_acm(value: bytes, key: bytes) -> int:
    """Bandwidth Admission Control Message type (0 check, 1 commit, 2 update) after 2 reserved bytes."""
    _need(value, 4)
    return struct.unpack_from("!H", value, 2)[0]


def d_bw_amount(value: bytes, key: bytes) -> tuple[int, int, int, int]:
    """Bandwidth Reservation Amount: max send, min send, max receive, min receive (kbit/s)."""
    _need(value, 16)
    return struct.unpack_from("!IIII", value)


def d_location(value: bytes, key: bytes) -> tuple[int, int, int]:
    """Location Profile: peer location, self location, federation."""
    _need(value, 3)
    return value[0], value[1], value[2]


def d_nomination(value: bytes, key: bytes) -> int | bytes:
    """libwebrtc NOMINATION (0xC001): a uint32; any other length is the ENF flow description, kept raw."""
    return struct.unpack_from("!I", value)[0] if len(value) == 4 else value


# (code, name, decoder). Names follow IANA / the MS specifications, as Wireshark shows them.
ATTRIBUTES: tuple[tuple[int, str, Decoder], ...] = (
    (0x0001, "MAPPED-ADDRESS", d_addr),
    (0x0002, "RESPONSE-ADDRESS", d_addr),
    (0x0003, "CHANGE-REQUEST", d_u32),
    (0x0004, "SOURCE-ADDRESS", d_addr),
    (0x0005, "CHANGED-ADDRESS", d_addr),
    (0x0006, "USERNAME", d_text),
    (0x0007, "PASSWORD", d_raw),
    (0x0008, "MESSAGE-INTEGRITY", d_raw),
    (0x0009, "ERROR-CODE", d_error),
    (0x000A, "UNKNOWN-ATTRIBUTES", d_u16_list),
    (0x000B, "REFLECTED-FROM", d_addr),
    (0x000C, "CHANNEL-NUMBER", d_u16),
    (0x000D, "LIFETIME", d_u32),
    (0x000E, "MS-ALTERNATE-SERVER", d_addr),
    (0x000F, "MAGIC-COOKIE", d_u32),
    (0x0010, "BANDWIDTH", d_u32),
    (0x0011, "DESTINATION-ADDRESS", d_addr),
    (0x0012, "XOR-PEER-ADDRESS", d_xaddr),
    (0x0013, "DATA", d_raw),
    (0x0014, "REALM", d_text),
    (0x0015, "NONCE", d_text),
    (0x0016, "XOR-RELAYED-ADDRESS", d_xaddr),
    (0x0017, "REQUESTED-ADDRESS-FAMILY", d_u8),
    (0x0018, "EVEN-PORT", d_even_port),
    (0x0019, "REQUESTED-TRANSPORT", d_u8),
    (0x001A, "DONT-FRAGMENT", d_flag),
    (0x001B, "ACCESS-TOKEN", d_raw),
    (0x001C, "MESSAGE-INTEGRITY-SHA256", d_raw),
    (0x001D, "PASSWORD-ALGORITHM", d_password_algorithms),
    (0x001E, "USERHASH", d_raw),
    (0x0020, "XOR-MAPPED-ADDRESS", d_xaddr),
    (0x0022, "RESERVATION-TOKEN", d_raw),
    (0x0024, "PRIORITY", d_u32),
    (0x0025, "USE-CANDIDATE", d_flag),
    (0x0026, "PADDING", d_raw),
    (0x0027, "RESPONSE-PORT", d_u16),
    (0x002A, "CONNECTION-ID", d_u32),
    (0x8000, "ADDITIONAL-ADDRESS-FAMILY", d_u8),
    (0x8001, "ADDRESS-ERROR-CODE", d_error),
    (0x8002, "PASSWORD-ALGORITHMS", d_password_algorithms),
    (0x8003, "ALTERNATE-DOMAIN", d_text),
    (0x8004, "ICMP", d_icmp),
    (0x8006, "MS-TURN-UNKNOWN-8006", d_u32),  # seen in Teams Allocate requests, undocumented
    (0x8008, "MS-VERSION", d_u32),
    (0x8020, "MS-XOR-MAPPED-ADDRESS", d_xaddr),  # [MS-TURN] 2.2.2.16, the pre-RFC 5389 code point
    (0x8022, "SOFTWARE", d_text),
    (0x8023, "ALTERNATE-SERVER", d_addr),
    (0x8025, "TRANSACTION-TRANSMIT-COUNTER", d_counter),
    (0x8027, "CACHE-TIMEOUT", d_u32),
    (0x8028, "FINGERPRINT", d_u32),
    (0x8029, "ICE-CONTROLLED", d_u64),
    (0x802A, "ICE-CONTROLLING", d_u64),
    (0x802B, "RESPONSE-ORIGIN", d_addr),
    (0x802C, "OTHER-ADDRESS", d_addr),
    (0x802D, "ECN-CHECK-STUN", d_u32),
    (0x802E, "THIRD-PARTY-AUTHORIZATION", d_text),
    (0x8030, "MOBILITY-TICKET", d_raw),
    (0x8032, "MS-ALTERNATE-HOST-NAME", d_text),
    (0x8037, "MS-APP-ID", d_u32),
    (0x8039, "MS-SECURE-TAG", d_raw),
    (0x8050, "MS-SEQUENCE-NUMBER", d_ms_sequence),
    (0x8054, "CANDIDATE-IDENTIFIER", d_foundation),
    (0x8055, "MS-SERVICE-QUALITY", d_service_quality),
    (0x8056, "BANDWIDTH-ADMISSION-CONTROL-MESSAGE", d_bw_acm),
    (0x8057, "BANDWIDTH-RESERVATION-ID", d_hex),
    (0x8058, "BANDWIDTH-RESERVATION-AMOUNT", d_bw_amount),
    (0x8059, "REMOTE-SITE-ADDRESS", d_xaddr),
    (0x805A, "REMOTE-RELAY-SITE-ADDRESS", d_xaddr),
    (0x805B, "LOCAL-SITE-ADDRESS", d_xaddr),
    (0x805C, "LOCAL-RELAY-SITE-ADDRESS", d_xaddr),
    (0x805D, "REMOTE-SITE-ADDRESS-RESPONSE", d_raw),
    (0x805E, "REMOTE-RELAY-SITE-ADDRESS-RESPONSE", d_raw),
    (0x805F, "LOCAL-SITE-ADDRESS-RESPONSE", d_raw),
    (0x8060, "LOCAL-RELAY-SITE-ADDRESS-RESPONSE", d_raw),
    (0x8061, "SIP-DIALOG-ID", d_text),
    (0x8062, "SIP-CALL-ID", d_text),
    (0x8068, "LOCATION-PROFILE", d_location),
    (0x8070, "MS-IMPLEMENTATION-VERSION", d_u32),
    (0x8090, "MS-ALT-MAPPED-ADDRESS", d_addr),
    (0x8095, "MS-MULTIPLEXED-TURN-SESSION-ID", d_hex),
    (0xC000, "CISCO-STUN-FLOWDATA", d_raw),
    # IANA lists 0xC001 as ENF-FLOW-DESCRIPTION (Wireshark's name), but the attribute met in captures is
    # libwebrtc's NOMINATION in ICE checks: a 32-bit nomination number that grows with each renomination
    (0xC001, "NOMINATION", d_nomination),
    (0xC002, "ENF-NETWORK-STATUS", d_raw),
    (0xC057, "GOOG-NETWORK-INFO", d_network_info),
    (0xC058, "GOOG-LAST-ICE-CHECK-RECEIVED", d_raw),
    (0xC059, "GOOG-MISC-INFO", d_raw),
    (0xC05A, "GOOG-OBSOLETE-1", d_raw),
    (0xC05B, "GOOG-CONNECTION-ID", d_raw),
    (0xC05C, "GOOG-DELTA", d_raw),
    (0xC05D, "GOOG-DELTA-ACK", d_raw),
    (0xC060, "GOOG-MESSAGE-INTEGRITY-32", d_raw),
    (0xFF04, "GOOG-MULTI-MAPPING", d_raw),
    (0xFF05, "GOOG-LOGGING-ID", d_raw),
)

# Messages in MS-TURN format reuse three code points differently ([MS-TURN] 2.2.2): NONCE and REALM
# are swapped relative to RFC 5389, and 0x0012 is REMOTE-ADDRESS, a plain (not XOR-ed) address.
MS_OVERRIDES: tuple[tuple[int, str, Decoder], ...] = (
    (0x0012, "REMOTE-ADDRESS", d_addr),
    (0x0014, "NONCE", d_text),
    (0x0015, "REALM", d_text),
)

ATTRIBUTE_TABLE: dict[int, tuple[str, Decoder]] = {code: (name, dec) for code, name, dec in ATTRIBUTES}
MS_ATTRIBUTE_TABLE: dict[int, tuple[str, Decoder]] = {
    **ATTRIBUTE_TABLE,
    **{code: (name, dec) for code, name, dec in MS_OVERRIDES},
}
ATTRIBUTE_CODES: dict[str, int] = {name: code for code, name, _ in (*ATTRIBUTES, *MS_OVERRIDES)}

# Attribute codes the parser and the accessors single out.
A_MAPPED, A_USERNAME, A_INTEGRITY, A_ERROR, A_CHANNEL, A_LIFETIME = 0x0001, 0x0006, 0x0008, 0x0009, 0x000C, 0x000D
A_DESTINATION, A_PEER, A_DATA, A_RELAYED, A_TRANSPORT = 0x0011, 0x0012, 0x0013, 0x0016, 0x0019
A_INTEGRITY_SHA256, A_XOR_MAPPED, A_PRIORITY, A_USE_CANDIDATE = 0x001C, 0x0020, 0x0024, 0x0025
A_MS_VERSION, A_MS_XOR_MAPPED, A_SOFTWARE, A_FINGERPRINT = 0x8008, 0x8020, 0x8022, 0x8028
A_ICE_CONTROLLED, A_ICE_CONTROLLING, A_CANDIDATE_ID, A_SERVICE_QUALITY = 0x8029, 0x802A, 0x8054, 0x8055
A_MS_ALT_MAPPED, A_GOOG_NETWORK_INFO, A_NOMINATION = 0x8090, 0xC057, 0xC001
