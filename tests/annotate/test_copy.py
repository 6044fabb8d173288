"""The pcapng copy on captures laid out byte by byte: every pcap variant, pcapng with several sections,
byte orders, blocks of every kind between packets, existing comments, damage, small chunks, gzip and a
capture larger than a chunk. tshark reads each copy; scapy reads the bytes."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np

from analyzer.annotate.copy import copy_with_comments
from analyzer.capture import CaptureFile
from tests.annotate import tshark as T
from tests.capture.writers import _block, _opt, epb, idb, pcap_bytes, shb, spb, unknown_block

T0 = 1_795_708_569_123_456_789  # ns


def _udp(i: int) -> bytes:
    """A small Ethernet/IPv4/UDP frame whose payload names its index."""
    payload = f"packet {i}".encode()
    udp = struct.pack(">HHHH", 40000 + i, 3478, 8 + len(payload), 0) + payload
    ip = (
        struct.pack(
            ">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        )
        + udp
    )
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip


def _copy(tmp: Path, data: bytes, comments: dict[int, list[str]], heads=None, name="in.pcap", **kw):
    src = tmp / name
    src.write_bytes(data)
    out = tmp / (name + ".annotated.pcapng")
    rep = copy_with_comments(str(src), str(out), comments, heads, **kw)
    return src, out, rep


def test_pcap_nanoseconds_keep_their_resolution(tmp_path: Path) -> None:
    pkts = [(T0 + i * 1_000_003, _udp(i)) for i in range(5)]
    src, out, rep = _copy(tmp_path, pcap_bytes(pkts, nano=True), {2: ["two"], 5: ["five", "and more"]})
    assert rep.records == 5 and rep.comments == 3
    with CaptureFile(out) as cap:
        ts = np.concatenate([c.ts_ns for c in cap.chunks()]).tolist()
        assert cap.format == "pcapng" and cap.interfaces[0].ts_mul == 1  # if_tsresol 9
        assert ts == [t for t, _ in pkts]
    times, got = T.frames(out)
    assert got == {2: ["two"], 5: ["five", "and more"]}
    assert times == T.frames(src)[0]
    assert times[1].startswith("1795708569.124456792")  # nanosecond digits survive
    assert T.records(out) == T.records(src)


def test_pcap_microseconds_big_endian_and_snaplen(tmp_path: Path) -> None:
    pkts = [(T0 // 1000 * 1000 + i * 20_000_000, _udp(i)) for i in range(4)]
    data = pcap_bytes(pkts, big=True, snaplen=96, origlens={1: 1500})
    src, out, _ = _copy(tmp_path, data, {1: ["first"], 2: ["second"]})
    with CaptureFile(out) as cap:
        list(cap.chunks())
        assert cap.interfaces[0].ts_mul == 1000 and cap.interfaces[0].snaplen == 96
        assert cap.interfaces[0].linktype == 1
    times, got = T.frames(out)
    assert got == {1: ["first"], 2: ["second"]}
    assert times == T.frames(src)[0]
    assert T.records(out) == T.records(src)  # (bytes, original length): frame 2 was cut to its snaplen


def _epb_with_comment(e: str, iface: int, ts: int, data: bytes, comment: str) -> bytes:
    body = struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data
    body += b"\0" * ((-len(data)) % 4) + _opt(e, 1, comment.encode()) + _opt(e, 0, b"")
    return _block(e, 6, body)


def _shb_with_comment(e: str, comment: str, section_length: int) -> bytes:
    body = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, section_length) + _opt(e, 1, comment.encode()) + _opt(e, 0, b"")
    return _block(e, 0x0A0D0D0A, body)


def _mixed_pcapng() -> bytes:
    """Section 1 (little-endian, its own comment and a section length): two interfaces (µs and ns), a
    name-resolution block, a packet with a comment of its own, a block of an unknown type between packets,
    a simple packet, an interface statistics block. Section 2, big-endian: one interface, packets.
    (No custom block 0xBAD: Wireshark numbers those as frames, the reader does not.)"""
    us = T0 // 1000
    s1 = [_shb_with_comment("<", "taken on the laptop", 0)]
    s1 += [idb(1, tsresol=6), idb(1, tsresol=9)]
    s1 += [_block("<", 4, _opt("<", 1, b"\x0a\x00\x00\x01host\0") + _opt("<", 0, b""))]  # NRB
    s1 += [epb(0, us, _udp(1)), _epb_with_comment("<", 1, T0 + 5, _udp(2), "already here")]
    s1 += [unknown_block(), epb(1, T0 + 9, _udp(3)), spb(_udp(4))]
    s1 += [_block("<", 5, struct.pack("<III", 0, 0, 0))]  # ISB
    s1[0] = s1[0][:16] + struct.pack("<q", sum(map(len, s1[1:]))) + s1[0][24:]  # a true section length
    s2 = [shb(big=True), idb(1, big=True, tsresol=6)]
    s2 += [epb(0, us + 1_000_000, _udp(5), big=True), epb(0, us + 2_000_000, _udp(6), big=True)]
    return b"".join(s1 + s2)


def test_pcapng_keeps_its_blocks_and_adds_comments(tmp_path: Path) -> None:
    comments = {1: ["one"], 2: ["two"], 4: ["on a simple packet"], 6: ["six"]}
    src, out, rep = _copy(tmp_path, _mixed_pcapng(), comments, ["undetermined finding"], name="in.pcapng")
    assert rep.records == 6 and rep.comments == 3
    assert rep.unplaced == {4: ["on a simple packet"]}  # a simple packet block has no options
    times, got = T.frames(out)
    assert got == {1: ["one"], 2: ["already here", "two"], 6: ["six"]}
    assert times == T.frames(src)[0]
    assert T.records(out) == T.records(src)
    assert T.capture_comments(out) == ["taken on the laptop", "undetermined finding"]
    # every block other than the commented packets and the section headers is copied byte for byte
    raw_in, raw_out = src.read_bytes(), out.read_bytes()
    for blk in (idb(1, tsresol=9), unknown_block(), spb(_udp(4)), idb(1, big=True, tsresol=6)):
        assert blk in raw_in and blk in raw_out
    assert b"\xff" * 8 in raw_out[16:24]  # the section length is 'not given' now: blocks grew


def test_damage_is_left_out_and_frames_stay_the_readers(tmp_path: Path) -> None:
    """Bytes the reader skips between records are not copied; each comment lands on the record the
    reader numbers so (the analysis' frame numbers)."""
    us = T0 // 1000
    good = [epb(0, us + i, _udp(i)) for i in range(1, 7)]
    data = shb() + idb(1) + b"".join(good[:3]) + b"\x07" * 40 + b"".join(good[3:])
    src, out, rep = _copy(tmp_path, data, {3: ["three"], 4: ["four"], 6: ["six"]}, name="bad.pcapng")
    with CaptureFile(src) as cap:
        frames = [bytes(c.buf[o : o + n]) for c in cap.chunks() for o, n in zip(c.data_off, c.caplen, strict=True)]
    assert len(frames) == 3  # the reader stops at a block length it cannot trust
    assert rep.dropped_bytes == 40 + sum(map(len, good[3:]))
    assert rep.unplaced == {4: ["four"], 6: ["six"]}
    _, got = T.frames(out)
    assert got == {3: ["three"]}
    assert [d for d, _ in T.records(out)] == frames == [_udp(i) for i in (1, 2, 3)]


def test_small_chunks_and_gzip_give_the_same_copy(tmp_path: Path) -> None:
    """Chunk and window boundaries fall everywhere: a copy read 300 bytes at a time, from gzip, is the
    copy read at once."""
    data = _mixed_pcapng() * 1  # two sections
    us = T0 // 1000
    more = b"".join(epb(0, us + 10 + i, _udp(100 + i), big=True) for i in range(2000))
    data += more + _block(">", 5, struct.pack(">III", 0, 0, 0))
    comments = {f: [f"frame {f}"] for f in (1, 2, 6, 7, 999, 1000, 2008)}
    _, whole, rep = _copy(tmp_path, data, comments, ["head"], name="a.pcapng")
    gz = tmp_path / "b.pcapng.gz"
    gz.write_bytes(gzip.compress(data))
    small = tmp_path / "small.pcapng"
    rep2 = copy_with_comments(str(gz), str(small), comments, ["head"], chunk_bytes=300)
    assert rep.records == rep2.records == 2006 and rep.comments == rep2.comments == 6
    assert small.read_bytes() == whole.read_bytes()
    _, got = T.frames(small)
    expected = {f: [f"frame {f}"] for f in (1, 2, 6, 7, 999, 1000)}  # 2008 is past the end
    expected[2].insert(0, "already here")
    assert got == expected
    assert rep2.unplaced == {2008: ["frame 2008"]}


def test_a_capture_larger_than_memory_holds_is_streamed(tmp_path: Path) -> None:
    """70 MB of pcap records are copied with traced memory well under the file's size."""
    n, size = 600_000, 100
    rec = np.zeros((n, 16 + size), dtype=np.uint8)
    u32 = lambda v: np.asarray(v, dtype="<u4").view(np.uint8).reshape(n, 4)  # noqa: E731
    rec[:, 0:4] = u32(1_700_000_000 + np.arange(n) // 1000)
    rec[:, 4:8] = u32((np.arange(n) % 1000) * 1000)
    rec[:, 8:12] = rec[:, 12:16] = u32(np.full(n, size))
    rec[:, 16:] = (np.arange(n)[:, None] + np.arange(size)) % 251
    src = tmp_path / "big.pcap"
    with open(src, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        f.write(rec.tobytes())
    del rec
    out = tmp_path / "big.pcapng"
    tracemalloc.start()
    try:
        rep = copy_with_comments(str(src), str(out), {1: ["first"], 300_000: ["middle"], n: ["last"]})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rep.records == n and rep.comments == 3
    assert peak < 48e6 < src.stat().st_size
    # section header 64 + interface 32 + packets + the three comments with their end-of-options
    assert out.stat().st_size == 64 + 32 + n * (32 + size) + 16 + 16 + 12
    got = T.comments(out)
    assert got == {1: ["first"], 300_000: ["middle"], n: ["last"]}


def test_a_truncated_pcap_is_copied_up_to_its_damage(tmp_path: Path) -> None:
    pkts = [(T0 + i * 1000, _udp(i)) for i in range(4)]
    data = pcap_bytes(pkts)
    cut = data[:-10]  # the last record claims 10 bytes more than the file holds
    _, out, rep = _copy(tmp_path, cut, {3: ["three"], 4: ["four"]})
    assert rep.records == 3 and rep.unplaced == {4: ["four"]}
    assert rep.dropped_bytes == 16 + len(_udp(3)) - 10
    assert T.comments(out) == {3: ["three"]}
    assert [d for d, _ in T.records(out)] == [_udp(i) for i in range(3)]
