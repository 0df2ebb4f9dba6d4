"""notebooks/explore.ipynb: stored without outputs, public API only, and runs top to bottom."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPLORE = NOTEBOOKS / "explore.ipynb"

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the test extra")


def code_cells() -> list[dict]:
    notebook = nbformat.read(EXPLORE, as_version=4)
    return [c for c in notebook.cells if c.cell_type == "code"]


def test_notebook_is_valid_and_stored_without_outputs() -> None:
    notebook = nbformat.read(EXPLORE, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in code_cells():
        assert cell.outputs == [], "clear the outputs before committing"
        assert cell.execution_count is None, "clear the execution counts before committing"


def test_notebook_holds_no_logic_of_its_own() -> None:
    # Functions and classes belong in analyzer/, where they are tested and the CLI can use
    # them; the notebook only calls them and shows the results.
    for cell in code_cells():
        assert not re.search(r"^\s*(def|class|async def)\s", cell.source, re.MULTILINE), cell.source
        assert "lambda" not in cell.source, cell.source
        assert not re.search(r"import\s+_|\._[a-z]", cell.source), "private names: " + cell.source


def test_notebook_runs_top_to_bottom() -> None:
    nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the test extra")
    pytest.importorskip("ipykernel", reason="the notebook runs in an ipykernel kernel")
    notebook = nbformat.read(EXPLORE, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    first = next(c for c in notebook.cells if c.cell_type == "code")
    shown = "".join(str(o.get("data", {}).get("text/plain", "")) for o in first.outputs)
    # The first cell earns its place: the outage, when it started, and the zone.
    assert "Signature Expired" in shown
    assert "2024-03-12T09:12:00Z" in shown
    assert "shop.example.com" in shown
    images = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1, "the time-series cell draws one figure"
