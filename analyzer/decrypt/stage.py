"""The decrypt stage: each media row whose sender has a key is opened with pylibsrtp, per packet.

Which key: a DTLS-SRTP handshake on the row's media 5-tuple (inner when relayed through TURN) whose
client random is in the key log gives both sides' keys; the row's sender is the handshake's client
or its server. Else an SDES key named for the sender's address:port, for the SSRC, or for every
stream. One pylibsrtp session per (key, sender), so libsrtp's replay window and rollover counter
follow each sender as they would at the receiver.

A packet that fails authentication keeps its ciphertext and is counted; a repeated packet (the same
index again, as a capture on two interfaces or a retransmission shows it) is counted as such, not as a
failure. The media stage then sees the rows with the plaintext in place of the ciphertext.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pylibsrtp

from ..capture.addresses import addr_str
from ..dissect.dtls_session import DtlsTracker
from ..dissect.media_rows import MediaBatch
from ..dissect.rtp import rtp_columns
from .keys import BY_NAME, PROFILES, Keyring, SrtpKeys, derive_dtls_srtp
from .tables import COUNTERS

Endpoint = tuple[str, int]
REPLAY_WINDOW = 0x7FFF  # libsrtp's largest: a capture reorders more than a receiver's jitter buffer would


@dataclass
class SessionKeys:
    """What the decrypt stage knows of one DTLS handshake's keys (for the dtls_sessions table)."""

    status: str  # 'keys derived' | 'keys not available: ...'
    client: SrtpKeys | None = None
    server: SrtpKeys | None = None


class DecryptStage:
    """Consumes one capture file's MediaBatches; returns them with plaintext where a key opened them."""

    def __init__(self, keyring: Keyring, file: int = 0, spill=None) -> None:
        self.keyring, self.file = keyring, file
        self.spill = spill  # decrypt.rewrite.Spill: keeps the plaintext for a decrypted copy of the capture
        self.dtls_keys: dict[int, SessionKeys] = {}  # DTLS session index -> keys
        self._sessions: dict[tuple, pylibsrtp.Session] = {}
        self.counts: dict[tuple, Counter] = {}  # (src, sport, dst, dport, ssrc, rtcp) -> Counter


    # ------------------------------------------------------------------ keys
    def _dtls(self, tracker: DtlsTracker, src: Endpoint, dst: Endpoint) -> tuple[tuple, SrtpKeys] | None:
        sess = tracker.current(src, dst)
        if sess is None:
            return None
        index = sess.index
        got = self.dtls_keys.get(index)
        if got is None or (got.client is None and sess.server_random is not None and "no ServerHello" in got.status):
            got = self.dtls_keys[index] = self._derive(sess)
        if got.client is None:
            return None
        mine = got.client if src == sess.client else got.server
        return ("dtls", index, src), mine

    def _derive(self, sess) -> SessionKeys:
        log = self.keyring.keylog
        if sess.version and "1.3" in sess.version:
            return SessionKeys("keys not available: DTLS 1.3 (its key log lines are traffic secrets; not supported)")
        if sess.client_random is None:
            return SessionKeys("keys not available: no ClientHello in the capture")
        if sess.server_random is None or sess.srtp_code is None:
            return SessionKeys("keys not available: no ServerHello with use_srtp in the capture")
        if log is None:
            return SessionKeys("keys not available: no key log given")
        secret = log.secrets.get(bytes.fromhex(sess.client_random))
        if secret is None:
            return SessionKeys("keys not available: the key log has no line for this client random")
        if sess.srtp_code not in PROFILES:
            return SessionKeys(f"keys not available: SRTP profile {sess.srtp} is not supported")
        client, server = derive_dtls_srtp(secret, bytes.fromhex(sess.client_random), bytes.fromhex(sess.server_random),
                                          sess.srtp_code, cipher_suite=sess.cipher, version=sess.version)
        return SessionKeys("keys derived", client, server)

    def _sdes(self, src: Endpoint, ssrc: int) -> tuple[tuple, SrtpKeys] | None:
        kr = self.keyring
        for ident, keys in ((("ep", src), kr.by_endpoint.get(src)), (("ssrc", ssrc), kr.by_ssrc.get(ssrc)),
                            (("all", src), kr.default)):
            if keys is not None:
                return ident, keys
        return None

    def _session(self, ident: tuple, keys: SrtpKeys) -> pylibsrtp.Session:
        s = self._sessions.get(ident)
        if s is None:
            policy = pylibsrtp.Policy(key=keys.policy_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                      srtp_profile=PROFILES[keys.profile].libsrtp)
            policy.window_size = REPLAY_WINDOW
            s = self._sessions[ident] = pylibsrtp.Session(policy)
        return s

    # ------------------------------------------------------------------ per batch
    def add(self, mb: MediaBatch, tracker: DtlsTracker) -> MediaBatch:
        if len(mb) == 0 or not self.keyring:
            return mb
        # one group per media 5-tuple and wire 5-tuple: each copy of a relayed packet (client -> relay,
        # relay -> peer) is its own receiver, with its own replay window
        cols = [mb.src_hi, mb.src_lo, mb.sport, mb.dst_hi, mb.dst_lo, mb.dport, mb.wire_src_hi, mb.wire_src_lo,
                mb.wire_sport, mb.wire_dst_hi, mb.wire_dst_lo, mb.wire_dport]
        keys = np.stack([c.astype(np.uint64) for c in cols], axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = inv.ravel()
        plain: dict[int, bytes] = {}
        for g, row in enumerate(uniq.tolist()):
            src = (addr_str(row[0], row[1]), int(row[2]))
            dst = (addr_str(row[3], row[4]), int(row[5]))
            wire = (addr_str(row[6], row[7]), int(row[8]), addr_str(row[9], row[10]), int(row[11]))
            dtls = self._dtls(tracker, src, dst)
            for i in np.flatnonzero(inv == g).tolist():
                found = dtls or self._sdes(src, int(mb.ssrc[i]))
                if found is None:
                    continue
                ident, k = found
                rtcp = bool(mb.rtcp[i])
                o, n = int(mb.off[i]), int(mb.length[i])
                c = self.counts.setdefault((*src, *dst, *wire, int(mb.ssrc[i]), rtcp), Counter())
                s = self._session((*ident, wire), k)
                try:
                    data = mb.buf[o : o + n].tobytes()
                    plain[i] = s.unprotect_rtcp(data) if rtcp else s.unprotect(data)
                    c["decrypted"] += 1
                except pylibsrtp.Error as e:
                    text = str(e)
                    c["auth_failed" if "authentication" in text else "repeated" if "replay" in text
                      else "failed_other"] += 1
        if plain and self.spill is not None:
            for i in sorted(plain, key=lambda i: int(mb.frame[i])):
                o, rtcp = int(mb.off[i]), bool(mb.rtcp[i])
                needle = mb.buf[o : o + (8 if rtcp else 12)].tobytes()  # the header SRTP leaves in the clear
                self.spill.add(int(mb.frame[i]), rtcp, needle, int(mb.length[i]), plain[i])
        return _with_plaintext(mb, plain) if plain else mb

    def stream_counts(self) -> list[dict]:
        """One row per (sender, receiver, SSRC, RTP or RTCP) the keys applied to."""
        out = []
        for (src, sport, dst, dport, wsrc, wsport, wdst, wdport, ssrc, rtcp), c in self.counts.items():
            out.append({"file": self.file, "src": src, "sport": sport, "dst": dst, "dport": dport, "wire_src": wsrc,
                        "wire_sport": wsport, "wire_dst": wdst, "wire_dport": wdport, "ssrc": ssrc, "rtcp": rtcp,
                        **{k: c.get(k, 0) for k in COUNTERS}})
        return out


def _with_plaintext(mb: MediaBatch, plain: dict[int, bytes]) -> MediaBatch:
    """The batch with rows `plain` pointing at their plaintext (appended after the original bytes)."""
    idx = np.fromiter(plain, dtype=np.int64, count=len(plain))
    blobs = [plain[i] for i in idx.tolist()]
    sizes = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    base = len(mb.buf)
    buf = np.concatenate([np.asarray(mb.buf, dtype=np.uint8), np.frombuffer(b"".join(blobs), dtype=np.uint8)])
    off, length = mb.off.copy(), mb.length.copy()
    off[idx] = base + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    length[idx] = sizes
    payload_len = mb.payload_len.copy()
    rtp = idx[~mb.rtcp[idx]]
    if rtp.size:  # the tag is gone and the padding count is now readable
        cols = rtp_columns(buf, off[rtp], length[rtp])
        payload_len[rtp] = np.where(cols.valid, cols.payload_len, payload_len[rtp])
    rtcp = idx[mb.rtcp[idx]]
    if rtcp.size:
        payload_len[rtcp] = length[rtcp]
    # (MediaBatch defines __len__ as its row count, so NamedTuple._replace cannot rebuild it)
    return MediaBatch(**{**mb._asdict(), "buf": buf, "off": off, "length": length, "payload_len": payload_len})


def profile_code(name: str) -> int | None:
    return BY_NAME.get(name)
