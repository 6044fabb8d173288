"""DTLS handshakes followed across datagrams: one `DtlsEvent` row per record, one `DtlsSession` per handshake.

Sans-I/O: feed `DtlsTracker.add` with datagrams already split by `parse_dtls`, in frame order. Sessions are
keyed by the unordered address/port pair (DTLS here is always UDP); the sender of the ClientHello is the
client. A ClientHello with another random on the same pair starts a new session (a HelloVerifyRequest or
HelloRetryRequest round keeps the random, so it stays in the same session).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from . import dtls_tables as T
from .dtls import (
    Certificate,
    ClientHello,
    DtlsDatagram,
    DtlsRecord,
    HandshakeReassembler,
    HelloVerifyRequest,
    ServerHello,
    parse_handshake,
)

Endpoint = tuple[str, int]


class DtlsEvent(NamedTuple):
    frame: int
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    content_type: str
    handshake_type: str | None  # several names joined by ',' when one record holds several messages
    version: str
    epoch: int
    sequence: int
    length: int
    encrypted: bool
    alert: str | None
    info: str
    retransmission: bool
    session: int = -1  # index of the session in DtlsTracker.summary()


class DtlsSession(NamedTuple):
    client: Endpoint
    server: Endpoint
    first_frame: int
    client_hello_frame: int | None
    server_hello_frame: int | None
    start_ts_ns: int
    completed_ts_ns: int | None
    completed: bool
    version: str | None
    cipher_suite: str | None
    srtp_profile: str | None
    client_fingerprint: str | None
    server_fingerprint: str | None
    alerts: tuple[str, ...]
    retransmitted_flights: int
    hello_verify: bool  # HelloVerifyRequest (DTLS 1.2) or a HelloRetryRequest with a cookie (DTLS 1.3)
    state: str = "incomplete"  # completed / incomplete / failed / STATE_NO_HANDSHAKE / STATE_BEFORE_CAPTURE
    client_random: str | None = None  # hex: the key log's CLIENT_RANDOM lines are looked up by it
    server_random: str | None = None


# A session is only called completed when its handshake was seen: encrypted records both ways without a
# hello say the keys were agreed before the capture began, not when or whether the handshake succeeded.
STATE_BEFORE_CAPTURE = "established before the capture (no handshake seen)"
STATE_NO_HANDSHAKE = "no handshake seen"


class _Side:
    """What one endpoint of a session sent."""

    MAX_SEEN = 512

    def __init__(self) -> None:
        self.reasm = HandshakeReassembler()
        self.seen: dict[tuple[int, int, int, int], bytes] = {}
        self.last_retransmitted = False
        self.encrypted = False  # sent an encrypted record that is not an alert
        self.finished = False  # sent an encrypted handshake record (its Finished)
        self.cid: bytes | None = None  # connection id it asked its peer to put on records sent to it
        self.fingerprint: str | None = None

    def repeat(self, msg_type: int, seq: int, off: int, flen: int, body: bytes) -> bool:
        key, digest = (msg_type, seq, off, flen), hashlib.blake2b(body, digest_size=8).digest()
        again = self.seen.get(key) == digest
        self.seen[key] = digest
        if len(self.seen) > self.MAX_SEEN:
            del self.seen[next(iter(self.seen))]
        return again


class _Session:
    def __init__(self, index: int, client: Endpoint, server: Endpoint, frame: int, ts_ns: int) -> None:
        self.index, self.client, self.server = index, client, server
        self.roles_known = False
        self.first_frame, self.start_ts_ns = frame, ts_ns
        self.ch_frame: int | None = None
        self.sh_frame: int | None = None
        self.client_random: str | None = None
        self.server_random: str | None = None
        self.srtp_code: int | None = None
        self.completed_ts_ns: int | None = None
        self.version: str | None = None
        self.cipher: str | None = None
        self.srtp: str | None = None
        self.alerts: list[str] = []
        self.retransmitted_flights = 0
        self.hello_verify = False
        self.sides = {client: _Side(), server: _Side()}

    def freeze(self) -> DtlsSession:
        hello = self.ch_frame is not None or self.sh_frame is not None
        done = self.completed_ts_ns if hello else None
        if not hello:
            both = all(side.encrypted for side in self.sides.values())
            state = STATE_BEFORE_CAPTURE if both else STATE_NO_HANDSHAKE
        elif any(a.startswith("fatal/") for a in self.alerts):
            state = "failed"
        else:
            state = "completed" if done is not None else "incomplete"
        return DtlsSession(
            self.client, self.server, self.first_frame, self.ch_frame, self.sh_frame, self.start_ts_ns,
            done, done is not None, self.version, self.cipher, self.srtp,
            self.sides[self.client].fingerprint, self.sides[self.server].fingerprint, tuple(self.alerts),
            self.retransmitted_flights, self.hello_verify, state, self.client_random, self.server_random,
        )


class DtlsTracker:
    """Per-record events and per-handshake sessions over a capture's DTLS datagrams."""

    def __init__(self) -> None:
        self._sessions: list[_Session] = []
        self._current: dict[tuple[Endpoint, Endpoint], _Session] = {}

    # -- helpers for the caller's demultiplexer
    def is_dtls_flow(self, src: str, sport: int, dst: str, dport: int) -> bool:
        """True once a DTLS datagram was seen between these endpoints (for `looks_like_dtls(established=...)`)."""
        return _key((src, sport), (dst, dport)) in self._current

    def current(self, a: Endpoint, b: Endpoint) -> _Session | None:
        """The handshake now in force between two endpoints (read-only: the decrypt stage's key lookup)."""
        return self._current.get(_key(a, b))

    def expected_cid_len(self, src: str, sport: int, dst: str, dport: int) -> int | None:
        """Length of the connection id records from src to dst carry, when dst announced one in its hello."""
        sess = self._current.get(_key((src, sport), (dst, dport)))
        side = sess.sides.get((dst, dport)) if sess else None
        return len(side.cid) if side is not None and side.cid is not None else None

    # -- main entry
    def add(self, frame: int, ts_ns: int, src: str, sport: int, dst: str, dport: int,
            dgram: DtlsDatagram) -> list[DtlsEvent]:
        a, b = (src, sport), (dst, dport)
        key = _key(a, b)
        sess = self._current.get(key)
        if sess is None:
            sess = self._open(key, a, b, frame, ts_ns)
        events: list[DtlsEvent] = []
        any_repeat = False
        for rec in dgram.records:
            names, info, repeat = [], [], False
            for h in rec.handshakes:
                names.append(T.handshake_name(h.msg_type))
                repeat |= sess.sides[a].repeat(h.msg_type, h.message_seq, h.fragment_offset, h.fragment_length, h.body)
                done = sess.sides[a].reasm.add(h, frame)
                for _, msg_type, body in done:
                    sess, text = self._message(sess, key, a, b, frame, ts_ns, parse_handshake(msg_type, body))
                    info.append(text)
                if not done and h.fragment_length < h.length:
                    info.append(f"{names[-1]} fragment {h.fragment_offset}+{h.fragment_length} of {h.length}")
            alert = self._record(sess, a, b, ts_ns, rec, info)
            if rec.malformed:
                info.append(f"malformed: {rec.malformed}")
            any_repeat |= repeat
            events.append(DtlsEvent(
                frame, ts_ns, src, sport, dst, dport, rec.content_name, ",".join(names) or None, rec.version_name,
                rec.epoch, rec.sequence, rec.length, rec.encrypted, alert, "; ".join(t for t in info if t), repeat,
                sess.index,
            ))
        side = sess.sides[a]
        if any_repeat and not side.last_retransmitted:
            sess.retransmitted_flights += 1
        side.last_retransmitted = any_repeat
        return events

    def summary(self) -> list[DtlsSession]:
        """Every session seen so far, in the order they started (the index `DtlsEvent.session` refers to)."""
        return [s.freeze() for s in self._sessions]

    # -- internals
    def _open(self, key, client: Endpoint, server: Endpoint, frame: int, ts_ns: int) -> _Session:
        sess = _Session(len(self._sessions), client, server, frame, ts_ns)
        self._sessions.append(sess)
        self._current[key] = sess
        return sess

    def _message(self, sess: _Session, key, a: Endpoint, b: Endpoint, frame: int, ts_ns: int,
                 msg) -> tuple[_Session, str]:
        if isinstance(msg, ClientHello):
            if sess.client_random is not None and msg.random_hex != sess.client_random:
                for side in sess.sides.values():  # the old handshake is over: keep its results, free its buffers
                    side.reasm, side.seen = HandshakeReassembler(), {}
                sess = self._open(key, a, b, frame, ts_ns)
            if not sess.roles_known:
                sess.client, sess.server, sess.roles_known = a, b, True
            if sess.client_random is None:
                sess.client_random, sess.ch_frame = msg.random_hex, frame
            if msg.connection_id is not None:
                sess.sides[a].cid = msg.connection_id
            return sess, _client_hello_info(msg)
        if isinstance(msg, ServerHello):
            if not sess.roles_known:
                sess.client, sess.server, sess.roles_known = b, a, True
            if msg.connection_id is not None:
                sess.sides[a].cid = msg.connection_id
            if msg.hello_retry_request:
                sess.hello_verify |= 44 in msg.extensions  # cookie extension
                return sess, f"hello_retry_request cipher={msg.cipher_name}"
            sess.sh_frame = sess.sh_frame or frame
            sess.version = T.version_name(msg.selected_version or msg.version)
            sess.cipher = msg.cipher_name
            sess.srtp = T.srtp_profile_name(msg.srtp_profile) if msg.srtp_profile is not None else None
            sess.server_random, sess.srtp_code = msg.random_hex, msg.srtp_profile
            text = f"cipher={msg.cipher_name} version={sess.version}"
            return sess, text + (f" srtp={sess.srtp}" if sess.srtp else "")
        if isinstance(msg, HelloVerifyRequest):
            sess.hello_verify = True
            return sess, f"cookie={len(msg.cookie_hex) // 2} bytes"
        if isinstance(msg, Certificate):
            if msg.fingerprints_sha256:
                sess.sides[a].fingerprint = msg.fingerprints_sha256[0]
                cn = f" cn={msg.first_subject_hint}" if msg.first_subject_hint else ""
                return sess, f"sha256={msg.fingerprints_sha256[0]}{cn} certificates={msg.count}"
            return sess, "empty certificate list"
        return sess, ""

    def _record(self, sess: _Session, a: Endpoint, b: Endpoint, ts_ns: int, rec: DtlsRecord,
                info: list[str]) -> str | None:
        side, alert = sess.sides[a], None
        if rec.content_type == T.CT_ALERT and not rec.unified:
            alert = "encrypted" if rec.encrypted else (T.alert_text(*rec.alert) if rec.alert else "malformed")
            sess.alerts.append(alert)
        elif rec.encrypted:
            side.encrypted = True
            if rec.unified:
                info.append(f"dtls 1.3 ciphertext cid={rec.cid.hex()}" if rec.cid else "dtls 1.3 ciphertext")
            elif rec.content_type == T.CT_HANDSHAKE:
                side.finished = True
                info.append("encrypted handshake message")
            done = sess.sides[b].encrypted or (
                rec.content_type == T.CT_APPDATA and not rec.unified and any(s.finished for s in sess.sides.values())
            )
            if done and sess.completed_ts_ns is None:
                sess.completed_ts_ns = ts_ns
        return alert


def _key(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    return (a, b) if a <= b else (b, a)


def _client_hello_info(msg: ClientHello) -> str:
    parts = [f"random={msg.random_hex[:16]}", f"suites={len(msg.cipher_suites)}"]
    if msg.cookie_hex:
        parts.append(f"cookie={len(msg.cookie_hex) // 2} bytes")
    if msg.srtp_profiles:
        parts.append("srtp=" + ",".join(T.srtp_profile_name(p) for p in msg.srtp_profiles))
    if msg.supported_versions:
        parts.append("versions=" + ",".join(T.version_name(v) for v in msg.supported_versions))
    if msg.server_name:
        parts.append(f"sni={msg.server_name}")
    return " ".join(parts)
