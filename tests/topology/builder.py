"""Build small call captures on purpose: ICE checks (direct or through a TURN channel), a TURN
allocation over UDP or TCP, and RTP both ways, so each finding rule can be tested with and without
its evidence."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from tests.capture.writers import pcap_bytes
from tests.dissect import stunbuild as sb

T0 = 1_700_000_000_000_000_000
_ids = itertools.count(1)


def tid() -> bytes:
    return next(_ids).to_bytes(12, "big")


@dataclass
class CallBuilder:
    """Frames with timestamps; every method appends at the current time and advances it."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)
    now: int = T0
    ttl: int = 64
    tcp_seq: dict = field(default_factory=dict)

    def udp(self, src, dst, payload: bytes, dt_ms: float = 1.0, ttl: int | None = None) -> None:
        pkt = Ether() / IP(src=src[0], dst=dst[0], ttl=ttl or self.ttl) / UDP(sport=src[1], dport=dst[1]) / payload
        self.frames.append((self.now, bytes(pkt)))
        self.now += int(dt_ms * 1e6)

    def tcp(self, src, dst, payload: bytes, dt_ms: float = 1.0) -> None:
        seq = self.tcp_seq.get((src, dst), 1000)
        pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, flags="PA") / payload
        self.tcp_seq[(src, dst)] = seq + len(payload)
        self.frames.append((self.now, bytes(pkt)))
        self.now += int(dt_ms * 1e6)

    def send(self, src, dst, payload: bytes, tcp: bool = False, dt_ms: float = 1.0) -> None:
        (self.tcp if tcp else self.udp)(src, dst, payload, dt_ms)

    def allocate(self, client, server, relayed, mapped, tcp: bool = False, answer: bool = True) -> None:
        t = tid()
        self.send(client, server, sb.message("Allocate", "request", [sb.attr(0x0019, b"\x11\0\0\0")], t), tcp)
        if answer:
            self.send(
                server,
                client,
                sb.message(
                    "Allocate",
                    "success",
                    [
                        sb.xor_addr(0x0016, *relayed, t),
                        sb.xor_addr(0x0020, *mapped, t),
                        sb.attr(0x000D, (600).to_bytes(4, "big")),
                    ],
                    t,
                ),
                tcp,
            )

    def bind_channel(self, client, server, channel: int, peer, tcp: bool = False) -> None:
        t = tid()
        self.send(
            client,
            server,
            sb.message(
                "ChannelBind",
                "request",
                [sb.attr(0x000C, channel.to_bytes(2, "big") + b"\0\0"), sb.xor_addr(0x0012, *peer, t)],
                t,
            ),
            tcp,
        )
        self.send(server, client, sb.message("ChannelBind", "success", [], t), tcp)

    def check(
        self,
        src,
        dst,
        to_ufrag,
        from_ufrag,
        *,
        answer=True,
        nominate=False,
        role="controlling",
        via=None,
        channel=0x4001,
        tcp=False,
    ) -> None:
        """A connectivity check src -> dst (and its answer). With via=(client, server, relayed), the
        check leaves through the TURN channel: the wire path is client <-> server."""
        t = tid()
        attrs = [
            sb.attr(0x0006, f"{to_ufrag}:{from_ufrag}".encode()),
            sb.attr(0x0024, (0x6E7F1EFF).to_bytes(4, "big")),
            sb.attr(0x802A if role == "controlling" else 0x8029, (7).to_bytes(8, "big")),
        ]
        if nominate:
            attrs.append(sb.attr(0x0025, b""))
        req = sb.message("Binding", "request", attrs, t)
        resp = sb.message("Binding", "success", [sb.xor_addr(0x0020, *src, t)], t)
        if via is None:
            self.send(src, dst, req, tcp)
            if answer:
                self.send(dst, src, resp, tcp)
            return
        client, server, _relayed = via
        self.send(client, server, sb.channeldata(channel, req, pad=tcp), tcp)
        if answer:
            self.send(server, client, sb.channeldata(channel, resp, pad=tcp), tcp)

    def media(
        self,
        a,
        b,
        seconds: float,
        *,
        both=True,
        via=None,
        channel=0x4001,
        tcp=False,
        pt=111,
        ttl_change_at: float | None = None,
    ) -> None:
        n = int(seconds * 50)
        step = 10 if both else 20  # 50 packets/s in each direction that sends
        for i in range(n):
            ttl = 50 if ttl_change_at is not None and i >= n * ttl_change_at else None
            for k, (s, d, ssrc) in enumerate(((a, b, 0x1111), (b, a, 0x2222))):
                if k == 1 and not both:
                    continue
                pkt = sb.rtp(i, 960 * i, ssrc, pt)
                if via is None:
                    self.udp(s, d, pkt, dt_ms=step, ttl=ttl) if not tcp else self.tcp(s, d, pkt, dt_ms=step)
                else:
                    client, server, _ = via
                    w_src, w_dst = (client, server) if k == 0 else (server, client)
                    self.send(w_src, w_dst, sb.channeldata(channel, pkt, pad=tcp), tcp, dt_ms=step)

    def write(self, path) -> None:
        path.write_bytes(pcap_bytes(self.frames))
