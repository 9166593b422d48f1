"""The README tells the truth about the repository: its links lead somewhere, and its course map marks
exactly the exercise markers that collect no test as "not built yet".

Run with `pytest tests/test_readme.py`.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "README.zh-TW.md", ROOT / "benchmarks" / "README.md",
             *sorted((ROOT / "lectures").glob("*.md")), *sorted((ROOT / "exercises").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_exists(document):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text(encoding="utf-8"))
    missing = [link for link in links if "://" not in link and not (document.parent / link).exists()]
    assert not missing, f"{document.name} links to files that do not exist: {missing}"


def markers_with_tests() -> set[str]:
    """Markers that some test file applies: `pytest.mark.X` or `pytestmark = pytest.mark.X` (or a list)."""
    found = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        found |= set(re.findall(r"pytest\.mark\.([a-z_]+)", path.read_text(encoding="utf-8")))
    return found


def test_course_map_says_which_markers_have_exercises():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    course_map = readme[readme.index("## Course map"):]
    course_map = course_map[:course_map.index("\n## ", 1)]
    rows = [line for line in course_map.splitlines() if re.search(r"`-m [a-z_]+`", line)]
    assert len(rows) == 8, "one row per lecture section"
    with_tests = markers_with_tests()
    for row in rows:
        marker = re.search(r"`-m ([a-z_]+)`", row).group(1)
        said_missing = "not built yet" in row.split("|")[-2]
        assert said_missing == (marker not in with_tests), (
            f"marker {marker!r}: the README says {'not built yet' if said_missing else 'built'}, but "
            f"{'tests use it' if marker in with_tests else 'no test uses it'}")
