"""The annotated copy read back by tshark: exactly the comments the analysis words, on exactly its frames;
every packet byte and timestamp as in the input; the findings' filters select exactly their frames."""

from __future__ import annotations

import gzip
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from analyzer.annotate import annotate_analysis, output_paths
from analyzer.annotate.notes import build_notes, per_file
from analyzer.api import analyze
from tests.annotate import tshark as T
from tests.conftest import CAPTURES, public_capture, public_captures

SCENARIOS = sorted(d for d in CAPTURES.iterdir() if d.is_dir() and list(d.glob("*.pcap")))


def _roundtrip(files: list[Path], tmp: Path, network: Path | None = None):
    a = analyze([str(f) for f in files], network=str(network) if network and network.exists() else None)
    outs = output_paths([str(f) for f in files], str(tmp / "out"))
    reports = annotate_analysis(a, outs)
    frames, heads = per_file(build_notes(a), len(files))
    with ThreadPoolExecutor(4) as pool:  # tshark starts slowly: read the inputs and copies side by side
        read = list(pool.map(T.frames, [*files, *map(Path, outs)]))
    for i, (src, out) in enumerate(zip(files, outs, strict=True)):
        out = Path(out)
        (times_in, had), (times_out, got) = read[i], read[len(files) + i]
        expected = {f: had.get(f, []) + frames[i].get(f, []) for f in set(had) | set(frames[i])}
        assert got == expected, src  # the capture's own comments first, then ours, one option each
        assert T.capture_comments(out) == T.capture_comments(src) + heads[i]
        assert times_out == times_in
        assert T.records(out) == T.records(src)
        assert reports[i].records == len(times_in)
        assert not reports[i].unplaced and not reports[i].dropped_bytes
    return a, [Path(o) for o in outs], frames


def _check_filters(a, files: list[Path]) -> None:
    """A frame filter selects exactly the finding's frames in the file they belong to (each part of a
    filter split by file in its own file); a conversation filter exactly the packets of that conversation,
    as the flows table counts them."""
    names = {p.name: p for p in files}
    for r in a.findings.itertuples(index=False):
        if not r.display_filter:
            assert not r.frames, r.code  # a finding with frames always gets a filter
            continue
        if r.frames:
            if pd.notna(r.frames_file):
                assert T.selected(files[int(r.frames_file)], r.display_filter) == sorted(r.frames), r.code
                continue
            seen = []
            for part in r.display_filter.split("; "):
                name, _, flt = part.partition(": ")
                if name == "capture unknown":
                    seen += [int(x) for x in flt[flt.index("{") + 1 : -1].split(", ")]
                    continue
                got = T.selected(names[name], flt)
                assert got and set(got) <= set(r.frames), (r.code, part)
                seen += got
            assert sorted(seen) == sorted(r.frames), r.code
        else:
            assert len(files) == 1
            f = a.flows
            src, sport, dst, dport = _conversation(r.display_filter)
            mine = f[
                ((f.src == src) & (f.sport == sport) & (f.dst == dst) & (f.dport == dport))
                | ((f.src == dst) & (f.sport == dport) & (f.dst == src) & (f.dport == sport))
            ]
            assert len(T.selected(files[0], r.display_filter)) == int(mine.packets.sum()) > 0, r.code


def _conversation(flt: str) -> tuple[str, int, str, int]:
    addrs = re.findall(r"addr == ([0-9a-fA-F:.]+)", flt)
    ports = [int(p) for p in re.findall(r"port == (\d+)", flt)]
    return addrs[0], ports[0], addrs[-1], ports[-1]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[d.name for d in SCENARIOS])
def test_scenarios(scenario: Path, tmp_path: Path) -> None:
    files = sorted(scenario.glob("*.pcap"))
    a, _outs, frames = _roundtrip(files, tmp_path, scenario / "network.toml")
    assert any(frames), "a call's evidence is always worded somewhere"
    _check_filters(a, files)


@pytest.mark.parametrize("path", public_captures(), ids=lambda p: p.name)
def test_shared_captures(path: Path, tmp_path: Path) -> None:
    a, _outs, _ = _roundtrip([path], tmp_path)
    _check_filters(a, [path])


def test_gzip_input_gives_the_same_copy(tmp_path: Path) -> None:
    """A gzip-compressed capture (pcap and pcapng) is annotated as its plain self, byte for byte."""
    for src in (CAPTURES / "relay-hairpin" / "client-a.pcap", public_capture("ntop_nDPI/stun_dtls_rtp.pcapng")):
        gz = tmp_path / (src.name + ".gz")
        with open(src, "rb") as f, gzip.open(gz, "wb") as g:
            shutil.copyfileobj(f, g)
        plain = annotate_analysis(analyze(str(src)), [str(tmp_path / "plain.pcapng")])[0]
        zipped = annotate_analysis(analyze(str(gz)), [str(tmp_path / "zipped.pcapng")])[0]
        assert plain.comments > 0 and zipped.comments == plain.comments
        assert Path(zipped.output).read_bytes() == Path(plain.output).read_bytes()
        assert T.frames(Path(zipped.output))[0] == T.frames(src)[0]
