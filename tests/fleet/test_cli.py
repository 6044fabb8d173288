"""`callflow fleet` and `callflow fleet-report`, and the dataset's atomic writes (no cluster: --workers 0,
except for the one test that checks the dashboard address is printed)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.fleet import dataset
from tests.conftest import CAPTURES

PROFILE = str(CAPTURES / "intranet-direct" / "network.toml")
TWO = [str(CAPTURES / "relay-hairpin" / "nat-outside.pcap"), str(CAPTURES / "tcp-fallback" / "client-a.pcap")]


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_fleet_command_writes_then_skips(tmp_path):
    out = str(tmp_path / "ds")
    r = _run("fleet", *TWO, "--out", out, "--workers", "0", "--network", PROFILE)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].startswith("2 captures analysed: 2 ok, 0 damaged, 0 failed; 0 already in ")
    assert "captures" not in r.stderr  # no progress bar when stderr is not a terminal
    r = _run("fleet", *TWO, "--out", out, "--workers", "0", "--network", PROFILE)
    assert r.exit_code == 0 and "0 captures analysed" in r.stdout and "; 2 already in " in r.stdout
    rep = _run("fleet-report", out)
    assert rep.exit_code == 0
    for title in (
        "captures by status",
        "verdicts per topology",
        "findings per code and site",
        "relays and transports",
        "selected paths",
        "poor calls",
    ):
        assert title in rep.stdout
    doc = json.loads(_run("fleet-report", out, "--json").stdout)
    verdicts = {r["topology"]: r for r in doc["verdicts per topology"]}
    # relay-hairpin at the NAT: two customer users relayed; tcp-fallback's: the edge drops UDP (README table)
    assert verdicts["intranet-direct"]["findings"] == "relay-hairpin"
    assert verdicts["external-via-relay"]["findings"] == "tcp-fallback"
    relays = {(r["relay"], r["port"], r["transport"]) for r in doc["relays and transports"]}
    assert ("52.112.10.10", 443, "tcp") in relays and ("52.112.10.10", 3478, "udp") in relays


def test_bad_inputs_exit_2(tmp_path):
    r = _run("fleet", str(tmp_path / "missing.pcap"), "--out", str(tmp_path / "ds"), "--workers", "0")
    assert r.exit_code == 2 and "missing.pcap: no such file or folder" in r.stderr
    r = _run("fleet", str(tmp_path / "*.pcapng"), "--out", str(tmp_path / "ds"), "--workers", "0")
    assert r.exit_code == 2 and "no file matches" in r.stderr
    r = _run("fleet", *TWO, "--out", str(tmp_path / "ds"), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert r.exit_code == 2 and "exclude each other" in r.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    r = _run("fleet", *TWO, "--out", str(tmp_path / "busy"), "--workers", "0")
    assert r.exit_code == 2 and "not a callflow fleet dataset" in r.stderr
    r = _run("fleet-report", str(tmp_path / "busy"))
    assert r.exit_code == 2 and "not a callflow fleet dataset" in r.stderr


def test_dashboard_address_printed_when_a_local_cluster_starts(tmp_path):
    r = _run("fleet", TWO[0], "--out", str(tmp_path / "ds"), "--workers", "1", "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("Dask dashboard: http://127.0.0.1:")
    assert "1 captures analysed: 1 ok" in r.stdout


def test_a_failed_write_leaves_no_partition(tmp_path, monkeypatch):
    root = dataset.prepare(tmp_path / "ds")
    table = pa.table({"x": [1, 2, 3]})
    dataset.write_partition(root, "calls", "k", table)

    def half(t, where, **kw):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half)
    with pytest.raises(OSError, match="disk full"):
        dataset.write_partition(root, "calls", "k", pa.table({"x": [9]}))
    assert [p.name for p in (root / "calls" / "k").iterdir()] == ["part-0.parquet"]  # no temporary left
    monkeypatch.undo()
    assert pq.read_table(root / "calls" / "k" / "part-0.parquet").column("x").to_pylist() == [1, 2, 3]


def test_temporaries_of_a_killed_run_are_never_read_and_then_removed(tmp_path):
    root = dataset.prepare(tmp_path / "ds")
    dataset.write_partition(root, "calls", "k", pa.table({"x": [1]}))
    stale = root / "calls" / "j" / ".part-0.parquet.0123.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"PAR1 cut")
    assert list(dataset.read_table(root, "calls").x) == [1]
    dataset.prepare(root)
    assert not stale.exists()


def test_a_file_gone_before_hashing_is_a_failed_row_and_is_tried_again(tmp_path):
    from analyzer.fleet import analyze_many, plan_units
    from analyzer.fleet.task import analyse_unit

    gone = tmp_path / "gone.pcap"
    (unit,) = plan_units([str(gone)])
    assert unit.sha256 is None and unit.key.startswith("path-") and "No such file" in unit.error
    out = dataset.prepare(tmp_path / "ds")
    row = analyse_unit(unit, None, str(out))
    assert row["status"] == "failed" and row["error"] == f"{gone}: No such file or directory"
    assert dataset.committed(out) == {unit.key: "failed"}
    gone.write_bytes((CAPTURES / "relay-hairpin" / "relay.pcap").read_bytes())  # the file arrives after all
    fleet = analyze_many([gone], out=out, workers=0)
    assert list(fleet.captures.status) == ["ok"] and unit.key not in dataset.committed(out)


def test_control_characters_of_a_path_never_reach_the_terminal(tmp_path):
    evil = tmp_path / "evil\x1b[2Jname.pcap"
    evil.write_text("not a capture")
    out = str(tmp_path / "ds")
    r = _run("fleet", str(evil), "--out", out, "--workers", "0")
    assert r.exit_code == 0 and "\x1b" not in r.stdout and "evil\\x1b[2Jname.pcap" in r.stdout
    rep = _run("fleet-report", out)
    assert rep.exit_code == 0 and "\x1b" not in rep.stdout and "\\x1b" in rep.stdout


def test_column_types_follow_the_names_not_the_rows(tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {
            "text": pd.Series(["a", float("nan"), None], dtype=object),
            "nothing": pd.Series([None, None, None], dtype=object),
            "frames": pd.Series([[1, 2], [], None], dtype=object),
            "gaps": pd.Series([[{"start": 1}], [], None], dtype=object),
            "kind": pd.Categorical(["audio", "video", None]),
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    t = dataset.to_arrow(df)
    assert [str(f.type) for f in t.schema] == ["string", "string", "list<item: int64>", "string", "string", "int64"]
    assert t.column("text").to_pylist() == ["a", None, None]
    assert json.loads(t.schema.metadata[b"callflow.json"]) == ["gaps"]
    dataset.write_partition(tmp_path, "streams", "k", t)
    back = dataset.read_table(tmp_path, "streams")
    assert list(back.gaps) == [[{"start": 1}], [], None] and list(back.frames) == [[1, 2], [], None]
    assert list(back.kind.astype(object).where(back.kind.notna(), None)) == ["audio", "video", None]
