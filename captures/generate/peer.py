"""One WebRTC endpoint (aiortc + aioice) in one network namespace, driven over stdin/stdout JSON lines.

    ip netns exec NS python -m captures.generate.peer --name a --offer a-x --stun URL --turn JSON

Out (one JSON object a line): {"event": "offer"|"answer", "call", "sdp"}; {"event": "ice", "call", "state",
"truth"} once ICE completes or fails (the candidates and the nominated pair as the stack reports them,
taken right away: aioice clears them on close); {"event": "report", "call", "frames_received", "ice_state",
"dtls_state"} on "report"; {"event": "done", "call"} after "stop".
In: {"cmd": "answer"|"offer", "call", "sdp"}, {"cmd": "report"} and {"cmd": "stop"}.

Each connection sends a generated tone (Opus, or G.711 with --codec pcmu) and counts what it receives.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import random
import socket
import sys
import time

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from av import AudioFrame

RATE = 48_000
SAMPLES = 960  # 20 ms
OPUS_BITRATE = 24_000  # a voice call's rate (aiortc's default, 96 kbit/s stereo, makes captures 4 times larger)


def _voice_opus() -> None:
    from aiortc.codecs import opus

    init = opus.OpusEncoder.__init__

    def voice_init(self) -> None:
        init(self)
        self.codec.bit_rate = OPUS_BITRATE

    opus.OpusEncoder.__init__ = voice_init


class Tone(MediaStreamTrack):
    """A sine tone in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.freq, self.amplitude = freq, amplitude
        self.pts = 0
        self.t0: float | None = None

    async def recv(self) -> AudioFrame:
        if self.t0 is None:
            self.t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self.t0 + self.pts / RATE - time.monotonic()))
        t = (np.arange(SAMPLES) + self.pts) / RATE
        pcm = (self.amplitude * 32767 * np.sin(2 * math.pi * self.freq * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += SAMPLES
        return frame


def dns_query(resolver: str, name: str) -> None:
    """One DNS A query (documented step 1: the client resolves the service's names, Flow 2). No answer is
    awaited: the resolvers of the emulated networks answer with ICMP port unreachable."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    msg = random.randbytes(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(msg, (resolver, 53))


def emit(**msg) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def candidate(c) -> dict:
    d = {"type": c.type, "host": c.host, "port": c.port, "transport": c.transport.lower(), "priority": c.priority}
    if c.related_address:
        d["related_address"], d["related_port"] = c.related_address, c.related_port
    return d


def ice_connection(pc: RTCPeerConnection):
    return pc.getTransceivers()[0].sender.transport.transport._connection


def snapshot(pc: RTCPeerConnection) -> dict:
    """What the stack knows about its ICE session now (call it before close)."""
    conn = ice_connection(pc)
    pair = conn._nominated.get(1)
    turn = None
    if conn.turn_server:
        turn = {"server": list(conn.turn_server), "transport": "tls" if conn.turn_ssl else conn.turn_transport}
    codecs = pc.getTransceivers()[0]._codecs
    return {
        "codec": f"{codecs[0].mimeType}/{codecs[0].clockRate}" if codecs else None,
        "ufrag": conn.local_username,
        "remote_ufrag": conn.remote_username,
        "controlling": conn.ice_controlling,
        "turn": turn,
        "local_candidates": [candidate(c) for c in conn.local_candidates],
        "remote_candidates": [candidate(c) for c in conn.remote_candidates],
        "selected": {"local": candidate(pair.local_candidate), "remote": candidate(pair.remote_candidate)}
        if pair
        else None,
        "checklist": [
            {
                "local": f"{p.local_candidate.type} {p.local_addr[0]}:{p.local_addr[1]}",
                "remote": f"{p.remote_candidate.type} {p.remote_addr[0]}:{p.remote_addr[1]}",
                "state": p.state.name.lower(),
                "nominated": p.nominated,
            }
            for p in conn._check_list
        ],
    }


class Endpoint:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        servers = []
        if args.stun:
            servers.append(RTCIceServer(urls=args.stun))
        if args.turn:
            t = json.loads(args.turn)
            servers.append(RTCIceServer(urls=t["urls"], username=t["username"], credential=t["credential"]))
        self.config = RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy(args.policy))
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.frames: dict[str, int] = {}
        self.tasks: set[asyncio.Task] = set()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def new_pc(self, call: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(self.config)
        self.pcs[call] = pc
        self.frames[call] = 0
        reported = False

        @pc.on("track")
        def on_track(track) -> None:
            async def drain() -> None:
                while True:
                    try:
                        await track.recv()
                    except Exception:
                        return
                    self.frames[call] += 1

            self._spawn(drain())

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            nonlocal reported
            if pc.iceConnectionState in ("completed", "failed") and not reported:
                reported = True
                emit(event="ice", call=call, state=pc.iceConnectionState, truth=snapshot(pc))

        async def deadline() -> None:
            nonlocal reported
            await asyncio.sleep(self.args.connect_timeout)
            if not reported and pc.iceConnectionState not in ("closed",):
                reported = True
                emit(event="ice", call=call, state=f"timeout ({pc.iceConnectionState})", truth=snapshot(pc))

        self._spawn(deadline())
        return pc

    def prefer_codec(self, pc: RTCPeerConnection) -> None:
        if self.args.codec:
            wanted = f"audio/{self.args.codec.upper()}"
            codecs = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == wanted]
            for t in pc.getTransceivers():
                t.setCodecPreferences(codecs)

    async def offer(self, call: str) -> None:
        pc = self.new_pc(call)
        pc.addTrack(Tone(self.args.freq))
        self.prefer_codec(pc)
        await pc.setLocalDescription(await pc.createOffer())
        emit(event="offer", call=call, sdp=pc.localDescription.sdp)

    async def answer(self, call: str, sdp: str) -> None:
        pc = self.new_pc(call)
        pc.addTrack(Tone(self.args.freq))
        self.prefer_codec(pc)  # before the offer is applied: aiortc fixes the codecs there
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        emit(event="answer", call=call, sdp=pc.localDescription.sdp)

    def report(self) -> None:
        """The state of every connection while all of them still run."""
        for call, pc in self.pcs.items():
            dtls = pc.getTransceivers()[0].sender.transport
            emit(
                event="report",
                call=call,
                frames_received=self.frames[call],
                ice_state=pc.iceConnectionState,
                dtls_state=dtls.state if dtls else None,
            )

    async def stop(self) -> None:
        for call, pc in self.pcs.items():
            await pc.close()
            emit(event="done", call=call)


async def main_async(args: argparse.Namespace) -> None:
    if args.check_retries is not None:
        import aioice.stun

        aioice.stun.RETRY_MAX = args.check_retries
    _voice_opus()
    ep = Endpoint(args)
    if args.dns:
        dns_query(args.dns, "relay.cloud.example")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    for call in args.offer:
        ep._spawn(ep.offer(call))
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg["cmd"] == "offer":
            ep._spawn(ep.answer(msg["call"], msg["sdp"]))
        elif msg["cmd"] == "answer":
            await ep.pcs[msg["call"]].setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
        elif msg["cmd"] == "report":
            ep.report()
        elif msg["cmd"] == "stop":
            break
    await ep.stop()
    if args.dns:
        dns_query(args.dns, "telemetry.cloud.example")  # the client reports the call (Flow 4 after a lookup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--offer", action="append", default=[], help="call id to offer (repeatable)")
    ap.add_argument("--stun")
    ap.add_argument("--turn", help="RTCIceServer as JSON: urls, username, credential")
    ap.add_argument("--policy", choices=("all", "relay"), default="all")
    ap.add_argument("--codec", help="only this audio codec (e.g. PCMU)")
    ap.add_argument("--dns", help="resolver to send the start/end-of-call lookups to")
    ap.add_argument("--freq", type=float, default=440.0)
    ap.add_argument("--connect-timeout", type=float, default=15.0)
    ap.add_argument("--check-retries", type=int, help="aioice STUN retransmissions (default 6: 63 s to fail)")
    try:
        asyncio.run(main_async(ap.parse_args()))
    except Exception as e:  # tell the orchestrator rather than die silently
        emit(event="error", message=f"{type(e).__name__}: {e}")
        raise


if __name__ == "__main__":
    main()
