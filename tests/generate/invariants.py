"""What each scenario's captures must show whatever the run (ports, counts and the exact pair change
between runs): which points carry direct RTP and between whom, which carry it inside TURN (ChannelData,
TCP, TLS) or inside WireGuard, the payload type, and the candidate types of the nominated pairs.

Read with an independent packet classifier (tests/generate/packets.py), not with the analyzer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.generate.packets import Look, look

A, B, X, V = "10.1.0.11", "10.1.0.12", "192.168.1.10", "192.168.2.10"
EGRESS, HEADEND, HOME_X, HOME_V = "198.51.100.2", "198.51.100.3", "203.0.113.2", "203.0.113.20"
V_TUNNEL, RELAY, MEDIA, PSTN = "10.8.0.2", "52.112.10.10", "52.113.20.20", "52.114.30.30"
MIN_RTP = 100  # 2.5 s of 20 ms audio is ~125 packets each way: at least this many at every media point
FEW = 20  # ChannelData or WireGuard data packets that are checks or keepalives, not media

Check = Callable[[Look], list[str]]


def _no_media_inside_turn_or_tunnel(lk: Look, tunnel_ok: bool) -> list[str]:
    p = []
    if lk.counts["channeldata"] >= FEW:
        p.append(f"{lk.counts['channeldata']} ChannelData packets: media went through TURN")
    if lk.counts["wireguard-data"] >= FEW * 3 and not tunnel_ok:
        p.append(f"{lk.counts['wireguard-data']} WireGuard data packets: media went through the tunnel")
    return p


def direct(*ends: str, tunnel_ok: bool = False) -> Check:
    """Plain RTP between exactly these addresses, nothing relayed (nor tunnelled, unless tunnel_ok)."""

    def check(lk: Look) -> list[str]:
        p = _no_media_inside_turn_or_tunnel(lk, tunnel_ok)
        if lk.counts["rtp"] < MIN_RTP:
            p.append(f"only {lk.counts['rtp']} RTP packets")
        if lk.with_("rtp") != set(ends):
            p.append(f"RTP between {sorted(lk.with_('rtp'))}, expected {sorted(ends)}")
        return p

    return check


def via_relay(client: str) -> Check:
    """Media exchanged with the relay only (plain RTP to a relay candidate, or ChannelData)."""

    def check(lk: Look) -> list[str]:
        p = []
        n = lk.counts["rtp"] + lk.counts["channeldata"]
        if n < MIN_RTP:
            p.append(f"only {n} RTP + ChannelData packets")
        for k in ("rtp", "channeldata"):
            if not lk.with_(k) <= {client, RELAY}:
                p.append(f"{k} between {sorted(lk.with_(k))}: not only with the relay")
        return p

    return check


def channeldata(*ends: str, n: int = MIN_RTP) -> Check:
    def check(lk: Look) -> list[str]:
        p = []
        if lk.counts["channeldata"] < n:
            p.append(f"only {lk.counts['channeldata']} ChannelData packets (expected >= {n})")
        if lk.counts["rtp"]:
            p.append(f"{lk.counts['rtp']} plain RTP packets")
        if lk.with_("channeldata") != set(ends):
            p.append(f"ChannelData between {sorted(lk.with_('channeldata'))}, expected {sorted(ends)}")
        return p

    return check


def relay_side(*peers: str) -> Check:
    """At the relay: plain RTP on the relayed leg with one or both of these peers (reflexive addresses);
    which one depends on whose relay candidate the pair uses, and that varies between runs."""

    def check(lk: Look) -> list[str]:
        p = []
        if lk.counts["rtp"] < MIN_RTP:
            p.append(f"only {lk.counts['rtp']} RTP packets on the relayed leg")
        others = lk.with_("rtp") - {RELAY}
        if RELAY not in lk.with_("rtp") or not others or not others <= set(peers):
            p.append(f"RTP between {sorted(lk.with_('rtp'))}, expected the relay and some of {sorted(peers)}")
        return p

    return check


def tunnelled(client: str) -> Check:
    """Only WireGuard to the head-end: the media is inside the tunnel."""

    def check(lk: Look) -> list[str]:
        p = []
        if lk.counts["wireguard-data"] < 2 * MIN_RTP:
            p.append(f"only {lk.counts['wireguard-data']} WireGuard data packets")
        if lk.with_("wireguard-data") != {client, HEADEND}:
            p.append(f"WireGuard between {sorted(lk.with_('wireguard-data'))}")
        if lk.counts["rtp"] or lk.counts["stun"]:
            p.append(f"{lk.counts['rtp']} RTP and {lk.counts['stun']} STUN packets outside the tunnel")
        return p

    return check


def over_tcp(client: str, tls: bool) -> Check:
    """Media to the relay over TCP 443: TURN framing in the clear, or TLS records; no UDP media."""
    k = "tls" if tls else "tcp-channeldata"

    def check(lk: Look) -> list[str]:
        p = []
        if lk.counts[k] < MIN_RTP:
            p.append(f"only {lk.counts[k]} {k} segments")
        if lk.with_(k) != {client, RELAY}:
            p.append(f"{k} between {sorted(lk.with_(k))}")
        if lk.counts["rtp"] or lk.counts["channeldata"] or lk.counts["dtls"]:
            p.append("media or DTLS over UDP")
        return p

    return check


def nothing(lk: Look) -> list[str]:
    """No media and no DTLS (ChannelData only for a few relayed checks)."""
    p = [f"{lk.counts[k]} {k} packets" for k in ("rtp", "dtls", "tcp-channeldata", "tls") if lk.counts[k]]
    return p + ([f"{lk.counts['channeldata']} ChannelData packets"] if lk.counts["channeldata"] >= FEW else [])


def tunnel_from(home: str) -> Check:
    """At the head-end: the VPN user's tunnel carries the media (WireGuard data at the media rate)."""

    def check(lk: Look) -> list[str]:
        n = lk.counts["wireguard-data"]
        p = [] if n >= 2 * MIN_RTP else [f"only {n} WireGuard data packets"]
        return p + ([] if lk.with_("wireguard-data") == {home, HEADEND} else ["WireGuard between other hosts"])

    return check


def both(*checks: Check) -> Check:
    return lambda lk: [m for c in checks for m in c(lk)]


def payload_type(pt: int) -> Check:
    return lambda lk: [] if set(lk.payload_types) == {pt} else [f"RTP payload types {dict(lk.payload_types)}"]


def wireguard_beside() -> Check:
    """The VPN is up (handshake seen) but carries no media."""

    def check(lk: Look) -> list[str]:
        p = [] if lk.counts["wireguard-initiation"] else ["no WireGuard handshake"]
        if lk.counts["wireguard-data"] >= FEW * 3:
            p.append(f"{lk.counts['wireguard-data']} WireGuard data packets: media in the tunnel")
        return p

    return check


SPEC: dict[str, dict[str, Check]] = {
    "intranet-direct": {"client-a.pcap": direct(A, B), "nat-outside.pcap": nothing},
    "external-via-relay": {
        "client-a.pcap": via_relay(A),
        "nat-outside.pcap": via_relay(EGRESS),
        "relay.pcap": relay_side(EGRESS, HOME_X),
    },
    "external-via-relay-only": {"client-a.pcap": channeldata(A, RELAY), "relay.pcap": relay_side(HOME_X)},
    "external-direct": {
        "client-a.pcap": direct(A, HOME_X),
        "client-x.pcap": direct(X, EGRESS),
        "nat-outside.pcap": direct(EGRESS, HOME_X),
    },
    "vpn-internal-via-relay": {
        "client-v.pcap": both(via_relay(V), wireguard_beside()),
        "client-a.pcap": via_relay(A),
        "relay.pcap": relay_side(EGRESS, HOME_V),
    },
    "vpn-internal-direct": {
        "client-v.pcap": both(direct(V, EGRESS), wireguard_beside()),
        "client-a.pcap": direct(A, HOME_V),
        "nat-outside.pcap": direct(EGRESS, HOME_V),
    },
    "vpn-external-direct": {
        "client-v.pcap": both(direct(V, HOME_X), wireguard_beside()),
        "client-x.pcap": direct(X, HOME_V),
    },
    "media-over-vpn-internal": {
        "client-v.pcap": tunnelled(V),
        "tunnel-v.pcap": direct(V_TUNNEL, A),
        "client-a.pcap": direct(A, V_TUNNEL),
    },
    "media-over-vpn-external": {
        "client-v.pcap": tunnelled(V),
        "tunnel-v.pcap": direct(V_TUNNEL, HOME_X),
        "nat-outside.pcap": both(direct(EGRESS, HOME_X, tunnel_ok=True), tunnel_from(HOME_V)),
        "client-x.pcap": direct(X, EGRESS),
    },
    "tcp-fallback": {"client-a.pcap": over_tcp(A, tls=False), "relay.pcap": relay_side(HOME_X)},
    "tcp-fallback-tls": {"client-a.pcap": over_tcp(A, tls=True), "relay.pcap": relay_side(HOME_X)},
    "relay-hairpin": {
        "client-a.pcap": channeldata(A, RELAY),
        "nat-outside.pcap": channeldata(EGRESS, RELAY, n=200),
        "relay.pcap": channeldata(EGRESS, RELAY, n=200),
    },
    "group-call": {
        "client-a.pcap": direct(A, MEDIA),
        "nat-outside.pcap": direct(EGRESS, MEDIA),
        "media.pcap": direct(MEDIA, EGRESS, HOME_X),
    },
    "pstn-trunk": {
        "client-a.pcap": both(direct(A, PSTN), payload_type(0)),
        "nat-outside.pcap": both(direct(EGRESS, PSTN), payload_type(0)),
        "pstn.pcap": both(direct(PSTN, EGRESS), payload_type(0)),
    },
    "ice-failed": {"client-a.pcap": nothing, "client-x.pcap": nothing},
}

# candidate types of each peer's nominated pair, as the stack reported them: (local, remote) alternatives
SELECTED_TYPES: dict[str, dict[str, set[tuple[str, str]]]] = {
    "intranet-direct": {"a": {("host", "host")}, "b": {("host", "host")}},
    "external-via-relay": {
        "a": {("relay", "srflx"), ("relay", "prflx"), ("host", "relay"), ("relay", "relay")},
        "x": {("relay", "srflx"), ("relay", "prflx"), ("host", "relay"), ("relay", "relay")},
    },
    "external-via-relay-only": {
        "a": {("relay", "srflx"), ("relay", "prflx"), ("relay", "relay")},
        "x": {("host", "relay"), ("relay", "relay")},
    },
    "external-direct": {"a": {("host", "srflx"), ("host", "prflx")}, "x": {("host", "srflx"), ("host", "prflx")}},
    "vpn-internal-via-relay": {
        "v": {("relay", "srflx"), ("relay", "prflx"), ("host", "relay"), ("relay", "relay")},
        "a": {("relay", "srflx"), ("relay", "prflx"), ("host", "relay"), ("relay", "relay")},
    },
    "vpn-internal-direct": {"v": {("host", "srflx"), ("host", "prflx")}, "a": {("host", "srflx"), ("host", "prflx")}},
    "vpn-external-direct": {"v": {("host", "srflx"), ("host", "prflx")}, "x": {("host", "srflx"), ("host", "prflx")}},
    "media-over-vpn-external": {
        "v": {("host", "srflx"), ("host", "prflx")},
        "x": {("host", "srflx"), ("host", "prflx")},
    },
    "tcp-fallback": {"a": {("relay", "srflx"), ("relay", "prflx"), ("relay", "relay")}},
    "tcp-fallback-tls": {"a": {("relay", "srflx"), ("relay", "prflx"), ("relay", "relay")}},
    "relay-hairpin": {"a": {("relay", "relay")}, "b": {("relay", "relay")}},
    "media-over-vpn-internal": {"v": {("host", "host")}, "a": {("host", "host"), ("host", "prflx")}},
    "group-call": {"a": {("host", "host")}, "x": {("host", "host")}},
    "pstn-trunk": {"a": {("host", "host")}},
    "ice-failed": {"a": set(), "x": set()},
}


def problems(folder: Path, truth: dict) -> list[str]:
    """Every way the scenario's captures and stack report depart from what the scenario must show."""
    out = []
    for f, check in SPEC[truth["scenario"]].items():
        out += [f"{f}: {m}" for m in check(look(folder / f))]
    for key, allowed in SELECTED_TYPES.get(truth["scenario"], {}).items():
        sel = truth["peers"][key]["selected"]
        got = (sel["local"]["type"], sel["remote"]["type"]) if sel else None
        if (got is None and allowed) or (got is not None and got not in allowed):
            out.append(f"peer {key}: nominated pair types {got}, expected one of {sorted(allowed)}")
    return out
