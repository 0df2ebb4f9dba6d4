"""notebooks/explore.ipynb: public API only, runs top to bottom, and its stored outputs are
what it prints today.

The notebook is committed with its outputs, so that it reads on GitHub and in a viewer
without running it. ``test_stored_outputs_are_current`` runs it and compares: text
outputs must match exactly, and the figure must be there (its pixels depend on
matplotlib's version and fonts, so they are not compared). Regenerate after a change:

    UPDATE_NOTEBOOK=1 python -m pytest tests/test_notebook.py
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPLORE = NOTEBOOKS / "explore.ipynb"
UPDATE = os.environ.get("UPDATE_NOTEBOOK") == "1"

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the test extra")


def code_cells(notebook: object | None = None) -> list[dict]:
    notebook = notebook or nbformat.read(EXPLORE, as_version=4)
    return [c for c in notebook.cells if c.cell_type == "code"]


def shown(cell: dict) -> list[tuple[str, str]]:
    """Return what a reader sees of a cell's outputs: text exactly, figures as present."""
    seen = []
    for o in cell.outputs:
        if o.output_type == "stream":
            seen.append((o.name, o.text))
        elif o.output_type in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "image/png" in data:
                seen.append(("image", "png"))
            elif "text/plain" in data:
                seen.append(("text", data["text/plain"]))
        elif o.output_type == "error":
            seen.append(("error", o.ename))
    return seen


@pytest.fixture(scope="module")
def executed() -> object:
    nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the test extra")
    pytest.importorskip("ipykernel", reason="the notebook runs in an ipykernel kernel")
    notebook = nbformat.read(EXPLORE, as_version=4)
    fresh = copy.deepcopy(notebook)
    client = nbclient.NotebookClient(fresh, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    if UPDATE:
        nbformat.write(fresh, EXPLORE)
    return fresh


def test_notebook_is_valid() -> None:
    notebook = nbformat.read(EXPLORE, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"


def test_notebook_holds_no_logic_of_its_own() -> None:
    # Functions and classes belong in analyzer/, where they are tested and the CLI can use
    # them; the notebook only calls them and shows the results.
    for cell in code_cells():
        assert not re.search(r"^\s*(def|class|async def)\s", cell.source, re.MULTILINE), cell.source
        assert "lambda" not in cell.source, cell.source
        assert not re.search(r"import\s+_|\._[a-z]", cell.source), "private names: " + cell.source


def test_notebook_runs_top_to_bottom(executed: object) -> None:
    first = code_cells(executed)[0]
    text = "".join(t for _, t in shown(first))
    # The first cell earns its place: the outage, when it started, and the zone.
    assert "Signature Expired" in text
    assert "2024-03-12 09:12:00+00:00" in text
    assert "shop.example.com" in text
    images = [s for c in code_cells(executed) for s in shown(c) if s[0] == "image"]
    assert len(images) == 1, "the time-series cell draws one figure"
    assert not [s for c in code_cells(executed) for s in shown(c) if s[0] == "error"]


def test_stored_outputs_are_current(executed: object) -> None:
    stored = code_cells()
    fresh = code_cells(executed)
    assert [c.source for c in stored] == [c.source for c in fresh]
    for before, now in zip(stored, fresh, strict=True):
        assert shown(before) == shown(now), (
            "notebooks/explore.ipynb shows stale outputs; regenerate: UPDATE_NOTEBOOK=1 "
            f"python -m pytest tests/test_notebook.py (cell: {now.source[:60]!r})")
        assert before.execution_count is not None
