"""DTLS records and handshake messages (RFC 6347, RFC 9147, RFC 9146, RFC 5764), sans-I/O.

`looks_like_dtls` confirms that a UDP payload in the RFC 7983 DTLS range (first byte 20-63) really is
DTLS; `parse_dtls` splits a datagram into records; `HandshakeReassembler` rebuilds fragmented handshake
messages per direction; `parse_handshake` decodes the messages an observer can read (hellos, the
HelloVerifyRequest, the DTLS 1.2 Certificate). Nothing here raises: damaged input gives values whose
`malformed` says why.

DTLS 1.3 unified headers (first byte 0b001CSLEE) carry a connection id whose length is negotiated, not
written: pass `cid_len` when the hellos told it, otherwise the length that makes the datagram's records
tile exactly is taken. Their sequence number is encrypted (RFC 9147 4.2.3): `sequence` is the raw value.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from . import dtls_tables as T

PLAIN_HEADER = 13
MIN_CIPHERTEXT = 16  # RFC 9147 4.2.3: shorter unified records cannot be deprotected
MAX_CID = 255


class HandshakeFragment(NamedTuple):
    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int
    body: bytes


class DtlsRecord(NamedTuple):
    content_type: int
    content_name: str
    version: int
    version_name: str
    epoch: int
    sequence: int
    length: int
    fragment: bytes
    unified: bool
    encrypted: bool
    handshake: HandshakeFragment | None
    alert: tuple[int, int] | None
    malformed: str | None
    cid: bytes = b""
    handshakes: tuple[HandshakeFragment, ...] = ()  # every message of the record; `handshake` is the first


class DtlsDatagram(NamedTuple):
    records: tuple[DtlsRecord, ...]
    malformed: str | None


class _Bad(Exception):
    """Internal: structure violated (never leaves this module)."""


# ---------------------------------------------------------------- records

def _plain(data: bytes, off: int, cid_len: int | None, strict: bool, established: bool) -> tuple[DtlsRecord, int]:
    end = len(data)
    if end - off < PLAIN_HEADER:
        raise _Bad(f"truncated record header at offset {off}")
    ct, version = data[off], int.from_bytes(data[off + 1:off + 3], "big")
    epoch, seq = int.from_bytes(data[off + 3:off + 5], "big"), int.from_bytes(data[off + 5:off + 11], "big")
    if strict and (ct not in T.CONTENT_TYPES or version not in T.VERSIONS):
        raise _Bad("unknown content type or version")
    cid, pos = b"", off + 11
    if ct == T.CT_TLS12_CID:  # RFC 9146: the cid sits between sequence number and length
        n = cid_len if cid_len is not None else _guess_cid(data, pos, 1, established)
        cid, pos = data[pos:pos + n], pos + n
        if end - pos < 2:
            raise _Bad("truncated connection id record")
    length = int.from_bytes(data[pos:pos + 2], "big")
    start, stop = pos + 2, pos + 2 + length
    bad = None
    if stop > end:
        if strict:
            raise _Bad("record length past datagram")
        bad, stop = f"record length {length} exceeds the {end - start} bytes left", end
    frag = data[start:stop]
    if strict and length == 0:
        raise _Bad("empty record")
    encrypted = epoch > 0
    hs: tuple[HandshakeFragment, ...] = ()
    alert = None
    if ct == T.CT_HANDSHAKE and not encrypted:
        hs, why = _fragments(frag)
        if why and strict:
            raise _Bad(why)
        bad = bad or why
    elif ct == T.CT_ALERT and not encrypted:
        if len(frag) >= 2:
            alert = (frag[0], frag[1])
        else:
            bad = bad or "alert shorter than 2 bytes"
    rec = DtlsRecord(ct, T.content_name(ct), version, T.version_name(version), epoch, seq, length, frag, False,
                     encrypted, hs[0] if hs else None, alert, bad, cid, hs)
    return rec, stop


def _unified(data: bytes, off: int, cid_len: int | None, strict: bool, established: bool) -> tuple[DtlsRecord, int]:
    end, first = len(data), data[off]
    has_cid, long_seq, has_len = bool(first & 0x10), bool(first & 0x08), bool(first & 0x04)
    if strict and not has_len and not established:
        raise _Bad("unified header without length outside a known DTLS flow")
    pos, bad, cid = off + 1, None, b""
    seq_bytes = 2 if long_seq else 1
    if has_cid:
        if cid_len is None and not has_len:
            if strict:
                raise _Bad("connection id of unknown length")
            bad = "connection id length unknown (no length field)"
        else:
            n = cid_len if cid_len is not None else _guess_cid(data, pos + seq_bytes, 1, established)
            cid, pos = data[pos:pos + n], pos + n
    if end - pos < seq_bytes + (2 if has_len else 0):
        raise _Bad("truncated unified header")
    seq = int.from_bytes(data[pos:pos + seq_bytes], "big")
    pos += seq_bytes
    if has_len:
        length = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
    else:
        length = end - pos
    stop = pos + length
    if stop > end:
        if strict:
            raise _Bad("unified record length past datagram")
        bad, stop = bad or f"record length {length} exceeds the {end - pos} bytes left", end
    if strict and length < MIN_CIPHERTEXT:
        raise _Bad("unified record shorter than 16 bytes")
    rec = DtlsRecord(T.CT_APPDATA, T.content_name(T.CT_APPDATA), T.DTLS13, T.version_name(T.DTLS13), first & 0x03,
                     seq, length, data[pos:stop], True, True, None, None, bad, cid)
    return rec, stop


def _guess_cid(data: bytes, pos: int, smallest: int, established: bool) -> int:
    """Connection id length n such that the 2-byte length found n bytes after `pos` (after the cid and,
    for unified headers, the sequence number) ends this record where the following records tile exactly."""
    for n in range(smallest, min(MAX_CID, len(data) - pos - 2) + 1):
        stop = pos + n + 2 + int.from_bytes(data[pos + n:pos + n + 2], "big")
        if stop == len(data) or (stop < len(data) and _tiles(data, stop, n, established)):
            return n
    raise _Bad("no connection id length makes the records tile")


def _tiles(data: bytes, off: int, cid_len: int, established: bool) -> bool:
    try:
        _split(data, off, cid_len, True, established, [])
    except _Bad:
        return False
    return True


def _split(data: bytes, off: int, cid_len: int | None, strict: bool, established: bool,
           records: list[DtlsRecord]) -> list[DtlsRecord]:
    """Append the records from `off` to the end of the datagram to `records` (kept when _Bad is raised)."""
    while off < len(data):
        if data[off] & 0xE0 == 0x20:
            rec, off = _unified(data, off, cid_len, strict, established)
        else:
            rec, off = _plain(data, off, cid_len, strict, established)
        if rec.cid and cid_len is None:
            cid_len = len(rec.cid)  # later records of the datagram come from the same sender
        records.append(rec)
    return records


def _fragments(frag: bytes) -> tuple[tuple[HandshakeFragment, ...], str | None]:
    out, pos = [], 0
    while pos < len(frag):
        if len(frag) - pos < 12:
            return tuple(out), "truncated handshake header"
        h = frag[pos:pos + 12]
        length, foff, flen = (int.from_bytes(h[i:i + 3], "big") for i in (1, 6, 9))
        body = frag[pos + 12:pos + 12 + flen]
        out.append(HandshakeFragment(h[0], length, int.from_bytes(h[4:6], "big"), foff, flen, body))
        if foff + flen > length:
            return tuple(out), "handshake fragment runs past the message end"
        if len(body) < flen:
            return tuple(out), "handshake fragment truncated"
        pos += 12 + flen
    return tuple(out), None


def parse_dtls(data: bytes, *, cid_len: int | None = None) -> DtlsDatagram:
    """Split a UDP payload into DTLS records. The records before any damage are kept; the damage is reported
    in the damaged record's `malformed` and, first reason only, in the datagram's."""
    records: list[DtlsRecord] = []
    try:
        _split(bytes(data), 0, cid_len, False, True, records)
    except _Bad as exc:
        return DtlsDatagram(tuple(records), str(exc))
    return DtlsDatagram(tuple(records), next((r.malformed for r in records if r.malformed), None))


def looks_like_dtls(data: bytes, *, cid_len: int | None = None, established: bool = False) -> bool:
    """Structural confirmation of a UDP payload whose first byte is 20-63: known content types and versions,
    every record length inside the datagram, records tiling it exactly, epoch-0 handshake headers consistent.
    A DTLS 1.3 unified header without a length field is accepted only on a flow already known to be DTLS
    (`established`): OpenVPN control and data packets (opcodes 4-7) look exactly like such headers."""
    if not data or not 20 <= data[0] <= 63:
        return False
    try:
        return bool(_split(bytes(data), 0, cid_len, True, established, []))
    except _Bad:
        return False


# ---------------------------------------------------------------- handshake reassembly

class HandshakeReassembler:
    """Rebuilds handshake messages of one direction from their fragments, in any order, tolerating overlaps
    and retransmissions. A message is returned once, when its last missing byte arrives; a retransmitted copy
    of a completed message is ignored, a different message under a reused message_seq (a new handshake on the
    same flow) starts over. Memory and work are bounded by the class limits below."""

    MAX_MESSAGE = 1 << 17  # bytes of one message (a certificate chain is a few KiB)
    MAX_PENDING = 6  # incomplete messages kept at once
    MAX_HOLES = 64  # disjoint byte ranges of one incomplete message
    DONE_MEMORY = 16  # completed messages remembered to recognise retransmissions

    def __init__(self) -> None:
        # message_seq -> (msg_type, length, buffer, sorted disjoint received ranges)
        self._pending: dict[int, tuple[int, int, bytearray, list[tuple[int, int]]]] = {}
        self._done: dict[int, tuple[int, int, bytes]] = {}

    def add(self, frag: HandshakeFragment, frame: int) -> list[tuple[int, int, bytes]]:
        body = bytes(frag.body[:frag.fragment_length])
        off, length, seq, kind = frag.fragment_offset, frag.length, frag.message_seq, frag.msg_type
        if length > self.MAX_MESSAGE or off + len(body) > length:
            return []
        done = self._done.get(seq)
        if done is not None:
            if done[:2] == (kind, length) and done[2][off:off + len(body)] == body:
                return []  # retransmission of a message already delivered
            del self._done[seq]
        part = self._pending.get(seq)
        if part is None or part[:2] != (kind, length):
            part = self._pending[seq] = (kind, length, bytearray(length), [])
            while len(self._pending) > self.MAX_PENDING:
                del self._pending[next(iter(self._pending))]
        buf, have = part[2], part[3]
        buf[off:off + len(body)] = body
        merged: list[tuple[int, int]] = []
        for a, b in sorted([*have, (off, off + len(body))]):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        have[:] = merged
        if len(merged) > self.MAX_HOLES:
            del self._pending[seq]
            return []
        if merged[0] != (0, length):
            return []
        del self._pending[seq]
        self._done[seq] = (kind, length, bytes(buf))
        while len(self._done) > self.DONE_MEMORY:
            del self._done[next(iter(self._done))]
        return [(frame, kind, bytes(buf))]


# ---------------------------------------------------------------- handshake messages

class ClientHello(NamedTuple):
    version: int
    random_hex: str
    session_id: str
    cookie_hex: str
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    srtp_profiles: tuple[int, ...]
    supported_versions: tuple[int, ...]
    server_name: str | None
    malformed: str | None
    connection_id: bytes | None = None


class ServerHello(NamedTuple):
    version: int
    random_hex: str
    cipher_suite: int
    cipher_name: str
    extensions: tuple[int, ...]
    srtp_profile: int | None
    selected_version: int | None
    malformed: str | None
    hello_retry_request: bool = False
    connection_id: bytes | None = None


class HelloVerifyRequest(NamedTuple):
    version: int
    cookie_hex: str
    malformed: str | None


class Certificate(NamedTuple):
    count: int
    fingerprints_sha256: tuple[str, ...]
    first_subject_hint: str | None
    malformed: str | None


class OtherHandshake(NamedTuple):
    msg_type: int
    name: str
    length: int


class _Cur:
    """Bounds-checked reader over a message body."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise _Bad(f"truncated at byte {self.pos} (wanted {n})")
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def num(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, width: int) -> bytes:
        return self.take(self.num(width))

    def left(self) -> int:
        return len(self.buf) - self.pos


def _pairs(raw: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2))


def _sni(data: bytes) -> str | None:
    cur = _Cur(_Cur(data).vec(2))
    while cur.left():
        kind, name = cur.num(1), cur.vec(2)
        if kind == 0:
            return name.decode("ascii", "replace")
    return None


# extension code -> (field, decoder) for the hellos' extensions an observer cares about
_CH_EXTENSIONS = {
    T.EXT_USE_SRTP: ("srtp_profiles", lambda d: _pairs(_Cur(d).vec(2))),
    T.EXT_SUPPORTED_VERSIONS: ("supported_versions", lambda d: _pairs(_Cur(d).vec(1))),
    T.EXT_SERVER_NAME: ("server_name", _sni),
    T.EXT_CONNECTION_ID: ("connection_id", lambda d: _Cur(d).vec(1)),
}
_SH_EXTENSIONS = {
    T.EXT_USE_SRTP: ("srtp_profile", lambda d: next(iter(_pairs(_Cur(d).vec(2))), None)),
    T.EXT_SUPPORTED_VERSIONS: ("selected_version", lambda d: _Cur(d).num(2)),
    T.EXT_CONNECTION_ID: ("connection_id", lambda d: _Cur(d).vec(1)),
}


def _extensions(cur: _Cur, fields: dict, decoders: dict) -> None:
    """Fill `fields` from the extension block at the cursor (absent block: nothing to do)."""
    if cur.left() == 0:
        return
    block, codes = _Cur(cur.vec(2)), []
    while block.left():
        code, data = block.num(2), block.vec(2)
        codes.append(code)
        fields["extensions"] = tuple(codes)
        if code in decoders:
            name, decode = decoders[code]
            fields[name] = decode(data)


def _client_hello(body: bytes) -> ClientHello:
    f = dict.fromkeys(ClientHello._fields)
    f.update(version=0, random_hex="", session_id="", cookie_hex="", cipher_suites=(), extensions=(),
             srtp_profiles=(), supported_versions=())
    cur = _Cur(body)
    try:
        f["version"], f["random_hex"] = cur.num(2), cur.take(32).hex()
        f["session_id"], f["cookie_hex"] = cur.vec(1).hex(), cur.vec(1).hex()
        f["cipher_suites"] = _pairs(cur.vec(2))
        cur.vec(1)  # compression methods
        _extensions(cur, f, _CH_EXTENSIONS)
    except _Bad as exc:
        f["malformed"] = str(exc)
    return ClientHello(**f)


def _server_hello(body: bytes) -> ServerHello:
    f = dict.fromkeys(ServerHello._fields)
    f.update(version=0, random_hex="", cipher_suite=0, cipher_name="", extensions=(), hello_retry_request=False)
    cur = _Cur(body)
    try:
        f["version"], rnd = cur.num(2), cur.take(32)
        f["random_hex"], f["hello_retry_request"] = rnd.hex(), rnd == T.HELLO_RETRY_RANDOM
        cur.vec(1)  # session id echo
        f["cipher_suite"] = cur.num(2)
        f["cipher_name"] = T.cipher_name(f["cipher_suite"])
        cur.num(1)  # compression method
        _extensions(cur, f, _SH_EXTENSIONS)
    except _Bad as exc:
        f["malformed"] = str(exc)
    return ServerHello(**f)


def _hello_verify(body: bytes) -> HelloVerifyRequest:
    cur, version = _Cur(body), 0
    try:
        version = cur.num(2)
        return HelloVerifyRequest(version, cur.vec(1).hex(), None)
    except _Bad as exc:
        return HelloVerifyRequest(version, "", str(exc))


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate in SDP a=fingerprint form: 'AB:CD:...'."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _certificate(body: bytes) -> Certificate:
    certs: list[bytes] = []
    why = None
    try:
        cur = _Cur(body)
        chain = _Cur(cur.vec(3))
        while chain.left():
            certs.append(chain.vec(3))
        if cur.left():
            why = f"{cur.left()} bytes after the certificate list"
    except _Bad as exc:
        why = str(exc)
    return Certificate(len(certs), tuple(fingerprint(c) for c in certs), _subject_cn(certs[0]) if certs else None, why)


def _der(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `pos`."""
    if pos + 2 > len(buf):
        raise _Bad("der truncated")
    tag, n = buf[pos], buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(buf):
            raise _Bad("der length")
        n, pos = int.from_bytes(buf[pos:pos + k], "big"), pos + k
    if pos + n > len(buf):
        raise _Bad("der overrun")
    return tag, pos, pos + n


def _subject_cn(der: bytes) -> str | None:
    """Common name of the certificate's subject (the first attribute value if it has no CN)."""
    try:
        _, start, _ = _der(der, 0)  # Certificate
        _, pos, end = _der(der, start)  # tbsCertificate
        fields = []
        while pos < end and len(fields) < 6:
            tag, s, e = _der(der, pos)
            if not (tag == 0xA0 and not fields):
                fields.append((s, e))
            pos = e
        s, e = fields[4]  # serial, signature, issuer, validity, subject
        first = None
        while s < e:
            _, rs, re_ = _der(der, s)  # RDN set
            _, a_s, _ = _der(der, rs)  # AttributeTypeAndValue
            _, os_, oe = _der(der, a_s)
            _, vs, ve = _der(der, oe)
            value = der[vs:ve].decode("utf-8", "replace")
            if der[os_:oe] == b"\x55\x04\x03":
                return value
            first = first or value
            s = re_
        return first
    except (_Bad, IndexError):
        return None


_PARSERS = {T.HS_CLIENT_HELLO: _client_hello, T.HS_SERVER_HELLO: _server_hello,
            T.HS_HELLO_VERIFY_REQUEST: _hello_verify, T.HS_CERTIFICATE: _certificate}


def parse_handshake(msg_type: int, body: bytes):
    """Decode one complete handshake message body (without its 12-byte DTLS header)."""
    parser = _PARSERS.get(msg_type)
    if parser is None:
        return OtherHandshake(msg_type, T.handshake_name(msg_type), len(body))
    return parser(bytes(body))
