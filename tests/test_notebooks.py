"""Every notebook runs top to bottom in the fast setting, within its time, draws every figure it makes, and is
saved clean (kernel python3, no outputs).

Run all of them with `pytest -m notebooks`; each also carries its lecture section's marker.
"""
import base64
import io
import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION_OF = {"01_tokenizer": "embeddings", "02_attention_and_encoder": "embeddings", "03_pretraining": "pretraining",
              "04_long_sequences": "long_sequences", "07_ways_to_finetune": "finetuning"}
# A generous limit for one notebook in the fast setting (about a minute on a quiet 2-core laptop): a notebook
# that needs more has lost its fast setting. On a machine that other jobs share, the limit stretches by the
# load per core (see `time_limit`), so the test measures the notebook and not its neighbours.
NOTEBOOK_SECONDS = 240
# Headless and still drawn: matplotlib's inline backend renders each figure with Agg into an image/png output,
# where the plain Agg backend would draw nothing a test could see.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
MAKES_A_FIGURE = re.compile(r"\bplt\.(subplots|figure|show)\(|\bplot_loss_curves\(")


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


def ink(png: bytes) -> tuple[tuple[int, int], float]:
    """(width, height) of a PNG and the share of its pixels that are not background white."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()  # 256 counts of grey levels
    return image.size, 1 - sum(histogram[250:]) / sum(histogram)


@pytest.mark.notebooks
def test_ink_tells_a_blank_figure_from_a_drawn_one():
    from PIL import Image, ImageDraw

    def png_of(image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    blank = Image.new("RGB", (200, 100), "white")
    assert ink(png_of(blank)) == ((200, 100), 0.0)
    drawn = blank.copy()
    ImageDraw.Draw(drawn).rectangle([0, 0, 99, 99], fill="black")  # half of the pixels
    size, share = ink(png_of(drawn))
    assert size == (200, 100) and share == pytest.approx(0.5)


def load_per_core() -> float:
    """Runnable jobs per core (1.0: every core busy), the larger of the 1- and 5-minute averages, so that a
    notebook of several minutes is judged by the load it ran under; 0 where the system does not say."""
    try:
        return max(os.getloadavg()[:2]) / (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return 0.0


def time_limit(load: float) -> float:
    """NOTEBOOK_SECONDS on a machine no busier than one job per core, stretched by the load beyond that."""
    return NOTEBOOK_SECONDS * max(1.0, load)


@pytest.mark.notebooks
def test_time_limit_stretches_only_on_a_busy_machine():
    assert time_limit(0.0) == time_limit(1.0) == NOTEBOOK_SECONDS
    assert time_limit(3.0) == 3 * NOTEBOOK_SECONDS


def figure_cells(notebook) -> list[tuple[int, object]]:
    return [(k, cell) for k, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and MAKES_A_FIGURE.search(cell.source)]


@pytest.mark.parametrize("path", list(notebook_params()))
def test_notebook_runs_in_the_fast_setting(path, tmp_path, monkeypatch, capsys):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib_inline")
    monkeypatch.setenv("MINIBERT_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", INLINE_BACKEND)
    notebook = nbformat.read(path, as_version=4)
    load_before = load_per_core()
    # run in tmp_path, so whatever the notebook writes lands there and not in the work tree; a cell that hangs
    # fails on the cell timeout, the notebook's own time is checked below
    client = nbclient.NotebookClient(notebook, timeout=int(3 * time_limit(load_before)), kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with capsys.disabled():
        print(f"\n{path.name}: running in the fast setting (load {load_before:.1f} per core) ...", flush=True)
    begin = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - begin
    load = max(load_before, load_per_core())
    limit = time_limit(load)
    with capsys.disabled():
        print(f"{path.name}: ran in {seconds:.0f} s (limit {limit:.0f} s at load {load:.1f} per core)", flush=True)
    assert seconds < limit, (f"{path.name} took {seconds:.0f} s in the fast setting, more than {limit:.0f} s "
                             f"({NOTEBOOK_SECONDS} s x load {load:.1f} per core): make its MINIBERT_FAST=1 setting "
                             "lighter")

    for k, cell in figure_cells(notebook):
        pngs = [base64.b64decode(output["data"]["image/png"]) for output in cell.outputs
                if "image/png" in output.get("data", {})]
        assert pngs, f"cell {k} of {path.name} makes a figure but no image came out:\n{cell.source[:200]}"
        for png in pngs:
            (width, height), share = ink(png)
            assert width >= 200 and height >= 150, f"cell {k} of {path.name}: a {width}x{height} figure"
            assert share > 0.01, f"cell {k} of {path.name}: the figure is blank ({share:.2%} of it drawn)"


@pytest.mark.notebooks
def test_figure_cells_are_found():
    """The pattern that says which cells must show a figure finds pyplot figures and the loss-curve helper."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("fig, ax = plt.subplots()"), nbformat.v4.new_code_cell("print(1)"),
        nbformat.v4.new_code_cell("plot_loss_curves({'a': result})"), nbformat.v4.new_markdown_cell("plt.show()")])
    assert [k for k, _ in figure_cells(notebook)] == [0, 2]
