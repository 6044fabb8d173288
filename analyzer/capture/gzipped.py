"""Reading gzip-compressed captures so that damage costs only what lies after it.

Python's gzip module raises on a cut stream, a missing trailer or a bad CRC, and the bytes it had
already inflated in that call are gone: a capture cut at 90 % read as an empty file. Here each member
is inflated with a raw-deflate decompressor, the header and the trailer (CRC-32, length) are checked by
hand, and on a deflate error the last piece of input is fed again in smaller steps from a copy of the
decompressor, so every byte inflated before the damage is kept. What went wrong is in `problem`.
"""

from __future__ import annotations

import struct
import zlib

READ = 256 * 1024  # compressed bytes read at a time
FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 1, 2, 4, 8, 16


def _header_length(data: bytes) -> int | None:
    """Length of the gzip member header at the start of `data`; None if more bytes are needed;
    -1 if this is not a gzip header (RFC 1952 section 2.3)."""
    if len(data) < 10:
        return None if data[:3] == b"\x1f\x8b\x08"[: min(len(data), 3)] else -1
    if data[:3] != b"\x1f\x8b\x08":
        return -1
    flags = data[3]
    pos = 10
    if flags & FEXTRA:
        if len(data) < pos + 2:
            return None
        pos += 2 + struct.unpack_from("<H", data, pos)[0]
    for bit in (FNAME, FCOMMENT):
        if flags & bit:
            end = data.find(b"\0", pos)
            if end < 0:
                return None
            pos = end + 1
    if flags & FHCRC:
        pos += 2
    return pos if pos <= len(data) else None


class GzipReader:
    """A file-like `readinto` over the inflated bytes of every gzip member; never raises on damage."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._in = b""  # compressed bytes not yet fed
        self._in_at = 0  # file offset of self._in[0]
        self._eof_in = False
        self._out = bytearray()
        self._d: zlib._Decompress | None = None
        self._crc = 0
        self._size = 0
        self._done = False
        self.members = 0
        self.problem: str | None = None  # what damage ended the stream, with its compressed offset

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()

    def readinto(self, view: memoryview) -> int:
        while len(self._out) < len(view) and not self._done:
            self._step()
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        del self._out[:n]
        return n

    # ------------------------------------------------------------------
    def _read_more(self) -> bool:
        if self._eof_in:
            return False
        got = self._f.read(READ)
        if not got:
            self._eof_in = True
            return False
        self._in += got
        return True

    def _consume(self, n: int) -> None:
        self._in = self._in[n:]
        self._in_at += n

    def _stop(self, problem: str | None) -> None:
        self.problem = self.problem or problem
        self._done = True

    def _step(self) -> None:
        if self._d is None:
            self._start_member()
        else:
            self._inflate()

    def _start_member(self) -> None:
        while True:
            hlen = _header_length(self._in)
            if hlen is not None or not self._read_more():
                break
        if hlen is None:
            if not self._in:
                self._stop(None if self.members else "gzip stream holds no member")
            else:
                self._stop(f"gzip member header cut short at compressed byte {self._in_at}")
            return
        if hlen < 0:
            rest = self._in + self._f.read()
            if self.members and not rest.strip(b"\0"):
                self._stop(None)  # zero padding after the last member, as tape tools write
            else:
                self._stop(f"not gzip data at compressed byte {self._in_at} ({len(rest)} bytes left unread)")
            return
        self._consume(hlen)
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        self._crc, self._size = 0, 0

    def _emit(self, data: bytes) -> None:
        if data:
            self._crc = zlib.crc32(data, self._crc)
            self._size += len(data)
            self._out += data

    def _inflate(self) -> None:
        d = self._d
        if not self._in and not self._read_more():
            self._emit(d.flush())
            self._stop(f"gzip data cut short at compressed byte {self._in_at} (no end-of-stream marker)")
            return
        piece, at = self._in, self._in_at
        self._consume(len(piece))
        saved = d.copy()
        try:
            self._emit(d.decompress(piece))
        except zlib.error as e:
            self._d = saved
            self._salvage(piece, at, e)
            return
        if d.eof:
            self._in = d.unused_data + self._in
            self._in_at -= len(d.unused_data)
            self._end_member()

    def _salvage(self, piece: bytes, at: int, err: zlib.error) -> None:
        """Feed `piece` again in ever smaller steps to keep what inflates before the bad byte."""
        pos = 0
        for step in (4096, 1):
            while pos < len(piece):
                part = piece[pos : pos + step]
                saved = self._d.copy()
                try:
                    self._emit(self._d.decompress(part))
                except zlib.error:
                    self._d = saved
                    break
                pos += len(part)
        self._stop(f"gzip data damaged at compressed byte {at + pos} ({err})")

    def _end_member(self) -> None:
        while len(self._in) < 8 and self._read_more():
            pass
        self.members += 1
        self._d = None
        if len(self._in) < 8:
            self._stop(f"gzip trailer missing at compressed byte {self._in_at} (CRC and length not checked)")
            return
        crc, size = struct.unpack_from("<II", self._in)
        if crc != self._crc or size != self._size & 0xFFFFFFFF:
            # the inflated bytes are kept: the record walk counts what is unreadable in them
            self.problem = self.problem or (
                f"gzip CRC or length mismatch in the member ending at compressed byte {self._in_at}: the inflated "
                f"data is damaged somewhere (CRC stored 0x{crc:08x}, computed 0x{self._crc:08x}; "
                f"length stored {size}, inflated {self._size})"
            )
        self._consume(8)
