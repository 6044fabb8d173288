"""OpenVPN over UDP recognised from its flow, on any port, when the capture starts mid-session.

Packet by packet OpenVPN is only certain on port 1194 or from its hard reset (vpn.py). A capture taken
during a call usually starts long after the reset, and tunnels often run on 443 or another port. The
flow then still gives it away (OpenVPN 2.4+ framing; opcode = byte 0 >> 3, key id = byte 0 & 7):

- every datagram has a mid-session opcode: 3 soft reset, 4 control, 5 ack (each followed by the
  sender's 8-byte session id), 6 P_DATA_V1 or 9 P_DATA_V2 (followed by a 3-byte peer id);
- at least MIN_DATA_SHARE of them are data packets, over at least MIN_PACKETS;
- the payloads are ciphertext, not text: at most MAX_TEXT_SHARE of them open with 12 printable bytes
  (an SSDP "HTTP/1.1 200 OK", a SIP "OPTIONS" or a "NOTIFY" opens with opcode 9 and a constant
  "peer id" too);
- and the flow shows structure beyond the first byte: P_DATA_V2 packets that all carry one peer id,
  below MAX_PEER_ID (servers number their clients from 0: a KCP session id or other random 3 bytes
  rarely is) or P2P_PEER_ID (the fixed "vpn" of OpenVPN 2.6 peer-to-peer mode), and whose bytes 2-3
  do not read as a TURN ChannelData length; or at least MIN_CONTROL control packets whose session id
  stays the same in each direction;
- data both ways, or (a capture point that sees one direction only) both kinds of structure.

What this rejects, by construction: RTP/RTCP (byte 0 0x80-0xBF: opcodes 16-23), STUN (opcode 0), DTLS
1.2 records (0x14-0x17: opcode 2), WireGuard (types 1-4: opcode 0), QUIC short headers (protected
bits spread them over opcodes 8-11; never 80 % data), TURN ChannelData (channels from 0x4000 are
opcode 8; 0x48xx ones carry their length in bytes 2-3), DTLS 1.3 with connection ids (0x30-0x37 is
P_DATA_V1 only: no peer id, no session id, so no structure to go on). A flow of P_DATA_V1 alone is
therefore left unnamed, as is OpenVPN over TCP mid-stream (segments need not align with packets). A
2.6 peer-to-peer tunnel whose peer id was exported from TLS (random 3 bytes) is named by its control
packets' structure only, and an idle tunnel of 40-byte pings whose peer id happens to be 36 reads as
ChannelData (a busy tunnel's sizes vary, so a tunnel carrying a call is not affected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

MID_SESSION_OPCODES = (3, 4, 5, 6, 9)
RESET_OPCODES = (7, 8, 10)  # v2/v3 hard resets: allowed in a flow (vpn.py checks them exactly), never data
ALLOWED_OPCODES = MID_SESSION_OPCODES + RESET_OPCODES
CONTROL_OPCODES = (3, 4, 5)
OP_DATA_V1, OP_DATA_V2 = 6, 9
MIN_PACKETS = 16
MIN_DATA_SHARE = 0.8
MIN_CONTROL = 4
MAX_TEXT_SHARE = 0.1
MAX_PEER_ID = 0x10000
P2P_PEER_ID = 0x76706E  # 'v' 'p' 'n': OpenVPN 2.6 peer-to-peer NCP without key export
TEXT_BYTES = 12


class Features(NamedTuple):
    """Per datagram: opcode (-1 when empty), P_DATA_V2 peer id (-1 otherwise), control session id (valid
    where the opcode is a control one), and whether bytes 2-3 fit the datagram as a ChannelData length."""

    op: np.ndarray
    peer: np.ndarray
    session: np.ndarray
    channel_like: np.ndarray
    text: np.ndarray  # opens with TEXT_BYTES printable ASCII bytes


def features(buf: np.ndarray, off: np.ndarray, length: np.ndarray) -> Features:
    off = np.asarray(off, dtype=np.int64)
    ln = np.asarray(length, dtype=np.int64)
    last = max(buf.size - 1, 0)

    def u8(i: int) -> np.ndarray:
        inside = ln > i
        if buf.size == 0:
            return np.zeros(off.shape, dtype=np.int64)
        return np.where(inside, buf[np.minimum(np.where(inside, off + i, 0), last)], 0).astype(np.int64)

    b = [u8(i) for i in range(TEXT_BYTES)]
    op = np.where(ln >= 1, b[0] >> 3, -1)
    v2 = (op == OP_DATA_V2) & (ln >= 4)
    peer = np.where(v2, (b[1] << 16) | (b[2] << 8) | b[3], -1)
    session = np.zeros(off.shape, dtype=np.uint64)
    for i in range(1, 9):
        session = (session << np.uint64(8)) | b[i].astype(np.uint64)
    fit = ln - 4 - ((b[2] << 8) | b[3])
    text = ln >= 4  # the first TEXT_BYTES bytes (all of a shorter payload) printable
    for i, x in enumerate(b):
        text &= (ln <= i) | ((x >= 0x20) & (x < 0x7F)) | (x == 0x0D) | (x == 0x0A) | (x == 0x09)
    return Features(op, peer, session, v2 & (fit >= 0) & (fit <= 3), text)


@dataclass
class FlowEvidence:
    """Running counts of one UDP flow; memory per flow, not per packet (seconds are per flow-second)."""

    first_frame: int
    packets: int = 0
    invalid: int = 0
    data: int = 0
    data_ab: int = 0
    v2: int = 0
    channel_like: int = 0
    text: int = 0
    control: int = 0
    resets: int = 0
    peers: set[int] = field(default_factory=set)
    sessions: dict[bool, set[int]] = field(default_factory=lambda: {True: set(), False: set()})
    seconds: dict[int, int] = field(default_factory=dict)
    track_seconds: bool = True  # off once a packet signature named the flow (the flow table counts them then)

    def add(self, f: Features, ab: np.ndarray, sec: np.ndarray, reset: np.ndarray) -> None:
        """Fold this flow's datagrams of one batch (ab: the packet travels a -> b; reset: the datagrams
        vpn.py's exact signature calls a hard reset)."""
        self.packets += int(f.op.size)
        self.invalid += int(np.count_nonzero(~np.isin(f.op, ALLOWED_OPCODES)))
        if self.invalid:
            return  # settled: not OpenVPN; the caller drops it
        data = (f.op == OP_DATA_V1) | (f.op == OP_DATA_V2)
        self.data += int(np.count_nonzero(data))
        self.data_ab += int(np.count_nonzero(data & ab))
        self.text += int(np.count_nonzero(f.text))
        v2 = f.op == OP_DATA_V2
        self.v2 += int(np.count_nonzero(v2))
        self.channel_like += int(np.count_nonzero(f.channel_like))
        self.peers.update(np.unique(f.peer[v2]).tolist()[:2])
        self.resets += int(np.count_nonzero(reset))
        ctl = np.isin(f.op, CONTROL_OPCODES)
        self.control += int(np.count_nonzero(ctl))
        for direction in (True, False):
            s = f.session[ctl & (ab == direction)]
            if s.size:
                self.sessions[direction].update(np.unique(s).tolist()[:2])
        if self.track_seconds:
            secs, counts = np.unique(sec, return_counts=True)
            for s_, c in zip(secs.tolist(), counts.tolist(), strict=True):
                self.seconds[s_] = self.seconds.get(s_, 0) + c

    @property
    def excluded(self) -> bool:
        """Already impossible, whatever follows: an opcode OpenVPN does not send mid-session, or a
        second peer id."""
        return bool(self.invalid) or len(self.peers) > 1

    def verdict(self) -> str | None:
        """The evidence, in words, when the flow is OpenVPN; None otherwise."""
        if self.excluded or self.packets < MIN_PACKETS or self.data < MIN_DATA_SHARE * self.packets:
            return None
        if self.text > MAX_TEXT_SHARE * self.packets:
            return None
        peer = next(iter(self.peers)) if len(self.peers) == 1 else -1
        peer_ok = (self.v2 > 0 and (0 <= peer < MAX_PEER_ID or peer == P2P_PEER_ID)
                   and self.channel_like * 2 < self.v2)
        ctl = {d: s for d, s in self.sessions.items() if s}
        session_ok = self.control >= MIN_CONTROL and bool(ctl) and all(len(s) == 1 for s in ctl.values())
        both_ways = 0 < self.data_ab < self.data
        if not ((both_ways and (peer_ok or session_ok)) or (peer_ok and session_ok)):
            return None
        parts = [f"{self.data} of {self.packets} datagrams are OpenVPN data packets (opcode 6/9)"]
        if peer_ok:
            parts.append(f"P_DATA_V2 with one peer id 0x{peer:06X}")
        if session_ok:
            parts.append("control packets with one session id per direction")
        if self.resets:
            return "; ".join(parts) + (
                f"; from frame {self.first_frame}, with {self.resets} hard reset{'s' if self.resets > 1 else ''}"
                " in the flow")
        return "; ".join(parts) + f"; mid-session, from frame {self.first_frame} (no hard reset in the capture)"
