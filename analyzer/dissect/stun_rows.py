"""Rows of the `stun` table: from one parsed StunMessage, or from a batch of ICE Binding messages.

A call carries thousands of Binding checks and answers and nothing else in them changes TURN state, so
the control dissector defers them and `binding_rows` turns them into rows in one go: the attribute
walk runs across all messages at once in numpy (one step per attribute position), and each distinct
attribute value is decoded once. Any message the batch walk finds unusual (a length that does not
land on the end, an attribute that fails to decode) goes through `parse_stun`, so the rows are the
same either way; tests/dissect/test_stun_rows.py holds the two paths equal.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .stun import Address, ErrorCode, StunMessage, parse_stun
from .stun_tables import (
    A_CANDIDATE_ID,
    A_CHANNEL,
    A_ERROR,
    A_FINGERPRINT,
    A_GOOG_NETWORK_INFO,
    A_ICE_CONTROLLED,
    A_ICE_CONTROLLING,
    A_INTEGRITY,
    A_INTEGRITY_SHA256,
    A_LIFETIME,
    A_MAPPED,
    A_MS_VERSION,
    A_MS_XOR_MAPPED,
    A_NOMINATION,
    A_PEER,
    A_PRIORITY,
    A_RELAYED,
    A_SERVICE_QUALITY,
    A_SOFTWARE,
    A_TRANSPORT,
    A_USE_CANDIDATE,
    A_USERNAME,
    A_XOR_MAPPED,
    ATTRIBUTE_TABLE,
    CLASS_NAMES,
    FINGERPRINT_XOR,
    HEADER_LEN,
    d_xaddr,
)

STUN_COLUMNS = (
    "file",
    "frame",
    "ts_ns",
    "src",
    "sport",
    "dst",
    "dport",
    "transport",
    "relayed",
    "method",
    "cls",
    "transaction_id",
    "msg_type",
    "legacy_ms",
    "username",
    "ufrag_to",
    "ufrag_from",
    "priority",
    "use_candidate",
    "ice_role",
    "tie_breaker",
    "mapped_address",
    "mapped_port",
    "relayed_address",
    "relayed_port",
    "peer_address",
    "peer_port",
    "error_code",
    "error_reason",
    "lifetime",
    "channel",
    "requested_transport",
    "software",
    "ms_version",
    "stream_type",
    "candidate_id",
    "network_id",
    "network_cost",
    "fingerprint_ok",
    "integrity",
    "attributes",
    "malformed",
    "outer_src",
    "outer_sport",
    "outer_dst",
    "outer_dport",
    "outer_channel",
    "realm",
    "nonce",
    "size",
    "nomination",
)
_NO_OUTER = (None, None, None, None)
_UNKNOWN = (None, None)


class TxView(NamedTuple):
    """What the transaction matcher reads of a message, without building the whole StunMessage."""

    cls: str
    transaction_id: str
    legacy_ms: bool
    msg_type: int
    method_name: str
    error: ErrorCode | None


def _addr(a: Any) -> tuple[str | None, int | None]:
    return (a.address, a.port) if isinstance(a, Address) else (None, None)


def _first(v: dict[int, Any], *codes: int) -> Any:
    for c in codes:
        x = v.get(c)
        if x is not None:
            return x
    return None


def make_row(
    w: Any,
    method: str,
    cls: str,
    tid: str,
    msg_type: int,
    legacy_ms: bool,
    v: dict[int, Any],
    mapped: Any,
    relayed: Any,
    peer: Any,
    use_candidate: bool,
    fingerprint_ok: bool | None,
    integrity: bool,
    names: str,
    malformed: str | None,
    realm: Any,
    nonce: Any,
    size: int,
) -> tuple:
    """One stun row; `v` holds the first decoded value of each attribute type."""
    user = v.get(A_USERNAME)
    # ufrags without the trailing spaces/NULs some stacks pad USERNAME with (ntop stun.pcap frame 4)
    uf = [u.strip(" \x00") for u in user.split(":", 1)] if isinstance(user, str) and ":" in user else None
    role = "controlling" if A_ICE_CONTROLLING in v else ("controlled" if A_ICE_CONTROLLED in v else None)
    err, sq, ni = v.get(A_ERROR), v.get(A_SERVICE_QUALITY), v.get(A_GOOG_NETWORK_INFO)
    return (
        w.file,
        w.frame,
        w.ts_ns,
        w.src,
        w.sport,
        w.dst,
        w.dport,
        w.transport,
        w.relayed,
        method,
        cls,
        tid,
        msg_type,
        legacy_ms,
        user,
        uf[0] if uf else None,
        uf[1] if uf else None,
        v.get(A_PRIORITY),
        use_candidate,
        role,
        v.get(A_ICE_CONTROLLING, v.get(A_ICE_CONTROLLED)),
        *_addr(mapped),
        *_addr(relayed),
        *_addr(peer),
        err.code if err else None,
        err.reason if err else None,
        v.get(A_LIFETIME),
        v.get(A_CHANNEL),
        v.get(A_TRANSPORT),
        v.get(A_SOFTWARE),
        v.get(A_MS_VERSION),
        sq[0] if sq else None,
        v.get(A_CANDIDATE_ID),
        ni[0] if ni else None,
        ni[1] if ni else None,
        fingerprint_ok,
        integrity,
        names,
        malformed,
        *(w.outer or _NO_OUTER),
        w.channel,
        realm if realm is None else str(realm),
        nonce if nonce is None else str(nonce),
        size,
        _nomination(v.get(A_NOMINATION)),
    )


def _nomination(value: Any) -> int | None:
    """libwebrtc's NOMINATION number; None when absent or not a 4-byte number (the ENF attribute)."""
    return value if isinstance(value, int) else None


def message_row(w: Any, msg: StunMessage) -> tuple:
    """The row of one parsed message (any STUN, TURN or MS-TURN message)."""
    v: dict[int, Any] = {}  # first value of each attribute type: one pass instead of one per field
    realm = nonce = None
    for a in msg.attributes:
        if a.value is not None and a.type not in v:
            v[a.type] = a.value
        if a.name == "REALM" and realm is None:
            realm = a.value
        elif a.name == "NONCE" and nonce is None:
            nonce = a.value
    return make_row(
        w,
        msg.method_name,
        msg.cls,
        msg.transaction_id,
        msg.msg_type,
        msg.legacy_ms,
        v,
        msg.xor_mapped,
        msg.xor_relayed,
        msg.xor_peer,
        A_USE_CANDIDATE in v or msg.use_candidate,
        msg.fingerprint_ok,
        msg.has_integrity or msg.has_integrity_sha256,
        ",".join(a.name for a in msg.attributes),
        msg.malformed,
        realm,
        nonce,
        msg.size,
    )


def tx_view(msg: StunMessage) -> TxView:
    return TxView(msg.cls, msg.transaction_id, msg.legacy_ms, msg.msg_type, msg.method_name, msg.error)


# ---------------------------------------------------------------------------------------- batches


class _Walked(NamedTuple):
    ok: np.ndarray  # per message: the attributes tile the message exactly
    msg: np.ndarray  # per attribute, in message then wire order: its message
    atype: np.ndarray
    vstart: np.ndarray  # absolute offset of the value in the joined buffer
    alen: np.ndarray


def _walk_all(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> _Walked:
    """The RFC 5389 attribute walk (padded to 4) of every message at once: each step reads the next
    attribute header of all messages still inside their length."""
    n = starts.size
    ok = np.ones(n, dtype=bool)
    act = np.arange(n)
    off = starts + HEADER_LEN
    parts: list[tuple[np.ndarray, ...]] = []
    while act.size:
        end = ends[act]
        inside = off + 4 <= end
        ok[act[~inside & (off != end)]] = False  # stray bytes after the last attribute
        act, off, end = act[inside], off[inside], end[inside]
        if not act.size:
            break
        atype = (buf[off].astype(np.int64) << 8) | buf[off + 1]
        alen = (buf[off + 2].astype(np.int64) << 8) | buf[off + 3]
        vstart = off + 4
        nxt = vstart + ((alen + 3) & ~3)
        fits = nxt <= end
        ok[act[~fits]] = False
        parts.append((act[fits], atype[fits], vstart[fits], alen[fits]))
        act, off = act[fits], nxt[fits]
    if not parts:
        e = np.zeros(0, dtype=np.int64)
        return _Walked(ok, e, e, e, e)
    msg, atype, vstart, alen = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(msg, kind="stable")  # steps are in wire order, so stable keeps it per message
    return _Walked(ok, msg[order], atype[order], vstart[order], alen[order])


def binding_rows(
    items: Sequence[tuple[Any, bytes]], on_message: Callable[[Any, TxView], None] | None = None
) -> list[tuple]:
    """Rows for RFC 5389 Binding messages (cookie present, not MS-TURN), in the order given.
    `on_message(where, view)` is called for each, for the transaction matcher."""
    if not items:
        return []
    datas = [d for _, d in items]
    sizes = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    starts = np.zeros(len(datas), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    blob = b"".join(datas)
    buf = np.frombuffer(blob, dtype=np.uint8)
    mtype = (buf[starts].astype(np.int64) << 8) | buf[starts + 1]
    length = (buf[starts + 2].astype(np.int64) << 8) | buf[starts + 3]
    ends = starts + HEADER_LEN + length
    inside = ends <= starts + sizes
    ends = np.minimum(ends, starts + sizes)
    walked = _walk_all(buf, starts, ends)
    ok = (walked.ok & inside).tolist()
    bounds = np.searchsorted(walked.msg, np.arange(len(datas) + 1)).tolist()
    atypes, vstarts, alens = walked.atype.tolist(), walked.vstart.tolist(), walked.alen.tolist()
    cls_bits = (((mtype >> 7) & 0x2) | ((mtype >> 4) & 0x1)).tolist()
    mtypes, lengths, starts_l = mtype.tolist(), length.tolist(), starts.tolist()

    cache: dict[tuple[int, bytes], Any] = {}
    rows: list[tuple] = []
    for i, (w, data) in enumerate(items):
        row = view = None
        if ok[i]:
            row, view = _batch_row(
                w,
                data,
                starts_l[i],
                mtypes[i],
                cls_bits[i],
                lengths[i],
                blob,
                atypes[bounds[i] : bounds[i + 1]],
                vstarts[bounds[i] : bounds[i + 1]],
                alens[bounds[i] : bounds[i + 1]],
                cache,
            )
        if row is None:  # anything unusual: the full parser says what
            msg = parse_stun(data)
            row, view = message_row(w, msg), tx_view(msg)
        rows.append(row)
        if on_message is not None:
            on_message(w, view)
    return rows


def _batch_row(
    w: Any,
    data: bytes,
    base: int,
    mtype: int,
    cls_bits: int,
    length: int,
    blob: bytes,
    atypes: list[int],
    vstarts: list[int],
    alens: list[int],
    cache: dict[tuple[int, bytes], Any],
) -> tuple[tuple | None, TxView | None]:
    """The row of one walked message, or (None, None) when an attribute does not decode."""
    key = data[4:20]
    v: dict[int, Any] = {}
    names = []
    fingerprint_ok = None
    realm = nonce = None
    integrity = use_candidate = False
    for atype, vs, alen in zip(atypes, vstarts, alens, strict=True):
        raw = blob[vs : vs + alen]
        name, decoder = ATTRIBUTE_TABLE.get(atype, _UNKNOWN)
        if decoder is d_xaddr:  # masked with this message's transaction id: decoded each time
            try:
                value = decoder(raw, key)
            except Exception:
                return None, None
        else:
            hit = cache.get((atype, raw))
            if hit is None:
                try:
                    hit = cache[(atype, raw)] = decoder(raw, key) if decoder else raw
                except Exception:
                    return None, None
            value = hit
            if name is None:
                name = f"unknown-0x{atype:04X}"
        names.append(name)
        if value is not None and atype not in v:
            v[atype] = value
        if atype == A_FINGERPRINT and fingerprint_ok is None:
            fingerprint_ok = value is not None and (zlib.crc32(data[: vs - base - 4]) ^ FINGERPRINT_XOR) == value
        elif atype in (A_INTEGRITY, A_INTEGRITY_SHA256):
            integrity = True
        elif atype == A_USE_CANDIDATE:
            use_candidate = True
        elif name == "REALM" and realm is None:
            realm = value
        elif name == "NONCE" and nonce is None:
            nonce = value
    cls = CLASS_NAMES[cls_bits]
    tid = data[8:20].hex()
    row = make_row(
        w,
        "Binding",
        cls,
        tid,
        mtype,
        False,
        v,
        _first(v, A_XOR_MAPPED, A_MS_XOR_MAPPED, A_MAPPED),
        v.get(A_RELAYED),
        v.get(A_PEER),
        use_candidate,
        fingerprint_ok,
        integrity,
        ",".join(names),
        None,
        realm,
        nonce,
        HEADER_LEN + length,
    )
    return row, TxView(cls, tid, False, mtype, "Binding", v.get(A_ERROR))
