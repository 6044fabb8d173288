"""A call that starts on a TURN relay and moves to a direct pair (WhatsApp upgrades every call this way,
Meet renominates): Allocate, permission and channel, checks and media through the channel, then a
renomination (NOMINATION 2) of the direct pair and the same stream on it."""

from __future__ import annotations

import itertools
import struct

from tests.dissect import stunbuild as sb
from tests.ice.test_scenarios import udp

CLIENT, SERVER = ("192.168.1.10", 50000), ("198.51.100.20", 3478)
RELAYED, MAPPED = ("198.51.100.20", 61000), ("203.0.113.5", 40001)
PEER = ("203.0.113.9", 6000)
CHANNEL = 0x4000
RELAY_MEDIA, DIRECT_MEDIA = 40, 60  # RTP packets each way on each path
_tid = itertools.count(0xA100)


def _t() -> bytes:
    return next(_tid).to_bytes(12, "big")


def _check(to_ufrag: str, from_ufrag: str, role: int, nomination: int | None, t: bytes) -> bytes:
    attrs = [
        sb.attr(0x0006, f"{to_ufrag}:{from_ufrag}".encode()),
        sb.attr(0x0024, struct.pack("!I", 0x6E7F1EFF)),  # component 1
        sb.attr(role, (7).to_bytes(8, "big")),
    ]
    if nomination is not None:
        attrs.append(sb.attr(0xC001, struct.pack("!I", nomination)))
    return sb.message("Binding", "request", attrs, t)


def _ok(src: tuple[str, int], t: bytes) -> bytes:
    return sb.message("Binding", "success", [sb.xor_addr(0x0020, *src, t)], t)


def _ch(payload: bytes) -> bytes:
    return sb.channeldata(CHANNEL, payload, pad=True)


def frames() -> list[bytes]:
    """Frame by frame (1-based): 1-2 Allocate, 3-4 CreatePermission, 5-6 ChannelBind, 7-8 relayed check
    with NOMINATION 1 and its answer (channel), 9-10 the peer's check and answer (channel), then
    RELAY_MEDIA x 2 relayed RTP, then the direct check with NOMINATION 2 and its answer, the peer's
    direct check and answer, and DIRECT_MEDIA x 2 direct RTP."""
    out = []
    t = _t()
    out += [
        udp(CLIENT, SERVER, sb.message("Allocate", "request", [sb.attr(0x0019, b"\x11\0\0\0")], t)),
        udp(SERVER, CLIENT, sb.message("Allocate", "success", [
            sb.xor_addr(0x0016, *RELAYED, t), sb.xor_addr(0x0020, *MAPPED, t), sb.attr(0x000D, b"\0\0\x02\x58")], t)),
    ]  # fmt: skip
    t = _t()
    out += [
        udp(CLIENT, SERVER, sb.message("CreatePermission", "request", [sb.xor_addr(0x0012, *PEER, t)], t)),
        udp(SERVER, CLIENT, sb.message("CreatePermission", "success", [], t)),
    ]
    t = _t()
    bind = [sb.attr(0x000C, struct.pack("!HH", CHANNEL, 0)), sb.xor_addr(0x0012, *PEER, t)]
    out += [
        udp(CLIENT, SERVER, sb.message("ChannelBind", "request", bind, t)),
        udp(SERVER, CLIENT, sb.message("ChannelBind", "success", [], t)),
    ]
    t = _t()  # the client's relay candidate checks the peer: NOMINATION 1
    out += [udp(CLIENT, SERVER, _ch(_check("bbbb", "aaaa", 0x802A, 1, t))), udp(SERVER, CLIENT, _ch(_ok(RELAYED, t)))]
    t = _t()  # the peer checks the relay candidate
    out += [udp(SERVER, CLIENT, _ch(_check("aaaa", "bbbb", 0x8029, None, t))), udp(CLIENT, SERVER, _ch(_ok(PEER, t)))]
    for i in range(RELAY_MEDIA):
        out.append(udp(CLIENT, SERVER, _ch(sb.rtp(i, 960 * i, 0x1111))))
        out.append(udp(SERVER, CLIENT, _ch(sb.rtp(i, 960 * i, 0x2222))))
    t = _t()  # renomination: the direct pair, NOMINATION 2
    out += [udp(CLIENT, PEER, _check("bbbb", "aaaa", 0x802A, 2, t)), udp(PEER, CLIENT, _ok(MAPPED, t))]
    t = _t()
    out += [udp(PEER, CLIENT, _check("aaaa", "bbbb", 0x8029, None, t)), udp(CLIENT, PEER, _ok(PEER, t))]
    for i in range(RELAY_MEDIA, RELAY_MEDIA + DIRECT_MEDIA):
        out.append(udp(CLIENT, PEER, sb.rtp(i, 960 * i, 0x1111)))
        out.append(udp(PEER, CLIENT, sb.rtp(i, 960 * i, 0x2222)))
    return out


def frames_relay_without_ice() -> list[bytes]:
    """Media to a relay's port 3478 with no ICE check on that path (frames 1 to 2 x RELAY_MEDIA), then
    the direct pair checked from the same socket with USE-CANDIDATE (two checks and answers) and the
    same streams on it (DIRECT_MEDIA x 2)."""
    out = []
    for i in range(RELAY_MEDIA):
        out.append(udp(CLIENT, SERVER, sb.rtp(i, 960 * i, 0x1111)))
        out.append(udp(SERVER, CLIENT, sb.rtp(i, 960 * i, 0x2222)))
    t = _t()
    req = _check("bbbb", "aaaa", 0x802A, None, t)
    req = sb.message("Binding", "request", [*_attrs_of(req), sb.attr(0x0025, b"")], t)
    out += [udp(CLIENT, PEER, req), udp(PEER, CLIENT, _ok(MAPPED, t))]
    t = _t()
    out += [udp(PEER, CLIENT, _check("aaaa", "bbbb", 0x8029, None, t)), udp(CLIENT, PEER, _ok(PEER, t))]
    for i in range(RELAY_MEDIA, RELAY_MEDIA + DIRECT_MEDIA):
        out.append(udp(CLIENT, PEER, sb.rtp(i, 960 * i, 0x1111)))
        out.append(udp(PEER, CLIENT, sb.rtp(i, 960 * i, 0x2222)))
    return out


def _attrs_of(msg: bytes) -> list[bytes]:
    """The attributes of a built message, FINGERPRINT left out (message() adds a new one)."""
    out, off = [], 20
    while off < len(msg):
        code, n = struct.unpack_from("!HH", msg, off)
        if code != 0x8028:
            out.append(msg[off : off + 4 + n + (-n % 4)])
        off += 4 + n + (-n % 4)
    return out
