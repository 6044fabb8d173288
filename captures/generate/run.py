"""Run one scenario: build its networks, start the relay, the VPN and the captures, run the call with one
aiortc process per host (offer/answer relayed through their stdin/stdout), then write the captures,
truth.json and the network profile into the scenario's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import relay, vpn, world
from .impair import Applied
from .netns import Lab, LabError
from .scenarios import CLIENTS, POINTS, Scenario

REPO = Path(__file__).resolve().parents[2]
PROFILE_NAME = "network.toml"


def profile_text() -> str:
    """The network profile of the current plan (world.use); the same for every scenario of a plan."""
    p = world.PLAN
    conc = f'concentrators = ["{p.concentrator}"]'
    if p.egress_is_concentrator:
        conc = "# the firewall NATs the office and terminates the VPN on one address\n" + conc
    return f"""\
# Network profile of the emulated networks (docs/profile.md), address plan '{p.name}'.
[customer]
networks = ["{p.customer_net}"]
egress = ["{p.egress}"]
# the remote users' home networks ({p.home_x_lan}, {p.home_v_lan}) are private but not the customer's
replace_defaults = true

[vpn]
pools = ["{p.vpn_pool}"]
{conc}

[cloud]
relays = ["{p.relay}"]
# the group call's media processor and the PSTN trunk's media endpoint (it speaks G.711)
media = ["{p.media}", "{p.pstn}"]
"""


ICE_DEADLINE_S = 30.0
SIGNALING_DELAY_S = 0.3
FREQS = {"a": 440.0, "b": 550.0, "x": 660.0, "v": 770.0, "media": 330.0, "pstn": 880.0}


def start_capture(lab: Lab, ns: str, iface: str, path: Path) -> subprocess.Popen:
    cmd = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-w", str(path), "ip and not igmp"]
    p = lab.popen(ns, cmd, f"tcpdump {path.name}", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready, _, _ = select.select([p.stderr], [], [], 5.0)
    line = p.stderr.readline().decode() if ready else ""
    if "listening on" not in line:
        lab.stop(p)
        raise LabError(f"tcpdump on {iface} in {ns} did not start: {line or 'no output'}")
    return p


def stop_capture(lab: Lab, p: subprocess.Popen) -> str:
    lab.stop(p, signal.SIGINT)
    tail = p.stderr.read().decode().strip().splitlines() if p.stderr else []
    return next((x for x in tail if "captured" in x), "")


class Peers:
    """The aiortc processes of one scenario and the call set-up between them."""

    def __init__(self, sc: Scenario, w: world.World, env: dict[str, str], logdir: Path) -> None:
        self.sc, self.w, self.env, self.logdir = sc, w, env, logdir
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.calls = {f"{a}-{b}": (a, b) for a, b in sc.calls}
        self.ice: dict[tuple[str, str], dict] = {}
        self.reports: dict[tuple[str, str], dict] = {}
        self.all_reports = asyncio.Event()
        self.done: dict[tuple[str, str], dict] = {}
        self.errors: list[str] = []
        self.all_ice = asyncio.Event()
        self.readers: list[asyncio.Task] = []

    def argv(self, name: str) -> list[str]:
        sc = self.sc
        args = [sys.executable, "-m", "captures.generate.peer", "--name", name, "--freq", str(FREQS[name])]
        args += [x for call, (a, _) in self.calls.items() if a == name for x in ("--offer", call)]
        if name in CLIENTS:
            args += ["--dns", world.SITES[world.HOSTS[name][0]].lan_gateway]
            args += ["--stun", relay.stun_url(), "--turn", json.dumps(relay.ice_server(sc.turn.get(name, "udp")))]
        args += ["--policy", sc.policy.get(name, "all"), "--connect-timeout", str(ICE_DEADLINE_S - 5)]
        if name in sc.codec:
            args += ["--codec", sc.codec[name]]
        if sc.check_retries is not None:
            args += ["--check-retries", str(sc.check_retries)]
        return args

    async def start(self) -> None:
        callees = [p for p in self.sc.peers if p not in {a for a, _ in self.sc.calls}]
        callers = [p for p in self.sc.peers if p not in callees]
        for name in callees + callers:  # answerers first, so offers find them listening
            err = open(self.logdir / f"peer-{name}.log", "wb")  # noqa: SIM115 (closed with the process)
            self.procs[name] = await asyncio.create_subprocess_exec(
                "ip",
                "netns",
                "exec",
                self.w.ns[name],
                *self.argv(name),
                cwd=REPO,
                env=self.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
            err.close()
            self.readers.append(asyncio.create_task(self.read(name)))

    def send(self, name: str, **msg) -> None:
        proc = self.procs[name]
        if proc.stdin and not proc.stdin.is_closing():
            proc.stdin.write((json.dumps(msg) + "\n").encode())

    async def read(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.stdout
        while line := await proc.stdout.readline():
            msg = json.loads(line)
            ev, call = msg.get("event"), msg.get("call")
            if ev == "offer":
                self.send(self.calls[call][1], cmd="offer", call=call, sdp=msg["sdp"])
            elif ev == "answer":
                # signaling latency: the answerer starts its checks (opening its NAT) before the offerer
                await asyncio.sleep(SIGNALING_DELAY_S)
                self.send(self.calls[call][0], cmd="answer", call=call, sdp=msg["sdp"])
            elif ev == "ice":
                self.ice[(call, name)] = msg
                if len(self.ice) == 2 * len(self.calls):
                    self.all_ice.set()
            elif ev == "report":
                self.reports[(call, name)] = msg
                if len(self.reports) == 2 * len(self.calls):
                    self.all_reports.set()
            elif ev == "done":
                self.done[(call, name)] = msg
            elif ev == "error":
                self.errors.append(f"{name}: {msg['message']}")
                self.all_ice.set()

    async def stop(self) -> None:
        for name in self.procs:
            self.send(name, cmd="report")
        try:
            await asyncio.wait_for(self.all_reports.wait(), 5)
        except TimeoutError:
            self.errors.append(f"reports missing: have {sorted(self.reports)}")
        for name in self.procs:
            self.send(name, cmd="stop")
        for name, proc in self.procs.items():
            try:
                if await asyncio.wait_for(proc.wait(), 10):
                    self.errors.append(f"{name}: exit status {proc.returncode}")
            except TimeoutError:
                self.errors.append(f"{name}: did not stop")
        await asyncio.gather(*self.readers, return_exceptions=True)

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)

    def log_tail(self) -> str:
        out = []
        for f in sorted(self.logdir.glob("peer-*.log")):
            lines = f.read_text(errors="replace").strip().splitlines()[-15:]
            if lines:
                out.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(out)


async def call(sc: Scenario, w: world.World, env: dict[str, str], logdir: Path, impaired: list[Applied] = ()) -> Peers:
    peers = Peers(sc, w, env, logdir)
    try:
        await peers.start()
        try:
            await asyncio.wait_for(peers.all_ice.wait(), ICE_DEADLINE_S)
        except TimeoutError:
            peers.errors.append(f"ICE results missing after {ICE_DEADLINE_S} s: have {sorted(peers.ice)}")
        if not peers.errors:
            await asyncio.gather(
                asyncio.sleep(sc.seconds),
                *(_outage(x) for x in impaired if x.imp.outage),
                *(_later(x) for x in impaired if x.imp.from_s is not None),
            )
        await peers.stop()
    finally:
        peers.kill()
        await asyncio.gather(*(p.wait() for p in peers.procs.values()), return_exceptions=True)
    return peers


async def _later(x: Applied) -> None:
    """Switch a steady impairment on once the call has connected (ICE, DTLS): the path degrades mid-call."""
    await asyncio.sleep(x.imp.from_s)
    x.switch_on()


async def _outage(x: Applied) -> None:
    """Switch the impairment's outage on at its start (seconds after the call connects) and off after it."""
    start, duration = x.imp.outage
    await asyncio.sleep(start)
    t = time.time_ns()
    x.outage_on()
    x.started = (t, time.time_ns())  # the rules took effect between these two (wall clock, as the captures)
    await asyncio.sleep(duration)
    t = time.time_ns()
    x.outage_off()
    x.ended = (t, time.time_ns())


class WrongPath(LabError):
    """The call connected, but not over the path the scenario is about (a timing race): run it again."""


ATTEMPTS = 3


def run(sc: Scenario, out: Path, log=print) -> dict:
    """Generate scenario `sc` into out/<name>/; returns its truth. Raises LabError when the call fails, or
    took another path than the scenario's in every one of ATTEMPTS runs."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _run(sc, out, log)
        except WrongPath as e:
            log(f"{sc.name}: attempt {attempt}: {e}")
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _run(sc: Scenario, out: Path, log) -> dict:
    t0 = time.monotonic()
    Lab.sweep()
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="cfgen-") as tmpname:
        tmp = Path(tmpname)
        w = world.build(lab, sc.hosts, edge=list(sc.edge))
        dumps = {
            f: start_capture(lab, w.ns[POINTS[f].host], POINTS[f].iface, tmp / f)
            for f in sc.points
            if POINTS[f].iface != "tunnel"
        }
        _, cert = relay.start(lab, w.ns["relay"], tmp)
        if sc.vpn:
            wg = vpn.setup(w, sc.vpn)
            dumps.update(
                {
                    f: start_capture(lab, w.ns[POINTS[f].host], wg["client"], tmp / f)
                    for f in sc.points
                    if POINTS[f].iface == "tunnel"
                }
            )
        env = {**os.environ, "SSL_CERT_FILE": str(cert), "PYTHONPATH": str(REPO)}
        impaired = [Applied(lab, w.ns[i.host], i) for i in sc.impair]
        try:
            peers = asyncio.run(call(sc, w, env, tmp, impaired))
        finally:
            for x in impaired:
                x.close()
        time.sleep(0.2)
        counts = {f: stop_capture(lab, p) for f, p in dumps.items()}
        if os.environ.get("CFGEN_LOGS"):  # keep the peers' and coturn's logs for debugging
            logs = Path(os.environ["CFGEN_LOGS"]) / sc.name
            logs.mkdir(parents=True, exist_ok=True)
            for f in [*tmp.glob("*.log")]:
                shutil.copyfile(f, logs / f.name)
        if peers.errors:
            raise LabError(f"{sc.name}: " + "; ".join(peers.errors) + "\n" + peers.log_tail())
        truth = make_truth(sc, w, peers, counts)
        if impaired:
            truth["impairment"] = [
                dict(
                    x.imp.describe(),
                    applied_with=x.mechanism,
                    outage_on_ns=x.started,
                    outage_off_ns=x.ended,
                    on_ns=x.on_ns,
                )
                for x in impaired
            ]
        _check(sc, truth, peers)
        dest = out / sc.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for f in sc.points:
            shutil.copyfile(tmp / f, dest / f)
        (dest / PROFILE_NAME).write_text(profile_text())
        (dest / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    pkts = ", ".join(f"{f} {c.split()[0]} pkts" for f, c in counts.items())
    log(f"{sc.name}: {time.monotonic() - t0:.1f} s, {pkts}")
    return truth


def _check(sc: Scenario, truth: dict, peers: Peers) -> None:
    """The call went the way the scenario says, or the generator fails loudly."""
    for key, p in truth["peers"].items():
        connected = p["ice_state"] == "completed"
        if connected != sc.expect_connected:
            raise LabError(
                f"{sc.name}: {key} ICE {p['ice_state']} (expected {'' if sc.expect_connected else 'not '}"
                f"connected)\n{peers.log_tail()}"
            )
        if connected and p["frames_received"] < 20:
            raise LabError(f"{sc.name}: {key} received only {p['frames_received']} audio frames")
        sel = p["selected"]
        if connected and ("relay" in (sel["local"]["type"], sel["remote"]["type"])) != sc.relayed:
            raise WrongPath(
                f"{key} nominated {sel['local']['type']} {sel['local']['host']} -> {sel['remote']['type']} "
                f"{sel['remote']['host']}, the scenario wants {'a relayed' if sc.relayed else 'a direct'} pair"
            )


def peer_key(sc: Scenario, name: str, call: str) -> str:
    n = sum(name in c for c in sc.calls)
    return name if n == 1 else f"{name}/{call.replace(name, '').strip('-')}"


def make_truth(sc: Scenario, w: world.World, peers: Peers, counts: dict[str, str]) -> dict:
    hosts = {}
    for name in w.ns:
        if name == "inet":
            continue
        if name in world.HOSTS:
            site, addr, zone, role = world.HOSTS[name]
            hosts[name] = {"address": addr, "zone": zone, "role": role, "behind": site}
            if name == "v" and sc.vpn:
                hosts[name]["tunnel_address"] = world.VPN_CLIENT_TUNNEL
                hosts[name]["vpn"] = f"{sc.vpn} tunnel (WireGuard) to {world.VPN_HEADEND}:{world.WG_PORT}"
        else:
            s = world.SITES[name]
            hosts[name] = {
                "address": s.outside,
                "zone": s.zone,
                "role": s.role,
                "lan": f"{s.lan_gateway}/{s.lan_prefix}",
            }
            if name == "cust" and sc.vpn:
                hosts[name]["vpn_headend"] = world.VPN_HEADEND
    out_peers = {}
    for (call_id, name), msg in sorted(peers.ice.items()):
        report = peers.reports.get((call_id, name), {})
        t = msg["truth"]
        out_peers[peer_key(sc, name, call_id)] = {
            "host": name,
            "call": call_id,
            "ufrag": t["ufrag"],
            "remote_ufrag": t["remote_ufrag"],
            "controlling": t["controlling"],
            "ice_state": msg["state"],
            "codec": t["codec"],
            "turn": t["turn"],
            "policy": sc.policy.get(name, "all"),
            "local_candidates": t["local_candidates"],
            "remote_candidates": t["remote_candidates"],
            "selected": t["selected"],
            "checklist": t["checklist"],
            "frames_received": report.get("frames_received", 0),
            "dtls_state": report.get("dtls_state"),
        }
    return {
        "scenario": sc.name,
        "topology": sc.topology,
        "findings": list(sc.findings),
        "profile": PROFILE_NAME,
        "plan": dataclasses.asdict(world.PLAN),
        "description": sc.summary,
        "look_for": sc.look_for,
        "capture_points": {f: POINTS[f].where for f in sc.points},
        "capture_hosts": {f: POINTS[f].host for f in sc.points},
        "hosts": hosts,
        "calls": [{"caller": a, "callee": b} for a, b in sc.calls],
        "firewall": {"customer_edge": w.edge_rules, "vpn": sc.vpn},
        "peers": out_peers,
        "tcpdump": counts,
        "generator": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"aiortc": version("aiortc"), "aioice": version("aioice"), "command": "python -m captures.generate"}
