"""Untrusted input: damaged captures must give tables and a report, never a traceback."""

from __future__ import annotations

import random

import pytest

from analyzer import analyze
from analyzer.capture import CaptureError
from tests.conftest import CAPTURES

CALL = CAPTURES / "loopback-call" / "call.pcap"


def _all_tables(a) -> dict[str, int]:
    return {name: len(getattr(a, name)) for name in a.tables}


@pytest.mark.parametrize("seed", range(12))
def test_flipped_bytes_never_crash_any_stage(tmp_path, seed):
    rng = random.Random(seed)
    data = bytearray(CALL.read_bytes())
    for _ in range(200):  # damage everywhere after the file header: record headers, IP, UDP, STUN, DTLS, RTP
        data[rng.randrange(24, len(data))] = rng.randrange(256)
    p = tmp_path / "damaged.pcap"
    p.write_bytes(bytes(data))
    a = analyze(p)
    sizes = _all_tables(a)
    assert sizes["summary"] == 1
    a.to_html(tmp_path / "r.html")
    s = a.captures[0]
    # whatever was lost is accounted for: read records plus the damage that stopped the reading
    assert s.packets <= 423 and (s.packets == 423 or s.damaged)


@pytest.mark.parametrize("cut", [25, 40, 1000, 50_000, 150_000])
def test_truncated_files(tmp_path, cut):
    p = tmp_path / "cut.pcap"
    p.write_bytes(CALL.read_bytes()[:cut])
    a = analyze(p)
    _all_tables(a)
    assert a.captures[0].damaged.get("truncated record", 0) <= 1


def test_payload_garbage_in_every_class(tmp_path):
    """Random payloads behind each RFC 7983 first byte, on the ports a call uses."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from tests.capture.writers import pcap_bytes

    rng = random.Random(5)
    frames = []
    for i in range(600):
        first = rng.choice([0, 1, 2, 3, 17, 20, 22, 23, 25, 47, 64, 65, 79, 128, 129, 144, 200, 255])
        body = bytes([first]) + rng.randbytes(rng.randrange(0, 300))
        pkt = Ether() / IP(src="10.0.0.1", dst="52.112.1.1") / UDP(sport=50000, dport=rng.choice([3478, 443, 50001]))
        frames.append((1_700_000_000_000_000_000 + i * 10_000_000, bytes(pkt / body)))
    p = tmp_path / "garbage.pcap"
    p.write_bytes(pcap_bytes(frames))
    a = analyze(p)
    _all_tables(a)
    s = a.captures[0]
    assert s.packets == 600 and sum(s.rejected.values()) > 0


def test_not_a_capture_is_a_capture_error(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(CaptureError):
        analyze(p)
