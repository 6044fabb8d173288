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


def test_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    out = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "'STUN/TURN success'" in out and "'DTLS flight'" in out  # the timeline's traces
    assert "vpn-internal-direct" in out and "media-over-vpn" in out  # the finding explained
    assert "'stun.parquet'" in out
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 2  # the timeline and the path diagram
