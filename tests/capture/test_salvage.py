"""Damaged gzip captures: every packet before the damage is read, and the damage is named.

The expected counts were read with `zcat FILE | tshark -r -` and capinfos on the same files; the tests
ask tshark again when it is installed."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from analyzer.capture import CaptureError, summarize
from tests.capture.writers import pcap_bytes
from tests.conftest import CAPTURES

SHIPPED = CAPTURES / "external-via-relay" / "client-a.pcap"  # 287 packets


def _tshark_count(path) -> int | None:
    """Frames tshark reads from the damaged file with Wireshark's own gzip reader (as capinfos does;
    it ends with an error, which is expected)."""
    if shutil.which("tshark") is None:
        return None
    out = subprocess.run(["tshark", "-n", "-r", str(path)], capture_output=True).stdout
    return len(out.splitlines())


def _damaged(kind: str, data: bytes) -> bytes:
    if kind.startswith("cut"):
        return data[: len(data) * int(kind[3:]) // 100]
    if kind == "no-trailer":
        return data[:-8]
    b = bytearray(data)
    if kind == "bad-crc":
        b[-8] ^= 0xFF
    elif kind.startswith("flip@"):
        b[int(kind[5:])] ^= 0x10
    return bytes(b)


@pytest.mark.parametrize(
    "kind,packets,says",
    [
        ("cut10", 33, "cut short"),
        ("cut50", 150, "cut short"),
        ("cut90", 255, "cut short"),  # capinfos: 255 of 287
        ("no-trailer", 287, "trailer missing"),  # capinfos: all 287
        ("bad-crc", 287, "CRC or length mismatch"),
        # a flipped byte that still inflates, to wrong bytes: the record walk stops at frame 152's header
        ("flip@20394", 151, "CRC or length mismatch"),
        # flipped bytes the inflater refuses: what inflated before the bad byte is read
        ("flip@20581", 151, "invalid block type"),
        ("flip@23707", 173, "invalid literal/length code"),
    ],
)
def test_damaged_gzip_reads_everything_before_the_damage(tmp_path, kind, packets, says):
    if not SHIPPED.exists():
        pytest.skip("shipped capture absent")
    p = tmp_path / f"{kind}.pcap.gz"
    p.write_bytes(_damaged(kind, gzip.compress(SHIPPED.read_bytes(), compresslevel=6, mtime=0)))
    s = summarize(p)
    assert s.packets == packets
    oracle = _tshark_count(p)
    if oracle is not None:
        assert s.packets == oracle
    assert s.damaged["damaged gzip stream"] == 1
    assert any(says in n for n in s.damage_notes), s.damage_notes


def test_a_truncated_pcap_gz_of_400_kb_reads_up_to_the_cut(tmp_path):
    """Issue 17: a .pcap.gz cut at 400 kB read 116 of 1,004 packets (the last inflated window was lost)."""
    rng = np.random.default_rng(17)
    head = bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / UDP(sport=5004, dport=5004, len=1008)
    )
    pkts = [(1_700_000_000_000_000_000 + k * 1_000_000, head + rng.bytes(1000)) for k in range(1500)]
    raw = pcap_bytes(pkts)
    p = tmp_path / "cut.pcap.gz"
    p.write_bytes(gzip.compress(raw, mtime=0)[:400_000])
    s = summarize(p)
    inflated = zlib.decompressobj(31).decompress(p.read_bytes())
    whole = (len(inflated) - 24) // (16 + len(pkts[0][1]))  # records entirely inside the inflated bytes
    assert s.packets == whole > 350
    oracle = _tshark_count(p)
    if oracle is not None:
        assert s.packets == oracle
    assert s.damaged == {"truncated record": 1, "damaged gzip stream": 1}


def test_two_gzip_members_are_one_capture(tmp_path):
    raw = SHIPPED.read_bytes() if SHIPPED.exists() else pytest.skip("shipped capture absent")
    p = tmp_path / "two.pcap.gz"
    p.write_bytes(gzip.compress(raw[:30_000]) + gzip.compress(raw[30_000:]))
    s = summarize(p)
    assert s.packets == 287 and s.damaged == {}


def test_gzip_damaged_before_any_capture_byte_is_one_clear_error(tmp_path):
    p = tmp_path / "hdr.pcap.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00\x00\x00")  # a member header cut short
    with pytest.raises(CaptureError) as e:
        summarize(p)
    assert "gzip member header cut short" in str(e.value)
