"""The fleet on a real LocalCluster (2 worker processes): the dataset's rows are analyze()'s rows, capture by
capture; damaged, foreign and duplicate files are recorded, not fatal; a rerun adds nothing; a worker killed
mid-run loses no capture."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analyzer import analyze
from analyzer.fleet import TABLES, analyze_many, read_table
from analyzer.fleet.dataset import files as dataset_files
from analyzer.fleet.report import fleet_report
from analyzer.report.export import records
from tests.conftest import CAPTURES

distributed = pytest.importorskip("distributed")

PROFILE = str(CAPTURES / "intranet-direct" / "network.toml")  # the same for every scenario
ADDED = ("capture", "capture_sha256", "file_name", "frame_refs")


# one capture point from each kind of call (relayed, hairpinned, TCP, failed, VPN, group, PSTN, direct):
# the machine is shared, so not all 41
FLEET = [
    "relay-hairpin/client-a.pcap",
    "tcp-fallback/relay.pcap",
    "ice-failed/client-a.pcap",
    "media-over-vpn-internal/tunnel-v.pcap",
    "group-call/nat-outside.pcap",
    "external-direct/client-x.pcap",
    "pstn-trunk/pstn.pcap",
    "vpn-internal-via-relay/client-v.pcap",
]


def _one_per_scenario() -> list:
    return [CAPTURES / rel for rel in FLEET]


async def _die() -> None:
    """Runs on the worker's event loop beside the task it is executing: the process ends mid-task."""
    os._exit(1)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory):
    """Every scenario's first capture under a new name in nested folders, a truncated copy, a text file named
    .pcap, a README that is no capture, and one capture a second time under another name."""
    root = tmp_path_factory.mktemp("fleet")
    sources = {}
    for i, src in enumerate(_one_per_scenario()):
        dest = root / f"site{i % 3}" / f"ticket-{i:03d}-{src.parent.name}.pcap"
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dest)
        sources[str(dest)] = src
    data = (CAPTURES / "group-call" / "media.pcap").read_bytes()
    (root / "site0" / "cut-short.pcap").write_bytes(data[: len(data) - 37])  # the last record loses 37 bytes
    (root / "site1" / "notes.pcap").write_text("hello, this is not a capture\n")
    (root / "site1" / "README.txt").write_text("no capture either, and not named like one\n")
    first = next(iter(sources))
    twin = root / "site2" / "same-again.pcap"
    shutil.copyfile(first, twin)
    return root, sources, first, str(twin)


@pytest.fixture(scope="module")
def built(client, fleet_dir, tmp_path_factory):
    root, _sources, _first, _twin = fleet_dir
    out = tmp_path_factory.mktemp("ds") / "fleet"
    fleet = analyze_many([root], out=out, network=PROFILE, client=client)
    return out, fleet


def _canon(df, added=ADDED):
    return records(df.drop(columns=[c for c in added if c in df.columns]))


def _by_path(fleet):
    return {row.capture: row for row in fleet.captures.itertuples()}


def test_rows_equal_analyze_capture_by_capture(built, fleet_dir):
    out, fleet = built
    _root, sources, *_ = fleet_dir
    rows = _by_path(fleet)
    assert set(sources) <= set(rows)
    for path in sources:
        row = rows[path]
        assert row.status == "ok" and pd.isna(row.error)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        assert row.capture_sha256 == digest
        a = analyze(path, network=PROFILE)
        name = os.path.basename(path)
        for table in TABLES:
            got = read_table(out, table, keys={digest})
            want = getattr(a, table)
            assert len(got) == len(want), (path, table)
            if not len(want):
                continue
            assert set(got.capture) == {path} and set(got.capture_sha256) == {digest}
            assert set(got.file_name) == {name}
            assert _canon(got) == _canon(want), (path, table)
        findings = read_table(out, "findings", keys={digest})
        for refs, frames in zip(findings.get("frame_refs", []), findings.get("frames", []), strict=True):
            assert refs == [f"{name}:{f}" for f in frames]
        assert row.calls == len(a.calls) and row.findings == len(a.findings)


def test_damaged_foreign_and_duplicate_files_are_recorded(built, fleet_dir):
    out, fleet = built
    root, sources, first, twin = fleet_dir
    rows = _by_path(fleet)
    assert len(rows) == len(sources) + 2  # + the damaged and the foreign file; the twin and README are not rows
    cut = rows[str(root / "site0" / "cut-short.pcap")]
    whole = analyze(CAPTURES / "group-call" / "media.pcap")
    assert cut.status == "damaged" and cut.damaged == 1 and cut.damage == '{"truncated record": 1}'
    assert cut.packets == whole.captures[0].packets - 1
    foreign = rows[str(root / "site1" / "notes.pcap")]
    assert (
        foreign.status == "failed"
        and foreign.capture_sha256 == hashlib.sha256(b"hello, this is not a capture\n").hexdigest()
    )
    assert foreign.error.startswith(f"{root / 'site1' / 'notes.pcap'}: not a pcap or pcapng capture")
    assert "\n" not in foreign.error
    assert not any(p.endswith("README.txt") for p in rows)
    assert twin not in rows and list(rows[first].also) == [twin]
    # the failed capture wrote no table rows; the damaged one did
    assert not any(p.parent.name == foreign.capture_sha256 for t in TABLES for p in dataset_files(out, t))
    assert len(read_table(out, "streams", keys={cut.capture_sha256})) > 0


def test_rerun_adds_nothing_and_a_new_capture_only_itself(built, fleet_dir, client, tmp_path):
    out, fleet = built
    root, *_ = fleet_dir
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = analyze_many([root], out=out, network=PROFILE, client=client)
    assert len(again.run) == 0 and len(again.skipped) == len(fleet.run)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    extra = tmp_path / "new.pcap"
    shutil.copyfile(CAPTURES / "relay-hairpin" / "relay.pcap", extra)  # not in the fleet yet
    more = analyze_many([root, extra], out=out, network=PROFILE, client=client)
    assert list(more.run.capture) == [str(extra)] and len(more.skipped) == len(fleet.run)
    assert len(more.captures) == len(fleet.run) + 1


def test_a_lost_captures_mark_is_analysed_again(built, fleet_dir, client, tmp_path):
    out, fleet = built
    copy = tmp_path / "fleet"
    shutil.copytree(out, copy)
    victim = fleet.run[fleet.run.status == "ok"].iloc[0]
    calls_before = read_table(copy, "calls", keys={victim.capture_sha256})
    (copy / "captures" / victim.capture_sha256 / "part-0.parquet").unlink()  # as if killed before the mark
    redo = analyze_many([victim.capture], out=copy, network=PROFILE, client=client)
    assert list(redo.run.capture) == [victim.capture]
    after = read_table(copy, "calls", keys={victim.capture_sha256})
    assert _canon(after) == _canon(calls_before)


def test_killing_a_worker_mid_run_loses_no_capture(built, fleet_dir, client, tmp_path):
    out, fleet = built
    root, sources, *_ = fleet_dir
    some = [*list(sources)[:5], root / "site0" / "cut-short.pcap", root / "site1" / "notes.pcap"]
    client.wait_for_workers(2)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    killed, on_victim = [], []

    def kill_once(row):
        if not killed:
            on_victim.extend(client.processing(workers=[victim])[victim])  # its task and those queued to it
            killed.append(pids[victim])
            client.run(_die, workers=[victim], wait=False)

    fresh = tmp_path / "fleet"
    run = analyze_many(some, out=fresh, network=PROFILE, client=client, on_done=kill_once)
    assert killed and on_victim  # the worker died with work on it
    assert len(run.run) == len(some)
    want = {r.capture: r.status for r in fleet.run.itertuples() if r.capture in set(map(str, some))}
    assert len(want) == len(some) and set(want.values()) == {"ok", "damaged", "failed"}
    assert {r.capture: r.status for r in run.captures.itertuples()} == want
    for table in TABLES:
        for p in dataset_files(fresh, table):
            pq.read_table(p)  # no half-written partition
        assert _canon(read_table(fresh, table).sort_values(["capture"], kind="stable")) == _canon(
            read_table(out, table).pipe(lambda d: d[d.capture.isin(want)]).sort_values(["capture"], kind="stable")
        )


def test_in_memory_equals_the_dataset(built, fleet_dir, client):
    out, _fleet = built
    _root, sources, *_ = fleet_dir
    some = list(sources)[:3]
    mem = analyze_many(some, network=PROFILE, client=client)
    assert mem.out is None and sorted(mem.captures.capture) == sorted(some)
    keys = set(mem.captures.capture_sha256)
    for table in ("calls", "findings", "pairs", "streams"):
        a = mem.__getattr__(table)
        b = read_table(out, table, keys=keys)
        assert len(a) == len(b)
        if len(a):
            key = ["capture", *[c for c in ("call", "pair", "stream") if c in a.columns]]
            assert _canon(a.sort_values(key), ()) == _canon(b.sort_values(key), ())


def test_group_by_folder_analyses_the_points_together(client, tmp_path):
    folders = [CAPTURES / "relay-hairpin", CAPTURES / "external-direct"]
    fleet = analyze_many(folders, out=tmp_path / "g", network=PROFILE, client=client, group_by_folder=True)
    assert len(fleet.captures) == 2 and set(fleet.captures.kind) == {"group"}
    for folder in folders:
        members = sorted(folder.glob("*.pcap"))
        row = fleet.captures[fleet.captures.capture == str(folder)].iloc[0]
        assert list(row.files) == [p.name for p in members]
        a = analyze(members, network=PROFILE)
        for table in ("calls", "findings", "pairs", "streams", "flows"):
            got = read_table(tmp_path / "g", table, keys={row.capture_sha256})
            assert _canon(got) == _canon(getattr(a, table)), (folder, table)
            if "file" in got.columns and len(got):
                assert list(got.file_name) == [members[int(i)].name for i in got.file]
        assert list(a.calls.topology) == list(read_table(tmp_path / "g", "calls", keys={row.capture_sha256}).topology)


def test_report_answers_match_the_tables(built):
    out, _fleet = built
    rep = fleet_report(out)
    calls, findings, captures = read_table(out, "calls"), read_table(out, "findings"), read_table(out, "captures")
    v = rep["verdicts per topology"].set_index("topology")["calls"].to_dict()
    assert v == calls.topology.value_counts().to_dict()
    per_code = rep["findings per code and site"].groupby("code")["findings"].sum().to_dict()
    assert per_code == findings.code.value_counts().to_dict()
    by_status = rep["captures by status"].set_index("status")["captures"].to_dict()
    assert by_status == captures.status.value_counts().to_dict()
    bad = rep["failed and damaged captures"]
    assert set(bad.status) == {"failed", "damaged"} and len(bad) == 2
    allocs = read_table(out, "allocations")
    assert rep["relays and transports"]["allocations"].sum() == len(allocs)


def test_a_task_whose_worker_always_dies_is_a_failed_row_and_retry_failed_redoes_it(fleet_dir, client, tmp_path):
    _root, sources, *_ = fleet_dir
    some = list(sources)[:4]
    client.wait_for_workers(2)
    victim = sorted(client.scheduler_info()["workers"])[0]
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    on_victim = []

    def kill_once(row):
        if not on_victim:
            on_victim.extend(client.processing(workers=[victim])[victim])
            client.run(_die, workers=[victim], wait=False)

    try:
        fleet = analyze_many(some, out=tmp_path / "ds", network=PROFILE, client=client, on_done=kill_once)
    finally:
        client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 3))
    assert on_victim and sorted(fleet.captures.capture) == sorted(some)  # every capture has its row
    failed = fleet.captures[fleet.captures.status == "failed"]
    assert len(failed) == len(on_victim)
    assert all(e.startswith("task failed: KilledWorker: ") and "\n" not in e for e in failed.error)
    assert set(fleet.captures.status) <= {"ok", "failed"}
    client.wait_for_workers(2)
    again = analyze_many(some, out=tmp_path / "ds", network=PROFILE, client=client, retry_failed=True)
    assert sorted(again.run.capture) == sorted(failed.capture) and set(again.run.status) == {"ok"}
    assert set(again.captures.status) == {"ok"}


def _profiling(dask_worker) -> tuple[bool, int]:
    import dask

    return dask.config.get("distributed.worker.profile.enabled"), len(dask_worker.profile_history)


def test_the_local_cluster_runs_without_the_profiler_even_after_a_restart():
    """Dask's profiler keeps up to an hour of samples: with it a worker grew by ~0.6 MB per capture here."""
    from analyzer.fleet.run import open_client

    with open_client(1, None) as (client, _dashboard):
        (addr,) = client.scheduler_info()["workers"]
        assert client.run(_profiling) == {addr: (False, 0)}
        client.run(_die, wait=False)
        deadline = time.time() + 60
        while addr in client.scheduler_info()["workers"] and time.time() < deadline:
            time.sleep(0.2)
        client.wait_for_workers(1)
        assert list(client.run(_profiling).values()) == [(False, 0)]
