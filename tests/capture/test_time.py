"""Timestamps that cannot be trusted: unusable pcapng options, a bad interface id, one frame decades off,
and a long silence inside one file. The packets are read; the capture's span is the real one."""

from __future__ import annotations

import warnings

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from analyzer.capture import CaptureFile, iter_batches, summarize
from analyzer.capture.decode import ST_BAD_TIME
from tests.capture.writers import epb, idb, pcap_bytes, shb
from tests.conftest import tshark_fields

T0 = 1_700_000_000_000_000_000  # ns, 2023-11-14
STEP = 20_000_000
UDP4 = IP(src="10.1.0.11", dst="52.112.1.2") / UDP(sport=50000, dport=3478)
ETH = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / UDP4 / Raw(b"\x00\x01" + b"x" * 30))


def _pcapng(tmp_path, name: str, *, tsresol=None, tsoffset=None, units=None, n=3):
    units = units or [T0 // 1000 + k * 1000 for k in range(n)]
    data = shb() + idb(1, tsresol=tsresol, tsoffset=tsoffset) + b"".join(epb(0, u, ETH) for u in units)
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    "tsresol,tsoffset,kind",
    [
        (0x7F, None, "bad timestamp option"),  # 10^-127 s: OverflowError before
        (0xFF, None, "bad timestamp option"),  # 2^-127 s: numpy warnings before
        (None, -(2**62), "bad timestamp option"),  # offset * 1e9 past int64: OverflowError before
    ],
)
def test_unusable_timestamp_options_are_counted_damage_and_packets_are_read(tmp_path, capfd, tsresol, tsoffset, kind):
    p = _pcapng(tmp_path, "o.pcapng", tsresol=tsresol, tsoffset=tsoffset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning fails the test
        s = summarize(p)
    assert s.packets == 3
    assert s.damaged == {kind: 1}
    assert any("if_ts" in n for n in s.damage_notes)
    # the option is ignored: microseconds, no offset, as if it were absent
    assert (s.first_ts_ns, s.last_ts_ns) == (T0, T0 + 2_000_000)
    assert capfd.readouterr().err == ""


def test_seconds_resolution_that_overflows_nanoseconds_marks_those_packets(tmp_path, capfd):
    """if_tsresol 0 (seconds) with microsecond values: 1.7e15 s is past year 2262 in int64 ns."""
    units = [1_700_000_000 + k for k in range(20)]
    units[7] = T0 // 1000  # one packet whose value does not fit
    p = _pcapng(tmp_path, "s.pcapng", tsresol=0, units=units)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarize(p)
    assert s.packets == 20
    assert s.damaged == {"unusable timestamp": 1}
    assert s.time_unknown == 1
    assert (s.first_ts_ns, s.last_ts_ns) == (1_700_000_000 * 10**9, 1_700_000_019 * 10**9)
    with CaptureFile(p) as cap:
        (b,) = list(iter_batches(cap))
    assert b.status[7] & ST_BAD_TIME and not b.status[6] & ST_BAD_TIME
    assert int(b.ts_ns[7]) == int(b.ts_ns[6])  # carries the time of the packet before
    assert capfd.readouterr().err == ""


def test_a_packet_with_a_bad_interface_id_does_not_move_the_span(tmp_path):
    body = b"".join(epb(0, T0 // 1000 + k * 20_000, ETH) for k in range(30))
    bad = epb(5, T0 // 1000 + 31 * 20_000, ETH)  # interface 5 was never described
    p = tmp_path / "if.pcapng"
    p.write_bytes(shb() + idb(1) + body[: len(body) // 2] + bad + body[len(body) // 2 :])
    s = summarize(p)
    assert s.packets == 31
    assert s.damaged["unknown interface"] == 1
    assert s.first_ts_ns == T0 and round(s.duration_s, 6) == 0.58  # not back to 1970
    assert s.to_dict()["first_time"].startswith("2023-11-14")


def _pcap(tmp_path, name, stamps):
    p = tmp_path / name
    p.write_bytes(pcap_bytes([(t, ETH) for t in stamps]))
    return p


def test_one_frame_52_years_off_is_an_outlier_named_by_frame(tmp_path):
    stamps = [T0 + k * STEP for k in range(50)]
    stamps[19] = T0 - 52 * 365 * 86400 * 10**9  # frame 20
    p = _pcap(tmp_path, "off.pcap", stamps)
    rows = tshark_fields(p, ["frame.number", "frame.time_epoch"])
    assert rows[19][1] == "60128000.000000000"  # tshark reads frame 20 in 1971
    s = summarize(p)
    assert (s.first_ts_ns, s.last_ts_ns) == (T0, T0 + 49 * STEP)
    assert s.time_outliers == [{"frames": [20], "packets": 1, "time": "1971-11-27 22:13:20"}]
    assert s.time_gaps == []
    assert "frame 20" in s.time_warnings[0] and "52.0 years" in s.time_warnings[0]


def test_a_113_day_gap_is_named_by_the_frames_around_it(tmp_path):
    gap = 113 * 86400 * 10**9
    stamps = [T0 + k * STEP for k in range(40)] + [T0 + gap + k * STEP for k in range(40)]
    s = summarize(_pcap(tmp_path, "gap.pcap", stamps))
    assert s.time_gaps == [{
        "after_frame": 40, "before_frame": 41, "gap_s": 113 * 86400 - 39 * 0.02,
        "after_ts_ns": T0 + 39 * STEP, "before_ts_ns": T0 + gap,
    }]  # fmt: skip
    assert s.time_outliers == []
    assert round(s.duration_s) == 113 * 86400 + 1
    assert "113.0 days" in s.time_warnings[0] and "frame 40" in s.time_warnings[0]


def test_an_ordinary_capture_has_no_time_warning(tmp_path):
    s = summarize(_pcap(tmp_path, "ok.pcap", [T0 + k * STEP for k in range(100)]))
    assert (s.time_gaps, s.time_outliers, s.time_warnings, s.time_unknown) == ([], [], [], 0)


def test_the_summary_command_prints_the_time_warning(tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main

    stamps = [T0 + k * STEP for k in range(50)]
    stamps[19] = 0
    res = CliRunner().invoke(main, ["summary", str(_pcap(tmp_path, "o.pcap", stamps))], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "frame 20" in res.output and "left out of the time span" in res.output


def test_the_timeline_axis_is_the_capture_span_not_52_years(tmp_path):
    from analyzer.api import analyze
    from analyzer.bench import _stun_binding

    pkts = []
    for k in range(30):
        txid = bytes([k]) * 12
        req = (
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="10.1.0.11", dst="52.112.1.2")
            / UDP(sport=50000, dport=3478)
        )
        resp = (
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="52.112.1.2", dst="10.1.0.11")
            / UDP(sport=3478, dport=50000)
        )
        pkts.append((T0 + k * 10 * STEP, bytes(req / Raw(_stun_binding(txid, False, (0, 0))))))
        pkts.append((T0 + k * 10 * STEP + STEP, bytes(resp / Raw(_stun_binding(txid, True, (0x0A01000B, 50000))))))
    pkts[10] = (T0 - 52 * 365 * 86400 * 10**9, pkts[10][1])  # frame 11, a request, stamped in 1971
    p = tmp_path / "stun.pcap"
    p.write_bytes(pcap_bytes(pkts))
    a = analyze(p)
    assert 11 in a.stun.frame.tolist()  # the frame is still read and dissected
    lo, hi = a.timeline().layout.xaxis.range
    assert -1 <= lo < 0 and 5.9 < hi < 7  # the call's 5.8 s, not 52 years
    assert a.captures[0].time_outliers[0]["frames"] == [11]


def test_the_timeline_cuts_a_113_day_silence_short_and_keeps_both_sides(tmp_path):
    from analyzer.api import analyze
    from analyzer.bench import _stun_binding

    gap = 113 * 86400 * 10**9
    pkts = []
    for k in range(40):
        base = T0 + k * 10 * STEP + (gap if k >= 20 else 0)
        txid = bytes([k]) * 12
        req = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.0.11", dst="52.112.1.2")
        pkts.append((base, bytes(req / UDP(sport=50000, dport=3478) / Raw(_stun_binding(txid, False, (0, 0))))))
    p = tmp_path / "gap.pcap"
    p.write_bytes(pcap_bytes(pkts))
    a = analyze(p)
    fig = a.timeline()
    xs = [x for tr in fig.data if tr.name and tr.name.startswith("STUN") for x in tr.x]
    assert len(xs) == 40
    lo, hi = fig.layout.xaxis.range
    assert hi < 60  # 7.8 s of packets and a short band, not 113 days
    assert max(xs) < hi and min(xs) > lo
    assert xs[19] < xs[20] and xs[20] - xs[19] < 5  # the silence is drawn as a band, the order kept
    (band,) = [s for s in fig.layout.shapes if s.type == "rect"]
    assert band.x0 < xs[20] and band.x0 >= xs[19]
    assert any("113.0 days silent" in (an.text or "") for an in fig.layout.annotations)


def test_the_html_report_names_the_outlier_frame(tmp_path):
    from analyzer.api import analyze

    stamps = [T0 + k * STEP for k in range(50)]
    stamps[19] = 0
    a = analyze(_pcap(tmp_path, "o.pcap", stamps))
    out = tmp_path / "r.html"
    a.to_html(out)
    html = out.read_text()
    assert "time: 1 packet stamped" in html and "frames 20" not in html and "frame 20 at 1970-01-01" in html
