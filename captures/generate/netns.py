"""Linux network namespaces, veth pairs, bridges and processes, all torn down again by `Lab.close()`.

Every namespace of one run carries the run's prefix (`cf<pid>-`), so two runs never collide and a
crashed run's leftovers can be found and removed (`Lab.sweep`). Processes started in the lab are
tracked by their process id and ended one by one (SIGTERM, then SIGKILL) when the lab closes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PREFIX = "cf"
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "ss": "iproute2",
    "sysctl": "procps",
    "iptables": "iptables",
    "tcpdump": "tcpdump",
    "turnserver": "coturn",
    "wireguard-go": "wireguard-go",
    "wg": "wireguard-tools",
}


def missing_tools() -> list[str]:
    """'tool (package)' for each tool the generator needs and cannot find, plus root and /dev/net/tun."""
    out = [f"{t} (apt-get install {p})" for t, p in REQUIRED_TOOLS.items() if shutil.which(t) is None]
    if os.geteuid() != 0:
        out.append("root (network namespaces, iptables and tcpdump need it)")
    if not os.path.exists("/dev/net/tun"):
        out.append("/dev/net/tun (wireguard-go needs a TUN device)")
    if not out:
        out += _probe_kernel()
    return out


def _probe_kernel() -> list[str]:
    """Can this kernel (or container) give us a namespace with NAT? Tools alone do not say."""
    name = f"{PREFIX}{os.getpid()}probe-x"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode:
        return [f"network namespaces (ip netns add: {r.stderr.strip()})"]
    try:
        r = subprocess.run(
            ["ip", "netns", "exec", name, "iptables", "-t", "nat", "-L", "-n"], capture_output=True, text=True
        )
        return [f"iptables NAT in a namespace ({r.stderr.strip()})"] if r.returncode else []
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class LabError(RuntimeError):
    pass


def sh(cmd: Sequence[str], *, check: bool = True, input: str | None = None) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


class Lab:
    """A set of namespaces and processes that live for one scenario."""

    def __init__(self, tag: str = "") -> None:
        self.prefix = f"{PREFIX}{os.getpid()}{tag}-"
        self.namespaces: list[str] = []
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.closed = False

    # -- namespaces and links -------------------------------------------------------------------
    def ns(self, name: str, *, forward: bool = False) -> str:
        """Create namespace `name` (full name returned): lo up, IPv6 off (no router solicitations)."""
        full = self.prefix + name
        sh(["ip", "netns", "add", full])
        self.namespaces.append(full)
        self.run(full, "ip", "link", "set", "lo", "up")
        sysctls = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        sysctls.append(f"net.ipv4.ip_forward={int(forward)}")
        self.run(full, "sysctl", "-q", "-w", *sysctls)
        return full

    def run(self, ns: str, *cmd: str, check: bool = True) -> str:
        return sh(["ip", "netns", "exec", ns, *cmd], check=check)

    def batch(self, ns: str, commands: list[str]) -> None:
        """Several `ip` commands in one process (`ip -batch`)."""
        if commands:
            sh(["ip", "-n", ns, "-batch", "-"], input="\n".join(commands) + "\n")

    def veth(self, ns1: str, if1: str, ns2: str, if2: str) -> None:
        sh(["ip", "link", "add", "name", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2])
        # no IPv6 on the links: the sysctl default above only covers links created after it
        for ns, ifname in ((ns1, if1), (ns2, if2)):
            self.run(ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{ifname}.disable_ipv6=1")

    def bridge(self, ns: str, name: str) -> None:
        self.batch(ns, [f"link add name {name} type bridge", f"link set dev {name} up"])
        self.run(ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1")

    def iptables(self, ns: str, rules: list[str]) -> None:
        """Apply rules in iptables-save syntax lines like '-t nat -A POSTROUTING -o out -j MASQUERADE'."""
        for rule in rules:
            self.run(ns, "iptables", *rule.split())

    # -- processes --------------------------------------------------------------------------------
    def popen(self, ns: str, cmd: Sequence[str], name: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kw)
        self.procs.append((name, p))
        return p

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 3.0) -> int | None:
        """End one process this lab started (by its id): `sig`, then SIGKILL after `wait` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(wait)
        return proc.returncode

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for _, p in reversed(self.procs):
            with contextlib.suppress(Exception):
                self.stop(p)
        for ns in reversed(self.namespaces):
            _kill_namespace_pids(ns)
            sh(["ip", "netns", "del", ns], check=False)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def sweep() -> list[str]:
        """Remove namespaces left by generator runs whose process is gone (a crash, a SIGKILL)."""
        removed = []
        netns_dir = Path("/run/netns")
        if not netns_dir.is_dir():
            return removed
        for entry in netns_dir.iterdir():
            name = entry.name
            if not name.startswith(PREFIX) or "-" not in name:
                continue
            pid = name[len(PREFIX) : name.index("-")].rstrip("abcdefghijklmnopqrstuvwxyz")
            if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                continue
            _kill_namespace_pids(name)
            sh(["ip", "netns", "del", name], check=False)
            removed.append(name)
        return removed


def _kill_namespace_pids(ns: str) -> None:
    """Processes still running inside one of our namespaces were started by us: end them by id."""
    pids = [int(x) for x in sh(["ip", "netns", "pids", ns], check=False).split() if x.isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists()]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
