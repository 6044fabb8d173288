"""A short real WebRTC call between two aiortc peers on this machine, captured with tcpdump.

Both peers run in one process and exchange offer/answer in memory; media is a generated tone each way
(440 Hz and 660 Hz, Opus). The capture is taken on the 'any' pseudo-interface,
so it is Linux cooked (SLL2) and holds the STUN checks, the DTLS-SRTP handshake and the SRTP media.

    python -m captures.generate.loopback_call captures/loopback-call/call.pcap --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from pathlib import Path

from aiortc import RTCPeerConnection

from captures.generate.peer import Tone


def count_frames(pcs: dict[str, RTCPeerConnection]) -> dict[str, int]:
    """Frames each peer receives, counted as they arrive (the dict fills while the call runs)."""
    got = dict.fromkeys(pcs, 0)
    drains: set[asyncio.Task] = set()

    def sink(pc: RTCPeerConnection, name: str) -> None:
        @pc.on("track")
        def _on_track(track) -> None:
            async def drain() -> None:
                while True:
                    try:
                        await track.recv()
                    except Exception:
                        return
                    got[name] += 1

            drains.add(asyncio.ensure_future(drain()))

    for name, pc in pcs.items():
        sink(pc, name)
    return got


async def call(seconds: float) -> dict:
    a, b = RTCPeerConnection(), RTCPeerConnection()
    a.addTrack(Tone(440))
    b.addTrack(Tone(660))
    got = count_frames({"a": a, "b": b})
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.sleep(seconds)
    pair = a.sctp  # noqa: F841  (no data channel: kept None)
    ice = a.getTransceivers()[0].sender.transport.transport
    sel = ice.iceGatherer.getLocalCandidates()
    truth = {
        "offer_ufrag": a.localDescription.sdp.split("a=ice-ufrag:")[1].split()[0],
        "answer_ufrag": b.localDescription.sdp.split("a=ice-ufrag:")[1].split()[0],
        "offer_fingerprint": a.localDescription.sdp.split("a=fingerprint:sha-256 ")[1].split()[0],
        "answer_fingerprint": b.localDescription.sdp.split("a=fingerprint:sha-256 ")[1].split()[0],
        "local_candidates_a": [f"{c.type} {c.ip}:{c.port}" for c in sel],
        "frames_received": got,
    }
    await a.close()
    await b.close()
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dump = subprocess.Popen(["tcpdump", "-i", "any", "-w", str(args.out), "-U", "udp"], stderr=subprocess.PIPE)
    time.sleep(1.0)
    truth = asyncio.run(call(args.seconds))
    time.sleep(0.5)
    dump.terminate()
    _, err = dump.communicate()
    truth["tcpdump"] = err.decode().strip().splitlines()[-3:]
    truth["scenario"] = "loopback-call"
    truth["description"] = "two aiortc peers on one host, host candidates only, Opus both ways, DTLS-SRTP"
    (args.out.parent / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(json.dumps(truth, indent=2))


if __name__ == "__main__":
    main()
