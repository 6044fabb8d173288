"""Per-message work for the few control packets: STUN/TURN/MS-TURN and DTLS, outer and relayed.

`ControlDissector` takes one payload at a time with the place it was found (`Where`), dissects it,
follows TURN relaying (Send/Data indications, ChannelData, MS-TURN multiplexing) into the inner packet
between the relayed address and the peer, and keeps the rows of the `stun` and `dtls` tables.
Its state is the TURN bindings needed to name inner 5-tuples: bounded by allocations and channels.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from .dtls import looks_like_dtls, parse_dtls
from .dtls_session import DtlsTracker
from .stun import StunMessage, looks_like_stun, parse_stun
from .stun_rows import binding_rows, message_row, tx_view
from .transactions import TransactionMatcher
from .turn import ChannelData, parse_channeldata, parse_ms_multiplexed, relayed_payload

Endpoint = tuple[str, int]
UNKNOWN: Endpoint = ("", 0)
TURN_PORTS = frozenset((3478, 3479, 3480, 3481, 443, 5349))
MAX_DEPTH = 2  # a relayed packet inside a relayed packet is as deep as real captures go


class Where(NamedTuple):
    """Where a payload was found: the packet that carried it and, when relayed, the outer 5-tuple."""

    file: int
    frame: int
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    transport: str  # 'udp' | 'tcp'
    relayed: bool = False
    outer: tuple[str, int, str, int] | None = None
    channel: int | None = None

    def inner(self, src: Endpoint, dst: Endpoint, channel: int | None) -> Where:
        return Where(
            self.file,
            self.frame,
            self.ts_ns,
            src[0],
            src[1],
            dst[0],
            dst[1],
            "udp",
            True,
            (self.src, self.sport, self.dst, self.dport),
            channel,
        )


DTLS_COLUMNS = (
    "file",
    "frame",
    "ts_ns",
    "src",
    "sport",
    "dst",
    "dport",
    "relayed",
    "content_type",
    "handshake_type",
    "version",
    "epoch",
    "sequence",
    "length",
    "encrypted",
    "alert",
    "info",
    "retransmission",
    "session",
    "outer_src",
    "outer_sport",
    "outer_dst",
    "outer_dport",
    "outer_channel",
)


_BINDING_NAMES = {
    (0, 0): "STUN Binding request",
    (0, 0x10): "STUN Binding indication",
    (1, 0): "STUN Binding success",
    (1, 0x10): "STUN Binding error",
}


def _plain_binding(data: bytes) -> bool:
    """An RFC 5389 Binding message (cookie present, not MS-TURN legacy): the type's method bits are 1."""
    return (
        (data[0] & 0xFE) == 0
        and (data[1] & 0xEF) == 0x01
        and data[4:8] == b"\x21\x12\xa4\x42"
        and (data[20:24] != b"\x00\x0f\x00\x04")
    )


def message_name(msg: StunMessage) -> str:
    """The summary's name of a message, e.g. 'STUN Binding request', 'TURN Allocate error'."""
    family = "MS-TURN" if msg.legacy_ms else ("STUN" if msg.method_name == "Binding" else "TURN")
    return f"{family} {msg.method_name} {msg.cls}"


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_"))


class ControlDissector:
    """STUN/TURN/DTLS rows of one capture file, with TURN relaying followed into the inner packets."""

    def __init__(self) -> None:
        self._rows: list[tuple | None] = []  # stun rows; None marks a deferred Binding message
        self._deferred: list[tuple[Where, bytes]] = []
        self.dtls_rows: list[tuple] = []
        self._transactions = TransactionMatcher()
        self.dtls = DtlsTracker()
        self.messages: Counter = Counter()
        self.rejected: Counter = Counter()
        # TURN state, keyed by (client, server) endpoints
        self.relays: dict[tuple[Endpoint, Endpoint], Endpoint] = {}
        self.channels: dict[tuple[Endpoint, Endpoint], dict[int, Endpoint]] = {}
        self._bind_requests: dict[str, tuple[Endpoint, Endpoint, int, Endpoint]] = {}
        self._alloc_requests: dict[str, tuple[Endpoint, Endpoint]] = {}
        # packets and bytes relayed per wire path and channel (-1: Send/Data indications)
        self.relay_traffic: dict[tuple[str, int, str, int, int], list[int]] = {}
        # RTP/RTCP met one by one (relayed in indications, framed in TCP): rows for media_rows.from_packets
        self.media_pending: list[tuple] = []

    # ------------------------------------------------------------------ entry points
    def payload(self, w: Where, data: bytes, depth: int = 0) -> str:
        """Dissect one payload by its first byte (RFC 7983); returns what it was found to be:
        'stun', 'dtls', 'channeldata', 'ms-multiplexed', 'rtp' (left to the media stage) or 'rejected'."""
        if not data:
            return "rejected"
        b0 = data[0]
        if b0 <= 3:
            return self.stun(w, data, depth)
        if 20 <= b0 <= 63 and w.transport == "udp":
            return self.dtls_datagram(w, data)
        if 64 <= b0 <= 79:
            tcp = w.transport == "tcp"
            return self.channeldata(w, parse_channeldata(data, tcp=tcp), depth, None if tcp else len(data))
        if data[:2] == b"\xff\x10":
            return self.ms_multiplexed(w, data, depth)
        if 128 <= b0 <= 191:
            if w.relayed or w.transport == "tcp":
                wire = w.outer or (w.src, w.sport, w.dst, w.dport)
                channel = w.channel if w.channel is not None else (-1 if w.relayed else 0)
                self.media_pending.append(
                    (
                        w.frame,
                        w.ts_ns,
                        w.src,
                        w.sport,
                        w.dst,
                        w.dport,
                        wire,
                        6 if w.transport == "tcp" else 17,
                        len(data),
                        channel,
                        data,
                        w.relayed,
                    )
                )
            return "rtp"
        return "rejected"

    @property
    def stun_rows(self) -> list[tuple]:
        """Every STUN row, in capture order; Binding messages deferred during the pass are parsed now."""
        if getattr(self, "_released", False):
            raise RuntimeError("the STUN rows now live in Analysis.stun")
        self._materialize()
        return self._rows  # type: ignore[return-value]

    def release_rows(self) -> None:
        """Drop the row tuples once the stun table holds them (Analysis.stun is the place to read them)."""
        self._materialize()
        self._rows = []
        self._released = True

    @property
    def transactions(self) -> TransactionMatcher:
        self._materialize()
        return self._transactions

    def _materialize(self) -> None:
        if not self._deferred:
            return
        deferred, self._deferred = self._deferred, []

        def matched(w: Where, view) -> None:
            if not w.relayed:
                self._transactions.add(w.frame, w.ts_ns, (w.src, w.sport, w.dst, w.dport, w.transport), view)

        parsed = iter(binding_rows(deferred, matched))
        self._rows = [r if r is not None else next(parsed) for r in self._rows]

    def stun(self, w: Where, data: bytes, depth: int = 0) -> str:
        if not looks_like_stun(data):
            self.rejected["stun"] += 1
            return "rejected"
        if _plain_binding(data):
            # ICE checks and their answers carry no TURN state: count them now, parse them when a table
            # asks (a call has many, `callflow summary` needs only the count)
            self.messages[_BINDING_NAMES[data[0] & 0x01, data[1] & 0x10]] += 1
            self._rows.append(None)
            self._deferred.append((w, data))
            return "stun"
        msg = parse_stun(data)
        self.messages[message_name(msg)] += 1
        self._rows.append(message_row(w, msg))
        if not w.relayed:
            self._transactions.add(w.frame, w.ts_ns, (w.src, w.sport, w.dst, w.dport, w.transport), tx_view(msg))
        self._learn_turn(w, msg)
        inner = relayed_payload(msg)
        if inner is not None and not w.relayed:
            self.count_relayed(w.src, w.sport, w.dst, w.dport, -1, 1, len(inner[1]))
        if inner is not None and depth < MAX_DEPTH:
            peer, payload = inner
            a, b = (w.src, w.sport), (w.dst, w.dport)
            if msg.method_name == "Send":  # client -> server: from the client's relayed address to the peer
                iw = w.inner(self.relays.get((a, b), UNKNOWN), (peer.address, peer.port), None)
            else:  # Data: server -> client, from the peer to the client's relayed address
                iw = w.inner((peer.address, peer.port), self.relays.get((b, a), UNKNOWN), None)
            self.payload(iw, payload, depth + 1)
        return "stun"

    def channeldata(self, w: Where, cd: ChannelData, depth: int = 0, datagram_len: int | None = None) -> str:
        if not self._channel_believable(w, cd, datagram_len):
            self.rejected["turn-channel"] += 1
            return "rejected"
        self.messages["TURN ChannelData"] += 1
        if not w.relayed:
            self.count_relayed(w.src, w.sport, w.dst, w.dport, cd.channel, 1, cd.size)
        if depth < MAX_DEPTH:
            src, dst = self.channel_peers(w.src, w.sport, w.dst, w.dport, cd.channel)
            self.payload(w.inner(src, dst, cd.channel), cd.data, depth + 1)
        return "channeldata"

    def ms_multiplexed(self, w: Where, data: bytes, depth: int = 0) -> str:
        mm = parse_ms_multiplexed(data)
        if mm is None or mm.malformed:
            self.rejected["ms-multiplexed"] += 1
            return "rejected"
        self.messages["MS-TURN multiplexed"] += 1
        if depth < MAX_DEPTH and mm.data:
            self.payload(w.inner(UNKNOWN, UNKNOWN, 0xFF10), mm.data, depth + 1)
        return "ms-multiplexed"

    def dtls_datagram(self, w: Where, data: bytes) -> str:
        established = self.dtls.is_dtls_flow(w.src, w.sport, w.dst, w.dport)
        cid = self.dtls.expected_cid_len(w.src, w.sport, w.dst, w.dport)
        if not looks_like_dtls(data, cid_len=cid, established=established):
            self.rejected["dtls"] += 1
            return "rejected"
        dgram = parse_dtls(data, cid_len=cid)
        outer = w.outer or (None, None, None, None)
        for ev in self.dtls.add(w.frame, w.ts_ns, w.src, w.sport, w.dst, w.dport, dgram):
            if ev.handshake_type:
                for h in ev.handshake_type.split(","):
                    self.messages[f"DTLS {_camel(h)}"] += 1
            else:
                self.messages[f"DTLS {_camel(ev.content_type)}"] += 1
            self.dtls_rows.append(
                (
                    w.file,
                    ev.frame,
                    ev.ts_ns,
                    ev.src,
                    ev.sport,
                    ev.dst,
                    ev.dport,
                    w.relayed,
                    ev.content_type,
                    ev.handshake_type,
                    ev.version,
                    ev.epoch,
                    ev.sequence,
                    ev.length,
                    ev.encrypted,
                    ev.alert,
                    ev.info,
                    ev.retransmission,
                    ev.session,
                    *outer,
                    w.channel,
                )
            )
        return "dtls"

    # ------------------------------------------------------------------ TURN bindings
    def _channel_believable(self, w: Where, cd: ChannelData, datagram_len: int | None) -> bool:
        """ChannelData is believed when its length fits the datagram exactly (0-3 bytes of padding)
        and either the channel was bound on this path or the path involves a TURN port. OpenVPN and
        SIP share the 0x40-0x4F first byte; their 'length' rarely fits and their ports are not TURN's."""
        if cd.malformed or not 0x4000 <= cd.channel <= 0x4FFF:
            return False
        if datagram_len is not None and not 0 <= datagram_len - 4 - cd.length <= 3:
            return False
        return w.relayed or self.channel_ok(w.src, w.sport, w.dst, w.dport, cd.channel)

    def count_relayed(
        self, src: str, sport: int, dst: str, dport: int, channel: int, packets: int, nbytes: int
    ) -> None:
        acc = self.relay_traffic.setdefault((src, sport, dst, dport, channel), [0, 0])
        acc[0] += packets
        acc[1] += nbytes

    def channel_ok(self, src: str, sport: int, dst: str, dport: int, channel: int) -> bool:
        """The channel was bound on this path, or the path involves a TURN port."""
        a, b = (src, sport), (dst, dport)
        if channel in self.channels.get((a, b), ()) or channel in self.channels.get((b, a), ()):
            return True
        return sport in TURN_PORTS or dport in TURN_PORTS

    def channel_peers(self, src: str, sport: int, dst: str, dport: int, channel: int) -> tuple[Endpoint, Endpoint]:
        """Inner (src, dst) of ChannelData on this outer path: relayed address and bound peer, in the
        direction of travel; unknown halves when the capture missed the allocation or the binding."""
        a, b = (src, sport), (dst, dport)
        if (a, b) in self.channels or (a, b) in self.relays:  # client -> server
            peer = self.channels.get((a, b), {}).get(channel, UNKNOWN)
            return self.relays.get((a, b), UNKNOWN), peer
        if (b, a) in self.channels or (b, a) in self.relays:  # server -> client
            peer = self.channels.get((b, a), {}).get(channel, UNKNOWN)
            return peer, self.relays.get((b, a), UNKNOWN)
        return UNKNOWN, UNKNOWN

    def _learn_turn(self, w: Where, msg: StunMessage) -> None:
        if w.relayed:
            return
        a, b = (w.src, w.sport), (w.dst, w.dport)
        name, cls = msg.method_name, msg.cls
        if name == "Allocate" and cls == "request":
            self._alloc_requests[msg.transaction_id] = (a, b)
        elif name == "Allocate" and cls == "success":
            relayed = msg.xor_relayed
            if relayed is not None:
                ep = (relayed.address, relayed.port)
                self.relays[(b, a)] = ep
                # MS-TURN relays may answer from another address than the one asked: key the path asked too
                req = self._alloc_requests.pop(msg.transaction_id, None)
                if req is not None:
                    self.relays[req] = ep
        elif name == "ChannelBind" and cls == "request":
            peer, ch = msg.xor_peer, msg.channel
            if peer is not None and ch is not None:
                self._bind_requests[msg.transaction_id] = (a, b, ch, (peer.address, peer.port))
                # use the requested binding at once: the success may be missing from the capture
                self.channels.setdefault((a, b), {}).setdefault(ch, (peer.address, peer.port))
        elif name == "ChannelBind" and cls == "success":
            req = self._bind_requests.pop(msg.transaction_id, None)
            if req is not None:
                client, server, ch, peer = req
                self.channels.setdefault((client, server), {})[ch] = peer
