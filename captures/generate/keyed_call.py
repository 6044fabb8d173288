"""A real WebRTC call between two aiortc peers on this host, captured with tcpdump, with the DTLS key log
the peers' OpenSSL contexts write: the ground truth for SRTP decryption.

A sends a tone of a known frequency, B a tone or digital silence; with --relay both peers are
relay-only through Debian's coturn on 127.0.0.1, so every STUN check, DTLS record and SRTP packet
travels inside TURN (ChannelData). --profile restricts the SRTP protection profiles aiortc offers,
so each capture shows the one named. The key log is what OpenSSL's keylog callback writes
(pyOpenSSL's `Context.set_keylog_callback` on the context aiortc builds): NSS format, CLIENT_RANDOM
lines.

    python -m captures.generate.keyed_call OUTDIR [--relay] [--profile SRTP_AEAD_AES_128_GCM]
        [--tone-a 440] [--tone-b 0] [--seconds 4] [--drop 0.1]

--drop P runs the call in a network namespace of its own whose iptables drops each RTP/RTCP datagram
(first payload byte 0b10xxxxxx, an u32 match) with probability P (the statistic match) before it
reaches the loopback: the capture sees what the receivers received, and their (encrypted) receiver
reports count the same loss.

Writes OUTDIR/call.pcap, OUTDIR/keylog.txt and OUTDIR/truth.json. Needs tcpdump (root) and, with
--relay, turnserver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection, rtcdtlstransport

from captures.generate.loopback_call import count_frames
from captures.generate.peer import Tone, _voice_opus

TURN_PORT, USER, PASSWORD, REALM = 3478, "callflow", "callflow-secret", "relay.local.example"
COTURN = """\
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port={port}
min-port=49152
max-port=49200
lt-cred-mech
user={user}:{password}
realm={realm}
fingerprint
allow-loopback-peers
no-cli
no-dtls
no-tls
no-tcp
no-rfc5780
no-stun-backward-compatibility
response-origin-only-with-rfc5780
no-software-attribute
pidfile={dir}/turnserver.pid
log-file={dir}/turnserver.log
simple-log
"""


def log_keys(lines: list[str], profile: str | None) -> None:
    """Every DTLS context aiortc builds writes its key log lines to `lines` (and offers `profile` only)."""
    make = rtcdtlstransport.RTCCertificate._create_ssl_context

    def create(self, srtp_profiles):
        if profile is not None:
            srtp_profiles = [p for p in srtp_profiles if p.openssl_profile.decode() == profile.replace("HMAC_", "")]
        ctx = make(self, srtp_profiles)
        ctx.set_keylog_callback(lambda conn, line: lines.append(line.decode()))
        return ctx

    rtcdtlstransport.RTCCertificate._create_ssl_context = create


async def call(seconds: float, tone_a: float, tone_b: float, relay: bool) -> dict:
    config = None
    if relay:
        server = RTCIceServer(f"turn:127.0.0.1:{TURN_PORT}?transport=udp", username=USER, credential=PASSWORD)
        config = RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    a.addTrack(Tone(tone_a, amplitude=0.3 if tone_a else 0.0))
    b.addTrack(Tone(tone_b or 440, amplitude=0.3 if tone_b else 0.0))
    got = count_frames({"a": a, "b": b})
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.sleep(seconds)
    dtls = a.getTransceivers()[0].sender.transport
    ice = dtls.transport
    pair = ice._connection._nominated.get(1)
    truth = {
        "dtls_role_a": dtls._role,
        "srtp_profile": None,
        "selected_a": {"local": f"{pair.local_candidate.type} {pair.local_candidate.host}:{pair.local_candidate.port}",
                       "remote": f"{pair.remote_candidate.type} {pair.remote_candidate.host}:"
                                 f"{pair.remote_candidate.port}"} if pair else None,
        "frames_received": got,
    }
    await a.close()
    await b.close()
    return truth


def start_coturn(directory: Path) -> subprocess.Popen:
    conf = directory / "turnserver.conf"
    conf.write_text(COTURN.format(port=TURN_PORT, user=USER, password=PASSWORD, realm=REALM, dir=directory))
    p = subprocess.Popen(["turnserver", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if f":{TURN_PORT} " in subprocess.run(["ss", "-Hlnu"], capture_output=True, text=True).stdout:
            return p
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("coturn did not start listening on 127.0.0.1")


DROP_RULE = "-A OUTPUT -p udp -m u32 --u32 0>>22&0x3C@8>>30=2 -m statistic --mode random --probability {p} -j DROP"


def in_lossy_namespace(args) -> None:
    """Run this module again inside a fresh namespace (lo, one veth address for host candidates) whose
    iptables drops RTP and RTCP at random; the rule's packet count goes into truth.json."""
    import sys

    from captures.generate.netns import Lab

    with Lab("keyed") as lab:
        ns = lab.ns("call")
        lab.veth(ns, "v0", ns, "v1")
        lab.batch(ns, ["addr add 198.18.0.2/24 dev v0", "link set v0 up", "link set v1 up"])
        lab.iptables(ns, [DROP_RULE.format(p=args.drop)])
        argv = [sys.executable, "-m", "captures.generate.keyed_call", str(args.out), "--seconds", str(args.seconds),
                "--tone-a", str(args.tone_a), "--tone-b", str(args.tone_b), "--drop-applied", str(args.drop)]
        argv += ["--relay"] if args.relay else []
        argv += ["--profile", args.profile] if args.profile else []
        p = lab.popen(ns, argv, "keyed-call")
        if p.wait(120) != 0:
            raise SystemExit(f"the call in {ns} failed (exit {p.returncode})")
        counters = lab.run(ns, "iptables", "-L", "OUTPUT", "-v", "-n", "-x")
    dropped = next(int(line.split()[0]) for line in counters.splitlines() if "statistic" in line)
    truth_path = args.out / "truth.json"
    truth = json.loads(truth_path.read_text())
    truth["rtp_dropped_by_iptables"] = dropped
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--tone-a", type=float, default=440.0, help="A's tone in Hz (0: silence)")
    ap.add_argument("--tone-b", type=float, default=0.0, help="B's tone in Hz (0: silence)")
    ap.add_argument("--relay", action="store_true", help="both peers relay-only through coturn on 127.0.0.1")
    ap.add_argument("--profile", help="the one SRTP protection profile offered (use_srtp name)")
    ap.add_argument("--drop", type=float, default=0.0, help="drop RTP/RTCP with this probability (own namespace)")
    ap.add_argument("--drop-applied", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drop:
        return in_lossy_namespace(args)
    args.out.mkdir(parents=True, exist_ok=True)
    _voice_opus()
    lines: list[str] = []
    log_keys(lines, args.profile)
    with tempfile.TemporaryDirectory(prefix="cfkeyed-") as tmp:
        turn = start_coturn(Path(tmp)) if args.relay else None
        pcap = args.out / "call.pcap"
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-w", str(pcap), "-U", "udp"], stderr=subprocess.PIPE)
        time.sleep(1.0)
        try:
            truth = asyncio.run(call(args.seconds, args.tone_a, args.tone_b, args.relay))
        finally:
            time.sleep(0.5)
            dump.terminate()
            _, err = dump.communicate()
            if turn is not None:
                turn.terminate()
                turn.wait()
    (args.out / "keylog.txt").write_text("".join(line + "\n" for line in lines))
    truth.update({
        "scenario": args.out.name, "rtp_drop_probability": args.drop_applied,
        "tone_a_hz": args.tone_a, "tone_b_hz": args.tone_b, "relay": args.relay,
        "profile_offered": args.profile, "keylog_lines": len(lines),
        "tcpdump": err.decode().strip().splitlines()[-3:],
        "description": "two aiortc peers on one host (loopback), Opus both ways, DTLS-SRTP with a key log; A sends "
        f"a {args.tone_a:g} Hz tone, B " + (f"a {args.tone_b:g} Hz tone" if args.tone_b else "digital silence")
        + ("; both relay-only through coturn" if args.relay else "")
        + (f"; iptables drops RTP/RTCP with probability {args.drop_applied:g}" if args.drop_applied else ""),
    })
    (args.out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(json.dumps(truth, indent=2))


if __name__ == "__main__":
    main()
