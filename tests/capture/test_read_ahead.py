"""Reading ahead on a second thread gives the same batches, and never outlives the generator."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from analyzer.bench import write_capture
from analyzer.capture import CaptureFile, iter_batches, reader


@pytest.fixture(scope="module")
def several_chunks(tmp_path_factory):
    path = tmp_path_factory.mktemp("ahead") / "bench.pcap"
    info = write_capture(str(path), 60_000)  # ~55 MB: four 16 MB chunks
    assert info["bytes"] > 3 * (16 << 20)
    return path


def _frames(path, ahead):
    with CaptureFile(str(path)) as cap:
        out = [(b.frame.copy(), b.ts_ns.copy(), reader.flow_keys(b).copy()) for b in iter_batches(cap, ahead=ahead)]
        return out, dict(cap.damage.counts)


def _threads():
    return [t for t in threading.enumerate() if t.name == "callflow-read-ahead"]


def test_same_batches_with_and_without_read_ahead(several_chunks):
    serial, dmg_serial = _frames(several_chunks, False)
    ahead, dmg_ahead = _frames(several_chunks, True)
    assert len(serial) == len(ahead) >= 4
    for (f1, t1, k1), (f2, t2, k2) in zip(serial, ahead, strict=True):
        assert np.array_equal(f1, f2) and np.array_equal(t1, t2) and np.array_equal(k1, k2)
    assert sum(f.size for f, _, _ in ahead) == 60_000
    assert dmg_serial == dmg_ahead
    assert not _threads()


def test_stopping_early_joins_the_thread(several_chunks):
    with CaptureFile(str(several_chunks)) as cap:
        gen = iter_batches(cap, ahead=True)
        first = next(gen)
        assert first.frame[0] == 1
        gen.close()
        assert not _threads()


def test_a_failure_in_the_thread_reaches_the_caller(several_chunks, monkeypatch):
    calls = {"n": 0}
    real = reader.decode

    def failing(chunk):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("decoder broke on chunk 2")
        return real(chunk)

    monkeypatch.setattr(reader, "decode", failing)
    seen = 0
    with CaptureFile(str(several_chunks)) as cap, pytest.raises(RuntimeError, match="chunk 2"):
        for _ in iter_batches(cap, ahead=True):
            seen += 1
    assert seen == 1
    assert not _threads()


def test_progress_is_reported_on_the_callers_thread(several_chunks):
    where = set()
    with CaptureFile(str(several_chunks)) as cap:
        size = cap.size
        done = []

        def progress(d, total):
            where.add(threading.current_thread().name)
            done.append((d, total))

        for _ in iter_batches(cap, progress, ahead=True):
            pass
    assert where == {threading.current_thread().name}
    assert done[-1] == (size, size)
    assert [d for d, _ in done] == sorted(d for d, _ in done)


def _mapped_rss_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and ":" in head[3]:  # a mapping's first line
                inside = line.rstrip().endswith(str(path))
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_pages_are_released_behind_the_caller_not_the_thread(several_chunks, tmp_path):
    """The caller still reads a batch's bytes while the thread walks the next chunk: pages dropped too
    early come back on the caller's reads and stay. Only the chunks in flight may be resident."""
    if not Path("/proc/self/smaps").exists():
        pytest.skip("needs Linux /proc")
    own = tmp_path / "own.pcap"  # a path no other test has mapped
    shutil.copyfile(several_chunks, own)
    size = own.stat().st_size
    peak = 0
    with CaptureFile(str(own)) as cap:
        for b in iter_batches(cap, ahead=True):
            time.sleep(0.1)  # a slow caller: the thread is well into the next chunk before we read this one
            end = int((b.payload_off + b.payload_len).max())
            _ = int(b.buf[b.payload_off.min() : end].sum())  # touch every byte of the chunk, as dissectors may
            peak = max(peak, _mapped_rss_kb(own))
    assert 0 < peak * 1024 < 0.8 * size  # bounded by the chunks in flight, not the file


def test_a_failing_progress_callback_stops_the_thread_before_the_file_closes(several_chunks):
    alive_at_close = []
    calls = {"n": 0}

    def progress(done, total):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C landing in the callback, inside the generator

    with pytest.raises(KeyboardInterrupt), CaptureFile(str(several_chunks)) as cap:
        real_close = cap.close

        def close():
            alive_at_close.append(bool(_threads()))
            real_close()

        cap.close = close
        for _ in iter_batches(cap, progress, ahead=True):
            pass
    assert alive_at_close == [False]
