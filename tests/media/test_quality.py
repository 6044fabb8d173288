"""The E-model estimate (ITU-T G.107, simplified) and the Call Quality Dashboard thresholds."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from analyzer.media import quality as Q
from tests.media.test_streams import measure, one, pcmu, rows_for


def test_r_to_mos_follows_g107_annex_b():
    assert Q.r_to_mos(-5) == 1.0 and Q.r_to_mos(120) == 4.5 and Q.r_to_mos(3) == 1.0  # the formula dips below 1
    assert Q.r_to_mos(93.2) == pytest.approx(4.409, abs=5e-4)  # the best narrowband R gives MOS 4.41
    assert Q.r_to_mos(50) == pytest.approx(1 + 0.035 * 50 + 50 * (-10) * 50 * 7e-6)
    mos = [Q.r_to_mos(r) for r in range(0, 101)]
    assert all(a <= b for a, b in itertools.pairwise(mos))


def test_effective_equipment_impairment_per_codec():
    g711 = Q.CODECS["G711"]
    assert Q.ie_eff(g711, 0.0) == 0.0
    assert Q.ie_eff(g711, 1.0) == pytest.approx(95 * 1 / (1 + 25.1))
    assert Q.ie_eff(g711, 10.0) == pytest.approx(95 * 10 / (10 + 25.1))
    assert Q.ie_eff(Q.CODECS["G711-noplc"], 1.0) == pytest.approx(95 / 5.3)  # Bpl 4.3 without concealment
    g729 = Q.CODECS["G729"]
    assert Q.ie_eff(g729, 2.0) == pytest.approx(11 + 84 * 2 / (2 + 19.0))
    assert Q.ie_eff(g711, 100.0) < 95  # bounded by 95


def test_delay_impairment():
    assert Q.idd(0) == 0 and Q.idd(100) == 0
    x = 1.0  # Ta = 200 ms
    assert Q.idd(200) == pytest.approx(25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2))
    vals = [Q.idd(t) for t in range(100, 800, 50)]
    assert all(a < b for a, b in itertools.pairwise(vals))
    assert 20 < Q.idd(400) < 30


def test_score_adds_buffer_packetisation_and_half_the_rtt():
    clean = Q.score(0.0, 0.0, None, 20.0, Q.CODECS["G711"])
    assert clean.one_way_delay_ms == 40.0 and clean.r_factor == pytest.approx(93.2) and clean.id == 0
    assert clean.delay_source.startswith("no rtt")
    bad = Q.score(5.0, 30.0, 400.0, 20.0, Q.CODECS["opus"])
    ta = 200 + 60 + 20 + 6.5
    assert bad.one_way_delay_ms == pytest.approx(ta)
    assert bad.r_factor == pytest.approx(93.2 - Q.idd(ta) - 95 * 5 / (5 + 25.1))
    assert bad.mos == pytest.approx(Q.r_to_mos(bad.r_factor)) and bad.mos < clean.mos


def test_codec_choice():
    assert Q.codec_for(0, 8000).name == "G.711" and Q.codec_for(8, 8000).name == "G.711"
    assert Q.codec_for(18, 8000).name == "G.729"
    assert Q.codec_for(111, 48000).name.startswith("Opus")
    assert Q.codec_for(104, 16000).name == "G.711"  # unknown: the documented default


def test_thresholds_are_strict_per_kind():
    t = Q.thresholds(10.0, 30.0, 500.0, "audio")
    assert not any(t.values())
    t = Q.thresholds(10.01, 30.01, 500.1, "audio")
    assert t == {"poor_loss": True, "poor_jitter": True, "poor_rtt": True, "poor_frame_rate": False, "poor": True}
    assert Q.thresholds(None, None, None, "audio")["poor"] is False
    # video: no jitter threshold (frames leave in bursts), a frame-rate floor of 7/s
    v = Q.thresholds(0.0, 80.0, None, "video", 6.5)
    assert (v["poor_jitter"], v["poor_frame_rate"], v["poor"]) == (False, True, True)
    assert Q.thresholds(0.0, 80.0, None, "screen sharing", 1.0)["poor"] is False


def test_poor_no_longer_needs_500_packets():
    """Issue 16: the old flag needed > 500 packets received, so the worse the loss the less likely the flag."""
    order = [k for k in range(300) if k % 2 == 0]  # 150 packets received, 50 % lost
    s = one(measure(rows_for(pcmu(order))))
    assert s["loss_pct"] == pytest.approx(50.0, abs=0.4) and s["poor_loss"] and s["poor"]
    assert s["mos"] < Q.POOR_MOS


def test_stream_with_heavy_loss_is_poor_and_scores_low():
    order = [k for k in range(1000) if k % 8 != 4]  # 12.5 % lost
    s = one(measure(rows_for(pcmu(order))))
    assert s["loss_pct"] == pytest.approx(12.5)
    assert s["poor_loss"] and s["poor"] and not s["poor_jitter"] and not s["poor_rtt"]
    assert s["mos_codec"] == "G.711"
    # one packet in eight, evenly: 125 single-packet holes; Gilbert p = 125/875, q = 125/125
    assert (s["loss_events"], s["loss_burst_max"]) == (125, 1)
    burst = 1 / (125 / 875 + 1.0)
    assert s["burst_ratio"] == pytest.approx(burst)  # below 1: losses more spread out than random
    assert s["r_factor"] == pytest.approx(93.2 - 95 * 12.5 / (12.5 / burst + 25.1))
    assert 2.5 < s["mos"] < 3.5
    assert not math.isnan(s["mos"])


def test_loss_in_runs_scores_lower_than_the_same_loss_spread_out():
    """G.107's BurstR from the stream's own loss runs: 125 lost as 25 runs of 5 hurt more than 125 alone."""
    runs = [k for k in range(1000) if not 20 <= k % 40 < 25]  # 25 holes of 5 packets: 12.5 % lost
    spread = [k for k in range(1000) if k % 8 != 4]
    b, s = one(measure(rows_for(pcmu(runs)))), one(measure(rows_for(pcmu(spread))))
    assert b["loss_pct"] == pytest.approx(12.5) == s["loss_pct"]
    assert (b["loss_events"], b["loss_burst_max"]) == (25, 5)
    assert b["burst_ratio"] == pytest.approx(1 / (25 / 875 + 25 / 125))  # 4.375
    assert b["r_factor"] == pytest.approx(93.2 - 95 * 12.5 / (12.5 / b["burst_ratio"] + 25.1))
    assert b["mos"] < s["mos"] - 0.5


def test_burst_ratio_of_random_loss_is_about_one():
    from analyzer.media.quality import burst_ratio

    rng = random.Random(3)
    kept = [k for k in range(200_000) if rng.random() >= 0.05]
    holes, events, prev = 0, 0, -1
    for k in kept:
        if k - prev > 1:
            events += 1
            holes += k - prev - 1
        prev = k
    assert burst_ratio(len(kept), events, holes) == pytest.approx(1.0, abs=0.02)
    assert burst_ratio(100, 0, 0) == 1.0


def test_reordering_does_not_pass_for_spread_out_loss():
    """Bursty loss (10 runs of 10) with one packet in ten arriving late by one: the late packets open and
    close holes of their own; the runs, BurstR and MOS stay those of the loss alone."""
    base = [k for k in range(2000) if not (k % 200 < 10)]
    late = {k: 25_000_000 for k in base if k % 10 == 5}  # 25 ms: after the next packet
    b, r = one(measure(rows_for(pcmu(base)))), one(measure(rows_for(pcmu(base, delays_ns=late))))
    assert r["out_of_order"] > 150
    assert (r["loss_events"], r["loss_burst_max"], r["lost"]) == (b["loss_events"], b["loss_burst_max"], b["lost"])
    assert (b["loss_events"], b["loss_burst_max"]) == (9, 10)
    assert r["burst_ratio"] == pytest.approx(b["burst_ratio"]) and r["burst_ratio"] > 5
    assert r["mos"] == pytest.approx(b["mos"], abs=0.05)  # jitter differs a little, loss impairment not


MS_ = 1_000_000
KEPT = [k for k in range(1000) if k not in (100, 600)]


@pytest.mark.parametrize(
    "name, order, delays, lost, runs",
    [
        # a duplicate fills no hole: two lost, one duplicate -> lost 2, two runs
        ("duplicate", [*KEPT[:300], 299, *KEPT[300:]], None, 2, 2),
        # a late block of 3 far from a real run of 5: the block closes its own hole, the run stays
        ("late block", [k for k in range(1000) if k not in range(500, 505)], {200: 100, 201: 100, 202: 100}, 5, 1),
        # the first packet late (below the lowest number seen): no hole of its own to close
        ("first late", [k for k in range(1000) if k != 500], {0: 30}, 1, 1),
        # one late packet inside a real run splits it in two
        ("split", [k for k in range(1000) if k not in (500, 501, 503, 504)], {502: 300}, 4, 2),
        # two late packets next to each other between isolated losses: the second closes the hole
        ("late pair", [k for k in range(1000) if k not in (100, 400, 700)], {200: 60, 201: 60}, 3, 3),
    ],
)
def test_loss_runs_are_runs_of_lost_packets(name, order, delays, lost, runs):
    """Cases a review built: duplicates, late blocks and late packets inside runs must not add or remove
    runs of lost packets (the counts are what the packets say once everything has arrived)."""
    s = one(measure(rows_for(pcmu(order, delays_ns={k: v * MS_ for k, v in (delays or {}).items()}))))
    assert (s["lost"], s["loss_events"]) == (lost, runs), name
    assert s["burst_ratio"] == pytest.approx(1 / (runs / s["packets"] + runs / lost)), name
