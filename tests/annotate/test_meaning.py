"""What each comment says is what Wireshark dissects on that frame of the original capture: a check is a
Binding request between the pair's ends, its answer a success response coming back, a nomination
carries USE-CANDIDATE, a TURN allocation is an Allocate success response with that relayed address, a
DTLS ClientHello is one, completion is an epoch-1 record, first media is the first RTP of that SSRC.
A finding's comment lands only on frames whose file the analysis can tell."""

from __future__ import annotations

import re
from pathlib import Path

from analyzer.annotate import annotate_analysis, output_paths
from analyzer.api import analyze
from tests.annotate import tshark as T
from tests.conftest import CAPTURES

FIELDS = [
    "frame.number",
    "ip.src",
    "udp.srcport",
    "ip.dst",
    "udp.dstport",
    "stun.type",
    "stun.att.type",
    "stun.channel",
    "stun.att.ipv4",
    "stun.att.port",
    "dtls.handshake.type",
    "dtls.record.epoch",
    "rtp.ssrc",
]
PAIR = re.compile(r"pair ([\d.]+):(\d+) -> ([\d.]+):(\d+)")


def _dissect(path: Path) -> dict[int, dict[str, list[str]]]:
    rows = T.run(path, FIELDS, extra=["-o", "rtp.heuristic_rtp:TRUE"])
    return {int(r[0]): {k: (v.split(T.SEP) if v else []) for k, v in zip(FIELDS[1:], r[1:], strict=True)} for r in rows}


def _annotated(tmp: Path, scenario: str) -> tuple[list[Path], list[dict[int, list[str]]], list[list[str]]]:
    folder = CAPTURES / scenario
    files = sorted(folder.glob("*.pcap"))
    net = folder / "network.toml"
    a = analyze([str(f) for f in files], network=str(net) if net.exists() else None)
    outs = [Path(o) for o in output_paths([str(f) for f in files], str(tmp))]
    annotate_analysis(a, [str(o) for o in outs])
    return files, [T.comments(o) for o in outs], [T.capture_comments(o) for o in outs]


def _check(src: Path, comments: dict[int, list[str]]) -> set[str]:
    d = _dissect(src)
    kinds = set()
    for frame, texts in comments.items():
        f = d[frame]
        for text in texts:
            kind = text.split(",")[0].split(" (")[0]
            kinds.add(kind)
            m = PAIR.search(text)
            relayed = "through TURN" in text
            if kind == "ICE check":
                assert f["stun.channel"] if relayed else f["stun.type"] == ["0x0001"], (frame, text)
                if not relayed:
                    assert (f["ip.src"][0], f["udp.srcport"][0], f["ip.dst"][0], f["udp.dstport"][0]) == m.groups()
            elif kind == "ICE check answered":
                assert f["stun.channel"] if relayed else f["stun.type"] == ["0x0101"], (frame, text)
                if not relayed:
                    assert (f["ip.dst"][0], f["udp.dstport"][0], f["ip.src"][0], f["udp.srcport"][0]) == m.groups()
            elif kind == "ICE nomination":
                assert f["stun.channel"] if relayed else "0x0025" in f["stun.att.type"], (frame, text)
            elif kind.startswith("TURN allocation"):
                addr, port = re.search(r"TURN allocation ([\d.]+):(\d+)", text).groups()
                assert f["stun.type"] == ["0x0103"] and addr == f["stun.att.ipv4"][0] and port == f["stun.att.port"][0]
            elif kind == "DTLS ClientHello":
                assert "1" in f["dtls.handshake.type"] or f["stun.channel"], (frame, text)
            elif kind == "DTLS handshake complete":
                assert "1" in f["dtls.record.epoch"] or f["stun.channel"], (frame, text)
            elif kind == "selected pair: first media":
                ssrc = re.search(r"SSRC 0x([0-9A-F]+)", text).group(1).lower()
                if not relayed:
                    firsts = [n for n, g in d.items() if f"0x{ssrc}" in g["rtp.ssrc"]]
                    assert firsts and firsts[0] == frame, (frame, text)
            elif kind.startswith("finding"):
                pass
            else:
                raise AssertionError(f"a comment of no known kind: {text}")
    return kinds


def test_direct_call_comments_say_what_the_frames_are(tmp_path: Path) -> None:
    files, comments, _ = _annotated(tmp_path, "loopback-call")
    kinds = _check(files[0], comments[0])
    assert kinds == {
        "ICE check",
        "ICE check answered",
        "ICE nomination",
        "DTLS ClientHello",
        "DTLS handshake complete",
        "selected pair: first media",
    }


def test_relayed_call_and_its_finding_on_the_one_file_it_comes_from(tmp_path: Path) -> None:
    files, comments, heads = _annotated(tmp_path, "relay-hairpin")
    for src, c in zip(files, comments, strict=True):
        _check(src, c)
    finding = "finding relay-hairpin (warning): Media hairpins through the relay between two customer-network clients"
    where = [(src.name, f) for src, c in zip(files, comments, strict=True) for f, t in c.items() if finding in t]
    assert where == [("client-a.pcap", 9), ("client-a.pcap", 10)]  # the selected pair's check and answer
    assert not any(heads)
    assert {"TURN allocation 52.112.10.10:49195 (relayed)"} <= {t.split(",")[0] for t in comments[0][6]}


def test_a_finding_frame_of_unknown_file_goes_on_every_section_header(tmp_path: Path) -> None:
    """ice-failed: relay-unreachable cites frames 4, 6, 8, 10, Allocate requests that exist as frame
    numbers in both captures; the rule names client-a.pcap (issue 17), so they go on that file only."""
    files, comments, heads = _annotated(tmp_path, "ice-failed")
    text = "finding relay-unreachable (error): TURN allocations unanswered or refused"
    assert not any(x.startswith(text) for h in heads for x in h)
    where = sorted(
        (src.name, f) for src, c in zip(files, comments, strict=True) for f, t in c.items() if any(text in x for x in t)
    )
    assert where == [("client-a.pcap", 4), ("client-a.pcap", 6), ("client-a.pcap", 8), ("client-a.pcap", 10)]
