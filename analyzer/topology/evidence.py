"""What the capture itself can and cannot show, for the findings that rest on something missing.

A missing answer is only evidence when the capture was recording while the answer was due: a capture
that ends (or, in a file glued from several captures, jumps hours ahead) right after a request cannot
tell a refused request from one whose answer came a moment later. A capture that holds one direction
only (a one-way SPAN port, a capture filter on the source) has no answers at all: every "unanswered"
in it says nothing about the network.
"""

from __future__ import annotations

from typing import NamedTuple

GAP_NS = 30_000_000_000  # no packet at all for this long: the recording stopped (or the file jumps)


def _spans(a, file: int) -> list[tuple[int, int]]:
    return sorted((f.first_ts, f.last_ts) for t in a.flow_tables for f in t.flows.values() if f.file == file)


def recording_until(a, file: int, t_ns: int) -> int:
    """The last moment of the stretch of recording that holds `t_ns`: flows that start within GAP_NS of
    the stretch's end extend it. A flow is taken as active between its first and last packet."""
    end = t_ns
    for first, last in _spans(a, file):
        if first > end + GAP_NS:
            break
        end = max(end, last)
    return end


class OneDirection(NamedTuple):
    """The capture holds packets one way only: no flow has a packet back, and no host that sends is
    sent to (an ICMP error coming back to the sender is an answer: the capture sees both ways)."""

    senders: list[str]
    receivers: list[str]
    packets: int
    flows: int
    frames: list[int]  # the first packet of each flow (up to 20)


MIN_ONE_WAY_PACKETS = 20


def one_direction(a, file: int) -> OneDirection | None:
    """A file whose every flow carries packets in one direction only (and enough of them to matter)."""
    flows = [f for t in a.flow_tables for f in t.flows.values() if f.file == file]
    if not flows or any(f.packets_ab and f.packets_ba for f in flows):
        return None
    packets = sum(f.packets_ab + f.packets_ba for f in flows)
    senders = {(f.a if f.packets_ab else f.b)[0] for f in flows}
    receivers = {(f.b if f.packets_ab else f.a)[0] for f in flows}
    if packets < MIN_ONE_WAY_PACKETS or senders & receivers:
        return None
    frames = sorted(f.first_frame for f in flows)[:20]
    return OneDirection(sorted(senders), sorted(receivers), packets, len(flows), frames)


SUSTAINED_S = 3  # consecutive seconds at a call's packet rate
STEADY_RATIO = 2.0  # busiest to quietest of those seconds: a call's rate is even, a download's bursts are not
AUDIO_MAX_BYTES = 400  # mean tunnel packet: Opus/G.711 frames plus SRTP and tunnel overhead stay well below


def call_shape(seconds: dict[int, int], packets: int, nbytes: int, busy_rate: int) -> str | None:
    """How a tunnel's packets per second look like a call (steady, sustained, audio-sized), or None."""
    run: list[int] = []
    best: list[int] = []
    prev = None
    for sec in sorted(seconds):
        n = seconds[sec]
        if n >= busy_rate and prev is not None and sec == prev + 1 and run:
            run.append(n)
        elif n >= busy_rate:
            run = [n]
        else:
            run = []
        prev = sec
        if len(run) > len(best):
            best = list(run)
    mean = nbytes / packets if packets else 0
    if len(best) < SUSTAINED_S or max(best) > STEADY_RATIO * min(best) or not 0 < mean <= AUDIO_MAX_BYTES:
        return None
    return f"{len(best)} consecutive seconds of {min(best)}-{max(best)} packets/s, mean packet {mean:.0f} bytes"
