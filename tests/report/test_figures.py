"""The timeline, ladder and path figures, on the built scenario (frames listed in build.py), the loopback
call and the shared ntop capture; and the same figures when optional tables are missing."""

from __future__ import annotations

import time

import pytest

from analyzer.report import common as C
from analyzer.report.figures import ladder, path_diagram, timeline
from tests.report.build import FRAMES, XSS
from tests.report.conftest import BASE_TABLES, Limited


def traces(fig) -> dict:
    return {t.name: t for t in fig.data}


def frames(trace) -> list[int]:
    return [int(f) for f in trace.customdata]


# --- timeline


def test_timeline_marker_outcomes_colours_and_symbols(scenario):
    t = traces(scenario.timeline())
    assert frames(t["STUN/TURN success"]) == FRAMES["success"]
    assert frames(t["STUN/TURN error"]) == FRAMES["error"]  # the 401 and the request it answered
    assert frames(t["STUN/TURN unanswered"]) == FRAMES["unanswered"]
    assert t["STUN/TURN success"].marker.color == "#2ca02c"
    assert t["STUN/TURN error"].marker.color == "#d62728"
    assert list(t["STUN/TURN unanswered"].marker.symbol) == ["circle-open"]  # hollow Binding
    # symbol per method: frames 1-4 Allocate (square), 6-7 CreatePermission (cross), 8-9 ChannelBind (star)
    assert list(t["STUN/TURN error"].marker.symbol) == ["square", "square"]
    assert list(t["STUN/TURN success"].marker.symbol)[:6] == ["square", "square", "cross", "cross", "star", "star"]


def test_timeline_lanes_per_endpoint_pair_and_moments(scenario):
    fig = scenario.timeline()
    lanes = list(fig.layout.yaxis.categoryarray)
    assert lanes[-1] == "ICE moments"  # on top
    assert set(lanes) == {
        "ICE moments",
        "client 10.1.0.11<br>↔ TURN server 52.112.0.10",
        "client 10.1.0.11<br>↔ STUN server 52.112.0.20",
        "client 10.1.0.11<br>↔ host 10.1.0.12",
    }
    t = traces(fig)
    lane_of = dict(zip(frames(t["STUN/TURN error"]), t["STUN/TURN error"].y, strict=True))
    assert lane_of[1] == "client 10.1.0.11<br>↔ TURN server 52.112.0.10"
    assert frames(t["ICE connected"]) == [11] and frames(t["ICE nominated"]) == [11]
    assert frames(t["first media"]) == [14]
    # the moments are vertical lines across the figure too
    assert sorted((s.x0, s.line.dash) for s in fig.layout.shapes) == sorted(
        [(t["ICE connected"].x[0], "dash"), (t["ICE nominated"].x[0], "dot"), (t["first media"].x[0], "solid")]
    )


def test_timeline_time_axis_and_hover(scenario):
    t = traces(scenario.timeline())
    err = t["STUN/TURN error"]
    assert list(err.x) == [0.0, 0.02]  # seconds from the capture start, 20 ms apart
    hover = err.hovertext[1]
    assert hover.startswith("<b>frame 2</b>")
    assert "2023-11-14 22:13:20.020000 UTC" in hover  # absolute time
    assert "error: 401" in hover and "SOFTWARE: &lt;script&gt;alert(1)&lt;/script&gt;" in hover
    assert XSS not in hover
    assert "realm: &quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in hover


def test_timeline_media_rows_from_the_one_second_series(scenario):
    fig = scenario.timeline()
    names = [t.name for t in fig.data]
    media = [n for n in names if n.startswith("0x")]
    streams = (("11111111", "10.1.0.11:50000", "10.1.0.12:6000"), ("22222222", "10.1.0.12:6000", "10.1.0.11:50000"))
    # one legend entry per stream (its first metric, named by the stream), the other rows in its group
    assert media == [f"0x{s} audio {a}→{b}" for s, a, b in streams] + [
        f"0x{s} audio {a}→{b} {m}" for m in ("loss", "jitter") for s, a, b in streams
    ]
    assert [t.name for t in fig.data if t.name in media and t.showlegend is not False] == media[:2]
    assert {fig.layout[f"yaxis{i}"].rangemode for i in (2, 3, 4)} == {"tozero"}  # loss anchored at 0
    bitrate = traces(fig)["0x11111111 audio 10.1.0.11:50000→10.1.0.12:6000"]
    ts = scenario.media_timeseries
    assert len(bitrate.x) == int((ts.ssrc == 0x11111111).sum())  # one point per stream-second
    assert bitrate.xaxis == "x2" and fig.layout.yaxis2.domain[1] < fig.layout.yaxis.domain[0]


def test_timeline_dtls_flights_and_moments_on_the_loopback_call(loopback):
    t = traces(loopback.timeline())
    # ClientHello (9); ServerHello..Done (10); client Certificate..Finished (11); server CCS+Finished (12)
    assert frames(t["DTLS flight"]) == [9, 10, 11, 12]
    assert "client_hello" in t["DTLS flight"].hovertext[0]
    assert frames(t["ICE connected"]) == [6] and frames(t["ICE nominated"]) == [8] and frames(t["first media"]) == [13]
    assert frames(t["STUN/TURN success"]) == [5, 6, 7, 8] and "STUN/TURN error" not in t


def test_timeline_on_the_ntop_capture(ntop_stun):
    t = traces(ntop_stun.timeline())
    assert {17, 19, 67, 68, 71, 73}.issubset(frames(t["STUN/TURN error"]))  # Allocate 401s, CreatePermission 403
    assert {21, 70, 76, 106}.issubset(frames(t["STUN/TURN success"]))
    assert {77, 78}.issubset(frames(t["STUN/TURN unanswered"]))  # relayed checks to 185.170.139.1:44459
    assert 77 not in frames(t["TURN indication"])  # the Send carrying the check is shown as the check
    lane = dict(zip(frames(t["STUN/TURN unanswered"]), t["STUN/TURN unanswered"].y, strict=True))[77]
    assert lane == "TURN server 31.13.86.54<br>↔ peer 185.170.139.1"  # the relayed check's inner addresses


def test_timeline_without_media_or_topology_tables(scenario):
    fig = timeline(Limited(scenario, BASE_TABLES))
    names = {t.name for t in fig.data}
    assert {"STUN/TURN success", "STUN/TURN error", "STUN/TURN unanswered"} <= names
    assert not any(n.startswith("0x") for n in names)
    assert any("no media streams" in a.text for a in fig.layout.annotations)


def test_timeline_stays_small_on_a_long_call(long_call):
    # 60,000 RTP packets over 10 minutes: the figure holds 1-second bins, not packets
    start = time.perf_counter()
    fig = long_call.timeline()
    elapsed = time.perf_counter() - start
    points = sum(len(t.x) for t in fig.data if t.x is not None)
    assert len(long_call.media_timeseries) == 2 * 601 or len(long_call.media_timeseries) == 2 * 600
    assert points < 4000 and elapsed < 5
    assert len(fig.to_json()) < 2_000_000


# --- ladder


def test_ladder_columns_arrows_and_bands(scenario):
    fig = scenario.ladder()
    t = traces(fig)
    assert list(t) == ["Allocate", "CreatePermission", "ChannelBind", "USE-CANDIDATE check", "media"]
    assert list(t["Allocate"].text) == [
        "Allocate request",
        "Allocate error 401",
        "Allocate request",
        "Allocate success",
    ]
    assert frames(t["USE-CANDIDATE check"]) == [10, 11]  # the check with USE-CANDIDATE and its answer, not 12-13
    assert list(fig.layout.xaxis.ticktext) == [
        "10.1.0.11:50000<br>customer network<br>host",
        "10.1.0.12:6000<br>customer network<br>host",
        "52.112.0.10:3478<br>cloud<br>TURN server",
    ]
    arrows = fig.layout.annotations
    assert len(arrows) == 10 and all(a.axref == "x" for a in arrows)
    # the first Allocate and its 401 in red, the retry and its success in the Allocate colour
    assert [(a.ax, a.x, a.arrowcolor) for a in arrows[:4]] == [
        (0, 2, "#d62728"),
        (2, 0, "#d62728"),
        (0, 2, "#1f77b4"),
        (2, 0, "#1f77b4"),
    ]
    band = t["media"]
    assert (min(band.x), max(band.x)) == (0, 1) and band.fill == "toself"
    assert "300 packets" in band.hovertext


def test_ladder_on_the_ntop_capture(ntop_stun):
    t = traces(ntop_stun.ladder())
    assert {"Allocate", "Refresh", "CreatePermission", "ChannelBind", "USE-CANDIDATE check", "DTLS flight"} <= set(t)
    assert frames(t["ChannelBind"])[:2] == [104, 106]
    assert "CreatePermission error 403" in list(t["CreatePermission"].text)


def test_ladder_with_nothing_to_draw(scenario):
    fig = ladder(Limited(scenario, ("summary",)))
    assert len(fig.data) == 0 and "no TURN" in fig.layout.annotations[0].text


# --- path diagram


def test_path_diagram_direct_call(scenario):
    t = traces(scenario.path_diagram())
    assert list(t["hops"].text) == ["10.1.0.11:50000<br>host", "10.1.0.12:6000<br>host"]
    assert list(t["link labels"].text) == ["UDP · Flow 5"]
    assert all(0 < x < 1 for x in t["hops"].x)  # both in the customer network column
    assert "findings" not in t


def test_path_diagram_relayed_call_and_findings(ntop_stun):
    fig = ntop_stun.path_diagram()
    t = traces(fig)
    assert "call 1: external-via-relay" in fig.layout.yaxis.ticktext
    hops = [h for h, y in zip(t["hops"].text, t["hops"].y, strict=True) if y == 1]
    assert hops == [
        "192.168.12.169:38123<br>client",
        "31.13.86.54:40003<br>TURN server, relay :53789",
        "185.170.139.1:12176<br>peer",
    ]
    hover = " ".join(t["findings"].hovertext)
    # the checks of frames 152-160 are cut by the capture's end: ice-incomplete (info), not ice-failed
    assert "non-cloud-relay" in hover and "ice-incomplete" in hover and "ice-failed" not in hover
    assert "tried, not selected" in t  # the failed session's first pair, dashed


def test_path_diagram_without_topology_tables(loopback):
    fig = path_diagram(Limited(loopback, BASE_TABLES))
    assert list(fig.layout.yaxis.ticktext) == ["ICE session 0: connected"]
    assert list(traces(fig)["hops"].text) == ["192.0.2.2:35780<br>host", "192.0.2.2:39497<br>host"]


@pytest.mark.parametrize("build", [timeline, ladder, path_diagram])
def test_figures_on_an_empty_analysis(scenario, build):
    fig = build(Limited(scenario, ()))
    assert fig.to_json()


def test_esc():
    assert C.esc(None) == "" and C.esc(float("nan")) == ""
    assert C.esc('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"


def test_path_diagram_marks_the_finding_on_its_hop(tmp_path):
    from analyzer import analyze
    from tests.conftest import CAPTURES

    profile = tmp_path / "net.toml"
    profile.write_text('[vpn]\npools = ["192.0.2.0/24"]\n')
    a = analyze(CAPTURES / "loopback-call" / "call.pcap", network=str(profile))
    t = traces(a.path_diagram())
    assert all(1 < x < 2 for x in t["hops"].x)  # both ends in the VPN column
    assert list(t["findings"].text) == ["media-over-vpn"] and 1 < t["findings"].x[0] < 2
    assert t["findings"].marker.color == ("#d62728",)  # severity error
