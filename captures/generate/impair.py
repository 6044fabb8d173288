"""Network impairment on one hop of a scenario: loss, delay with jitter, an outage mid-call.

The first choice is Linux netem on the hop's interface inside its namespace:

    tc qdisc add dev IFACE root netem loss X% delay Yms Zms

netem shapes egress only, so an impairment of both directions of an access link (`both`) would need an
ifb device for the ingress side. Kernels built without sch_netem (this machine's: CONFIG_NET_SCH_NETEM is
not set) get the same effect from netfilter inside the host's namespace, still under the real stacks:
- loss: `-m statistic --mode random --probability X/100 -j DROP` (the kernel's random drop, as netem's);
- delay and jitter: the packets go to an NFQUEUE whose listener (captures.generate.nfqdelay) accepts each
  one after Y ms plus a uniform +-Z ms, as netem does without a distribution table (reordering too);
- an outage: a `-j DROP` rule inserted at its start and deleted at its end.
Uplink rules sit in OUTPUT (before the interface: a capture on it does not see what they drop or sees it
late); downlink rules in INPUT (after the interface: a capture on it still sees the packets on time).
truth.json records which mechanism ran (`impairment.applied_with`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .netns import Lab, LabError

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Impairment:
    host: str  # the namespace of the impaired hop's end (a client: its access link)
    iface: str = "eth0"
    loss_pct: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    both: bool = False  # the downlink too (else the host's uplink only)
    outage: tuple[float, float] | None = None  # (seconds after the call connects, duration s): all UDP lost
    from_s: float | None = None  # switched on this many seconds after the call connects (None: from the start)
    seed: int = 16

    def netem(self) -> list[str]:
        """The netem arguments of the steady impairment (the outage is switched on and off in time)."""
        out = []
        if self.loss_pct:
            out += ["loss", f"{self.loss_pct:g}%"]
        if self.delay_ms:
            out += ["delay", f"{self.delay_ms:g}ms"] + ([f"{self.jitter_ms:g}ms"] if self.jitter_ms else [])
        return out

    def describe(self) -> dict:
        d = asdict(self)
        d["netem"] = " ".join(["tc qdisc add dev", self.iface, "root netem", *self.netem()]) if self.netem() else None
        return d


class Applied:
    """An impairment in place; `outage_on/off` switch the outage; `close` stops the helper processes."""

    def __init__(self, lab: Lab, ns: str, imp: Impairment) -> None:
        self.lab, self.ns, self.imp = lab, ns, imp
        self.procs: list[subprocess.Popen] = []
        self.started: tuple[int, int] | None = None  # wall-clock ns around switching the outage on (truth.json)
        self.ended: tuple[int, int] | None = None  # and off
        self.on_ns: int | None = None  # wall-clock ns the steady impairment was switched on
        self.mechanism = ""
        if imp.from_s is None:
            self.switch_on()

    def switch_on(self) -> None:
        self.on_ns = time.time_ns()
        self.mechanism = self._apply()

    def _apply(self) -> str:
        imp, lab = self.imp, self.lab
        chains = [("OUTPUT", "-o")] + ([("INPUT", "-i")] if imp.both else [])
        if not imp.both and imp.netem():
            try:
                lab.run(self.ns, "tc", "qdisc", "add", "dev", imp.iface, "root", "netem", *imp.netem())
                return "tc netem"
            except LabError as e:
                if "unknown" not in str(e).lower():
                    raise
        if not imp.netem():
            return "netfilter (outage only)"
        if imp.delay_ms or imp.jitter_ms:
            for q, (chain, flag) in enumerate(chains):
                p = lab.popen(
                    self.ns,
                    [
                        sys.executable,
                        "-m",
                        "captures.generate.nfqdelay",
                        "--queue",
                        str(q),
                        "--delay",
                        str(imp.delay_ms),
                        "--jitter",
                        str(imp.jitter_ms),
                        "--loss",
                        str(imp.loss_pct),
                        "--seed",
                        str(imp.seed + q),
                    ],
                    f"nfqdelay {q}",
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd=REPO,
                )
                if p.stdout is None or p.stdout.readline().strip() != b"ready":
                    raise LabError(f"nfqdelay in {self.ns} did not start")
                self.procs.append(p)
                lab.iptables(self.ns, [f"-A {chain} {flag} {imp.iface} -p udp -j NFQUEUE --queue-num {q}"])
            return "netfilter NFQUEUE (captures.generate.nfqdelay: delay, uniform jitter, loss)"
        lab.iptables(
            self.ns,
            [
                f"-A {chain} {flag} {imp.iface} -p udp -m statistic --mode random --probability "
                f"{imp.loss_pct / 100:.4f} -j DROP"
                for chain, flag in chains
            ],
        )
        return "netfilter statistic match (random loss)"

    def _outage_rules(self) -> list[tuple[str, str]]:
        return [("OUTPUT", "-o")] + ([("INPUT", "-i")] if self.imp.both else [])

    def outage_on(self) -> None:
        self.lab.iptables(self.ns, [f"-I {c} 1 {f} {self.imp.iface} -p udp -j DROP" for c, f in self._outage_rules()])

    def outage_off(self) -> None:
        self.lab.iptables(self.ns, [f"-D {c} {f} {self.imp.iface} -p udp -j DROP" for c, f in self._outage_rules()])

    def close(self) -> None:
        for p in self.procs:
            self.lab.stop(p)
