"""The media stage on synthetic streams whose loss, reordering, duplication, jitter, gaps and sequence
wrap-around are known, so every number is checked exactly (RFC 3550 A.3 and A.8), also when the rows
arrive in arbitrary chunks."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from analyzer.dissect import media_rows
from analyzer.media import MediaStage
from tests.dissect.stunbuild import rtp

A, B = ("10.1.0.11", 50010), ("203.0.113.9", 61000)
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def rtp_packet(seq: int, ts: int, ssrc: int, pt: int = 0, payload: bytes = b"\xd5" * 160, marker: bool = False,
               extension: bytes = b"") -> bytes:
    b0 = 0x90 if extension else 0x80
    head = struct.pack("!BBHII", b0, pt | (0x80 if marker else 0), seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    return head + extension + payload


def rows_for(events: list[tuple[int, bytes]], src=A, dst=B, *, frame0: int = 1, relayed: bool = False,
             channel: int = 0, wire=None) -> list[tuple]:
    """Rows for media_rows.from_packets: events are (arrival ns, RTP/RTCP bytes) in capture order."""
    w = wire or (src[0], src[1], dst[0], dst[1])
    return [(frame0 + i, t, src[0], src[1], dst[0], dst[1], w, 17, len(p), channel, p, relayed)
            for i, (t, p) in enumerate(events)]


def measure(rows: list[tuple], chunks: list[int] | None = None, dtls=(), stun=()):
    """Feed the rows to a MediaStage in chunks of the given sizes (one chunk when None)."""
    st = MediaStage(0)
    sizes = chunks or [len(rows)]
    i = 0
    for n in [*sizes, len(rows)]:
        part = rows[i : i + n]
        i += len(part)
        if part:
            st.add(media_rows.from_packets(0, part))
    return st.finish(list(dtls), list(stun))


def one(result, ssrc: int | None = None) -> dict:
    rows = [r for r in result.streams if ssrc is None or r["ssrc"] == ssrc]
    assert len(rows) == 1, rows
    return rows[0]


def pcmu(order: list[int], *, seq0: int = 0, ssrc: int = 0x1234, delays_ns: dict[int, int] | None = None,
         step_ns: int = 20 * MS) -> list[tuple[int, bytes]]:
    """Packet k (0-based) of a PCMU stream: seq seq0+k, timestamp 160 k, sent at 20 ms k, arriving after
    delays_ns[k]; `order` lists the k in arrival order (omit = lost, repeat = duplicated)."""
    delays_ns = delays_ns or {}
    out = []
    for k in order:
        t = T0 + k * step_ns + delays_ns.get(k, 0)
        out.append((t, rtp_packet(seq0 + k, 160 * k, ssrc)))
    out.sort(key=lambda e: e[0])  # capture order is arrival order
    return out


def a8_reference(arrival_ns: list[int], rtp_ts: list[int], rate: int) -> list[float]:
    """RFC 3550 A.8 as written, one packet at a time (J in timestamp units)."""
    j, out = 0.0, []
    for i in range(len(arrival_ns)):
        if i:
            d = (arrival_ns[i] - arrival_ns[i - 1]) * rate / 1e9 - (rtp_ts[i] - rtp_ts[i - 1])
            j += (abs(d) - j) / 16
        out.append(j)
    return out


# ------------------------------------------------------------------ sequence numbers (RFC 3550 A.3)
def test_clean_stream():
    s = one(measure(rows_for(pcmu(list(range(500))))))
    assert (s["packets"], s["expected"], s["lost"], s["loss_pct"]) == (500, 500, 0, 0.0)
    assert (s["duplicates"], s["out_of_order"], s["seq_resets"]) == (0, 0, 0)
    assert s["jitter_ms_max"] == 0.0 and s["clock_rate"] == 8000 and s["kind"] == "audio"
    assert s["first_frame"] == 1 and s["last_frame"] == 500 and s["confirmed"]
    assert s["bytes"] == 500 * 172 and s["payload_bytes"] == 500 * 160
    assert s["ptime_ms"] == pytest.approx(20.0)


def test_known_loss():
    order = [k for k in range(1000) if k not in (10, 11, 12, 500)]
    s = one(measure(rows_for(pcmu(order))))
    assert (s["packets"], s["expected"], s["lost"]) == (996, 1000, 4)
    assert s["loss_pct"] == pytest.approx(0.4)


def test_sequence_wrap_around_with_loss_across_it():
    order = [k for k in range(300) if k not in (99, 100, 150)]  # seq 65535 and 0 are among the lost
    s = one(measure(rows_for(pcmu(order, seq0=65436))))
    assert 65436 + 99 == 65535
    assert (s["packets"], s["expected"], s["lost"], s["seq_resets"]) == (297, 300, 3, 0)


def test_reordering_counts_late_packets_not_loss():
    delays = {k: 25 * MS for k in (100, 200, 300)}  # each arrives after its successor
    s = one(measure(rows_for(pcmu(list(range(400)), delays_ns=delays))))
    assert (s["packets"], s["lost"], s["out_of_order"], s["duplicates"]) == (400, 0, 3, 0)


def test_duplicates_fill_no_hole():
    events = pcmu(list(range(300)))
    for k in (50, 60, 70):  # the copy arrives 1 ms after the original
        events.append((T0 + k * 20 * MS + MS, rtp_packet(k, 160 * k, 0x1234)))
    events.sort(key=lambda e: e[0])
    s = one(measure(rows_for(events)))
    assert (s["packets"], s["expected"], s["duplicates"], s["out_of_order"]) == (303, 300, 3, 0)
    # RFC 3550 A.3 would say lost -3; a copy fills no hole (issue 14: DTMF end packets read "lost -2")
    assert s["lost"] == 0 and s["loss_pct"] == 0.0


def test_restart_of_numbering_is_not_loss():
    events = pcmu(list(range(100)))
    events += [(T0 + (100 + k) * 20 * MS, rtp_packet(40000 + k, 160 * (100 + k), 0x1234)) for k in range(100)]
    s = one(measure(rows_for(events)))
    assert (s["packets"], s["expected"], s["lost"], s["seq_resets"]) == (200, 200, 0, 1)


def test_restart_after_a_late_packet_continues_above_the_highest_number():
    """0..100 with 50 arriving last, then the sender renumbers from 30000: the new numbers follow 100, not
    the late 50 (else 50 of them would read as duplicates of 51..100)."""
    seqs = [k for k in range(101) if k != 50] + [50] + list(range(30000, 30200))
    events = [(T0 + i * 20 * MS, rtp_packet(q, 160 * i, 0x1234)) for i, q in enumerate(seqs)]
    for sizes in (None, [101, 1, 200], [101, 200], [7] * 50):
        s = one(measure(rows_for(events), sizes))
        assert (s["packets"], s["expected"], s["lost"], s["duplicates"], s["out_of_order"], s["seq_resets"]) == (
            301, 301, 0, 0, 1, 1), sizes


def reset_reference(seqs: list[int], max_dropout: int = 3000) -> dict[str, int]:
    """One packet at a time: a jump beyond max_dropout restarts at one above the highest number."""
    ext = last = top = low = None
    seen, late, dups, resets = set(), 0, 0, 0
    for q in seqs:
        if ext is None:
            ext = q
        else:
            d = ((q - last + 32768) % 65536) - 32768
            if abs(d) > max_dropout:
                ext, resets = top + 1, resets + 1
            else:
                ext += d
            if ext <= top:
                dups, late = (dups + 1, late) if ext in seen else (dups, late + 1)
        last = q
        seen.add(ext)
        top = ext if top is None else max(top, ext)
        low = ext if low is None else min(low, ext)
    return {"expected": top - low + 1, "duplicates": dups, "out_of_order": late, "seq_resets": resets}


def test_several_restarts_with_late_packets_match_the_scalar_reference():
    """Three interleaved streams, each renumbered three times with a few late packets in every run."""
    rnd = random.Random(3)
    streams, events = {}, []
    for ssrc in (0x11, 0x22, 0x33):
        seqs, base = [], rnd.randrange(65536)
        for _ in range(4):
            run = [(base + k) & 0xFFFF for k in range(200)]
            for i in rnd.sample(range(1, 199), 6):
                run[i], run[i + 1] = run[i + 1], run[i]
            seqs += run
            base = rnd.randrange(65536)
        streams[ssrc] = seqs
        events += [(T0 + i * 20 * MS + ssrc * 1000, rtp_packet(q, 160 * i, ssrc)) for i, q in enumerate(seqs)]
    events.sort(key=lambda e: e[0])
    refs = {ssrc: reset_reference(seqs) for ssrc, seqs in streams.items()}
    assert all(r["seq_resets"] >= 2 for r in refs.values())
    for sizes in (None, [37] * 100, [1] * 100 + [500] * 5):
        res = measure(rows_for(events), sizes)
        assert len(res.streams) == 3
        for s in res.streams:
            ref = refs[s["ssrc"]]
            assert {k: s[k] for k in ref} == ref, (sizes, s["ssrc"])


def a3_reference(seqs: list[int]) -> dict[str, int]:
    """Sequence statistics one packet at a time: extended numbers by the nearest distance mod 2^16."""
    ext, seen, top, low, late, dups = None, set(), None, None, 0, 0
    for q in seqs:
        ext = q if ext is None else ext + ((q - ext + 32768) % 65536) - 32768
        if top is not None and ext <= top:
            if ext in seen:
                dups += 1
            else:
                late += 1
        seen.add(ext)
        top = ext if top is None else max(top, ext)
        low = ext if low is None else min(low, ext)
    expected = top - low + 1
    return {"expected": expected, "duplicates": dups, "out_of_order": late, "lost": expected - (len(seqs) - dups)}


def test_everything_at_once_is_independent_of_chunking():
    rnd = random.Random(5)
    sent = [k for k in range(3000) if rnd.random() > 0.02]  # about 2 % loss
    delays = {k: rnd.randrange(0, 45 * MS) for k in range(3000)}  # up to 45 ms: packets overtake each other
    events = [(T0 + k * 20 * MS + delays[k], rtp_packet(65000 + k, 160 * k, 0x77)) for k in sent]
    events += [(T0 + k * 20 * MS + delays[k] + 200 * MS, rtp_packet(65000 + k, 160 * k, 0x77)) for k in sent[::250]]
    events.sort(key=lambda e: e[0])
    rows = rows_for(events)
    whole = one(measure(rows))
    keys = ("packets", "expected", "lost", "duplicates", "out_of_order", "seq_resets", "jitter_ms_max",
            "jitter_ms_mean", "jitter_ms_final", "longest_gap_ms", "gaps_over_200ms", "first_frame", "last_frame")
    for sizes in ([1] * 50 + [7] * 30, [10, 999, 3, 1500], [len(rows) // 2]):
        parts = one(measure(rows, sizes))
        for k in keys:
            assert parts[k] == pytest.approx(whole[k], rel=1e-12, abs=1e-12), k
    seqs = [struct.unpack("!H", p[2:4])[0] for _, p in events]
    ref = a3_reference(seqs)
    assert ref["out_of_order"] > 100 and ref["duplicates"] == len(sent[::250])
    assert whole["packets"] == len(events)
    for k in ("expected", "lost", "duplicates", "out_of_order"):
        assert whole[k] == ref[k], k
    # the jitter, row by row, equals the scalar A.8 recurrence over the same packets in arrival order
    ts = [struct.unpack("!I", p[4:8])[0] for _, p in events]
    ref_j = a8_reference([t for t, _ in events], ts, 8000)
    assert whole["jitter_ms_max"] == pytest.approx(max(ref_j) / 8, rel=1e-9)
    assert whole["jitter_ms_final"] == pytest.approx(ref_j[-1] / 8, rel=1e-9)
    assert whole["jitter_ms_mean"] == pytest.approx(sum(ref_j) / len(ref_j) / 8, rel=1e-9)


# ------------------------------------------------------------------ jitter (RFC 3550 A.8)
def test_constant_transit_variation_gives_the_closed_form():
    # every other packet 5 ms late: |D| = 40 timestamp units (8 kHz) for every packet after the first
    delays = {k: (5 * MS if k % 2 else 0) for k in range(200)}
    s = one(measure(rows_for(pcmu(list(range(200)), delays_ns=delays))))
    n = 199  # updates
    assert s["jitter_ms_final"] == pytest.approx(5.0 * (1 - (15 / 16) ** n), rel=1e-12)
    assert s["jitter_ms_max"] == pytest.approx(s["jitter_ms_final"], rel=1e-12)


@pytest.mark.parametrize("chunk", [None, [1] * 40, [33, 64, 5]])
def test_jitter_matches_scalar_reference(chunk):
    rnd = random.Random(11)
    delays = {k: rnd.randrange(0, 40 * MS) for k in range(2500)}
    events = pcmu(list(range(2500)), delays_ns=delays)
    s = one(measure(rows_for(events), chunk))
    ref = a8_reference([t for t, _ in events], [struct.unpack("!I", p[4:8])[0] for _, p in events], 8000)
    assert s["jitter_ms_max"] == pytest.approx(max(ref) / 8, rel=1e-9)
    assert s["jitter_ms_final"] == pytest.approx(ref[-1] / 8, rel=1e-9)


# ------------------------------------------------------------------ gaps, time series
def test_gaps_over_200ms_with_times_and_frames():
    events = pcmu(list(range(100)))
    events += [(T0 + (100 + k) * 20 * MS + 500 * MS, rtp_packet(100 + k, 160 * (100 + k), 0x1234)) for k in range(100)]
    res = measure(rows_for(events))
    s = one(res)
    assert s["gaps_over_200ms"] == 1 and s["longest_gap_ms"] == pytest.approx(520.0)
    g = s["gaps"][0]
    assert (g["frame_before"], g["frame_after"], g["duration_ms"]) == (100, 101, 520.0)
    assert g["start_ts_ns"] == T0 + 99 * 20 * MS and s["lost"] == 0


def test_timeseries_bins():
    order = [k for k in range(150) if k not in range(60, 70)]  # 10 lost in the second second
    res = measure(rows_for(pcmu(order)))
    t = res.timeseries
    assert list(t["packets"]) == [50, 40, 50]
    assert list(t["expected"]) == [50, 50, 50] and list(t["lost"]) == [0, 10, 0]
    assert list(t["bytes"]) == [50 * 172, 40 * 172, 50 * 172]
    assert t["second_ns"][0] == T0 // 10**9 * 10**9
    s = one(res)
    assert s["bitrate_kbps_peak"] == pytest.approx(50 * 172 * 8 / 1000)


# ------------------------------------------------------------------ clock rate and kind
def test_dynamic_opus_rate_from_slope_even_when_first_chunk_is_short():
    events = [(T0 + k * 20 * MS, rtp(k, 960 * k, 0xA1, pt=111, payload=b"\x11" * 80)) for k in range(200)]
    s = one(measure(rows_for(events), [5, 5, 5]))
    assert s["clock_rate"] == 48000 and "fits 48000" in s["clock_rate_rule"] and s["kind"] == "audio"
    assert s["clock_rate_fit"] and s["jitter_ms_max"] == pytest.approx(0.0, abs=1e-9)


def test_video_by_clock_rate_frames_from_marker_bits():
    events = []
    for f in range(90):  # 30 fps, 3 packets per frame, the marker on the last
        for p in range(3):
            events.append((T0 + f * 33_333_333 + p * MS,
                           rtp_packet(3 * f + p, 3000 * f, 0xB2, pt=96, payload=b"\x42" * 1100, marker=p == 2)))
    s = one(measure(rows_for(events)))
    assert s["clock_rate"] == 90000 and s["kind"] == "video" and s["kind_rule"] == "90 kHz clock rate"
    assert s["video_frames"] == 90 and s["frame_rate"] == pytest.approx(90 / (89 * 33_333_333 / 1e9 + 0.002), rel=1e-6)


def test_teams_ports_decide_screen_sharing_and_header_extensions_are_listed():
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xff\x00\x00"
    events = [(T0 + k * 100 * MS, rtp_packet(k, 9000 * k, 0xC3, pt=100, payload=b"\x00" * 900, extension=ext))
              for k in range(40)]
    s = one(measure(rows_for(events, A, ("52.112.1.2", 3481))))
    assert s["kind"] == "screen sharing" and "3481" in s["kind_rule"]
    assert s["extension_packets"] == 40 and s["extension_profiles"] == "0xBEDE"


def test_rtcp_reports_rtt_far_end_loss_and_jitter():
    ssrc_b, ssrc_a = 0xB0B, 0xA0A
    events_b = [(T0 + k * 20 * MS, rtp_packet(k, 160 * k, ssrc_b)) for k in range(100)]
    ntp = (3_900_000_000 << 32) | (1 << 31)  # any NTP time: only its middle 32 bits matter
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc_b, ntp, 16000, 100, 16000)
    mid = (ntp >> 16) & 0xFFFFFFFF
    block = struct.pack("!IB3sIIII", ssrc_b, 64, (5).to_bytes(3, "big"), 99, 80, mid, int(0.1 * 65536))
    rr = struct.pack("!BBHI", 0x81, 201, 7, ssrc_a) + block
    rows = rows_for(events_b, B, A) + rows_for([(T0 + 1000 * MS, sr)], B, A, frame0=200)
    rows += rows_for([(T0 + 1300 * MS, rr)], A, B, frame0=300)
    rows.sort(key=lambda r: r[1])
    res = measure(rows)
    rep = next(r for r in res.rtcp_reports if r["packet_type"] == "RR")
    rtt = 300 - int(0.1 * 65536) / 65.536  # capture time RR - SR, minus DLSR
    assert rep["rtt_ms"] == pytest.approx(rtt, rel=1e-9)
    assert rep["fraction_lost"] == 0.25 and rep["cumulative_lost"] == 5 and rep["jitter_ms"] == 10.0
    s = one(res, ssrc_b)
    assert s["rtcp_reports"] == 1 and s["rtt_ms"] == pytest.approx(rtt, rel=1e-9)
    assert s["rtcp_fraction_lost"] == 0.25 and s["rtcp_jitter_ms"] == 10.0
    assert s["srtp"] is False and s["srtp_rule"].startswith("plain RTCP")


def test_unbelievable_streams_are_not_confirmed():
    rnd = random.Random(3)
    events = [(T0 + k * MS, rtp_packet(rnd.randrange(65536), rnd.randrange(1 << 32), 0x99)) for k in range(50)]
    events += [(T0 + MS * 100, rtp_packet(1, 1, 0x98)), (T0 + MS * 120, rtp_packet(2, 161, 0x98))]
    res = measure(rows_for(events))
    assert {r["ssrc"]: r["confirmed"] for r in res.streams} == {0x99: False, 0x98: False}


def test_memory_is_per_stream_not_per_packet():
    st = MediaStage(0)
    for c in range(20):
        events = [(T0 + (c * 500 + k) * 20 * MS, rtp_packet(c * 500 + k, 160 * (c * 500 + k), 0x5)) for k in range(500)]
        st.add(media_rows.from_packets(0, rows_for(events, frame0=c * 500 + 1)))
    assert st.state.n == 1 and all(w.size <= 512 for w in st.state.window)
    assert sum(b[0].size for b in st.state.bins) <= 20 * 11  # one bin per stream-second (+1 per chunk)
    assert one(st.finish()).get("packets") == 10_000
    assert np.all(st.state.rate[: st.state.n] == 8000)
