"""Vectorised arithmetic of the media stage, for the rows of many streams at once.

The rows of one chunk are sorted by stream (stable, so each stream keeps arrival order): a stream's rows
form one *segment*, and state carried over from earlier chunks enters at the segment's first row. Every
function here is a fixed number of numpy passes over the chunk, whatever the number of streams.

Interarrival jitter (RFC 3550 A.8) is the recurrence J_i = J_(i-1) + (|D_i| - J_(i-1)) / 16, i.e. the
first-order linear filter J_i = a * J_(i-1) + |D_i| / 16 with a = 15/16. `a8_jitter` evaluates it in
closed form: inside blocks of 1024 rows J_i = a^i * cumsum(x_j * a^-j) (a^-1023 is about 5e28, far from
overflow, and every term is positive so the sum keeps full relative precision); the carry from one block
into the next is a^(i+1) * J_end and a^1024 < 1e-28 makes the carry of the block before that vanish.
Segment boundaries are corrected the same way: the filter is run over the whole chunk and, in each
segment, a^(k+1) * (J0 - J_before) replaces what leaked in from the previous segment (k = row within
the segment; after 640 rows the factor is below 1e-17 and the correction is dropped).
"""

from __future__ import annotations

import numpy as np

A8 = 15.0 / 16.0
_BLOCK = 1024
_K = np.arange(_BLOCK, dtype=np.float64)
_UP = A8 ** -_K  # a^-k
_DOWN = A8 ** _K  # a^k
_NEXT = A8 ** (_K + 1.0)  # a^(k+1)
_TAIL = 640
_SEG_FACTOR = np.append(A8 ** (np.arange(_TAIL, dtype=np.float64) + 1.0), 0.0)
_OFF = np.int64(1) << np.int64(40)

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


def seg_starts(sid: np.ndarray) -> np.ndarray:
    """Index of the first row of each segment (rows sorted by stream id)."""
    if sid.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))


def seg_index(starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(segment number of each row, row number inside its segment)."""
    lens = np.diff(np.append(starts, n))
    seg = np.repeat(np.arange(starts.size, dtype=np.int64), lens)
    pos = np.arange(n, dtype=np.int64) - np.repeat(starts, lens)
    return seg, pos


def shifted(values: np.ndarray, starts: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """The previous row's value inside each segment; `carried` (one per segment) at the first row."""
    out = np.empty_like(values)
    out[1:] = values[:-1]
    out[starts] = carried
    return out


def seq_delta(seq: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Signed distance from prev to seq modulo 2^16 (-32768..32767): handles wrap-around."""
    return ((seq - prev + 32768) & 0xFFFF) - 32768


def signed32(d: np.ndarray) -> np.ndarray:
    """A difference of 32-bit timestamps as a signed value (-2^31..2^31-1)."""
    return ((d + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def running_max_before(v: np.ndarray, starts: np.ndarray, seg: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """Per row, the maximum of v over the earlier rows of its segment and the carried value (int64).
    Values inside one chunk must stay within +-2^39 of the segment's first value."""
    lens = np.diff(np.append(starts, v.size))
    base = np.repeat(v[starts], lens)
    off = seg * _OFF
    incl = np.maximum.accumulate(v - base + off) - off + base
    before = shifted(incl, starts, carried)
    return np.maximum(before, np.repeat(carried, lens))


def bridge_resets(ext: np.ndarray, reset: np.ndarray, starts: np.ndarray, seg: np.ndarray,
                  max_before: np.ndarray) -> np.ndarray:
    """Extended numbers with every restart of the numbering placed one above the highest number before it.

    `ext` bridges each reset as a step of one from the previous row, which lands inside the numbers
    already seen when that row was late. Each reset opens a run that keeps its internal steps, so the
    true highest number before reset k is first_(k-1) + span_(k-1) (span: the run's highest minus its
    first, >= 0), and the runs' true first numbers follow in closed form from the highest number before
    a segment's first reset (`max_before` there, computed from `ext`)."""
    is_start = np.zeros(ext.size, dtype=bool)
    is_start[starts] = True
    run_start = np.flatnonzero(reset | is_start)
    run_max = np.maximum.reduceat(ext, run_start)
    r = run_start[reset[run_start]]  # the runs a reset opens, in order; each segment's come together
    span = run_max[reset[run_start]] - ext[r]
    step = 1 + span
    cs = np.cumsum(step) - step  # exclusive prefix sum over all reset runs
    rseg = seg[r]
    first_of_seg = np.flatnonzero(np.concatenate(([True], rseg[1:] != rseg[:-1])))
    lens = np.diff(np.append(first_of_seg, r.size))
    true_first = (np.repeat(max_before[r[first_of_seg]] + 1 - cs[first_of_seg], lens) + cs)
    shift = np.zeros(run_start.size, dtype=np.int64)
    shift[reset[run_start]] = true_first - ext[r]
    return ext + np.repeat(shift, np.diff(np.append(run_start, ext.size)))


def a8_jitter(x: np.ndarray, starts: np.ndarray, pos: np.ndarray, j0: np.ndarray) -> np.ndarray:
    """J after each row of J_i = a*J_(i-1) + x_i/16, restarted at every segment from j0 (per segment)."""
    n = x.size
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    m = -(-n // _BLOCK) * _BLOCK
    xp = np.zeros(m, dtype=np.float64)
    xp[:n] = x
    xp *= 1.0 / 16.0
    blocks = xp.reshape(-1, _BLOCK)
    s = np.cumsum(blocks * _UP, axis=1)
    s *= _DOWN
    if s.shape[0] > 1:
        end = s[:, -1].copy()
        end[1:] += A8**_BLOCK * s[:-1, -1]
        s[1:] += end[:-1, None] * _NEXT
    y = s.ravel()[:n]
    before = np.zeros(starts.size, dtype=np.float64)
    inner = starts > 0
    before[inner] = y[starts[inner] - 1]
    corr = j0 - before
    if np.any(corr != 0):
        lens = np.diff(np.append(starts, n))
        y = y + np.repeat(corr, lens) * _SEG_FACTOR[np.minimum(pos, _TAIL)]
    return y


def reduce_seg(op: np.ufunc, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """op.reduceat over segments (every segment has at least one row)."""
    return op.reduceat(values, starts) if values.size else values[:0]
