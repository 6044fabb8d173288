"""VPN tunnel signatures: IPsec (ESP, AH, IKE, NAT-T), WireGuard, OpenVPN, Cisco AnyConnect DTLS.

One rule set serves both the scalar `classify_vpn` and the vectorised `vpn_columns`: the rules are written
with operators that work on Python ints and on numpy arrays alike, against a small reader that returns a
payload byte (0 past the end). Rules are tried in order; the first that holds names the packet.

- esp / ah: IP protocol 50 / 51.
- nat-t-keepalive: UDP port 4500, one byte 0xFF.
- ike: UDP 4500 with the 4-byte zero non-ESP marker and >= 28 more bytes; UDP 500 with >= 28 bytes and an
  IKE version byte (major 1 or 2).
- nat-t-esp: UDP 4500, >= 8 bytes, non-zero SPI.
- wireguard-*: any UDP port; byte 0 type 1..4, three zero bytes, size 148 / 92 / 64 / data >= 32 and a
  multiple of 16, or > 1296 (the padding to 16 is capped at the tunnel MTU). On a DNS port (53, 5353,
  5355) a DNS header is not WireGuard: a query whose ID is 0x0100-0x04FF with flags 0 has the same first
  four bytes, and a DNS query's counts (QDCOUNT 1, ANCOUNT 0) would be a random receiver index there.
  A cookie reply answers a handshake message under load: `credible_kinds` drops it from a flow that
  carries no handshake.
- anyconnect-dtls: UDP 443, DTLS record type 20..23, pre-standard version 0x0100, record length fits.
- openvpn: UDP or TCP port 1194 with a known opcode (byte 0 >> 3 in 1..11; on TCP after the 2-byte length)
  and a minimum size; or, on any port, a hard reset (client v2/v3, server v2, key id 0) whose size and
  fields match plain, tls-auth (HMAC 16/20/32/64 bytes + packet id + time) or tls-crypt framing; over TCP
  the 2-byte length must then equal the rest of the segment.

Stateless by design: OpenVPN control/data packets on a non-default port are only recognisable through the
flow whose hard reset was seen, which is the caller's (flow table's) business.
"""

from __future__ import annotations

import numpy as np

VPN_KINDS: tuple[str | None, ...] = (
    None,
    "esp",
    "ah",
    "ike",
    "nat-t-esp",
    "nat-t-keepalive",
    "wireguard-initiation",
    "wireguard-response",
    "wireguard-cookie",
    "wireguard-data",
    "openvpn",
    "anyconnect-dtls",
)
VPN_CODES = {k: i for i, k in enumerate(VPN_KINDS) if k}

PROTO_TCP, PROTO_UDP, PROTO_ESP, PROTO_AH = 6, 17, 50, 51
PORT_IKE, PORT_NATT, PORT_OPENVPN, PORT_ANYCONNECT = 500, 4500, 1194, 443
# WireGuard pads the plaintext to 16 bytes but never beyond the tunnel MTU: a data message whose size is no
# multiple of 16 is MTU-capped, so bigger than 32 + 1280 - 16 (1280 = the smallest MTU we expect).
WG_PAD_CAPPED = 1296
DNS_PORTS = (53, 5353, 5355)  # DNS, mDNS, LLMNR: same header
WG_HANDSHAKES = frozenset(("wireguard-initiation", "wireguard-response"))
OVPN_HMAC_SIZES = (16, 20, 32, 64)  # tls-auth digests: MD5, SHA1, SHA256, SHA512
OVPN_AUTH_EXTRA = 8  # tls-auth / tls-crypt replay packet id + net time
OVPN_TLS_CRYPT_TAG = 32
OVPN_CLIENT_RESET, OVPN_SERVER_RESET, OVPN_CLIENT_RESET_V3 = 0x38, 0x40, 0x50  # opcode << 3, key id 0


class _Bytes:
    """Reader over one payload (Python ints)."""

    def __init__(self, proto: int, sport: int, dport: int, payload: bytes) -> None:
        self.d = payload
        self.n = len(payload)
        self.proto, self.sport, self.dport = proto, sport, dport

    def u8(self, i: int) -> int:
        return self.d[i] if i < self.n else 0

    def only(self, mask, rule) -> bool:
        """rule(reader) where mask holds, False elsewhere (lets the vectorised reader skip rows)."""
        return bool(mask) and bool(rule(self))


class _Columns:
    """Reader over many payloads (numpy arrays; byte gathers cached per offset)."""

    def __init__(self, buf, off, ln, proto, sport, dport) -> None:
        self.buf, self.off, self.n = buf, off, ln
        self.proto, self.sport, self.dport = proto, sport, dport
        self._cache: dict[int, np.ndarray] = {}

    def u8(self, i: int) -> np.ndarray:
        v = self._cache.get(i)
        if v is None:
            if self.buf.size == 0:
                v = np.zeros(self.n.shape, dtype=np.int64)
            else:
                inside = i < self.n
                v = np.where(inside, self.buf[np.where(inside, self.off + i, 0)], 0).astype(np.int64)
            self._cache[i] = v
        return v

    def only(self, mask, rule) -> np.ndarray:
        out = np.zeros(self.n.shape, dtype=bool)
        idx = np.flatnonzero(mask)
        if idx.size:
            sub = _Columns(self.buf, self.off[idx], self.n[idx], self.proto[idx], self.sport[idx], self.dport[idx])
            out[idx] = rule(sub)
        return out


def _u16(r, i: int):
    return (r.u8(i) << 8) | r.u8(i + 1)


def _u32(r, i: int):
    return (_u16(r, i) << 16) | _u16(r, i + 2)


def _zero(r, i: int, k: int):
    acc = r.u8(i)
    for j in range(i + 1, i + k):
        acc = acc | r.u8(j)
    return acc == 0


def _port(r, p: int):
    return (r.sport == p) | (r.dport == p)


def _small_pid(r, i: int):
    v = _u32(r, i)
    return (v >= 1) & (v <= 0xFFFF)


def _ovpn_reset(r, s: int, m):
    """OpenVPN hard reset starting at offset s, m bytes long (see module table)."""
    op = r.u8(s)
    client = op == OVPN_CLIENT_RESET
    server = op == OVPN_SERVER_RESET
    ok = client & (m == 14) & _zero(r, s + 9, 5)
    ok = ok | (server & (m == 26) & (r.u8(s + 9) == 1) & _zero(r, s + 10, 4) & _zero(r, s + 22, 4))
    for h in OVPN_HMAC_SIZES:
        a = s + h + OVPN_AUTH_EXTRA  # the fields behind the HMAC, packet id and time
        pid = _small_pid(r, s + 9 + h)
        ok = ok | (client & (m == 14 + h + 8) & pid & _zero(r, a + 9, 5))
        ok = ok | (server & (m == 26 + h + 8) & pid & (r.u8(a + 9) == 1) & _zero(r, a + 10, 4) & _zero(r, a + 22, 4))
    tc = OVPN_AUTH_EXTRA + OVPN_TLS_CRYPT_TAG
    pid0 = _small_pid(r, s + 9)
    ok = ok | (((client & (m == 14 + tc)) | (server & (m == 26 + tc))) & pid0)
    return ok | ((op == OVPN_CLIENT_RESET_V3) & (m >= 14 + tc + 2) & pid0)


def _is_reset(op):
    return (op == OVPN_CLIENT_RESET) | (op == OVPN_SERVER_RESET) | (op == OVPN_CLIENT_RESET_V3)


def _ovpn_known(r, s: int, m):
    """A known opcode (1..11) at offset s of an m-byte OpenVPN packet of plausible minimum size."""
    op = r.u8(s) >> 3
    data = (op == 6) | (op == 9)
    control = (op != 6) & (op != 9)
    return (op >= 1) & (op <= 11) & ((data & (m >= 8)) | (control & (m >= 10)))


def _rules(r) -> list[tuple[int, object]]:
    n = r.n
    udp = r.proto == PROTO_UDP
    tcp = r.proto == PROTO_TCP
    b0 = r.u8(0)
    natt = udp & _port(r, PORT_NATT)
    ike500 = udp & _port(r, PORT_IKE) & (n >= 28) & (((r.u8(17) >> 4) == 1) | ((r.u8(17) >> 4) == 2))
    dns_port = _port(r, DNS_PORTS[0]) | _port(r, DNS_PORTS[1]) | _port(r, DNS_PORTS[2])
    dns_query = (_u16(r, 4) == 1) & (_u16(r, 6) == 0)  # QDCOUNT 1, ANCOUNT 0 (flags 0: no QR bit)
    wg = udp & _zero(r, 1, 3) & ((dns_port & dns_query) == 0)
    ct = r.u8(0)
    tcp_len = _u16(r, 0)
    return [
        (VPN_CODES["esp"], r.proto == PROTO_ESP),
        (VPN_CODES["ah"], r.proto == PROTO_AH),
        (VPN_CODES["nat-t-keepalive"], natt & (n == 1) & (b0 == 0xFF)),
        (VPN_CODES["ike"], (natt & (n >= 32) & _zero(r, 0, 4)) | ike500),
        (VPN_CODES["nat-t-esp"], natt & (n >= 8) & (_u32(r, 0) != 0)),
        (VPN_CODES["wireguard-initiation"], wg & (b0 == 1) & (n == 148)),
        (VPN_CODES["wireguard-response"], wg & (b0 == 2) & (n == 92)),
        (VPN_CODES["wireguard-cookie"], wg & (b0 == 3) & (n == 64)),
        (VPN_CODES["wireguard-data"], wg & (b0 == 4) & (n >= 32) & ((n % 16 == 0) | (n > WG_PAD_CAPPED))),
        (
            VPN_CODES["anyconnect-dtls"],
            udp
            & _port(r, PORT_ANYCONNECT)
            & (n >= 13)
            & (ct >= 20)
            & (ct <= 23)
            & (_u16(r, 1) == 0x0100)
            & (_u16(r, 11) + 13 <= n),
        ),
        (
            VPN_CODES["openvpn"],
            (udp & _port(r, PORT_OPENVPN) & _ovpn_known(r, 0, n))
            | (tcp & _port(r, PORT_OPENVPN) & (n >= 3) & _ovpn_known(r, 2, tcp_len))
            | r.only(udp & _is_reset(b0), lambda q: _ovpn_reset(q, 0, q.n))
            | r.only(tcp & (tcp_len == n - 2) & _is_reset(r.u8(2)), lambda q: _ovpn_reset(q, 2, q.n - 2)),
        ),
    ]


def credible_kinds(kinds: dict[str, int]) -> dict[str, int]:
    """A flow's VPN signature counts without those its other packets contradict: a WireGuard cookie
    reply is only sent in answer to a handshake message, so a flow without one has no cookie reply."""
    if "wireguard-cookie" in kinds and not WG_HANDSHAKES & kinds.keys():
        return {k: n for k, n in kinds.items() if k != "wireguard-cookie"}
    return kinds


def classify_vpn(proto: int, sport: int, dport: int, payload: bytes) -> str | None:
    """The VPN signature of one packet (IP protocol, transport ports, transport payload), or None."""
    try:
        r = _Bytes(int(proto), int(sport), int(dport), bytes(payload))
        for code, hit in _rules(r):
            if hit:
                return VPN_KINDS[code]
    except (TypeError, ValueError):
        return None
    return None


def vpn_columns(buf, off, length, proto, sport, dport) -> np.ndarray:
    """`classify_vpn` for a whole batch: a uint8 code per packet (index into VPN_KINDS, 0 = none)."""
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    off = np.asarray(off, dtype=np.int64).reshape(-1)
    ln = np.minimum(np.asarray(length, dtype=np.int64).reshape(-1), np.maximum(buf.size - off, 0))
    ln = np.where(off >= 0, np.maximum(ln, 0), 0)
    proto = np.asarray(proto).astype(np.int64)
    sport = np.asarray(sport).astype(np.int64)
    dport = np.asarray(dport).astype(np.int64)
    out = np.zeros(off.size, dtype=np.uint8)
    if off.size == 0:
        return out
    # cheap prefilter on protocol, ports and the first bytes; the rule set runs on the candidates only
    last = max(buf.size - 1, 0)
    b0 = np.where(ln >= 1, buf[np.minimum(np.where(ln >= 1, off, 0), last)] if buf.size else 0, 0)
    b2 = np.where(ln >= 3, buf[np.minimum(np.where(ln >= 3, off + 2, 0), last)] if buf.size else 0, 0)
    resets = (OVPN_CLIENT_RESET, OVPN_SERVER_RESET, OVPN_CLIENT_RESET_V3)
    udp, tcp = proto == PROTO_UDP, proto == PROTO_TCP
    ports = (PORT_IKE, PORT_NATT, PORT_OPENVPN, PORT_ANYCONNECT)
    cand = (proto == PROTO_ESP) | (proto == PROTO_AH)
    cand |= (udp | tcp) & (np.isin(sport, ports) | np.isin(dport, ports))
    cand |= udp & (((b0 >= 1) & (b0 <= 4)) | np.isin(b0, resets))
    cand |= tcp & np.isin(b2, resets)
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return out
    r = _Columns(buf, off[idx], ln[idx], proto[idx], sport[idx], dport[idx])
    rules = _rules(r)
    codes = np.select([np.broadcast_to(m, idx.shape) for _, m in rules], [c for c, _ in rules], 0)
    out[idx] = codes
    return out
