"""notebooks/investigate.ipynb runs from top to bottom (nbclient), so it never rots; it is kept without
outputs in the repository."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "investigate.ipynb"


def _text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(str(o.get("text", "")))
        parts.append(str(o.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def test_notebook_is_saved_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


def test_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's analyzer
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    out = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    # a real scenario with all its capture points, its verdict and finding with file-qualified frames
    assert "<Analysis of 3 capture(s): client-a.pcap, nat-outside.pcap, relay.pcap>" in out
    assert "external-via-relay" in out and "direct-path-blocked" in out
    assert "client-a.pcap#10" in out and "nat-outside.pcap#7" in out  # tshark: the dropped direct checks
    assert "session seen in: ['client-a.pcap', 'nat-outside.pcap', 'relay.pcap']" in out  # multi-point view
    assert "first check: nat-outside.pcap#7" in out
    assert "jitter_ms_max" in out and "mos" in out and "quality finding" in out  # quality
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 3  # timeline, ladder, path diagram
    # each also carries HTML with the figure, which `jupyter nbconvert --to html` keeps
    assert all("Plotly.newPlot" in o["data"]["text/html"] for o in figures)
