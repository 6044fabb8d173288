"""Issue 16's impaired real calls (captures/impaired/*: aiortc peers under a real kernel impairment, see
captures/generate/impair.py): each raises exactly its expected findings, and the measured loss, delay and
jitter agree with the impairment's settings and with tshark's RTP stream analysis of the same packets.

Tolerances:
- loss: X's packets are dropped independently with p = 0.15, so the count lost of n sent is binomial;
  the measured rate is within 3 standard deviations, sqrt(p (1 - p) / n) (n = 500: 4.8 points).
- round trip: each direction adds 350 ms plus a uniform +-40 ms, so a round trip through both is
  700 ms +-80 ms at most, plus the sub-millisecond stack time.
- jitter: RFC 3550 A.8 over packets sent every 20 ms with independent uniform +-40 ms delays (reordered
  as they arrive) has the mean the simulation below gives; the measured mean is within 4 standard
  deviations of the simulated means of calls this long, widened by A's undelayed stream's own jitter
  (the stack's send timing, present in both).
- outage: the gap is the outage plus up to one 20-ms packet interval at each end (and 5 ms scheduling).
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from analyzer import analyze
from tests.conftest import CAPTURES, need_tshark, tshark_fields

IMPAIRED = CAPTURES / "impaired"
FOLDERS = sorted(p.parent for p in IMPAIRED.glob("*/truth.json"))
HEUR = ["-o", "rtp.heuristic_rtp:TRUE"]
X_SIDE = "203.0.113.2"  # X's home NAT: the impaired hop's far end, as the customer-side captures see it


def truth(folder):
    return json.loads((folder / "truth.json").read_text())


def run(paths, folder):
    return analyze(paths, network=folder / truth(folder)["profile"])


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_all_points_and_each_point_raise_exactly_the_expected_findings(folder):
    t = truth(folder)
    for paths in [sorted(folder.glob("*.pcap")), *sorted(folder.glob("*.pcap"))]:
        a = run(paths, folder)
        assert sorted(set(a.calls.topology)) == [t["topology"]], paths
        assert sorted(set(a.findings.code)) == sorted(t["findings"]), paths
        assert all(len(f) for f in a.findings.frames if f is not None) or "one-way-media" in set(a.findings.code)


def test_truth_gives_the_impairment():
    for folder in FOLDERS:
        (imp,) = truth(folder)["impairment"]
        assert imp["host"] == "x" and imp["applied_with"]
    loss = truth(IMPAIRED / "loss-uplink")["impairment"][0]
    assert (loss["loss_pct"], loss["netem"]) == (15.0, "tc qdisc add dev eth0 root netem loss 15%")
    delay = truth(IMPAIRED / "delay-jitter")["impairment"][0]
    assert (delay["delay_ms"], delay["jitter_ms"], delay["both"]) == (350.0, 40.0, True)
    assert truth(IMPAIRED / "outage")["impairment"][0]["outage"] == [4.0, 2.0]


def tshark_streams(path) -> dict[int, tuple[int, int]]:
    out = subprocess.run(
        [need_tshark(), "-n", "-q", "-r", str(path), *HEUR, "-z", "rtp,streams"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        int(tok[6], 16): (int(tok[8]), int(tok[9]))
        for tok in (ln.split() for ln in out.splitlines())
        if len(tok) > 9 and tok[6].startswith("0x")
    }


def x_stream(a):
    s = a.streams
    return s[s.src == X_SIDE].iloc[0], s[s.dst == X_SIDE].iloc[0]


@pytest.mark.parametrize("point", ["client-a.pcap", "nat-outside.pcap"])
def test_loss_on_the_uplink_is_measured_as_set(point):
    path = IMPAIRED / "loss-uplink" / point
    a = run(path, IMPAIRED / "loss-uplink")
    xs, a_s = x_stream(a)
    p, n = 0.15, int(xs.expected)
    assert abs(xs.lost / n - p) <= 3 * np.sqrt(p * (1 - p) / n)
    assert a_s.lost == 0 and xs.seq_wild == 0 and xs.duplicates == 0
    ref = tshark_streams(path)
    assert ref[int(xs.ssrc)] == (xs.packets, xs.lost) and ref[int(a_s.ssrc)] == (a_s.packets, 0)
    f = a.findings[a.findings.code == "poor-media"].iloc[0]
    assert f"lost before the capture point (between the sender {X_SIDE}" in f.evidence


def a8(times_s: np.ndarray, rtp_ts: np.ndarray, rate: int) -> np.ndarray:
    """RFC 3550 A.8 jitter (ms) after each packet, in arrival order."""
    j, out = 0.0, []
    for i in range(1, times_s.size):
        d = (times_s[i] - times_s[i - 1]) * rate - (((int(rtp_ts[i]) - int(rtp_ts[i - 1]) + 2**31) % 2**32) - 2**31)
        j += (abs(d) - j) / 16
        out.append(j / rate * 1000)
    return np.array(out)


def simulated_jitter(n: int, runs: int = 200, delay=350.0, jitter=40.0, step=20.0) -> tuple[float, float]:
    """Mean and standard deviation over `runs` calls of the mean A.8 jitter (ms) of n packets."""
    rng = np.random.default_rng(0)
    means = []
    for _ in range(runs):
        send = np.arange(n) * step
        arrive = send + delay + rng.uniform(-jitter, jitter, n)
        order = np.argsort(arrive, kind="stable")
        jd = np.abs(np.diff(arrive[order]) - np.diff(send[order]))
        j, acc = 0.0, 0.0
        for x in jd:
            j += (x - j) / 16
            acc += j
        means.append(acc / jd.size)
    return float(np.mean(means)), float(np.std(means))


@pytest.mark.parametrize("point", ["client-a.pcap", "nat-outside.pcap"])
def test_delay_and_jitter_are_measured_as_set(point):
    folder = IMPAIRED / "delay-jitter"
    path, t = folder / point, truth(folder)
    on_ns = t["impairment"][0]["on_ns"]
    a = run(path, folder)
    xs, a_s = x_stream(a)
    # round trips of the consent checks sent after the delay was switched on: 700 +-80 ms
    rt = a.round_trips
    mine = rt[(rt.source == "stun") & (rt.dst == X_SIDE) & (rt.ts_ns > on_ns)]
    assert len(mine) >= 2 and mine.rtt_ms.between(620, 781).all()
    assert (a.findings.code == "high-rtt").sum() == 1
    # the same packets through tshark: count, loss, and A.8 jitter from its arrival times and timestamps
    ref = tshark_streams(path)
    assert ref[int(xs.ssrc)] == (xs.packets, 0) and xs.lost == 0 and xs.out_of_order > 50  # reordered
    rows = tshark_fields(
        path, ["frame.time_epoch", "rtp.timestamp"], display_filter=f"rtp.ssrc == {int(xs.ssrc)}", extra=HEUR
    )
    times = np.array([float(r[0]) for r in rows])
    ts = np.array([int(r[1]) for r in rows])
    j = a8(times, ts, int(xs.clock_rate))
    assert xs.jitter_ms_max == pytest.approx(j.max(), rel=0.01)
    assert xs.jitter_ms_mean == pytest.approx((j.sum()) / len(rows), rel=0.01)
    # once the delay is on (1 s after, so the filter has forgotten the switch), against the model
    late = times > on_ns / 1e9 + 1.0
    steady = j[late[1:]].mean()
    mu, sd = simulated_jitter(int(late.sum()))
    assert abs(steady - mu) <= 4 * sd + a_s.jitter_ms_mean, (steady, mu, sd)


@pytest.mark.parametrize("point", ["client-a.pcap", "client-x.pcap"])
def test_outage_is_measured_as_set(point):
    folder = IMPAIRED / "outage"
    path, t = folder / point, truth(folder)
    imp = t["impairment"][0]
    (on0, on1), (off0, off1) = imp["outage_on_ns"], imp["outage_off_ns"]  # the rules took effect in these
    a = run(path, folder)
    s = a.streams
    xs = s[s.packets < s.expected].iloc[0]  # X's stream (the only one with loss)
    (gap,) = [g for g in xs.gaps if g["duration_ms"] > 1000]
    assert (off0 - on1) / 1e6 <= gap["duration_ms"] <= (off1 - on0) / 1e6 + 45
    assert on0 - 25_000_000 <= gap["start_ts_ns"] <= on1 + 1_000_000
    assert (off0 - on1) / 1e6 / 20 - 1 <= xs.lost <= (off1 - on0) / 1e6 / 20 + 2  # one packet per 20 ms
    assert tshark_streams(path)[int(xs.ssrc)] == (xs.packets, xs.lost)
    f = a.findings[a.findings.code == "media-gap"].iloc[0]
    assert f.frames == [gap["frame_before"], gap["frame_after"]]
