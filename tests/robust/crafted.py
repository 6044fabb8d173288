"""Crafted captures for the robustness tests: a few UDP packets laid out with scapy and the test
STUN builder, written as classic pcap."""

from __future__ import annotations

import struct
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.capture.writers import pcap_bytes
from tests.dissect import stunbuild as sb

T0 = 1_700_000_000_000_000_000
CLIENT, SERVER, PEER = "10.0.0.2", "52.112.1.1", "203.0.113.9"


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    return bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def write(path: Path, frames: list[bytes], step_ns: int = 10_000_000) -> Path:
    path.write_bytes(pcap_bytes([(T0 + i * step_ns, f) for i, f in enumerate(frames)]))
    return path


def u64(code: int, value: int) -> bytes:
    return sb.attr(code, struct.pack("!Q", value))


def check(tie: int, tid: bytes, *, controlling: bool = True, extra: list[bytes] | None = None) -> bytes:
    """An ICE Binding request with a 64-bit tie-breaker."""
    return sb.message(
        "Binding",
        "request",
        [
            sb.attr(0x0006, b"remote:local"),
            sb.attr(0x0024, struct.pack("!I", 0x6E7F00FF)),
            u64(0x802A if controlling else 0x8029, tie),
            *(extra or []),
        ],
        tid=tid,
    )


def send_indication(peer: str, port: int, inner: bytes) -> bytes:
    tid = bytes(12)
    return sb.message(
        "Send", "indication", [sb.xor_addr(0x0012, peer, port, tid), sb.attr(0x0013, inner)], tid=tid, fingerprint=False
    )
