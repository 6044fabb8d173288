"""Per-direction, in-order TCP stream reassembly for the stages that read messages over TCP
(STUN/TURN over TCP, ICE-TCP, MS-TURN on 443).

Sans-I/O: segments in, in-order byte runs out, each tagged with the frame whose segment completed it
(the frame Wireshark shows a reassembled message in). Memory per direction is bounded by MAX_PENDING
bytes of out-of-order data; past that the stream skips the hole and counts it as a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

MAX_PENDING = 1 << 20
SYN, FIN, RST = 0x02, 0x01, 0x04
_MOD = 1 << 32


class Delivered(NamedTuple):
    frame: int  # the frame whose segment made these bytes available in order
    data: bytes


@dataclass
class TcpDirection:
    """One direction of one TCP connection."""

    next_seq: int | None = None
    pending: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # rel seq -> (frame, data)
    pending_bytes: int = 0
    bytes_delivered: int = 0
    retransmitted: int = 0  # segments whose bytes were all delivered already
    out_of_order: int = 0  # segments that arrived ahead of a hole
    gaps: int = 0  # holes given up on (capture loss)
    gap_bytes: int = 0
    fin: bool = False

    def feed(self, frame: int, seq: int, flags: int, payload: bytes) -> list[Delivered]:
        if self.next_seq is None:
            # the stream starts at the SYN, or (capture started mid-connection) at the first segment seen
            self.next_seq = (seq + 1) % _MOD if flags & SYN else seq
            if flags & SYN:
                seq = (seq + 1) % _MOD
        elif flags & SYN:
            seq = (seq + 1) % _MOD
        if flags & (FIN | RST):
            self.fin = True
        if not payload:
            return []
        rel = (seq - self.next_seq) % _MOD
        if rel >= 1 << 31:  # starts before next_seq: a retransmission, maybe with new bytes at its end
            behind = _MOD - rel
            if behind >= len(payload):
                self.retransmitted += 1
                return []
            payload = payload[behind:]
            rel = 0
        if rel > 0:
            self.out_of_order += 1
            if rel not in self.pending or len(self.pending[rel][1]) < len(payload):
                old = self.pending.get(rel)
                self.pending_bytes += len(payload) - (len(old[1]) if old else 0)
                self.pending[rel] = (frame, payload)
            if self.pending_bytes > MAX_PENDING:
                return self._skip_hole()
            return []
        out = [Delivered(frame, payload)]
        self._advance(len(payload))
        out += self._drain()
        return out

    def _advance(self, n: int) -> None:
        assert self.next_seq is not None
        self.next_seq = (self.next_seq + n) % _MOD
        self.bytes_delivered += n
        if self.pending:  # re-base the waiting segments on the new next_seq
            self.pending = {k - n: v for k, v in self.pending.items()}

    def _drain(self) -> list[Delivered]:
        out: list[Delivered] = []
        while self.pending:
            k = min(self.pending)
            if k > 0:
                break
            frame, data = self.pending.pop(k)
            self.pending_bytes -= len(data)
            if -k >= len(data):
                continue
            data = data[-k:]
            out.append(Delivered(frame, data))
            self._advance(len(data))
        return out

    def _skip_hole(self) -> list[Delivered]:
        k = min(self.pending)
        self.gaps += 1
        self.gap_bytes += k
        self._advance_gap(k)
        return self._drain()

    def _advance_gap(self, n: int) -> None:
        assert self.next_seq is not None
        self.next_seq = (self.next_seq + n) % _MOD
        self.pending = {k - n: v for k, v in self.pending.items()}


class TcpReassembler:
    """All TCP directions of a capture, keyed by (src, sport, dst, dport)."""

    def __init__(self) -> None:
        self.directions: dict[tuple, TcpDirection] = {}

    def feed(self, key: tuple, frame: int, seq: int, flags: int, payload: bytes) -> list[Delivered]:
        d = self.directions.get(key)
        if d is None:
            d = self.directions[key] = TcpDirection()
        return d.feed(frame, seq, flags, payload)
