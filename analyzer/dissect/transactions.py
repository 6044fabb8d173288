"""STUN transaction matching (sans-I/O): requests paired with their responses, retransmissions counted.

A request is keyed by (transaction id, unordered endpoint pair), so a response travelling back on the
same path matches whichever direction the capture saw it in. A response that arrives on another path
(another address or port of the server, a NAT rewriting the reply) still matches the most recent open
request with its transaction id, and the transaction is then marked `asymmetric`.

Indications are not transactions, and neither are MS-TURN Send requests ([MS-TURN] 2.2.1: the server
never answers them). Memory stays bounded by the open transactions: a transaction is retired into the
results once its first request is older than `expire_after_s` (40 s, beyond the STUN RTO schedule),
answered or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .stun import ErrorCode, StunMessage
from .stun_tables import MS_SEND_REQUEST

__all__ = ["Transaction", "TransactionMatcher"]

Endpoint = tuple[str, int]


class Transaction(NamedTuple):
    transaction_id: str
    method_name: str
    request_frame: int
    request_ts_ns: int
    response_frame: int | None
    response_ts_ns: int | None
    response_cls: str | None  # 'success' | 'error' | None
    error: ErrorCode | None
    rtt_ms: float | None  # from the FIRST copy of the request to the first response
    retransmissions: int  # extra copies of the request
    state: str  # 'answered' | 'unanswered' | 'error'
    asymmetric: bool  # the response did not come back on the reverse of the request's path


@dataclass(slots=True)
class _Open:
    transaction_id: str
    method_name: str
    request_frame: int
    request_ts_ns: int
    src: Endpoint
    dst: Endpoint
    retransmissions: int = 0
    response_frame: int | None = None
    response_ts_ns: int | None = None
    response_cls: str | None = None
    error: ErrorCode | None = None
    asymmetric: bool = False

    def close(self) -> Transaction:
        answered = self.response_ts_ns is not None
        rtt = (self.response_ts_ns - self.request_ts_ns) / 1e6 if self.response_ts_ns is not None else None
        state = "unanswered" if not answered else ("error" if self.response_cls == "error" else "answered")
        return Transaction(
            self.transaction_id,
            self.method_name,
            self.request_frame,
            self.request_ts_ns,
            self.response_frame,
            self.response_ts_ns,
            self.response_cls,
            self.error,
            rtt,
            self.retransmissions,
            state,
            self.asymmetric,
        )


class TransactionMatcher:
    """Feed every STUN message of a capture in frame order; read the transactions with results()."""

    def __init__(self, expire_after_s: float = 40.0) -> None:
        self._expire_ns = int(expire_after_s * 1e9)
        # insertion order is request order, so the oldest open transactions are at the front
        self._open: dict[tuple[str, tuple[Endpoint, Endpoint]], _Open] = {}
        self._by_id: dict[str, list[tuple[str, tuple[Endpoint, Endpoint]]]] = {}
        self._done: list[Transaction] = []

    def add(self, frame: int, ts_ns: int, five_tuple: tuple, msg: StunMessage) -> None:
        """One message seen in `frame` at `ts_ns`; five_tuple is (src, sport, dst, dport, transport)."""
        self._expire(ts_ns)
        if msg.cls not in ("request", "success", "error") or not msg.transaction_id:
            return
        src, sport, dst, dport = five_tuple[:4]
        a, b = (src, sport), (dst, dport)
        key = (msg.transaction_id, (a, b) if a <= b else (b, a))
        if msg.cls == "request":
            if msg.legacy_ms and msg.msg_type == MS_SEND_REQUEST:
                return
            if (seen := self._open.get(key)) is not None:
                seen.retransmissions += 1
                return
            self._open[key] = _Open(msg.transaction_id, msg.method_name, frame, ts_ns, a, b)
            self._by_id.setdefault(msg.transaction_id, []).append(key)
            return
        tx = self._open.get(key)
        if tx is None:
            keys = [k for k in self._by_id.get(msg.transaction_id, ()) if self._open[k].response_frame is None]
            if not keys:
                return  # a response to nothing we saw (the request predates the capture)
            tx = self._open[keys[-1]]
        if tx.response_frame is not None:
            return  # a retransmitted response: the first one counts
        tx.response_frame, tx.response_ts_ns, tx.response_cls = frame, ts_ns, msg.cls
        tx.error = msg.error if msg.cls == "error" else None
        tx.asymmetric = (a, b) != (tx.dst, tx.src)

    def _expire(self, now_ns: int) -> None:
        cutoff = now_ns - self._expire_ns
        while self._open:
            key, tx = next(iter(self._open.items()))
            if tx.request_ts_ns > cutoff:
                break
            self._retire(key)

    def _retire(self, key: tuple[str, tuple[Endpoint, Endpoint]]) -> None:
        tx = self._open.pop(key)
        keys = self._by_id[key[0]]
        keys.remove(key)
        if not keys:
            del self._by_id[key[0]]
        self._done.append(tx.close())

    @property
    def open_count(self) -> int:
        return len(self._open)

    def results(self) -> list[Transaction]:
        """Every transaction so far, retired and still open, in request order."""
        out = self._done + [tx.close() for tx in self._open.values()]
        return sorted(out, key=lambda t: (t.request_ts_ns, t.request_frame))
