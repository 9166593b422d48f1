"""minibert is NumPy-free: tensors all the way, in the library, the tests and the notebooks."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.embeddings
ROOT = Path(__file__).resolve().parent.parent
# Built from pieces so that this file does not match itself.
NUMPY_USE = re.compile(r"\bimport " + r"numpy\b|\bfrom " + r"numpy\b|\." + r"numpy\(\)")


@pytest.mark.parametrize("folder", ["minibert", "tests", "notebooks", "benchmarks"])
def test_no_numpy_in(folder):
    files = [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".ipynb"}]
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
                 for p in files for m in NUMPY_USE.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, "NumPy found; use torch instead (.tolist() for matplotlib):\n" + "\n".join(offenders)


def test_the_check_would_catch_numpy():
    assert NUMPY_USE.search("x = t." + "numpy()") and NUMPY_USE.search("imp" + "ort numpy as np")
    assert not NUMPY_USE.search("import torch  # no numpy here")
