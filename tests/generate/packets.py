"""An independent look at a generated capture (scapy, not the analyzer): what each packet carries, by the
first bytes of its UDP or TCP payload (RFC 7983), and with whom.

Kinds: stun, dtls, rtp, rtcp, channeldata (TURN ChannelData), wireguard-<type>, dns, other; over TCP a
segment is named by the message it starts: tls (a TLS record), tcp-stun, tcp-channeldata, ...
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import PcapReader

WG_TYPES = {1: "initiation", 2: "response", 3: "cookie", 4: "data"}


def kind(payload: bytes, sport: int, dport: int, transport: str) -> str:
    if not payload:
        return "empty"
    b0 = payload[0]
    if 53 in (sport, dport):
        return "dns"
    if (
        transport == "udp"
        and len(payload) >= 4
        and 51820 in (sport, dport)
        and b0 in WG_TYPES
        and payload[1:4] == b"\0\0\0"
    ):
        return f"wireguard-{WG_TYPES[b0]}"
    if transport == "tcp":
        if b0 in (20, 21, 22, 23) and payload[1:3] in (b"\x03\x01", b"\x03\x03"):
            return "tls"
        return "tcp-" + kind(payload, sport, dport, "udp")  # TURN over TCP: STUN and ChannelData framing
    if b0 < 4 and len(payload) >= 20 and payload[4:8] == b"\x21\x12\xa4\x42":
        return "stun"
    if 20 <= b0 <= 63:
        return "dtls"
    if 64 <= b0 <= 79:
        return "channeldata"
    if 128 <= b0 <= 191 and len(payload) >= 12:
        return "rtcp" if 192 <= payload[1] <= 223 else "rtp"
    return "other"


@dataclass
class Look:
    """Per kind: packet count, the set of (ip, ip) pairs (sorted) that exchanged it, RTP payload types."""

    counts: Counter = field(default_factory=Counter)
    peers: dict[str, set] = field(default_factory=dict)
    payload_types: Counter = field(default_factory=Counter)

    def with_(self, k: str) -> set[str]:
        """Every address that exchanged packets of kind k."""
        return {a for pair in self.peers.get(k, ()) for a in pair}


def look(path: Path) -> Look:
    out = Look()
    with PcapReader(str(path)) as r:
        for pkt in r:
            ip = pkt.getlayer(IP)
            if ip is None:
                continue
            layer = ip.getlayer(UDP) or ip.getlayer(TCP)
            if layer is None:
                continue
            transport = "udp" if isinstance(layer, UDP) else "tcp"
            payload = bytes(layer.payload)
            k = kind(payload, layer.sport, layer.dport, transport)
            if k == "empty":
                continue
            out.counts[k] += 1
            out.peers.setdefault(k, set()).add(tuple(sorted((ip.src, ip.dst))))
            if k == "rtp":
                out.payload_types[payload[1] & 0x7F] += 1
    return out
