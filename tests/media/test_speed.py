"""Speed and memory of the media stage on a million RTP rows (numpy-built, so the capture layer's own cost
is not in the measurement). The bound is loose: about 0.15 s on the development machine, the budget is
0.3 s (half the capture layer's 0.6 s CPU per million packets)."""

from __future__ import annotations

import time

import numpy as np

from analyzer.dissect import media_rows
from analyzer.media import MediaStage

N, BATCH, PAYLOAD = 1_000_000, 36_000, 20


def batches():
    rng = np.random.default_rng(1)
    streams = np.array([0x11, 0x22, 0x33, 0x44], dtype=np.int64)
    step = np.array([960, 960, 3000, 3000], dtype=np.int64)
    kind = rng.choice(4, size=N, p=[0.1, 0.1, 0.4, 0.4])
    seq = np.zeros(N, dtype=np.int64)
    for k in range(4):
        m = kind == k
        seq[m] = np.arange(int(m.sum()))
    keep = rng.random(N) > 0.01  # 1 % loss
    ts_ns = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(100_000, 2_400_000, N))
    size = 12 + PAYLOAD
    buf = np.zeros(N * size + 16, dtype=np.uint8)
    off = np.arange(N, dtype=np.int64) * size
    buf[off] = 0x80
    buf[off + 1] = np.where(kind < 2, 111, 96)
    for i, (v, nbytes) in enumerate(((seq, 2), (seq * step[kind], 4), (streams[kind], 4))):
        start = (2, 4, 8)[i]
        for b in range(nbytes):
            buf[off + start + b] = (v >> (8 * (nbytes - 1 - b))) & 0xFF
    addr = np.full(N, 0xFFFF0A010005, dtype=np.uint64), np.full(N, 0xFFFF34710409, dtype=np.uint64)
    zero = np.zeros(N, dtype=np.uint64)
    sport = np.where(kind % 2 == 0, 50010, 3479).astype(np.int64)
    dport = np.where(kind % 2 == 0, 3479, 50010).astype(np.int64)
    media = (zero, addr[0], zero, addr[1], sport, dport)
    idx = np.flatnonzero(keep)
    for s in range(0, idx.size, BATCH):
        k = idx[s : s + BATCH]
        mb = media_rows.build(0, buf, off[k], np.full(k.size, size, dtype=np.int64), k + 1, ts_ns[k],
                              tuple(c[k] for c in media), tuple(c[k] for c in media), np.full(k.size, 17),
                              np.full(k.size, size), np.full(k.size, 46), np.zeros(k.size, dtype=bool),
                              np.zeros(k.size, dtype=np.int32))
        yield mb


def test_a_million_rows_in_well_under_a_second():
    mbs = list(batches())
    assert sum(len(m) for m in mbs) > 980_000
    st = MediaStage(0)
    t0 = time.process_time()
    for mb in mbs:
        st.add(mb)
    res = st.finish()
    cpu = time.process_time() - t0
    assert cpu < 1.0, cpu
    assert st.state.n == 4 and not st.pending
    assert sum(r["packets"] for r in res.streams) == sum(len(m) for m in mbs)
    assert all(0.8 < r["loss_pct"] < 1.2 for r in res.streams)
    assert {r["clock_rate"] for r in res.streams} == {48000, 90000}
