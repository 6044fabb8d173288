"""Copy a capture to pcapng, adding packet comments, record by record.

The copy follows the records exactly as capture/formats.py walks them (the same frame numbers the
analysis gives), chunk by chunk, so memory stays at about one chunk whatever the file size, gzip too.

- pcapng in: every block is written as read (interfaces, name resolution, statistics, secrets, custom
  blocks, existing comments), except that a packet that gets comments gains opt_comment options after
  its own and each section header's section length becomes "not given" (blocks change size).
- pcap in: a section header, one interface (the file's link type and snap length, if_tsresol 6 or 9 as
  the file's magic says) and one enhanced packet block per record, timestamps in the file's own units.

Bytes the reader skipped as damage are not copied (they would break the output); they are counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from ..capture.formats import CHUNK_BYTES, CaptureFile, RecordChunk, _u32
from . import pcapng as P

SUB_BATCH = 1 << 20  # data bytes per gather when converting pcap records (bounds the index arrays)
USERAPPL = "callflow-analyzer annotate"


@dataclass
class CopyReport:
    """What the copy did: records written, comments placed, and those that found no room."""

    path: str
    output: str
    format: str
    records: int = 0
    comments: int = 0
    section_comments: int = 0
    dropped_bytes: int = 0
    patched: int = 0  # packets whose data a patch rewrote
    unplaced: dict[int, list[str]] = field(default_factory=dict)  # frame (0: section header) -> comments not written


def copy_with_comments(
    path: str,
    output: str,
    comments: dict[int, list[str]],
    section_comments: list[str] | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    patches=None,
) -> CopyReport:
    """Write `path` as pcapng to `output` with `comments` (frame -> texts) on the frames and
    `section_comments` on the first section header, reading `chunk_bytes` of records at a time.

    `patches`, when given, rewrites packet data as it is copied: `patches.take(first, stop)` returns
    {frame: function(data bytes) -> bytes of the same length, or None to keep them} for the frames of a
    chunk, in frame order (decrypt.rewrite streams the plaintext of SRTP packets this way)."""
    with CaptureFile(path) as cap, open(output, "wb") as out:
        rep = CopyReport(path, output, cap.format)
        writer = _PcapngCopy(cap, out, rep) if cap.format == "pcapng" else _PcapCopy(cap, out, rep)
        writer.start(list(section_comments or []))
        for chunk in cap.chunks(chunk_bytes):
            edits = patches.take(chunk.first_frame, chunk.first_frame + len(chunk)) if patches is not None else {}
            writer.chunk(chunk, comments, edits)
        writer.finish()
    frames_seen = rep.records
    for f, texts in comments.items():
        if f > frames_seen:
            rep.unplaced.setdefault(f, []).extend(texts)
    return rep


class _PcapCopy:
    """pcap records -> enhanced packet blocks, gathered with numpy per chunk."""

    def __init__(self, cap: CaptureFile, out: BinaryIO, rep: CopyReport) -> None:
        self.cap, self.out, self.rep = cap, out, rep
        self.iface = cap.interfaces[0]
        self.consumed = 24  # file header + the records copied

    def start(self, section_comments: list[str]) -> None:
        opts = P.comment_options(section_comments) + P.option(P.SHB_USERAPPL, USERAPPL.encode())
        self.out.write(P.section_header(opts))
        tsresol = 9 if self.iface.ts_mul == 1 else 6
        self.out.write(P.interface(self.iface.linktype, self.iface.snaplen, tsresol))
        self.rep.section_comments = len(section_comments)

    def chunk(self, ch: RecordChunk, comments: dict[int, list[str]], edits: dict | None = None) -> None:
        self.edits = edits or {}
        n = len(ch)
        units = ch.ts_ns // self.iface.ts_mul  # exact: the reader made ns from the file's own units
        frames = ch.first_frame + np.arange(n)
        keys = np.fromiter(comments.keys(), dtype=np.int64, count=len(comments))
        opts = {i: P.comment_options(comments[int(frames[i])]) for i in np.flatnonzero(np.isin(frames, keys)).tolist()}
        cap = ch.caplen
        optlen = np.zeros(n, dtype=np.int64)
        for i, o in opts.items():
            optlen[i] = len(o) + 4  # + opt_endofopt
            self.rep.comments += len(comments[ch.first_frame + i])
        blen = 32 + cap + (-cap) % 4 + optlen
        start = 0
        while start < n:  # sub-batches keep the gather's index arrays small
            csum = np.cumsum(cap[start:])
            stop = start + max(1, int(np.searchsorted(csum, SUB_BATCH)))
            self._write(ch, start, min(stop, n), units, blen, opts)
            start = stop
        self.rep.records += n
        self.consumed += int((16 + cap).sum())

    def _write(self, ch: RecordChunk, a: int, b: int, units, blen, opts: dict[int, bytes]) -> None:
        cap, bl = ch.caplen[a:b], blen[a:b]
        off = np.concatenate(([0], np.cumsum(bl)[:-1]))
        out = np.zeros(int(bl.sum()), dtype=np.uint8)
        u = units[a:b].astype(np.uint64)
        head = np.stack(
            [
                np.full(b - a, P.EPB.btype),
                bl,
                ch.iface[a:b],
                (u >> np.uint64(32)).astype(np.int64),
                (u & np.uint64(0xFFFFFFFF)).astype(np.int64),
                cap,
                ch.origlen[a:b],
            ],
            axis=1,
        ).astype("<u4")
        out[(off[:, None] + np.arange(28)).ravel()] = head.view(np.uint8).ravel()
        total = int(cap.sum())
        if total:
            first = np.cumsum(cap) - cap
            rel = np.arange(total) - np.repeat(first, cap)
            out[np.repeat(off + 28, cap) + rel] = ch.buf[np.repeat(ch.data_off[a:b], cap) + rel]
        out[((off + bl - 4)[:, None] + np.arange(4)).ravel()] = bl.astype("<u4").view(np.uint8)
        for frame, edit in self.edits.items():
            i = frame - ch.first_frame
            if a <= i < b:
                at, size = int(off[i - a] + 28), int(cap[i - a])
                new = edit(out[at : at + size].tobytes())
                if new is not None and len(new) == size:
                    out[at : at + size] = np.frombuffer(new, dtype=np.uint8)
                    self.rep.patched += 1
        for i, o in opts.items():
            if a <= i < b:
                at = int(off[i - a] + 28 + cap[i - a] + (-cap[i - a]) % 4)
                o += P.option(P.OPT_ENDOFOPT, b"")
                out[at : at + len(o)] = np.frombuffer(o, dtype=np.uint8)
        self.out.write(out.tobytes())

    def finish(self) -> None:
        """What the reader did not yield (a record it could not trust and what follows) is counted."""
        src = self.cap._src
        self.rep.dropped_bytes += max(0, src.base + len(src.arr) - self.consumed)


class _PcapngCopy:
    """pcapng blocks copied as read; runs of packet blocks without comments written in one slice."""

    def __init__(self, cap: CaptureFile, out: BinaryIO, rep: CopyReport) -> None:
        self.cap, self.out, self.rep = cap, out, rep
        self.done = 0  # file offset (decompressed) up to which the output is written
        self.big = False  # the current section's byte order, from the last section header copied
        self.section_comments: list[str] = []
        self.first_shb = True

    @property
    def e(self) -> str:
        return ">" if self.big else "<"

    def start(self, section_comments: list[str]) -> None:
        self.section_comments = section_comments
        self._walk_from_done(stop_at_packet=True)  # the first section header and what precedes the first packet

    def chunk(self, ch: RecordChunk, comments: dict[int, list[str]], edits: dict | None = None) -> None:
        edits = edits or {}
        src = self.cap._src  # the window the chunk's offsets point into (its file offset is src.base)
        buf, base = ch.buf, src.base
        n = len(ch)
        start, end = self._blocks(buf, ch.data_off)
        data_off_rel = ch.data_off - start  # where each packet's data starts inside its block
        prev_end = np.concatenate(([self.done - base], end[:-1]))
        frames = ch.first_frame + np.arange(n)
        marked = np.isin(frames, np.fromiter(comments.keys(), dtype=np.int64, count=len(comments)))
        if edits:
            marked |= np.isin(frames, np.fromiter(edits.keys(), dtype=np.int64, count=len(edits)))
        events = np.flatnonzero((start != prev_end) | marked)
        cursor = self.done - base
        for i in events.tolist():
            if prev_end[i] > cursor:
                self._raw(buf, cursor, int(prev_end[i]))
            self.done = base + int(prev_end[i])
            if start[i] != prev_end[i]:
                self._walk_from_done(stop_at=base + int(start[i]))
            s, t = int(start[i]), int(end[i])
            texts = comments.get(int(frames[i]))
            raw = memoryview(buf[s:t])
            edit = edits.get(int(frames[i]))
            if edit is not None:
                raw = self._patched(raw, int(data_off_rel[i]), int(ch.caplen[i]), edit)
            new = P.with_options(raw, P.comment_options(texts, self.e), self.e) if texts else None
            if new is None:
                self.out.write(raw)
                if texts:
                    self.rep.unplaced.setdefault(int(frames[i]), []).extend(texts)
            else:
                self.out.write(new)
                self.rep.comments += len(texts)
            cursor = t
        if n and end[-1] > cursor:
            self._raw(buf, cursor, int(end[-1]))
            cursor = int(end[-1])
        self.done = base + cursor
        self.rep.records += n
        self._walk_from_done(stop_at_packet=True)  # blocks after the last packet, before the window moves

    def finish(self) -> None:
        self._walk_from_done(stop_at_packet=False, trailing=True)

    def _patched(self, raw: memoryview, at: int, size: int, edit) -> memoryview:
        """The block with its packet data rewritten by `edit` (same length), or as it was."""
        new = edit(bytes(raw[at : at + size]))
        if new is None or len(new) != size:
            return raw
        block = bytearray(raw)
        block[at : at + size] = new
        self.rep.patched += 1
        return memoryview(bytes(block))

    def _raw(self, buf: np.ndarray, a: int, b: int) -> None:
        self.out.write(memoryview(buf[a:b]))

    def _blocks(self, buf: np.ndarray, data_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end of each packet's block: enhanced/obsolete packet blocks have 28 bytes before the
        data, simple packet blocks 12; the longer header is taken when its type, length and trailing
        length copy agree."""
        big = self.big
        s28 = np.maximum(data_off - 28, 0)
        t = _u32(buf, s28, big)
        ln = _u32(buf, s28 + 4, big)
        fits = (s28 + ln <= len(buf)) & (ln >= 32) & (data_off >= 28)
        tail = _u32(buf, np.where(fits, s28 + ln - 4, 0), big)
        long_ok = ((t == P.EPB.btype) | (t == P.PB.btype)) & fits & (tail == ln)
        start = np.where(long_ok, s28, data_off - 12)
        ln = np.where(long_ok, ln, _u32(buf, data_off - 8, big))
        return start, start + ln

    def _walk_from_done(self, stop_at: int | None = None, stop_at_packet: bool = False, trailing: bool = False) -> None:
        """Copy whole non-packet blocks from self.done on (up to `stop_at`, or up to the first packet block),
        while they chain by their lengths and lie in the window. What does not chain is damage: skipped up
        to `stop_at` and counted."""
        src = self.cap._src
        buf, base = src.arr, src.base
        pos = self.done - base
        if pos < 0:  # bytes the reader had already let go of: damage it skipped
            self.rep.dropped_bytes += -pos
            pos = 0
        limit = len(buf) if stop_at is None else stop_at - base
        while pos + 12 <= limit:
            (btype,) = struct.unpack(self.e + "I", bytes(buf[pos : pos + 4]))  # a section header reads alike either way
            if btype == P.SHB.btype:
                bom = bytes(buf[pos + 8 : pos + 12])
                if bom not in (struct.pack("<I", P.BOM), struct.pack(">I", P.BOM)):
                    break
                self.big = bom == struct.pack(">I", P.BOM)
            (ln,) = struct.unpack(self.e + "I", bytes(buf[pos + 4 : pos + 8]))
            if ln < 12 or ln % 4 or pos + ln > limit:
                break
            if struct.unpack(self.e + "I", bytes(buf[pos + ln - 4 : pos + ln]))[0] != ln:
                break
            if btype in (P.EPB.btype, P.PB.btype, P.SPB.btype):
                if stop_at_packet:
                    break
                self.rep.dropped_bytes += ln  # a packet block the reader did not count as a frame
            elif btype == P.SHB.btype:
                self._section_header(buf[pos : pos + ln])
            else:
                self.out.write(memoryview(buf[pos : pos + ln]))
            pos += ln
        if stop_at is not None and pos < limit:
            self.rep.dropped_bytes += limit - pos
            pos = limit
        elif trailing and pos < len(buf):
            self.rep.dropped_bytes += len(buf) - pos
        self.done = base + pos

    def _section_header(self, raw: np.ndarray) -> None:
        e = self.e
        out = None
        if self.first_shb and self.section_comments:
            out = P.with_options(memoryview(raw), P.comment_options(self.section_comments, e), e)
            if out is not None:
                self.rep.section_comments = len(self.section_comments)
            else:  # its options are damaged: the command says so rather than dropping the words silently
                self.rep.unplaced.setdefault(0, []).extend(self.section_comments)
        self.first_shb = False
        self.out.write(out if out is not None else P.unknown_section_length(memoryview(raw), e))
