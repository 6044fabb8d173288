"""TCP reassembly: in order, out of order, retransmitted, overlapping, wrapped and lost segments."""

from __future__ import annotations

from analyzer.capture.tcp import MAX_PENDING, SYN, TcpDirection


def joined(out):
    return b"".join(d.data for d in out)


def test_in_order_after_syn():
    d = TcpDirection()
    assert d.feed(1, 1000, SYN, b"") == []
    out = d.feed(2, 1001, 0, b"hello ") + d.feed(3, 1007, 0, b"world")
    assert joined(out) == b"hello world"
    assert [o.frame for o in out] == [2, 3]


def test_out_of_order_is_held_until_the_hole_fills_and_tagged_with_the_completing_frame():
    d = TcpDirection()
    d.feed(1, 0, SYN, b"")
    assert d.feed(2, 6, 0, b"world") == []
    out = d.feed(3, 1, 0, b"hello")
    assert joined(out) == b"helloworld"
    assert [o.frame for o in out] == [3, 2]
    assert d.out_of_order == 1


def test_retransmission_and_overlap():
    d = TcpDirection()
    d.feed(1, 0, SYN, b"")
    d.feed(2, 1, 0, b"abcd")
    assert d.feed(3, 1, 0, b"abcd") == []
    assert d.retransmitted == 1
    out = d.feed(4, 3, 0, b"cdef")  # overlaps two old bytes, brings two new ones
    assert joined(out) == b"ef"


def test_sequence_wrap():
    d = TcpDirection()
    d.feed(1, 2**32 - 3, SYN, b"")
    out = d.feed(2, 2**32 - 2, 0, b"xy") + d.feed(3, 0, 0, b"z!")
    assert joined(out) == b"xyz!"


def test_mid_stream_start_without_syn():
    d = TcpDirection()
    assert joined(d.feed(7, 5000, 0, b"late")) == b"late"


def test_a_hole_that_never_fills_is_skipped_and_counted():
    d = TcpDirection()
    d.feed(1, 0, SYN, b"")
    d.feed(2, 1, 0, b"a")
    chunk = b"x" * 65536
    out = []
    seq = 1 + 1 + 100  # 100 bytes lost
    for i in range(MAX_PENDING // len(chunk) + 1):
        out += d.feed(10 + i, seq + i * len(chunk), 0, chunk)
    assert d.gaps == 1 and d.gap_bytes == 100
    assert len(joined(out)) == (MAX_PENDING // len(chunk) + 1) * len(chunk)
