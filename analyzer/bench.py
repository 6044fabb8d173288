"""Benchmark: `python -m analyzer.bench capture [--packets N] [--out FILE] [--no-tshark]`
(and `python -m analyzer.bench fleet [--captures N]`: analyzer/fleet/bench.py;
`python -m analyzer.bench flows [--flows N ...] [--noise]`: analyzer/bench_flows.py).

Writes a synthetic call capture (Ethernet/IPv4/UDP: several RTP streams, 1% STUN checks and a DTLS
handshake) and prints wall time, CPU time, peak RSS and packets/s for `callflow summary` beside
`tshark -q -o rtp.heuristic_rtp:TRUE -z rtp,streams` on the same file, measured in the same run.
Each tool runs in its own process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

STUN_COOKIE = 0x2112A442


def _stun_binding(txid: bytes, response: bool, mapped: tuple[int, int]) -> bytes:
    """A Binding request (USERNAME, PRIORITY, ICE-CONTROLLING, FINGERPRINT) or success response."""
    attrs = b""
    if response:
        ip, port = mapped
        x = struct.pack("!BBHI", 0, 1, port ^ (STUN_COOKIE >> 16), ip ^ STUN_COOKIE)
        attrs += struct.pack("!HH", 0x0020, len(x)) + x
    else:
        user = b"wxyz:abcd"  # receiver:sender
        attrs += struct.pack("!HH", 0x0006, len(user)) + user + b"\0" * (-len(user) % 4)
        attrs += struct.pack("!HHI", 0x0024, 4, 0x6E7F1EFF)
        attrs += struct.pack("!HHQ", 0x802A, 8, 0x1122334455667788)
    mtype = 0x0101 if response else 0x0001
    head = struct.pack("!HHI", mtype, len(attrs) + 8, STUN_COOKIE) + txid
    crc = zlib.crc32(head + attrs) ^ 0x5354554E
    return head + attrs + struct.pack("!HHI", 0x8028, 4, crc)


def write_capture(path: str, packets: int, seed: int = 7) -> dict:
    """Write the benchmark capture with numpy; returns what it holds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # streams: (ssrc, pt, payload bytes, packets per second, src, dst, sport, dport)
    a, b = 0x0A010005, 0x34710409  # 10.1.0.5 -> 52.113.4.9 (a cloud relay)
    streams = [
        (0x11111111, 111, 120, 50, a, b, 50010, 3479),
        (0x22222222, 111, 120, 50, b, a, 3479, 50010),
        (0x33333333, 96, 1000, 250, a, b, 50010, 3479),  # bundled, as WebRTC does: one 5-tuple, SSRCs apart
        (0x44444444, 96, 1000, 250, b, a, 3479, 50010),
    ]
    weights = np.array([s[3] for s in streams], dtype=np.float64)
    kind = rng.choice(len(streams), size=packets, p=weights / weights.sum())
    control = rng.random(packets) < 0.01  # STUN checks and responses
    dtls_at = np.arange(10, 16)  # a handshake at the start
    seq = np.zeros(packets, dtype=np.int64)
    for k in range(len(streams)):
        m = kind == k
        seq[m] = np.arange(int(m.sum()))
    plen = np.array([s[2] for s in streams])[kind] + 12
    stun_req = _stun_binding(b"\x01" * 12, False, (0, 0))
    stun_resp = _stun_binding(b"\x01" * 12, True, (a, 50010))  # sizes only: every message has its own id
    dtls = bytes([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4]) + bytes([1, 0, 0, 0])
    control[dtls_at] = False
    ctl = np.flatnonzero(control)
    plen[ctl[0::2]] = len(stun_req)
    plen[ctl[1::2]] = len(stun_resp)
    plen[dtls_at] = len(dtls)
    hdr_len = 14 + 20 + 8
    rec = 16 + hdr_len + plen
    offs = np.concatenate([[0], np.cumsum(rec)[:-1]]) + 24
    total = int(offs[-1] + rec[-1])
    out = np.zeros(total, dtype=np.uint8)
    out[:24] = np.frombuffer(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), dtype=np.uint8)
    t = 1_700_000_000_000_000 + np.cumsum(rng.integers(100, 2400, packets))  # us

    def put32le(pos: np.ndarray, val: np.ndarray) -> None:
        v = val.astype("<u4").view(np.uint8).reshape(-1, 4)
        for i in range(4):
            out[pos + i] = v[:, i]

    def put16be(pos: np.ndarray, val: np.ndarray) -> None:
        out[pos] = (val >> 8) & 0xFF
        out[pos + 1] = val & 0xFF

    def put32be(pos: np.ndarray, val: np.ndarray) -> None:
        for i in range(4):
            out[pos + i] = (val >> (24 - 8 * i)) & 0xFF

    put32le(offs, t // 1_000_000)
    put32le(offs + 4, t % 1_000_000)
    put32le(offs + 8, hdr_len + plen)
    put32le(offs + 12, hdr_len + plen)
    e = offs + 16
    out[e + 12] = 0x08
    ip = e + 14
    out[ip] = 0x45
    out[ip + 1] = 0xB8  # DSCP 46
    put16be(ip + 2, 28 + plen)
    out[ip + 8] = 64
    out[ip + 9] = 17
    src = np.array([s[4] for s in streams], dtype=np.int64)[kind]
    dst = np.array([s[5] for s in streams], dtype=np.int64)[kind]
    sp = np.array([s[6] for s in streams], dtype=np.int64)[kind]
    dp = np.array([s[7] for s in streams], dtype=np.int64)[kind]
    # checks go from the client to the relay on the audio path, answers come back
    src[ctl[0::2]], dst[ctl[0::2]], sp[ctl[0::2]], dp[ctl[0::2]] = a, b, 50010, 3479
    src[ctl[1::2]], dst[ctl[1::2]], sp[ctl[1::2]], dp[ctl[1::2]] = b, a, 3479, 50010
    put32be(ip + 12, src)
    put32be(ip + 16, dst)
    u = ip + 20
    put16be(u, sp)
    put16be(u + 2, dp)
    put16be(u + 4, 8 + plen)
    pl = u + 8
    rtp = ~control
    rtp[dtls_at] = False
    r = pl[rtp]
    out[r] = 0x80
    out[r + 1] = np.array([s[1] for s in streams], dtype=np.int64)[kind[rtp]]
    put16be(r + 2, seq[rtp] & 0xFFFF)
    clock = np.where(np.array([s[1] for s in streams])[kind[rtp]] == 111, 960, 3000)
    put32be(r + 4, (seq[rtp] * clock) & 0xFFFFFFFF)
    put32be(r + 8, np.array([s[0] for s in streams], dtype=np.int64)[kind[rtp]])
    txids = rng.integers(0, 256, size=(ctl.size // 2 + 1, 12), dtype=np.uint8)
    for j, i in enumerate(ctl.tolist()):  # each check with its own transaction, answered by the next
        m = _stun_binding(txids[j // 2].tobytes(), bool(j % 2), (a, 50010))
        out[pl[i] : pl[i] + len(m)] = np.frombuffer(m, dtype=np.uint8)
    for i in dtls_at.tolist():
        out[pl[i] : pl[i] + len(dtls)] = np.frombuffer(dtls, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(out.tobytes())
    return {"packets": packets, "bytes": total, "stun": int(ctl.size), "dtls": int(dtls_at.size)}


def _measure(cmd: list[str]) -> dict:
    """Run cmd in a child and read that child's own wall, CPU and peak RSS (os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _pid, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        out.seek(0)
        return {
            "stdout": out.read(1 << 20).decode("utf-8", "replace"),
            "wall_s": wall,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_mb": ru.ru_maxrss / 1024,
            "rc": proc.returncode,
            "stderr": err.read()[-500:].decode("utf-8", "replace"),
        }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["flows"]:
        from .bench_flows import main as flows_main

        return flows_main(argv[1:])
    if argv[:1] == ["fleet"]:
        from .fleet.bench import main as fleet_main

        return fleet_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m analyzer.bench")
    ap.add_argument("what", choices=["capture", "fleet", "flows"], help="what to benchmark")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--out", help="keep the generated capture here")
    ap.add_argument("--file", help="benchmark this existing capture instead of generating one")
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="callflow-bench-")
    try:
        path = args.file or args.out or os.path.join(tmp, "bench.pcap")
        if not args.file:
            t0 = time.perf_counter()
            # in a child, so this process stays small: children inherit the parent's peak RSS at fork
            code = (
                "import json; from analyzer.bench import write_capture; "
                f"print(json.dumps(write_capture({path!r}, {args.packets})))"
            )
            info = json.loads(
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
            )
            print(
                f"wrote {path}: {info['packets']:,} packets, {info['bytes'] / 1e6:.1f} MB "
                f"({info['stun']} STUN, {info['dtls']} DTLS) in {time.perf_counter() - t0:.1f} s"
            )
        # as installed packages are: compiled once (a checkout under PYTHONDONTWRITEBYTECODE would
        # otherwise compile its modules again in every measured run)
        compileall.compile_dir(os.path.dirname(os.path.abspath(__file__)), quiet=1)
        # every tool reads the file from the page cache: the first one measured would otherwise pay the disk
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
        rows = []
        ours = _measure([sys.executable, "-m", "analyzer.cli", "summary", "--json", path])
        if ours["rc"] != 0:
            print("callflow summary failed:", ours["stderr"])
            return 1
        n = json.loads(ours["stdout"])["packets"]
        rows.append(("callflow summary", ours))
        full = _measure([sys.executable, "-m", "analyzer.cli", "analyze", "--no-progress", path])
        if full["rc"] != 0:
            print("callflow analyze failed:", full["stderr"])
            return 1
        rows.append(("callflow analyze", full))
        # the least any Python run of this design costs: the interpreter with numpy and pandas loaded
        floor = _measure([sys.executable, "-c", "import numpy, pandas"])
        tshark = shutil.which("tshark")
        ts = None
        if tshark and not args.no_tshark:
            ts = _measure([tshark, "-n", "-q", "-r", path, "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams"])
            rows.append(("tshark -z rtp,streams", ts))
        print(f"{'tool':<24}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'packets/s':>14}")
        for name, m in rows:
            print(f"{name:<24}{m['wall_s']:>9.2f}{m['cpu_s']:>9.2f}{m['peak_rss_mb']:>13.0f}{n / m['wall_s']:>14,.0f}")
        line = f"floor: starting Python and importing numpy and pandas takes {floor['wall_s']:.2f} s wall"
        if ts is not None:
            line += f"; 10x tshark would mean {ts['wall_s'] / 10:.2f} s for the whole analysis"
        print(line)
        for name, m in rows[:2]:
            line = f"{name}: {m['cpu_s'] / n * 1e6:.2f} s CPU per million packets"
            if ts is not None:
                line += (f", {ts['wall_s'] / m['wall_s']:.1f}x faster than tshark (wall), "
                         f"{ts['cpu_s'] / m['cpu_s']:.1f}x (CPU)")
            print(line)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
