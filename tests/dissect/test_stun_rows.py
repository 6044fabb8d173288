"""The batch path for Binding messages gives exactly the rows and transactions of the one-by-one path."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pandas as pd
import pytest

from analyzer.capture import CaptureFile
from analyzer.capture.reader import iter_batches
from analyzer.dissect.control import Where
from analyzer.dissect.stage import DissectStage
from analyzer.dissect.stun import parse_stun
from analyzer.dissect.stun_rows import STUN_COLUMNS, binding_rows, message_row, tx_view
from tests.conftest import public_captures
from tests.dissect import stunbuild as sb

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(REPO.glob("captures/*/*.pcap"))


def _deferred(path: Path) -> list[tuple[Where, bytes]]:
    """The Binding messages the control dissector deferred, with where it found them."""
    with CaptureFile(str(path)) as cap:
        stage = DissectStage(0, emit_media=True)
        for batch in iter_batches(cap):
            stage.add(batch)
        return list(stage.control._deferred)


def _one_by_one(items):
    rows, views = [], []
    for w, data in items:
        msg = parse_stun(data)
        rows.append(message_row(w, msg))
        views.append(tx_view(msg))
    return rows, views


def _batch(items):
    views = []
    rows = binding_rows(items, lambda w, v: views.append(v))
    return rows, views


def _same(items):
    want_rows, want_views = _one_by_one(items)
    got_rows, got_views = _batch(items)
    assert len(got_rows) == len(want_rows)
    for got, want in zip(got_rows, want_rows, strict=True):
        if got != want:  # name the column, not just the tuple
            diff = {c: (g, x) for c, g, x in zip(STUN_COLUMNS, got, want, strict=True) if g != x}
            raise AssertionError(f"frame {want[1]}: {diff}")
    assert got_views == want_views


@pytest.mark.parametrize("path", SHIPPED + public_captures(), ids=lambda p: p.name)
def test_batch_equals_one_by_one_on_real_captures(path):
    items = _deferred(path)
    _same(items)


def test_shipped_captures_exercise_the_batch():
    # the shipped scenarios hold a few hundred Binding checks between them: the test above is not vacuous
    items = [it for p in SHIPPED for it in _deferred(p)]
    assert len(items) > 300
    rows = binding_rows(items)
    assert {r[STUN_COLUMNS.index("method")] for r in rows} == {"Binding"}
    fp, names = STUN_COLUMNS.index("fingerprint_ok"), STUN_COLUMNS.index("attributes")
    # aiortc signs every check and answer; its Binding requests to the STUN server carry nothing
    assert {(r[fp], r[names].endswith("FINGERPRINT")) for r in rows} == {(True, True), (None, False)}


def _where(i: int) -> Where:
    return Where(0, i + 1, i * 1000, "10.0.0.1", 5000, "10.0.0.2", 6000, "udp")


def _checks(n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        tid = rng.randbytes(12)
        if i % 2:
            attrs = [sb.xor_addr(0x0020, "192.0.2.7" if i % 4 == 1 else "2001:db8::7", 40000 + i, tid)]
            out.append(sb.message("Binding", "success", attrs, tid=tid))
        else:
            attrs = [
                sb.attr(0x0006, b"abcd:wxyz" if i % 3 else b"ab  :cd\0"),
                sb.attr(0x0024, struct.pack("!I", 0x6E7F1EFF + i)),
                sb.attr(0x802A if i % 4 else 0x8029, rng.randbytes(8)),
                sb.attr(0xC057, struct.pack("!HH", 1, 10)),
                sb.attr(0x0025, b"") if i % 6 == 0 else b"",
                sb.attr(0xC0DE, b"odd"),  # unknown, padded
                sb.attr(0x0008, rng.randbytes(20)),
            ]
            out.append(sb.message("Binding", "request", attrs, tid=tid))
    return out


def test_batch_equals_one_by_one_on_built_checks():
    rng = random.Random(5)
    msgs = _checks(200, rng)
    items = [(_where(i), m) for i, m in enumerate(msgs)]
    _same(items)
    rows = binding_rows(items)
    user = STUN_COLUMNS.index("ufrag_to")
    assert rows[0][user] == "ab" and rows[2][user] == "abcd"  # padding stripped, as one by one
    assert rows[1][STUN_COLUMNS.index("mapped_address")] == "192.0.2.7"
    assert rows[3][STUN_COLUMNS.index("mapped_address")] == "2001:db8::7"


def test_batch_equals_one_by_one_on_damaged_checks():
    """Flipped bytes, cut lengths and bad attributes: every message the batch walk cannot take
    whole goes to the full parser, and the rows still agree."""
    rng = random.Random(11)
    msgs = _checks(300, rng)
    damaged = []
    for m in msgs:
        b = bytearray(m)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(20, len(b))  # keep the header: they are still Binding messages
            b[pos] = rng.randrange(256)
        if rng.random() < 0.2:
            del b[rng.randrange(21, len(b)) :]
            b[2:4] = struct.pack("!H", len(b) - 20)
        damaged.append(bytes(b))
    items = [(_where(i), m) for i, m in enumerate(damaged)]
    _same(items)
    malformed = sum(1 for r in binding_rows(items) if r[STUN_COLUMNS.index("malformed")])
    assert 0 < malformed < len(items)  # both paths taken


@pytest.mark.parametrize("name", ["ntop_nDPI/teams.pcap", "ntop_nDPI/stun.pcap"])
def test_rows_helper_equals_itertuples(name):
    """`tables.rows` stands in for itertuples in the ICE stage: same fields, same values (Python ints
    where itertuples hands numpy ones)."""
    from analyzer import analyze
    from analyzer.dissect.tables import rows
    from tests.conftest import public_capture

    a = analyze(public_capture(name))
    for table in ("stun", "transactions", "allocations"):
        df = getattr(a, table)
        want = list(df.itertuples(index=False))
        got = list(rows(df))
        assert len(got) == len(want) > 0
        assert got[0]._fields == want[0]._fields
        for g, w in zip(got, want, strict=True):
            assert all((x is y) or (x == y) or (x != x and y != y) for x, y in zip(g, w, strict=True) if x is not pd.NA)
            assert [x is pd.NA for x in g] == [y is pd.NA for y in w]
