"""notebooks/fleet.ipynb runs from top to bottom (a real two-worker LocalCluster on every scenario of
captures/, grouped by folder) and shows the README's verdicts from the dataset; it is kept without outputs."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "fleet.ipynb"


def _text(cell) -> str:
    outs = cell.get("outputs", [])
    return "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outs)


def test_fleet_notebook_is_saved_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def test_fleet_notebook_runs(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel and its workers import this checkout's analyzer
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    cells = [_text(c) for c in nb.cells if c.cell_type == "code"]
    assert cells[0].startswith("Dask dashboard: http://")
    folders = len({p.parent for p in REPO.joinpath("captures").rglob("*.pcap*")})
    assert f"(0, {folders})" in cells[1]  # the rerun skips every scenario folder
    verdicts = cells[2]
    # captures/README.md: 5 scenarios are external-via-relay, relay-hairpin is intranet-direct + relay-hairpin
    assert "external-via-relay      5" in verdicts and "relay-hairpin" in verdicts
    assert "media-over-vpn-external  vpn-external-direct  media-over-vpn" in cells[5]
    assert "media-over-vpn-internal  vpn-internal-direct  media-over-vpn" in cells[5]
