"""Reading pcap and pcapng files into per-chunk record tables.

An uncompressed file is memory-mapped, and the pages of each chunk are dropped from the resident set
once the chunk is done (madvise DONTNEED), so memory stays at about the chunk size whatever the file
size. Small and gzip-compressed files are read through a sliding window instead. Each chunk's records
are found with the lockstep chain walk and described by numpy arrays. Nothing here looks inside a
packet: that is decode.py's work.
"""

from __future__ import annotations

import contextlib
import gzip
import mmap
import os
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple
from zlib import error as zlib_error

import numpy as np

from .chain import Walk, lockstep_walk, serial_walk
from .errors import CaptureError

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
BLOCK_IDB, BLOCK_PB, BLOCK_SPB, BLOCK_EPB = 1, 2, 3, 6
MAX_RECORD = 16 * 1024 * 1024  # larger than any real packet: a header claiming more is damaged
CHUNK_BYTES = 16 * 1024 * 1024
WINDOW = 16 * 1024 * 1024
MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_POPULATE_OK = [True]
MMAP_MIN = 4 * 1024 * 1024  # smaller files are simply read
RELEASE_STEP = 8 * 1024 * 1024
PCAPNG_BLOCK_NAMES = {
    1: "interface description",
    2: "packet (obsolete)",
    3: "simple packet",
    4: "name resolution",
    5: "interface statistics",
    6: "enhanced packet",
    9: "systemd journal export",
    10: "decryption secrets",
    0xBAD: "custom",
    0x40000BAD: "custom",
}

LINKTYPE_NAMES = {
    0: "BSD loopback (NULL)",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback (LOOP)",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
}


class Interface(NamedTuple):
    linktype: int
    snaplen: int
    ts_div: int  # timestamp units -> ns: ns = ts * ts_mul // ts_div (see _ts_to_ns)
    ts_mul: int
    ts_shift: int  # > 0 when the resolution is a power of two
    ts_offset_s: int
    name: str


@dataclass
class RecordChunk:
    """One chunk's records. Offsets point into `buf`, which stays valid while the chunk is used."""

    buf: np.ndarray
    data_off: np.ndarray  # int64, start of each packet's bytes in buf
    caplen: np.ndarray  # int64
    origlen: np.ndarray  # int64
    ts_ns: np.ndarray  # int64, ns since the epoch
    linktype: np.ndarray  # int32
    iface: np.ndarray  # int32 (pcap: 0)
    first_frame: int  # 1-based frame number of the first record

    def __len__(self) -> int:
        return int(self.data_off.size)


@dataclass
class Damage:
    """Counted damage. `notes` keeps the first few with their byte offsets, for the summary."""

    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, offset: int | None = None, n: int = 1, detail: str = "") -> None:
        if n <= 0:
            return
        self.counts[kind] += n
        if len(self.notes) < 20:
            where = f" at byte {offset}" if offset is not None else ""
            self.notes.append(f"{kind}{where}{': ' + detail if detail else ''}")


def _unaligned(buf: np.ndarray, dtype: str) -> np.ndarray:
    """A view of `buf` with an integer of `dtype` starting at every byte offset (numpy allows
    unaligned strides), so a gather at many positions is one fancy index."""
    size = np.dtype(dtype).itemsize
    return np.ndarray(shape=(max(len(buf) - size + 1, 0),), dtype=dtype, buffer=buf, strides=(1,))


def _u32(buf: np.ndarray, pos: np.ndarray, big: bool) -> np.ndarray:
    """Unsigned 32-bit integers at positions `pos` (int64), as int64."""
    return _unaligned(buf, ">u4" if big else "<u4")[pos].astype(np.int64)


def _window_hits(
    buf: np.ndarray, seg: np.ndarray, window: int, last: int, at: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """(segment index, offset) of bytes in lo..hi at position +at within the first `window` bytes of
    each evenly spaced segment, read through a strided view (no index arrays)."""
    step = int(seg[1] - seg[0]) if seg.size > 1 else window
    window = min(window, step)
    nrows = seg.size
    while nrows and int(seg[nrows - 1]) + window - 1 > last:
        nrows -= 1
    rows_l, cols_l = [], []
    if nrows:
        view = np.lib.stride_tricks.as_strided(buf[int(seg[0]) + at :], shape=(nrows, window), strides=(step, 1))
        r, c = np.nonzero((view >= lo) & (view <= hi))
        rows_l.append(r)
        cols_l.append(c)
    for k in range(nrows, seg.size):  # the last segments, near the limit
        part = buf[int(seg[k]) + at : max(int(seg[k]) + at, last + at)][:window]
        c = np.flatnonzero((part >= lo) & (part <= hi))
        rows_l.append(np.full(c.size, k))
        cols_l.append(c)
    if not rows_l:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows_l).astype(np.int64), np.concatenate(cols_l).astype(np.int64)


def _u16(buf: np.ndarray, pos: np.ndarray, big: bool) -> np.ndarray:
    return _unaligned(buf, ">u2" if big else "<u2")[pos].astype(np.int64)


class _Source:
    """Bytes of the file as a sliding window (numpy uint8) read piecewise: memory stays bounded."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            head = f.read(2)
        self.compressed = head == b"\x1f\x8b"
        self._f = gzip.open(path, "rb") if self.compressed else open(path, "rb")  # noqa: SIM115
        self.arr = np.zeros(0, dtype=np.uint8)
        self.base = 0  # file offset (decompressed) of arr[0]
        self.eof = False
        self.error: str | None = None
        self._mm: mmap.mmap | None = None
        self._released = 0
        size = os.fstat(self._f.fileno()).st_size if not self.compressed else 0
        if size >= MMAP_MIN:
            # Map the whole file: no copy of the payload bytes. The pages already processed are dropped
            # from the resident set as we go (release), so memory stays bounded by the chunk size.
            self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
            self._mm.madvise(mmap.MADV_SEQUENTIAL)  # read-ahead for the page cache
            self.arr = np.frombuffer(self._mm, dtype=np.uint8)
            self.eof = True
        else:
            self.more(64 * 1024)

    def prefetch(self, start: int, end: int) -> None:
        """Map a chunk's pages in one call (MADV_POPULATE_READ, Linux 5.14+) instead of one page fault
        per page as the gathers touch them; harmless where the kernel does not know it."""
        if self._mm is None or not _POPULATE_OK[0]:
            return
        lo = (start // mmap.PAGESIZE) * mmap.PAGESIZE
        try:
            self._mm.madvise(MADV_POPULATE_READ, lo, min(end, len(self._mm)) - lo)
        except (OSError, ValueError):
            _POPULATE_OK[0] = False

    def release(self, upto: int) -> None:
        """Drop the mapped pages before window position `upto` from memory (they stay readable)."""
        if self._mm is None:
            return
        end = (upto // mmap.PAGESIZE) * mmap.PAGESIZE
        if end - self._released >= RELEASE_STEP:
            self._mm.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end

    def more(self, want: int = WINDOW, keep_from: int | None = None) -> bool:
        """Drop bytes before `keep_from` (window-relative) and append up to `want` more."""
        if self.eof:
            return False
        keep = self.arr if keep_from is None else self.arr[keep_from:]
        if keep_from is not None:
            self.base += keep_from
        new = np.empty(len(keep) + want, dtype=np.uint8)
        new[: len(keep)] = keep
        got = 0
        view = memoryview(new)[len(keep) :]
        try:
            while got < want:
                k = self._f.readinto(view[got:])
                if not k:
                    break
                got += k
        except (OSError, EOFError, gzip.BadGzipFile, zlib_error) as e:
            self.error = f"{e.__class__.__name__}: {e}"
        if got < want:
            self.eof = True
        self.arr = new[: len(keep) + got]
        return got > 0

    def close(self) -> None:
        self.arr = np.zeros(0, dtype=np.uint8)
        if self._mm is not None:
            with contextlib.suppress(BufferError):  # a batch still holds a view: it goes with the last one
                self._mm.close()
        self._f.close()


class CaptureFile:
    """An open capture: its format, interfaces, and an iterator of RecordChunks."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        try:
            if os.path.isdir(self.path):
                raise CaptureError(self.path, "is a directory, not a capture file")
            self.size = os.path.getsize(self.path)
            self._src = _Source(self.path)
        except CaptureError:
            raise
        except FileNotFoundError:
            raise CaptureError(self.path, "no such file") from None
        except PermissionError:
            raise CaptureError(self.path, "permission denied") from None
        except (OSError, gzip.BadGzipFile, EOFError) as e:
            raise CaptureError(self.path, f"cannot read ({e.__class__.__name__}: {e})") from None
        self.damage = Damage()
        self.interfaces: list[Interface] = []
        self.block_counts: Counter = Counter()
        self.records = 0
        head = bytes(self._src.arr[:4])
        if len(self._src.arr) == 0:
            raise CaptureError(self.path, "empty file")
        if head in PCAP_MAGIC:
            self.format = "pcap"
            self._open_pcap()
        elif len(head) == 4 and struct.unpack("<I", head)[0] == PCAPNG_SHB:
            self.format = "pcapng"
            self._big = False
            self._parse_shb(0)
        else:
            kind = "gzip-compressed file" if self._src.compressed else "file"
            raise CaptureError(
                self.path,
                f"not a pcap or pcapng capture ({kind} starts with 0x{head.hex() or 'nothing'})",
                0,
            )

    # ---------------------------------------------------------------- pcap
    def _open_pcap(self) -> None:
        arr = self._src.arr
        if len(arr) < 24:
            raise CaptureError(self.path, "pcap file header cut short", len(arr))
        endian, unit = PCAP_MAGIC[bytes(arr[:4])]
        self._big = endian == ">"
        _maj, _min, _tz, _sig, snaplen, network = struct.unpack(endian + "HHiIII", bytes(arr[4:24]))
        self._ts_unit = unit  # ns per fractional unit
        self._frac_max = 1_000_000 if unit == 1_000 else 1_000_000_000
        linktype = network & 0x03FFFFFF
        self.interfaces.append(Interface(linktype, snaplen, 1, unit, 0, 0, ""))
        self._pcap_linktype = linktype
        self._start = 24
        self._t0: int | None = None
        if len(arr) >= 40:
            self._t0 = int(_u32(arr, np.array([24]), self._big)[0])

    def _pcap_step(self, buf: np.ndarray):
        big = self._big

        def step(p: np.ndarray) -> np.ndarray:
            cap = _u32(buf, p + 8, big)
            return np.where(cap > MAX_RECORD, -1, cap + 16)

        return step

    def _pcap_guess(self, buf: np.ndarray, limit: int):
        big, t0, fmax = self._big, self._t0, self._frac_max

        def plausible(p: np.ndarray) -> np.ndarray:
            ok = p + 16 <= limit
            q = np.where(ok, p, 0)
            ts = _u32(buf, q, big)
            frac = _u32(buf, q + 4, big)
            cap = _u32(buf, q + 8, big)
            orig = _u32(buf, q + 12, big)
            return (
                ok
                & (ts >= t0 - 86_400)
                & (ts <= t0 + 400 * 86_400)
                & (frac < fmax)
                & (cap <= orig)
                & (orig <= MAX_RECORD)
            )

        def guess(seg: np.ndarray, window: int) -> np.ndarray:
            out = np.full(seg.size, -1, dtype=np.int64)
            if t0 is None:
                return out
            lo, hi = (t0 - 86_400) >> 24, (t0 + 400 * 86_400) >> 24
            rows, cols = _window_hits(buf, seg, window, limit - 16, 0 if big else 3, lo, hi)
            if rows.size == 0:
                return out
            p = seg[rows] + cols
            good = plausible(p)
            nxt = p + 16 + np.where(good, _u32(buf, np.where(good, p + 8, 0), big), 0)
            # the next header must be plausible too, unless it lies past the limit
            good &= (nxt + 16 > limit) | plausible(np.where(nxt + 16 <= limit, nxt, 0))
            rows, p = rows[good], p[good]
            first = np.unique(rows, return_index=True)
            out[first[0]] = p[first[1]]
            return out

        return guess

    # ---------------------------------------------------------------- pcapng
    def _parse_shb(self, pos: int) -> int:
        """Read a section header at window position `pos`; returns the position after it."""
        arr = self._src.arr
        if pos + 12 > len(arr):
            raise CaptureError(self.path, "pcapng section header cut short", self._src.base + pos)
        bom = bytes(arr[pos + 8 : pos + 12])
        if bom == struct.pack("<I", PCAPNG_BOM):
            self._big = False
        elif bom == struct.pack(">I", PCAPNG_BOM):
            self._big = True
        else:
            raise CaptureError(self.path, "pcapng section header has a bad byte-order magic", self._src.base + pos)
        e = ">" if self._big else "<"
        (length,) = struct.unpack(e + "I", bytes(arr[pos + 4 : pos + 8]))
        if length < 28 or length % 4 or length > MAX_RECORD:
            raise CaptureError(self.path, f"pcapng section header length {length} is invalid", self._src.base + pos)
        self.interfaces_section: list[Interface] = []
        self.block_counts["section header"] += 1
        return pos + length

    def _pcapng_step(self, buf: np.ndarray, limit: int):
        big = self._big

        def step(p: np.ndarray) -> np.ndarray:
            t = _u32(buf, p, big)
            ln = _u32(buf, p + 4, big)
            bad = (ln < 12) | (ln % 4 != 0) | (ln > MAX_RECORD)
            tail_pos = p + ln - 4
            fits = ~bad & (tail_pos + 4 <= len(buf))
            tail = np.where(fits, _u32(buf, np.where(fits, tail_pos, 0), big), ln)
            bad |= tail != ln
            return np.where(t == PCAPNG_SHB, -2, np.where(bad, -1, ln))

        return step

    def _pcapng_guess(self, buf: np.ndarray, limit: int):
        big = self._big

        def guess(seg: np.ndarray, window: int) -> np.ndarray:
            out = np.full(seg.size, -1, dtype=np.int64)
            rows, cols = _window_hits(buf, seg, window, limit - 32, 3 if big else 0, BLOCK_EPB, BLOCK_EPB)
            if rows.size == 0:
                return out
            p = seg[rows] + cols
            t = _u32(buf, p, big)
            ln = _u32(buf, p + 4, big)
            ok = (t == BLOCK_EPB) & (ln >= 32) & (ln % 4 == 0) & (ln <= MAX_RECORD) & (p + ln <= len(buf))
            tail = _u32(buf, np.where(ok, p + ln - 4, 0), big)
            ok &= tail == ln
            cap = _u32(buf, np.where(ok, p + 20, 0), big)
            ok &= cap + 32 <= ln
            rows, p = rows[ok], p[ok]
            first = np.unique(rows, return_index=True)
            out[first[0]] = p[first[1]]
            return out

        return guess

    def _parse_idb(self, pos: int) -> None:
        arr = self._src.arr
        e = ">" if self._big else "<"
        (length,) = struct.unpack(e + "I", bytes(arr[pos + 4 : pos + 8]))
        body = bytes(arr[pos + 8 : pos + length - 4])
        if len(body) < 8:
            self.damage.add("bad pcapng block", self._src.base + pos, detail="interface description cut short")
            self.interfaces_section.append(Interface(-1, 0, 1, 1000, 0, 0, ""))
            return
        linktype, _res, snaplen = struct.unpack(e + "HHI", body[:8])
        tsresol, offset, name = 6, 0, ""
        i = 8
        while i + 4 <= len(body):
            code, olen = struct.unpack(e + "HH", body[i : i + 4])
            val = body[i + 4 : i + 4 + olen]
            if code == 0:
                break
            if code == 9 and olen >= 1:
                tsresol = val[0]
            elif code == 14 and olen >= 8:
                (offset,) = struct.unpack(e + "q", val[:8])
            elif code == 2:
                name = val.decode("utf-8", "replace")
            i += 4 + olen + ((-olen) % 4)
        if tsresol & 0x80:
            iface = Interface(linktype, snaplen, 1, 1, tsresol & 0x7F, offset, name)
        else:
            v = tsresol
            mul, div = (10 ** (9 - v), 1) if v <= 9 else (1, 10 ** (v - 9))
            iface = Interface(linktype, snaplen, div, mul, 0, offset, name)
        self.interfaces_section.append(iface)
        self.interfaces.append(iface)

    # ---------------------------------------------------------------- chunks
    def release_before(self, offset: int) -> None:
        """Drop the mapped pages before this file offset: for a reader that decides itself when it is
        done with a chunk (`chunks(release=False)`)."""
        if self._src._mm is not None:
            self._src.release(offset - self._src.base)

    def chunks(self, chunk_bytes: int = CHUNK_BYTES, release: bool = True) -> Iterator[RecordChunk]:
        """Yield the records chunk by chunk; damage is counted in self.damage. With `release`, a chunk's
        pages are dropped from memory when the next one is asked for."""
        src = self._src
        pos = self._start if self.format == "pcap" else self._parse_shb(0)
        hdr = 16 if self.format == "pcap" else 12
        frame = 1
        avg = 0  # average record size, learned as we go: sizes the lockstep segments
        while True:
            arr = src.arr
            if not src.eof and len(arr) - pos < chunk_bytes + 65536:
                src.more(chunk_bytes + 65536, keep_from=pos)
                pos = 0
                continue
            if pos >= len(arr):
                break
            limit = min(pos + chunk_bytes, len(arr))
            src.prefetch(pos, limit + 65536)
            if avg == 0:  # learn the record size from a short serial walk before the first lockstep one
                step = self._pcap_step(arr) if self.format == "pcap" else self._pcapng_step(arr, limit)
                probe = serial_walk(step, pos, limit, hdr, max_records=64)
                span = probe.stop - pos
                avg = max(64, span // max(probe.offsets.size, 1))
            if self.format == "pcap":
                walk = lockstep_walk(self._pcap_step(arr), self._pcap_guess(arr, limit), pos, limit, hdr, avg)
                chunk, nxt = self._pcap_chunk(arr, walk, frame)
            else:
                walk = lockstep_walk(
                    self._pcapng_step(arr, limit), self._pcapng_guess(arr, limit), pos, limit, hdr, avg
                )
                chunk, nxt = self._pcapng_chunk(arr, walk, frame)
            if walk.offsets.size > 1:
                avg = int((walk.offsets[-1] - walk.offsets[0]) // (walk.offsets.size - 1)) + 1
            if chunk is not None and len(chunk):
                frame += len(chunk)
                self.records += len(chunk)
                yield chunk
                if release:
                    src.release(pos)
            if nxt is None:
                break
            if nxt == pos and walk.offsets.size == 0 and walk.reason == "limit":
                # a header that does not fit in what is left of the file
                if src.eof:
                    if pos < len(arr):
                        self.damage.add("truncated record", src.base + pos, detail=f"{len(arr) - pos} trailing bytes")
                    break
                src.more(chunk_bytes + 65536, keep_from=pos)
                pos = 0
                continue
            pos = nxt
        if src.error:
            self.damage.add("read error", src.base + len(src.arr), detail=src.error)

    def _records_fit(self, arr: np.ndarray, offs: np.ndarray, data_off: np.ndarray, end: np.ndarray):
        """Split walked records into those whose bytes are all present and the first that is not."""
        fits = end <= len(arr)
        if fits.all():
            return offs.size, None
        first_bad = int(np.argmin(fits))
        return first_bad, int(offs[first_bad])

    def _pcap_chunk(self, arr: np.ndarray, walk: Walk, frame: int):
        offs = walk.offsets
        big = self._big
        cap = _u32(arr, offs + 8, big)
        n_ok, cut = self._records_fit(arr, offs, offs + 16, offs + 16 + cap)
        if cut is not None:
            if self._src.eof:
                self.damage.add(
                    "truncated record", self._src.base + cut, detail=f"record claims {int(cap[n_ok])} bytes"
                )
                nxt = None
            else:
                nxt = cut
            offs, cap = offs[:n_ok], cap[:n_ok]
        else:
            nxt = walk.stop
            if walk.reason == "invalid":
                bad_cap = int(_u32(arr, np.array([walk.stop + 8]), big)[0])
                self.damage.add(
                    "bad record header",
                    self._src.base + walk.stop,
                    detail=f"captured length {bad_cap} is impossible; the rest of the file is unreadable",
                )
                nxt = None
        if offs.size == 0:
            return None, nxt
        sec = _u32(arr, offs, big)
        frac = _u32(arr, offs + 4, big)
        orig = _u32(arr, offs + 12, big)
        ts = sec * 1_000_000_000 + frac * self._ts_unit
        n = offs.size
        chunk = RecordChunk(
            buf=arr,
            data_off=offs + 16,
            caplen=cap,
            origlen=orig,
            ts_ns=ts,
            linktype=np.full(n, self._pcap_linktype, dtype=np.int32),
            iface=np.zeros(n, dtype=np.int32),
            first_frame=frame,
        )
        return chunk, nxt

    def _pcapng_chunk(self, arr: np.ndarray, walk: Walk, frame: int):
        offs = walk.offsets
        big = self._big
        nxt: int | None = walk.stop
        ln = _u32(arr, offs + 4, big) if offs.size else np.zeros(0, dtype=np.int64)
        n_ok, cut = self._records_fit(arr, offs, offs, offs + ln)
        if cut is not None:
            if self._src.eof:
                self.damage.add("truncated record", self._src.base + cut, detail=f"block claims {int(ln[n_ok])} bytes")
                nxt = None
            else:
                nxt = cut
            offs, ln = offs[:n_ok], ln[:n_ok]
        elif walk.reason == "invalid":
            self.damage.add(
                "bad pcapng block",
                self._src.base + walk.stop,
                detail="block length is invalid or does not match its trailing copy; the rest is unreadable",
            )
            nxt = None
        elif walk.reason == "break":
            pass  # a new section starts at walk.stop: handled below after this chunk's blocks
        types = _u32(arr, offs, big) if offs.size else np.zeros(0, dtype=np.int64)
        # interface descriptions first (few), in file order, so packets can refer to them
        for p in offs[types == BLOCK_IDB].tolist():
            self._parse_idb(p)
        for t, c in zip(*np.unique(types, return_counts=True), strict=True):
            self.block_counts[PCAPNG_BLOCK_NAMES.get(int(t), f"block 0x{int(t):08x}")] += int(c)
        ifs = self.interfaces_section  # this chunk's section; a new section header below replaces it
        if nxt is not None and walk.reason == "break" and cut is None:
            nxt = self._parse_shb(walk.stop)
        is_epb = types == BLOCK_EPB
        is_spb = types == BLOCK_SPB
        is_pb = types == BLOCK_PB
        pkt = is_epb | is_spb | is_pb
        if not pkt.any():
            return None, nxt
        p = offs[pkt]
        bl = ln[pkt]
        epb, spb, pb = is_epb[pkt], is_spb[pkt], is_pb[pkt]
        n = p.size
        iface = np.zeros(n, dtype=np.int64)
        iface[epb] = _u32(arr, p[epb] + 8, big)
        if pb.any():
            iface[pb] = _u16(arr, p[pb] + 8, big)
        ts_hi = np.zeros(n, dtype=np.int64)
        ts_lo = np.zeros(n, dtype=np.int64)
        cap = np.zeros(n, dtype=np.int64)
        orig = np.zeros(n, dtype=np.int64)
        data = np.zeros(n, dtype=np.int64)
        tp = epb | pb
        ts_hi[tp] = _u32(arr, p[tp] + 12, big)
        ts_lo[tp] = _u32(arr, p[tp] + 16, big)
        cap[tp] = _u32(arr, p[tp] + 20, big)
        orig[tp] = _u32(arr, p[tp] + 24, big)
        data[tp] = p[tp] + 28
        if spb.any():
            orig[spb] = _u32(arr, p[spb] + 8, big)
            cap[spb] = np.minimum(orig[spb], bl[spb] - 16)
            data[spb] = p[spb] + 12
        # a captured length that overruns its block is damage: clip it and count
        room = bl - (data - p) - 4
        over = cap > room
        if over.any():
            self.damage.add(
                "bad pcapng block", self._src.base + int(p[over][0]), int(over.sum()), "packet overruns its block"
            )
            cap = np.where(over, np.maximum(room, 0), cap)
        known = iface < len(ifs)
        if not known.all():
            self.damage.add(
                "unknown interface",
                self._src.base + int(p[~known][0]),
                int((~known).sum()),
                "packet names no interface",
            )
        linktype = np.full(n, -1, dtype=np.int32)
        ts = np.zeros(n, dtype=np.int64)
        raw = (ts_hi.astype(np.uint64) << np.uint64(32)) | ts_lo.astype(np.uint64)
        for i, itf in enumerate(ifs):
            m = known & (iface == i)
            if not m.any():
                continue
            linktype[m] = itf.linktype
            ts[m] = _ts_to_ns(raw[m], itf)
        chunk = RecordChunk(
            buf=arr,
            data_off=data,
            caplen=cap,
            origlen=orig,
            ts_ns=ts,
            linktype=linktype,
            iface=iface.astype(np.int32),
            first_frame=frame,
        )
        return chunk, nxt

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ts_to_ns(raw: np.ndarray, itf: Interface) -> np.ndarray:
    """pcapng timestamps in the interface's units to ns (int64), exactly."""
    if itf.ts_shift:
        s = np.uint64(itf.ts_shift)
        whole = (raw >> s).astype(np.int64)
        frac = (raw & ((np.uint64(1) << s) - np.uint64(1))).astype(np.float64)
        ns = whole * 1_000_000_000 + np.round(frac * 1e9 / float(1 << itf.ts_shift)).astype(np.int64)
    elif itf.ts_div >= 2**64:  # if_tsresol 10**-19 s and finer: every time rounds down to 0 ns
        ns = np.zeros(raw.shape, dtype=np.int64)
    elif itf.ts_div > 1:
        ns = (raw // np.uint64(itf.ts_div)).astype(np.int64)
    else:
        ns = raw.astype(np.int64) * itf.ts_mul
    off = itf.ts_offset_s * 1_000_000_000
    if not -(2**62) <= off <= 2**62:  # an if_tsoffset no int64 time can carry: unusable, not applied
        off = 0
    return ns + off
