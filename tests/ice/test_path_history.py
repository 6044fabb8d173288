"""A call whose media moves from a relay to a direct pair is one call with a path history: each leg with
its frames, packets and the reason for the move; the verdict judges the final path and states the
switch. The captures are crafted (tests/ice/upgrade.py) and their frames read back with tshark."""

from __future__ import annotations

import pytest

from analyzer import analyze
from tests.capture.writers import pcap_bytes
from tests.conftest import tshark_fields
from tests.ice import upgrade

T0 = 1_700_000_000_000_000_000


def _write(path, frames):
    path.write_bytes(pcap_bytes([(T0 + i * 20_000_000, f) for i, f in enumerate(frames)]))
    return path


@pytest.fixture(scope="module")
def turn_then_direct(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("up") / "turn-then-direct.pcap", upgrade.frames())


@pytest.fixture(scope="module")
def relay_without_ice(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("up") / "relay-then-direct.pcap", upgrade.frames_relay_without_ice())


def test_turn_relay_then_renominated_direct_pair(turn_then_direct):
    p = turn_then_direct
    # tshark: frames 7-10 the relayed checks and 11-90 the media in TURN ChannelData 0x4000 on
    # 192.168.1.10:50000 <-> 198.51.100.20:3478; frame 91 the direct check carrying 0xC001 = 2, frame 92 its
    # success; frames 95-214 UDP 192.168.1.10:50000 <-> 203.0.113.9:6000
    chan = tshark_fields(p, ["frame.number", "stun.channel"], display_filter="stun.channel == 0x4000")
    assert [int(r[0]) for r in chan] == list(range(7, 91))
    nom = tshark_fields(p, ["frame.number", "stun.value"], display_filter="stun.attribute == 0xc001 && !stun.channel")
    assert nom == [["91", "00000002"]]
    direct = tshark_fields(p, ["frame.number"], display_filter="ip.addr == 203.0.113.9 && !stun")
    assert [int(r[0]) for r in direct] == list(range(95, 215))

    a = analyze(p)
    assert len(a.calls) == 1
    h = a.path_history
    assert list(h.kind) == ["relay", "direct"] and list(h.pair) == [0, 2]
    assert list(zip(h.first_frame, h.last_frame, h.packets, strict=True)) == [(11, 90, 80), (95, 214, 120)]
    assert h.reason.iloc[0] == "first media; nominated by NOMINATION 1 (frame 7, answered frame 8)"
    assert h.reason.iloc[1] == "renomination: NOMINATION 2 (frame 91, answered frame 92)"
    (c,) = a.calls.itertuples()
    assert c.topology == "external-direct" and not c.relayed  # the final path is judged
    assert c.path == "192.168.1.10:50000 host/udp -> 203.0.113.9:6000 unknown"
    assert c.moves.startswith("relay 192.168.1.10:50000 -> 198.51.100.20:3478 TURN -> 198.51.100.20:61000")
    assert "(frames 11-90, 80 packets) => direct 192.168.1.10:50000 host/udp -> 203.0.113.9:6000 unknown" in c.moves
    assert c.moves.endswith("(frames 95-214, 120 packets; renomination: NOMINATION 2 (frame 91, answered frame 92))")


def test_relay_leg_without_ice_is_the_same_call_not_a_direct_one(relay_without_ice, tmp_path):
    p = relay_without_ice
    # tshark: frames 1-80 UDP to/from 198.51.100.20:3478 (no STUN), 81-84 the direct checks (USE-CANDIDATE in 81)
    relay = tshark_fields(p, ["frame.number"], display_filter="udp.port == 3478 && !stun")
    assert [int(r[0]) for r in relay] == list(range(1, 81))
    uc = tshark_fields(p, ["frame.number"], display_filter="stun.attribute == 0x0025")
    assert uc == [["81"]]

    a = analyze(p)
    assert len(a.calls) == 1  # before: a second call 'external-direct' for the relay leg
    h = a.path_history
    assert list(h.kind) == ["relay", "direct"] and str(h.pair.iloc[0]) == "<NA>" and h.pair.iloc[1] == 0
    assert list(zip(h.first_frame, h.last_frame, h.packets, strict=True)) == [(1, 80, 80), (85, 204, 120)]
    assert h.reason.iloc[0] == "first media, on a path no ICE check covered"
    assert h.reason.iloc[1] == "nominated: USE-CANDIDATE (frame 81, answered frame 82)"
    (c,) = a.calls.itertuples()
    assert c.topology == "external-direct" and c.sessions == [0]
    assert c.moves.startswith("relay 192.168.1.10:50000 -> 198.51.100.20:3478 (198.51.100.20:3478 a relay)")
    from rich.console import Console

    from analyzer.report.console import print_verdict

    out = Console(width=400, record=True, file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115
    print_verdict(a, out)
    text = out.export_text()
    assert "Call 1" not in text and "  moved     relay 192.168.1.10:50000 -> 198.51.100.20:3478" in text
    a.to_html(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    verdict = page[page.index('class="verdict"') :].split("</table>", 1)[0]
    assert "relay 192.168.1.10:50000 -&gt; 198.51.100.20:3478" in verdict


def test_ladder_shows_the_nominations(turn_then_direct):
    from analyzer.report.ladder import messages

    m = messages(analyze(turn_then_direct))
    checks = m[m.label.str.startswith("check NOMINATION")]
    assert list(zip(checks.label, checks.frame, strict=True)) == [("check NOMINATION 1", 7), ("check NOMINATION 2", 91)]
