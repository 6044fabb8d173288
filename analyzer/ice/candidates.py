"""ICE candidates known from the packets alone, and the rule that typed each one.

A check's PRIORITY says nothing about the candidate type (it carries the prflx preference), so types
come from addressing, in this order: a relayed address from an Allocate success (or a check sent
through TURN) is relay; an XOR-MAPPED-ADDRESS a STUN or TURN server returned is srflx; a private,
CGNAT, ULA, loopback or link-local address is host; a cloud media address is the media processor's
host candidate (or a relay on the relay ports); an XOR-MAPPED-ADDRESS in a check response that matches
no known candidate is prflx; anything else is 'unknown': this capture does not say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from ..dissect.tables import rows
from ..topology.profile import NetworkProfile, is_private

RELAY_PORTS = frozenset((3478, 3479, 3480, 3481))
SEEN_ORDER = ("check source", "check destination", "check response", "server response")
TYPE_RANK = {"relay": 0, "srflx": 1, "host": 2, "prflx": 3, "unknown": 4}
PRIVATE_RULE = "private or local address"

Endpoint = tuple[str, int]


class Candidate(NamedTuple):
    agent: str | None
    address: str
    port: int
    transport: str
    type: str
    rule: str
    frame: int
    file: int
    seen: str = ""  # how the capture saw it: 'check source', 'check destination', 'check response'
    foundation: str | None = None  # MS-ICE2 CANDIDATE-IDENTIFIER of the checks sent from it


@dataclass
class CandidateBook:
    """What the capture says about addresses, then the candidates of each agent."""

    profile: NetworkProfile
    relayed: dict[Endpoint, tuple[int, int, Endpoint]] = field(default_factory=dict)  # relay -> (file, frame, client)
    mapped: dict[Endpoint, tuple[int, int, Endpoint]] = field(default_factory=dict)  # srflx -> (file, frame, base)
    found: dict[tuple, Candidate] = field(default_factory=dict)
    turn_ips: set[str] = field(default_factory=set)  # addresses TURN servers relay from

    def learn_servers(self, stun: pd.DataFrame, allocations: pd.DataFrame) -> None:
        """Relayed and server-reflexive addresses from TURN allocations and STUN server queries."""
        for a in allocations.itertuples(index=False):
            if isinstance(a.relayed_address, str):
                self.turn_ips.add(a.relayed_address)
            if isinstance(a.relayed_address, str) and pd.notna(a.relayed_port):
                self.relayed.setdefault(
                    (a.relayed_address, int(a.relayed_port)),
                    (a.file, int(a.allocated_frame), (a.client, int(a.client_port))),
                )
            if isinstance(a.mapped_address, str) and pd.notna(a.mapped_port):
                self.mapped.setdefault(
                    (a.mapped_address, int(a.mapped_port)),
                    (a.file, int(a.allocated_frame), (a.client, int(a.client_port))),
                )
        queries = stun[(stun.method == "Binding") & (stun.cls == "request") & stun.username.isna() & ~stun.relayed]
        ids = set(zip(queries.file, queries.transaction_id, strict=True))
        answers = stun[(stun.method == "Binding") & (stun.cls == "success") & stun.mapped_address.notna()]
        cols = ("file", "transaction_id", "relayed", "mapped_address", "mapped_port", "frame", "dst", "dport")
        for r in rows(answers, cols):
            if (r.file, r.transaction_id) in ids and not r.relayed:
                self.mapped.setdefault(
                    (r.mapped_address, int(r.mapped_port)), (r.file, int(r.frame), (r.dst, int(r.dport)))
                )

    def classify(self, address: str, port: int, relayed_check: bool = False) -> tuple[str, str]:
        """(type, rule) for an address with no more context than the capture gives."""
        ep = (address, port)
        if ep in self.relayed:
            return "relay", f"XOR-RELAYED-ADDRESS of an allocation (frame {self.relayed[ep][1]})"
        if relayed_check:
            return "relay", "the allocation end of a check relayed through TURN"
        if address in self.turn_ips:
            return "relay", "an address of a TURN server seen in this capture"
        if ep in self.mapped:
            return "srflx", f"XOR-MAPPED-ADDRESS returned by a STUN/TURN server (frame {self.mapped[ep][1]})"
        if is_private(address):
            return "host", PRIVATE_RULE
        if self.profile.capture_point == address:
            return "host", "the capture host's own address (network profile)"
        z = self.profile.zone(address)
        if z.zone == "cloud":
            if "relay" in z.roles or port in RELAY_PORTS:
                return "relay", f"{z.rule}, relay port {port}"
            return "host", f"{z.rule}: media processors answer with host candidates"
        return "unknown", "public address; this capture does not say whether host or reflexive"

    def add(
        self,
        agent: str | None,
        address: str,
        port: int,
        transport: str,
        frame: int,
        file: int,
        relayed_check: bool = False,
        typed: tuple[str, str] | None = None,
        seen: str = "",
        foundation: str | None = None,
    ) -> Candidate:
        """Record a candidate; a better-founded type replaces a weaker one, and `seen` accumulates how
        the capture saw it ('check source', 'check destination', 'check response')."""
        t, rule = typed or self.classify(address, port, relayed_check)
        key = (agent, address, port, transport)
        old = self.found.get(key)
        if old is None:
            c = Candidate(agent, address, port, transport, t, rule, frame, file, seen)
        else:
            ways = set(old.seen.split(", ")) | {seen}
            seen_all = ", ".join(x for x in SEEN_ORDER if x in ways)
            if TYPE_RANK[old.type] <= TYPE_RANK[t]:
                c = old._replace(seen=seen_all)
            else:
                c = Candidate(agent, address, port, transport, t, rule, old.frame, file, seen_all)
        if foundation and not c.foundation:
            c = c._replace(foundation=foundation)
        self.found[key] = c
        return c

    def add_gathered(self) -> None:
        """Server-reflexive addresses a STUN or TURN server returned, as candidates of the agent whose
        checks leave from their base, also when no check used them: a 10.x XOR-MAPPED-ADDRESS from a
        server (double NAT) is that agent's srflx candidate, not a host one."""
        agents: dict[tuple, str] = {}
        for c in self.found.values():
            if c.agent and "check source" in c.seen:
                agents.setdefault((c.file, c.address, c.port), c.agent)
        for ep, (file, frame, base) in self.mapped.items():
            agent = agents.get((file, *base))
            if agent is None:
                continue
            transport = next(c.transport for c in self.found.values() if (c.file, c.address, c.port) == (file, *base))
            if not self.known(agent, *ep, transport):
                self.add(agent, *ep, transport, frame, file, seen="server response")

    def known(self, agent: str | None, address: str, port: int, transport: str) -> bool:
        return (agent, address, port, transport) in self.found

    def table(self) -> pd.DataFrame:
        cols = ["agent", "address", "port", "transport", "type", "rule", "frame", "file", "seen", "foundation"]
        df = pd.DataFrame(sorted(self.found.values(), key=lambda c: (c.file, c.frame)), columns=cols)
        df["port"] = df["port"].astype("Int64")
        return df
