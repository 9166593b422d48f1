"""`python -m minibert.homework grade [PATH]`: points per exercise for a copy (or the reference), and a total.

Each exercise's tests run in a pytest process of their own, with the exercise's timeout: a student's code that
hangs, crashes the interpreter or breaks an import costs that exercise's points and nothing else. An exercise
earns its points when every one of its tests passes (a skipped test, such as one whose data is absent, does
not count against it) and at least one ran. The copy's own tests are run, from the copy's folder, so that its
`minibert` is the one imported.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..resources import shared_data_dir
from .exercises import POINTS_FILE, Exercise, load_exercises
from .make import tracked_files


@dataclass
class Result:
    name: str
    section: str
    points: float
    max_points: float
    status: str  # passed, failed, skipped, timeout, crashed (the interpreter died), error (pytest's own)
    passed: int
    failed: int         # failures and errors
    skipped: int
    seconds: float


def run_tests(root: Path, tests: tuple[str, ...] | list[str], timeout: float) -> tuple[str, int, int, int]:
    """(status, passed, failed, skipped) of one pytest process over `tests` in ROOT."""
    returncode, outcomes, _ = run_pytest(root, tests, timeout)
    if returncode is None:
        return "timeout", 0, 0, 0
    if outcomes is None:
        return "crashed", 0, 0, 0
    counts = Counter(outcome for _, outcome in outcomes)
    passed, failed, skipped = counts["passed"], counts["failed"], counts["skipped"]
    if returncode == 0:  # every test skipped (absent data): nothing was checked, so no points
        return ("passed" if passed else "skipped"), passed, failed, skipped
    if returncode in (1, 5) or failed:  # 5: no test ran (a wrong test id, or every one skipped)
        return "failed", passed, failed, skipped
    return ("crashed" if returncode < 0 else "error"), passed, failed, skipped


def run_pytest(root: Path, tests, timeout: float) -> tuple[int | None, list[tuple[str, str]] | None, str]:
    """pytest's return code (None after a timeout), [(test, passed | failed | skipped)] (None when the
    process died before writing its report) and its output. A test is named `file::function`, without its
    parameters."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    if "MINIBERT_DATA" not in env and (data := shared_data_dir()) is not None:
        env["MINIBERT_DATA"] = str(data)  # a copy made elsewhere does not sit beside ../shared/data
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                   "--rootdir", str(root), *tests]
        process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own process group: a timeout ends all of it
        try:
            output = process.communicate(timeout=timeout)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return None, None, process.communicate()[0].decode(errors="replace")
        return process.returncode, (read_outcomes(report) if report.is_file() else None), output


def read_outcomes(report: Path) -> list[tuple[str, str]]:
    """The test cases of a JUnit report; a test module that fails to import is a failed case."""
    outcomes = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        name = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "").split("[")[0]
        outcomes.append((name, "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds
                         else "passed"))
    return outcomes


def grade_exercise(root: Path, exercise: Exercise, timeout: float | None = None) -> Result:
    begin = time.perf_counter()
    status, passed, failed, skipped = run_tests(root, exercise.tests, timeout or exercise.timeout)
    points = exercise.points if status == "passed" else 0.0
    return Result(exercise.name, exercise.section, points, exercise.points, status, passed, failed, skipped,
                  round(time.perf_counter() - begin, 1))


def grade(root: str | Path = ".", names: list[str] | None = None, timeout: float | None = None,
          reference: str | Path | None = None) -> list[Result]:
    """One Result per exercise of ROOT's points table (or of `names`), in the table's order. With `reference`
    (the instructor's repository), a scratch copy of ROOT is graded instead, its tests/ and points table
    replaced by the reference's: a student who edited a test gains nothing by it."""
    root = Path(root).resolve()
    if reference is not None:
        with tempfile.TemporaryDirectory(prefix="minibert-grade-") as scratch:
            copy = with_reference_tests(root, Path(reference).resolve(), Path(scratch) / "copy")
            return grade(copy, names, timeout)
    exercises = load_exercises(root)
    unknown = set(names or []) - set(exercises)
    if unknown:
        raise ValueError(f"no exercise named {', '.join(sorted(unknown))}; the exercises are {', '.join(exercises)}.")
    return [grade_exercise(root, e, timeout) for name, e in exercises.items() if not names or name in names]


def with_reference_tests(root: Path, reference: Path, scratch: Path) -> Path:
    """A scratch copy of ROOT with REFERENCE's tests and REFERENCE's entries (tests, points) for the exercises
    ROOT's own table names (the ones handed out)."""
    handed_out = set(load_exercises(root))
    shutil.copytree(root, scratch, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache"))
    for name in tracked_files(reference):
        if name.startswith("tests/"):
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reference / name, scratch / name)
    table = json.loads((reference / POINTS_FILE).read_text(encoding="utf-8"))
    table["exercises"] = [entry for entry in table["exercises"] if entry["name"] in handed_out]
    (scratch / POINTS_FILE).write_text(json.dumps(table, indent=2), encoding="utf-8")
    return scratch


def gradebook(root: str | Path, results: list[Result]) -> dict:
    return {"path": str(Path(root).resolve()), "total": sum(r.points for r in results),
            "max_total": sum(r.max_points for r in results), "exercises": [asdict(r) for r in results]}


def table(results: list[Result]) -> str:
    rows = [f"{'exercise':<20} {'section':<12} {'points':>11}  {'tests':>9}  status"]
    for r in results:
        rows.append(f"{r.name:<20} {r.section:<12} {r.points:>5g} / {r.max_points:<3g}  "
                    f"{r.passed:>3}/{r.passed + r.failed:<3}    {r.status}")
    total, most = sum(r.points for r in results), sum(r.max_points for r in results)
    rows.append(f"{'total':<33} {total:>5g} / {most:<3g}")
    return "\n".join(rows)


def print_grades(root: str | Path, results: list[Result], as_json: bool) -> None:
    print(json.dumps(gradebook(root, results), indent=2) if as_json else table(results))
