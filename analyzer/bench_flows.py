"""Benchmark: `python -m analyzer.bench flows [--flows 50000 200000] [--noise]`.

A perimeter capture: one real call (a shipped scenario's packets) beside N distinct 5-tuples, each
holding one STUN Binding request (with `--noise`, a third of them a DNS query and a third a TCP SYN
instead). Each N is analysed in its own process, which prints wall, CPU and peak RSS after each step
(read, calls, findings, console verdict, to_json, to_html), so the growth with N is seen step by step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CALL = Path(__file__).resolve().parent.parent / "captures" / "external-via-relay"
STEPS = ("read", "calls", "findings", "verdict", "to_json", "to_html")


def _records(data: bytes):
    """(ts_us, frame bytes) of a little-endian microsecond pcap."""
    pos, out = 24, []
    while pos + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        out.append((sec * 1_000_000 + usec, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return out


def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def _ipv4(src: int, dst: int, proto: int, payload: bytes) -> bytes:
    h = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + payload


def _bare_binding(txid: bytes) -> bytes:
    """A Binding request as a NAT-discovery client or a scanner sends it: no USERNAME, so no ICE
    session; FINGERPRINT only."""
    import zlib

    head = struct.pack("!HHI", 0x0001, 8, 0x2112A442) + txid
    return head + struct.pack("!HHI", 0x8028, 4, zlib.crc32(head) ^ 0x5354554E)


def noise_frame(i: int, kind: str) -> bytes:
    """Flow i's one packet: a customer host (10.1.128.0/17) to a distinct internet address."""
    src = 0x0A018000 + (i % 16384)
    dst = 0xC6120000 + i  # 198.18.0.0/15, the benchmarking range: one address per flow
    sport = 20000 + (i // 16384) % 40000
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    if kind == "tcp":
        tcp = struct.pack("!HHIIBBHHH", sport, 443, i, 0, 0x50, 0x02, 64240, 0, 0)
        return eth + _ipv4(src, dst, 6, tcp)
    if kind == "dns":
        q = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00" + b"\x00\x01\x00\x01"
        body, dport = q, 53
    else:
        body, dport = _bare_binding(i.to_bytes(12, "big")), 3478
    udp = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    return eth + _ipv4(src, dst, 17, udp)


def write_flows_capture(path: str, flows: int, noise: bool = False, call: Path = CALL) -> dict:
    """The call's client-side capture with `flows` one-packet flows spread over its time span."""
    recs = _records((call / "client-a.pcap").read_bytes())
    t0, t1 = recs[0][0], recs[-1][0]
    kinds = ("stun", "dns", "tcp") if noise else ("stun",)
    extra = [(t0 + (t1 - t0) * i // max(flows, 1), noise_frame(i, kinds[i % len(kinds)])) for i in range(flows)]
    order = sorted(range(len(recs) + flows), key=lambda i: (recs[i] if i < len(recs) else extra[i - len(recs)])[0])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in order:
            ts, fr = recs[i] if i < len(recs) else extra[i - len(recs)]
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(fr), len(fr)) + fr)
    # the call's frame k (1-based) is frame call_frames[k - 1] of the new capture
    call_frames = [pos + 1 for pos, i in enumerate(order) if i < len(recs)]
    return {"packets": len(order), "call_packets": len(recs), "flows": flows, "call_frames": call_frames}


def _mark() -> tuple[float, float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def run_steps(path: str, profile: str, html: str) -> list[dict]:
    """Every step in this process, each measured as wall and CPU seconds and the peak RSS after it."""
    from .api import analyze
    from .report.console import console, print_verdict

    rows = []
    last = _mark()

    def done(step: str, **extra) -> None:
        nonlocal last
        now = _mark()
        rows.append(
            {"step": step, "wall_s": now[0] - last[0], "cpu_s": now[1] - last[1], "peak_rss_mb": now[2], **extra}
        )
        last = _mark()

    a = analyze(path, network=profile, progress=None)
    done("read")
    n_calls = len(a.calls)
    done("calls", rows=n_calls, verdict=[f"{r.call}: {r.topology}" for r in a.calls.itertuples()])
    done("findings", rows=len(a.findings), codes=sorted(set(a.findings.code)))
    with open(os.devnull, "w") as null:
        print_verdict(a, console(null))
    done("verdict", flows=len(a.flows))
    js = a.to_json()
    done("to_json", mb=len(js) / 1e6)
    del js
    a.to_html(html)
    done("to_html", mb=os.path.getsize(html) / 1e6)
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m analyzer.bench flows")
    ap.add_argument("--flows", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--noise", action="store_true", help="a third STUN, a third DNS, a third TCP SYN")
    ap.add_argument("--keep", help="keep the generated captures in this folder")
    args = ap.parse_args(argv)
    tmp = args.keep or tempfile.mkdtemp(prefix="callflow-bench-flows-")
    os.makedirs(tmp, exist_ok=True)
    try:
        for n in args.flows:
            path = os.path.join(tmp, f"flows-{n}{'-noise' if args.noise else ''}.pcap")
            t = time.perf_counter()
            info = write_flows_capture(path, n, args.noise)
            del info["call_frames"]
            print(
                f"wrote {path}: {info['packets']:,} packets ({n:,} one-packet flows) in {time.perf_counter() - t:.1f} s"
            )
            code = (
                "import json, sys; from analyzer.bench_flows import run_steps; "
                f"print(json.dumps(run_steps({path!r}, {str(CALL / 'network.toml')!r}, {path + '.html'!r})))"
            )
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:])
                return 1
            rows = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{'step':<10}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}  detail")
            for r in rows:
                detail = {k: v for k, v in r.items() if k not in ("step", "wall_s", "cpu_s", "peak_rss_mb")}
                print(
                    f"{r['step']:<10}{r['wall_s']:>9.2f}{r['cpu_s']:>9.2f}{r['peak_rss_mb']:>13.0f}  "
                    f"{json.dumps(detail)[:100]}"
                )
            tot_w = sum(r["wall_s"] for r in rows)
            tot_c = sum(r["cpu_s"] for r in rows)
            print(
                f"{'total':<10}{tot_w:>9.2f}{tot_c:>9.2f}{rows[-1]['peak_rss_mb']:>13.0f}  "
                f"({time.perf_counter() - t:.1f} s with start-up; {tot_c / n * 1e6:.1f} us CPU per flow)"
            )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
