"""A call whose strings attack the terminal: ESC[2J (clear screen), OSC 0 (window title), BEL, a C1
CSI, SGR colour codes and rich markup, in STUN USERNAME, SOFTWARE, REALM and NONCE, the DTLS SNI,
the RTCP SDES CNAME, and in the file name.

Frames, 20 ms apart: 1 C->T Allocate request (SOFTWARE), 2 T->C Allocate 401 (REALM, NONCE),
3 C->P check (USERNAME, USE-CANDIDATE), 4 success, 5 P->C check, 6 success, 7 C->P DTLS ClientHello
(SNI), 8.. RTP each way, then an RTCP SR + SDES (CNAME) each way."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.capture.writers import pcap_bytes
from tests.dissect import stunbuild as sb
from tests.dissect.test_dtls import ext, hs, rec
from tests.report.build import udp

T0 = 1_700_000_000_000_000_000
EVIL = "\x1b[2J\x1b]0;pwned\x07\x1b[31m[red]red[/red]\u009b1m\x7f"
FILE_NAME = "call\x1b[2J\x1b]0;t\x07[bold]x.pcap"
C, T, P = ("10.1.0.11", 50000), ("52.112.0.10", 3478), ("10.1.0.12", 6000)
USERNAME, SOFTWARE, REALM, NONCE = 0x0006, 0x8022, 0x0014, 0x0015


def _client_hello(sni: str) -> bytes:
    name = sni.encode()
    sni_ext = ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    exts = ext(14, b"\x00\x02\x00\x01\x00") + sni_ext
    body = b"\xfe\xfd" + bytes(32) + b"\x00\x00" + b"\x00\x02\xc0\x2b" + b"\x01\x00" + len(exts).to_bytes(2, "big")
    return rec(22, hs(1, body + exts))


def _sr_sdes(ssrc: int, cname: str) -> bytes:
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc, 0xE0F1A2B3_80000000, 1000, 50, 8000)
    item = bytes([1, len(cname.encode())]) + cname.encode()
    chunk = struct.pack("!I", ssrc) + item + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    return sr + sdes


def frames() -> list[bytes]:
    evil = EVIL.encode()
    tid = [bytes([i]) * 12 for i in range(1, 8)]
    transport = sb.attr(0x0019, bytes([17, 0, 0, 0]))
    out = [
        udp(C, T, sb.message("Allocate", "request", [transport, sb.attr(SOFTWARE, evil)], tid[0])),
        udp(
            T,
            C,
            sb.message(
                "Allocate",
                "error",
                [sb.attr(0x0009, bytes([0, 0, 4, 1]) + b"Unauthorized"), sb.attr(REALM, evil), sb.attr(NONCE, evil)],
                tid[0],
            ),
        ),
    ]
    check = [sb.attr(0x0024, (0x6E7F1EFF).to_bytes(4, "big")), sb.attr(0x802A, (7).to_bytes(8, "big"))]
    out.append(
        udp(
            C,
            P,
            sb.message(
                "Binding",
                "request",
                [sb.attr(USERNAME, b"pb:" + evil), *check, sb.attr(0x0025, b""), sb.attr(SOFTWARE, evil)],
                tid[1],
            ),
        )
    )
    out.append(udp(P, C, sb.message("Binding", "success", [sb.xor_addr(0x0020, *C, tid[1])], tid[1])))
    back = [sb.attr(0x0024, (0x6E7F1EFF).to_bytes(4, "big")), sb.attr(0x8029, (9).to_bytes(8, "big"))]
    out.append(udp(P, C, sb.message("Binding", "request", [sb.attr(USERNAME, evil + b":pb"), *back], tid[2])))
    out.append(udp(C, P, sb.message("Binding", "success", [sb.xor_addr(0x0020, *P, tid[2])], tid[2])))
    out.append(udp(C, P, _client_hello(EVIL)))
    for i in range(60):
        out.append(udp(C, P, sb.rtp(i, 960 * i, 0x11111111)))
        out.append(udp(P, C, sb.rtp(i, 960 * i, 0x22222222)))
    out.append(udp(C, P, _sr_sdes(0x11111111, EVIL)))
    out.append(udp(P, C, _sr_sdes(0x22222222, EVIL)))
    return out


def write(folder: Path, name: str = FILE_NAME) -> Path:
    fs = frames()
    p = Path(folder) / name
    p.write_bytes(pcap_bytes([(T0 + i * 20_000_000, f) for i, f in enumerate(fs)]))
    return p
