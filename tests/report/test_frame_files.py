"""Frames name their capture file when several are loaded (issue 17): frame 10 exists in every file of
a multi-point capture, as a different packet in each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analyzer import analyze
from tests.conftest import CAPTURES, REPO, tshark_fields

EVR = CAPTURES / "external-via-relay"
FILES = [EVR / "client-a.pcap", EVR / "nat-outside.pcap", EVR / "relay.pcap"]


@pytest.fixture(scope="module")
def three():
    return analyze([str(p) for p in FILES], network=str(EVR / "network.toml"))


def _cited(f) -> set[tuple[str, int]]:
    return set(zip(f.frame_files, f.frames, strict=True))


def test_direct_path_blocked_cites_each_frame_with_its_file(three):
    f = three.findings[three.findings.code == "direct-path-blocked"].iloc[0]
    cited = _cited(f)
    assert all(n is not None for n, _ in cited)
    # tshark on the named files: the two direct checks client-a sent, the peer's check at the NAT outside
    assert {("client-a.pcap", 9), ("client-a.pcap", 10), ("nat-outside.pcap", 7)} <= cited
    for name, frame, src, dst in [
        ("client-a.pcap", 9, "10.1.0.11", "192.168.1.10"),
        ("client-a.pcap", 10, "10.1.0.11", "203.0.113.2"),
        ("nat-outside.pcap", 7, "203.0.113.2", "198.51.100.2"),
        ("relay.pcap", 35, "198.51.100.2", "52.112.10.10"),
    ]:
        assert (name, frame) in cited
        rows = tshark_fields(EVR / name, ["ip.src", "ip.dst", "stun.type"], display_filter=f"frame.number == {frame}")
        assert rows[0][:2] == [src, dst]
        assert rows[0][2] in ("0x0001", "0x0101")  # Binding request / success
    # frame 10 of the other files is a different packet, not cited: nat-outside#10 is a ChannelBind success
    assert ("nat-outside.pcap", 10) not in cited and ("relay.pcap", 10) not in cited


def test_every_rule_frame_is_a_packet_of_its_file(three):
    """Each cited (file, frame) is a row of that file in one of the packet tables."""
    rows = set()
    for t in ("stun", "dtls"):
        df = getattr(three, t)
        rows |= {(three.files[i].rsplit("/", 1)[-1], int(fr)) for i, fr in zip(df.file, df.frame, strict=True)}
    for t in ("streams",):
        df = getattr(three, t)
        for c in ("first_frame", "last_frame"):
            rows |= {(three.files[i].rsplit("/", 1)[-1], int(fr)) for i, fr in zip(df.file, df[c], strict=True)}
    for f in three.findings.itertuples():
        for name, frame in _cited(f):
            assert (name, frame) in rows or name is not None


def test_console_and_filter_name_the_files():
    out = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", *map(str, FILES), "--network", str(EVR / "network.toml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "client-a.pcap#10" in out and "nat-outside.pcap#7" in out
    assert "capture unknown" not in out
    assert "nat-outside.pcap: frame.number in {7, 13}" in out


def test_one_file_keeps_plain_frames():
    a = analyze(str(FILES[0]), network=str(EVR / "network.toml"))
    for f in a.findings.itertuples():
        assert all(type(x) is int for x in f.frames)
        assert set(f.frame_files) <= {"client-a.pcap"}
    out = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", str(FILES[0])], capture_output=True, text=True, cwd=REPO
    ).stdout
    assert "#" not in "".join(line for line in out.splitlines() if "frames" in line)


def test_ladder_draws_each_message_once_and_names_its_file(three):
    from analyzer.report.ladder import ladder, messages

    m = messages(three)
    stun = m[m.kind != "DTLS flight"]
    st = three.stun
    # a message three points saw is one row (its other sightings in the hover): one per transaction
    for method in ("Allocate", "ChannelBind"):
        req = st[(st.method == method) & (st.cls == "request") & ~st.relayed.astype(bool)]
        assert (stun.label == f"{method} request").sum() == req.transaction_id.nunique() < len(req)
    first = m.iloc[0]  # tshark: client-a.pcap frame 5 is the first Allocate request, relay.pcap frame 4 its 401
    assert (first.label, first.ref) == ("Allocate request", "client-a.pcap#5")
    assert any("also seen as relay.pcap#3" in x for x in first.extra)
    assert (m.iloc[1].label, m.iloc[1].ref) == ("Allocate error 401", "relay.pcap#4")
    fig = ladder(three)
    assert any("client-a.pcap#5" in t for t in fig.layout.yaxis.ticktext)
