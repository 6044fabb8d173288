"""Captures built for the report tests: one call with every kind of timeline marker, strings from the
packets that carry HTML, and a long media-only capture for the size checks.

Frames of the scenario (1-based, 20 ms apart), client C 10.1.0.11:50000, TURN server T 52.112.0.10:3478
(a cloud address by the built-in profile), STUN server S 52.112.0.20:3478, peer P 10.1.0.12:6000:
  1 C->T Allocate request (SOFTWARE <script>alert(1)</script>)     2 T->C Allocate error 401 (REALM with HTML)
  3 C->T Allocate request (USERNAME with HTML)                       4 T->C Allocate success
  5 C->S Binding request, never answered
  6 C->T CreatePermission request                                    7 T->C CreatePermission success
  8 C->T ChannelBind request                                         9 T->C ChannelBind success
  10 C->P check USE-CANDIDATE (USERNAME 'pb:<i>ca</i>')              11 P->C success
  12 P->C check (USERNAME "<i>ca</i>:pb")                              13 C->P success
  14.. media C->P and P->C, MEDIA packets each way, interleaved
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.capture.writers import pcap_bytes
from tests.dissect import stunbuild as sb

T0 = 1_700_000_000_000_000_000
STEP_NS = 20_000_000
XSS = "<script>alert(1)</script>"
USERNAME_HTML = "pb:<i>ca</i>"
REALM_HTML = '"><img src=x onerror=alert(2)>'
C, T, S, P = ("10.1.0.11", 50000), ("52.112.0.10", 3478), ("52.112.0.20", 3478), ("10.1.0.12", 6000)
RELAYED = ("52.112.0.10", 40000)
MEDIA = 150  # packets each way: 3 s of 20 ms audio
FRAMES = {"success": [3, 4, 6, 7, 8, 9, 10, 11, 12, 13], "error": [1, 2], "unanswered": [5]}

SOFTWARE, USERNAME, REALM, NONCE = 0x8022, 0x0006, 0x0014, 0x0015
_tid = itertools.count(1)


def udp(src, dst, payload: bytes) -> bytes:
    return bytes(Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload)


def _exchange(method, src, dst, req_attrs, resp_cls, resp_attrs) -> list[bytes]:
    tid = next(_tid).to_bytes(12, "big")
    out = [udp(src, dst, sb.message(method, "request", req_attrs, tid))]
    if resp_cls:
        out.append(udp(dst, src, sb.message(method, resp_cls, resp_attrs(tid), tid)))
    return out


def scenario_frames(software: str = XSS) -> list[bytes]:
    sw = sb.attr(SOFTWARE, software.encode())
    transport = sb.attr(0x0019, bytes([17, 0, 0, 0]))
    frames = _exchange("Allocate", C, T, [transport, sw], "error", lambda t: [
        sb.attr(0x0009, bytes([0, 0, 4, 1]) + b"Unauthorized"), sb.attr(REALM, REALM_HTML.encode()),
        sb.attr(NONCE, b"n0nce"), sw])
    frames += _exchange("Allocate", C, T, [transport, sb.attr(USERNAME, b"<b>user</b>"), sb.attr(REALM, b"r"),
                                           sb.attr(NONCE, b"n0nce")], "success", lambda t: [
        sb.xor_addr(0x0016, *RELAYED, t), sb.xor_addr(0x0020, "198.51.100.2", 50000, t),
        sb.attr(0x000D, struct.pack("!I", 600)), sw])
    frames += _exchange("Binding", C, S, [], None, None)
    frames += _exchange("CreatePermission", C, T, [sb.xor_addr(0x0012, P[0], 0, b"\0" * 12)], "success",
                        lambda t: [])
    frames += _exchange("ChannelBind", C, T, [sb.attr(0x000C, struct.pack("!HH", 0x4000, 0)),
                                              sb.xor_addr(0x0012, *P, b"\0" * 12)], "success", lambda t: [])
    frames += _check(C, P, USERNAME_HTML, "controlling", nominate=True)
    frames += _check(P, C, "<i>ca</i>:pb", "controlled")
    for i in range(MEDIA):
        frames.append(udp(C, P, sb.rtp(i, 960 * i, 0x11111111)))
        frames.append(udp(P, C, sb.rtp(i, 960 * i, 0x22222222)))
    return frames


def _check(src, dst, username: str, role: str, nominate: bool = False) -> list[bytes]:
    attrs = [sb.attr(USERNAME, username.encode()), sb.attr(0x0024, (0x6E7F1EFF).to_bytes(4, "big")),
             sb.attr(0x802A if role == "controlling" else 0x8029, (7).to_bytes(8, "big"))]
    if nominate:
        attrs.append(sb.attr(0x0025, b""))
    return _exchange("Binding", src, dst, attrs, "success", lambda t: [sb.xor_addr(0x0020, *src, t)])


def write_scenario(folder: Path, name: str = "scenario.pcap", software: str = XSS) -> Path:
    frames = scenario_frames(software)
    stamps = [T0 + i * STEP_NS for i in range(13)]
    stamps += [T0 + 13 * STEP_NS + (i // 2) * STEP_NS + (i % 2) * 1_000_000 for i in range(len(frames) - 13)]
    p = Path(folder) / name
    p.write_bytes(pcap_bytes(list(zip(stamps, frames, strict=True))))
    return p


def _raw_udp(src, dst, payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP without scapy (fast enough for 100,000 packets); checksums left zero."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                     bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))))
    return b"\0" * 6 + b"\0\1\2\3\4\5" + b"\x08\x00" + ip + struct.pack("!HHHH", src[1], dst[1], 8 + len(payload),
                                                                          0) + payload


def write_long_call(folder: Path, seconds: int = 600) -> Path:
    """Two checks then `seconds` of 50 packet/s audio each way: 2 * 50 * seconds RTP packets."""
    frames = [(T0 + i * STEP_NS, f) for i, f in enumerate(_check(C, P, "pb:ca", "controlling", nominate=True))]
    for i in range(seconds * 50):
        t = T0 + 100 * STEP_NS + i * STEP_NS
        frames.append((t, _raw_udp(C, P, sb.rtp(i, 960 * i, 0x11111111))))
        frames.append((t + 1_000_000, _raw_udp(P, C, sb.rtp(i, 960 * i, 0x22222222))))
    p = Path(folder) / "long.pcap"
    p.write_bytes(pcap_bytes(frames))
    return p
