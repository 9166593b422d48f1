"""Every notebook runs top to bottom in the fast setting, and is saved clean (kernel python3, no outputs).

Run all of them with `pytest -m notebooks`; each also carries its lecture section's marker.
"""
import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION_OF = {"01_tokenizer": "embeddings", "02_attention_and_encoder": "embeddings", "03_pretraining": "pretraining",
              "04_long_sequences": "long_sequences", "07_ways_to_finetune": "finetuning"}


def notebook_params():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        section = SECTION_OF.get(path.stem)
        marks = [pytest.mark.notebooks] + ([getattr(pytest.mark, section)] if section else [])
        yield pytest.param(path, marks=marks, id=path.stem)


@pytest.mark.parametrize("path", list(notebook_params()))
def test_notebook_is_saved_clean_and_links_its_lecture(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert path.stem in SECTION_OF, f"add {path.stem} to SECTION_OF with its lecture section's marker"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "save notebooks without outputs"
    first = notebook.cells[0].source
    links = re.findall(r"\]\((\.\./[^)#]+)", first)
    assert any(link.startswith("../lectures/") for link in links), "the first cell links its lecture note"
    for link in links:
        assert (path.parent / link).resolve().exists(), f"broken link {link} in the first cell"


@pytest.mark.parametrize("path", list(notebook_params()))
def test_notebook_runs_in_the_fast_setting(path, tmp_path, monkeypatch, capsys):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MINIBERT_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    # run in tmp_path, so whatever the notebook writes lands there and not in the work tree
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    # a notebook takes a minute or more: say which one runs and how long it took, past pytest's output capture
    with capsys.disabled():
        print(f"\n  notebook {path.name}: running ...", end="", flush=True)
    started, outcome = time.perf_counter(), "failed"
    try:
        client.execute()
        outcome = "ran"
    finally:
        with capsys.disabled():
            print(f" {outcome} in {time.perf_counter() - started:.0f} s", flush=True)
