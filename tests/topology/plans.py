"""What the analyzer must conclude on a scenario generated on any address plan (captures/generate/world.py),
at the client's capture and at the customer NAT's outside, with and without the network profile.

A point that cannot see what decides the verdict is listed with what it sees instead, and why."""

from __future__ import annotations

import json
from pathlib import Path

from analyzer import analyze

# (scenario, point, with profile) -> (topology or None for no call, findings, why)
BLIND: dict[tuple[str, str, bool], tuple[str | None, list[str], str]] = {
    ("vpn-external-direct", "nat-outside.pcap", True): (None, [], "the media never crosses the customer NAT"),
    ("vpn-external-direct", "nat-outside.pcap", False): (None, [], "the media never crosses the customer NAT"),
    ("vpn-internal-direct", "client-a.pcap", False): (
        "external-direct",
        [],
        "without [vpn] pools A cannot tell the VPN user's home NAT from an external user's",
    ),
    ("vpn-internal-via-relay", "client-a.pcap", False): (
        "external-via-relay",
        ["direct-path-blocked"],
        "without [vpn] pools A cannot tell the VPN user's home NAT from an external user's",
    ),
}


def client_point(folder: Path) -> str:
    """The client's capture of a scenario: A's, or the VPN user's where A takes no part."""
    return "client-a.pcap" if (folder / "client-a.pcap").exists() else "client-v.pcap"


def verdict(folder: Path, point: str, profile: bool) -> tuple[list[str], list[str]]:
    truth = json.loads((folder / "truth.json").read_text())
    a = analyze(folder / point, network=folder / truth["profile"] if profile else None)
    return sorted(set(a.calls.topology)), sorted(set(a.findings.code))


def expected(folder: Path, point: str, profile: bool) -> tuple[list[str], list[str]]:
    truth = json.loads((folder / "truth.json").read_text())
    topology, findings, _ = BLIND.get((truth["scenario"], point, profile), (truth["topology"], truth["findings"], ""))
    return ([topology] if topology else []), sorted(findings)
