"""A userspace stand-in for netem's delay on kernels built without sch_netem: an NFQUEUE listener that
accepts each queued packet after `delay` ms plus a uniform random +-`jitter` ms (as netem does without a
distribution table, and reordering packets as netem does), and drops `loss` % of them.

    ip netns exec NS python -m captures.generate.nfqdelay --queue 0 --delay 350 --jitter 40 [--loss 0] [--seed 1]

with iptables sending packets to the queue (`-j NFQUEUE --queue-num 0`). It speaks the nfnetlink_queue
protocol directly over a netlink socket (no library): bind the queue, copy only packet metadata, and
issue verdicts out of order by packet id when each packet's time comes. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_PF_BIND = 1, 3
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NF_DROP, NF_ACCEPT = 0, 1
AF_INET = 2


def _attr(kind: int, value: bytes) -> bytes:
    n = 4 + len(value)
    return struct.pack("=HH", n, kind) + value + b"\0" * (-n % 4)


def _msg(msg_type: int, queue: int, attrs: bytes, family: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, NLM_F_REQUEST, 0, 0) + body


def _config(queue: int) -> list[bytes]:
    cmd = lambda c, pf: _attr(NFQA_CFG_CMD, struct.pack("!BxH", c, pf))  # noqa: E731
    return [
        _msg(NFQNL_MSG_CONFIG, 0, cmd(NFQNL_CFG_CMD_PF_BIND, AF_INET)),
        _msg(NFQNL_MSG_CONFIG, queue, cmd(NFQNL_CFG_CMD_BIND, AF_INET)),
        _msg(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))),
    ]


def _verdict(queue: int, packet_id: int, verdict: int) -> bytes:
    return _msg(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id)))


def _packet_ids(data: bytes) -> list[int]:
    """The packet ids of the NFQNL_MSG_PACKET messages in one netlink read."""
    out, i = [], 0
    while i + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, i)
        if length < 16:
            break
        if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            j = i + 20
            while j + 4 <= i + length:
                alen, akind = struct.unpack_from("=HH", data, j)
                if alen < 4:
                    break
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    out.append(struct.unpack_from("!I", data, j + 4)[0])
                j += (alen + 3) & ~3
        i += (length + 3) & ~3
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m captures.generate.nfqdelay")
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0, help="ms")
    ap.add_argument("--jitter", type=float, default=0.0, help="ms, uniform +-")
    ap.add_argument("--loss", type=float, default=0.0, help="percent")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    rnd = random.Random(args.seed)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    for m in _config(args.queue):
        sock.send(m)
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    due: list[tuple[float, int]] = []
    while running:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else 0.2
        ready, _, _ = select.select([sock], [], [], min(timeout, 0.2))
        now = time.monotonic()
        if ready:
            try:
                data = sock.recv(1 << 16)
            except InterruptedError:
                continue
            for pid in _packet_ids(data):
                if rnd.random() * 100.0 < args.loss:
                    sock.send(_verdict(args.queue, pid, NF_DROP))
                    continue
                d = args.delay + (rnd.uniform(-args.jitter, args.jitter) if args.jitter else 0.0)
                heapq.heappush(due, (now + max(d, 0.0) / 1000.0, pid))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, pid = heapq.heappop(due)
            sock.send(_verdict(args.queue, pid, NF_ACCEPT))
    for _, pid in due:  # let the rest through on the way out
        sock.send(_verdict(args.queue, pid, NF_ACCEPT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
