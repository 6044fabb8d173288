"""Issue 21 "Many flows": a perimeter capture of one call beside thousands of one-packet flows (STUN
Binding requests without USERNAME, DNS queries, TCP SYNs; analyzer/bench_flows.py writes it).

Not timed: the work and memory are asserted through structure. Every table grows by what the noise
holds and no more (one flow row per 5-tuple, one STUN row per noise request, nothing in the ICE and
media tables), and the call's verdict and findings are those of the call without the noise.
"""

from __future__ import annotations

import pytest

from analyzer.api import analyze
from analyzer.bench_flows import CALL, write_flows_capture
from analyzer.report import common as C
from analyzer.report import export

PROFILE = str(CALL / "network.toml")
CALL_TABLES = ("candidates", "pairs", "sessions", "allocations", "streams", "calls")


def _analysis(tmp_path, n: int):
    path = tmp_path / f"flows-{n}.pcap"
    info = write_flows_capture(str(path), n, noise=True)
    return analyze(str(path), network=PROFILE, progress=None), info


@pytest.fixture(scope="module")
def base():
    return analyze(str(CALL / "client-a.pcap"), network=PROFILE, progress=None)


def _verdict(a, frames=None):
    """Calls and findings; with `frames` (the call's frame k is frames[k - 1]), the findings' frames
    as the call's own frame numbers."""
    back = {f: k for k, f in enumerate(frames or [], start=1)}
    calls = a.calls[["call", "topology", "path", "expected", "observed"]].astype(str).to_dict("records")
    findings = sorted(
        (str(r.call), r.code, [back.get(int(x), int(x)) if frames else int(x) for x in r.frames])
        for r in a.findings.itertuples()
    )
    return calls, findings


@pytest.mark.parametrize("n", [5_000, 20_000])
def test_noise_adds_one_row_per_flow_and_leaves_the_verdict(tmp_path, base, n):
    a, info = _analysis(tmp_path, n)
    assert info["packets"] == info["call_packets"] + n
    # one flow row per distinct 5-tuple, nothing merged and nothing repeated
    assert len(a.flows) == len(base.flows) + n
    noise = a.flows[a.flows.dst.astype(str).str.startswith("198.18.")]
    assert len(noise) == n
    counts = noise.protocols.value_counts().to_dict()
    thirds = {"stun": len(range(0, n, 3)), "dns": len(range(1, n, 3)), "other": len(range(2, n, 3))}
    assert counts == thirds
    assert (noise.packets == 1).all()
    assert set(noise.transport.astype(str)) == {"udp", "tcp"}
    # the STUN table holds one row per noise request; the ICE and media tables hold only the call's rows
    assert len(a.stun) == len(base.stun) + thirds["stun"]
    for name in CALL_TABLES:
        assert len(getattr(a, name)) == len(getattr(base, name)), name
    assert _verdict(a, info["call_frames"]) == _verdict(base)


def test_figures_draw_the_calls_messages_only(tmp_path, base):
    """Beyond MAX_FIGURE_MESSAGES the figures draw the messages between the call's addresses: the same
    messages as without the noise."""
    n = 3 * (C.MAX_FIGURE_MESSAGES + 1)
    a, _ = _analysis(tmp_path, n)
    drawn = C.stun_events(a)
    assert len(a.stun) > C.MAX_FIGURE_MESSAGES
    assert list(drawn.frame.map(int)) != []
    mine = C.stun_events(base)
    assert len(drawn) == len(mine)
    assert sorted(drawn.transaction_id) == sorted(mine.transaction_id)


def test_few_messages_are_all_drawn(tmp_path):
    """Below the limit nothing is left out of the figures, noise included."""
    a, _ = _analysis(tmp_path, 300)
    assert len(C.stun_events(a)) == len(a.stun)


def test_json_encoded_in_chunks_is_the_whole_document(tmp_path, monkeypatch):
    """to_json encodes a few thousand rows at a time; the text is json.dumps of the whole document."""
    import json

    a, _ = _analysis(tmp_path, 40)
    monkeypatch.setattr(export, "CHUNK_ROWS", 7)
    whole = json.dumps(export.to_document(a), ensure_ascii=False, allow_nan=False)
    assert a.to_json() == whole
    assert len(json.loads(whole)["tables"]["flows"]) == len(a.flows) > 7
