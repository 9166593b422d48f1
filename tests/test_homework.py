"""The homework machinery (minibert/homework, exercises/): the reference passes every exercise, a student copy
fails exactly them and nothing of a solution leaks into it, pasting the solutions back passes, markers that do
not pair are errors naming file and line, a copy never overwrites a folder, and a hang or a crash costs only its
exercise's points. One copy per session; only the exercises' few tests run, each set in one pytest process.

Run with `pytest -m homework`; the full mutation check is `python -m minibert.homework mutants`.
"""
import json
import subprocess
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from minibert.homework import MarkerError, load_exercises
from minibert.homework.grade import grade, gradebook, run_pytest
from minibert.homework.make import make_copy, regions_of, student_notebook, tracked_files
from minibert.homework.mutants import run_mutants
from minibert.homework.regions import find_regions, replace_regions
from minibert.homework.regions import stub as stub_line
from minibert.resources import REPO_ROOT

pytestmark = pytest.mark.homework
EXERCISES = load_exercises(REPO_ROOT)
EXERCISE_TESTS = [test for exercise in EXERCISES.values() for test in exercise.tests]
# tests of the same files that do not touch a solution region: they must still pass in a student copy
OTHERS = ["tests/test_fast_path.py::test_masks_of_two_and_three_dimensions",
          "tests/test_pretraining_masking.py::test_select_positions_by_hand",
          "tests/test_pretraining_data.py::test_truncation_trims_the_longer_segment_from_either_end",
          "tests/test_methods.py::test_trainable_counts_equal_their_formulas",
          "tests/test_qa_windows.py::test_hand_made_example"]


@pytest.fixture(scope="session")
def student_copy(tmp_path_factory):
    return make_copy(REPO_ROOT, tmp_path_factory.mktemp("homework") / "copy")


def outcomes_by_test(root: Path, tests: list[str]) -> dict[str, set[str]]:
    returncode, outcomes, _ = run_pytest(root, tests, timeout=600)
    assert outcomes is not None, f"pytest died (return code {returncode})"
    found: dict[str, set[str]] = {}
    for name, outcome in outcomes:
        found.setdefault(name, set()).add(outcome)
    return found


def test_every_exercise_has_a_region_and_a_text():
    regions = regions_of(REPO_ROOT)
    assert {region.name for region in regions} == set(EXERCISES)
    for exercise in EXERCISES.values():
        assert (REPO_ROOT / exercise.text).is_file()
        assert all(f"`{test.split('::')[-1]}`" in (REPO_ROOT / exercise.text).read_text() or
                   test.split("::")[-1] in (REPO_ROOT / exercise.text).read_text() for test in exercise.tests)


def test_the_copy_fails_exactly_the_exercises_and_passes_the_others(student_copy):
    found = outcomes_by_test(student_copy.out, EXERCISE_TESTS + OTHERS)
    for test in EXERCISE_TESTS:
        assert found[test] == {"failed"}, f"{test} passes without the solution: it grades nothing"
    for test in OTHERS:
        assert found[test] == {"passed"}, f"{test} should not depend on an exercise"


def test_the_copy_stubs_name_their_exercise_and_import(student_copy):
    attention = (student_copy.out / "minibert/model/attention.py").read_text()
    assert '    raise NotImplementedError("exercise attention_kernel: see exercises/embeddings.md")\n' in attention
    assert not (student_copy.out / "exercises/mutations.json").exists(), "it quotes the solutions"
    assert {name: len(regions) for name, regions in student_copy.stubbed.items()} == {
        "attention_kernel": 1, "mlm_corruption": 1, "nsp_pairs": 1, "qa_span_search": 1, "lora_layer": 2}
    for notebook in (student_copy.out / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        assert all(not cell.get("outputs") for cell in cells if cell["cell_type"] == "code"), notebook


def test_no_solution_line_leaks(student_copy):
    """A line of a region may appear in the copy only as often as it appears outside every region of the
    reference (a `return context, probs` elsewhere is not a leak)."""
    files = [name for name in tracked_files(REPO_ROOT) if name.endswith(".py")]
    outside, copy_lines = Counter(), Counter()
    for name in files:
        lines = (REPO_ROOT / name).read_text(encoding="utf-8").split("\n")
        outside.update(line.strip() for line in replace_regions(lines, name, lambda _: "-"))
        copy_lines.update(line.strip() for line in (student_copy.out / name).read_text(encoding="utf-8").split("\n"))
    regions = [region for regions in student_copy.stubbed.values() for region in regions]
    solution = {line.strip() for region in regions for line in region.lines if line.strip()}
    assert len(solution) > 20
    leaked = {line for line in solution if copy_lines[line] > outside[line]}
    assert not leaked


def test_pasting_the_solutions_back_gives_the_reference_which_passes_every_exercise(tmp_path):
    """The solutions pasted over the stubs give the reference's files byte for byte, so one run proves both
    that the reference passes every exercise and that a student who writes the solutions gets every point."""
    pasted = make_copy(REPO_ROOT, tmp_path / "pasted")
    for regions in pasted.stubbed.values():
        for region in regions:
            path = pasted.out / region.where
            stub = region.indent + stub_line(region.name, EXERCISES[region.name].text)
            lines = path.read_text().split("\n")
            where = lines.index(stub)
            path.write_text("\n".join(lines[:where] + list(region.lines) + lines[where + 1:]))
    for name in {region.where for regions in pasted.stubbed.values() for region in regions}:
        without_markers = replace_regions((REPO_ROOT / name).read_text().split("\n"), name, lambda _: None)
        assert (pasted.out / name).read_text() == "\n".join(without_markers)
    found = outcomes_by_test(pasted.out, EXERCISE_TESTS)
    assert set(found) == set(EXERCISE_TESTS), "every listed test exists"
    assert all(outcomes in ({"passed"}, {"skipped"}) for outcomes in found.values()), found  # skipped: absent data
    assert sum(outcomes == {"passed"} for outcomes in found.values()) >= len(EXERCISE_TESTS) - 1


@pytest.mark.parametrize("text, message", [
    ("x = 1\n    ### BEGIN SOLUTION a\ny = 2\n### BEGIN SOLUTION b\n### END SOLUTION\n### END SOLUTION\n",
     "f.py:4: BEGIN SOLUTION inside the region that begins at line 2"),
    ("x = 1\n### BEGIN SOLUTION a\ny = 2\n", "f.py:2: BEGIN SOLUTION a is never closed"),
    ("x = 1\n### END SOLUTION\n", "f.py:2: END SOLUTION without a BEGIN"),
    ("### BEGIN SOLUTION\n### END SOLUTION\n", "f.py:1: BEGIN SOLUTION needs the exercise's name"),
])
def test_markers_that_do_not_pair_are_errors_naming_file_and_line(text, message):
    with pytest.raises(MarkerError, match=message):
        find_regions(text.split("\n"), "f.py")


def test_a_region_becomes_one_stub_at_its_indentation():
    # a list, not a multi-line string: a marker on a line of its own here would be a region of this file
    lines = ["def f(x):", '    """Doc."""', "    ### BEGIN SOLUTION double", "    # the secret", "    return 2 * x",
             "    ### END SOLUTION", ""]
    assert replace_regions(lines, "f.py", lambda name: "exercises/s.md") == [
        "def f(x):", '    """Doc."""', '    raise NotImplementedError("exercise double: see exercises/s.md")', ""]
    assert replace_regions(lines, "f.py", lambda name: None) == [
        "def f(x):", '    """Doc."""', "    # the secret", "    return 2 * x", ""]


def test_a_copy_is_never_written_over_an_existing_folder(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "mine.py").write_text("kept")
    with pytest.raises(FileExistsError, match="never written over"):
        make_copy(REPO_ROOT, tmp_path / "old")
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["mine.py"]


def test_a_hang_or_a_crash_costs_only_its_exercise(tmp_path):
    """A made-up repository of three exercises: one right, one that hangs, one that kills the interpreter."""
    (tmp_path / "exercises").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_fake.py").write_text(textwrap.dedent("""\
        import os, time
        def test_right(): assert 1 + 1 == 2
        def test_hangs(): time.sleep(600)
        def test_crashes(): os._exit(3)
        """))
    table = [{"name": name, "section": "s", "points": points, "timeout": 5 if name == "hangs" else 120,
              "tests": [f"tests/test_fake.py::test_{name}"]} for name, points in
             [("right", 5), ("hangs", 7), ("crashes", 11)]]
    (tmp_path / "exercises" / "points.json").write_text(json.dumps({"exercises": table}))
    results = {r.name: r for r in grade(tmp_path)}
    assert {name: (r.points, r.status) for name, r in results.items()} == {
        "right": (5, "passed"), "hangs": (0, "timeout"), "crashes": (0, "crashed")}
    book = gradebook(tmp_path, list(results.values()))
    assert (book["total"], book["max_total"]) == (5, 23)


def test_cheap_mutants_fail_their_exercise():
    """Two of exercises/mutations.json (the rest: `python -m minibert.homework mutants`). The reference passing
    these tests is checked above, so the baseline run is skipped here."""
    results = run_mutants(REPO_ROOT, ["attention_no_scaling", "corruption_labels_everywhere"], baseline=False,
                          report=lambda _: None)
    assert [(r.id, r.caught, r.status) for r in results] == [
        ("attention_no_scaling", True, "failed"), ("corruption_labels_everywhere", True, "failed")]


def test_the_command_line_refuses_an_existing_folder(tmp_path, capsys):
    from minibert.homework.__main__ import main
    assert main(["make", str(tmp_path)]) == 2
    assert "never written over" in capsys.readouterr().err


def test_sections_choose_what_is_handed_out(tmp_path):
    copy = make_copy(REPO_ROOT, tmp_path / "lora_only", sections=["finetuning"])
    assert set(copy.stubbed) == {"lora_layer"}
    assert list(load_exercises(copy.out)) == ["lora_layer"], "the copy is graded on what it hands out"
    attention = (copy.out / "minibert/model/attention.py").read_text()
    assert "scores = scores.softmax" not in attention and "probs = scores.softmax(dim=-1)" in attention
    assert "SOLUTION" not in attention, "the markers of exercises not handed out are dropped"
    with pytest.raises(ValueError, match="no exercises in section.*tokenizer"):
        make_copy(REPO_ROOT, tmp_path / "other", sections=["tokenizer"])


def test_a_bad_marker_stops_make_before_anything_is_written(tmp_path):
    source = tmp_path / "repo"
    (source / "exercises").mkdir(parents=True)
    (source / "exercises" / "points.json").write_text(json.dumps(
        {"exercises": [{"name": "a", "section": "s", "points": 1, "tests": []}]}))
    (source / "f.py").write_text("def f():\n    ### BEGIN SOLUTION a\n    return 1\n")
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    subprocess.run(["git", "add", "."], cwd=source, check=True)
    with pytest.raises(MarkerError, match=r"^f.py:2: BEGIN SOLUTION a is never closed"):
        make_copy(source, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_notebook_regions_become_stubs_and_outputs_are_cleared():
    notebook = {"cells": [
        {"cell_type": "markdown", "source": ["# Title"]},
        {"cell_type": "code", "execution_count": 3, "outputs": [{"output_type": "stream", "text": ["4"]}],
         "source": ["x = 2\n", "### BEGIN SOLUTION double\n", "y = 2 * x  # the secret\n", "### END SOLUTION\n",
                    "print(y)"]}]}
    student = student_notebook(notebook, "n.ipynb", lambda name: "exercises/s.md")
    code = student["cells"][1]
    assert "".join(code["source"]) == ('x = 2\nraise NotImplementedError("exercise double: see exercises/s.md")\n'
                                       "print(y)")
    assert (code["outputs"], code["execution_count"]) == ([], None)
    with pytest.raises(MarkerError, match="n.ipynb cell 2:2: BEGIN SOLUTION double is never closed"):
        student_notebook({"cells": [{"cell_type": "markdown", "source": []}, {
            "cell_type": "code", "outputs": [], "source": ["x = 1\n", "### BEGIN SOLUTION double\n"]}]},
            "n.ipynb", lambda name: "exercises/s.md")


def test_grading_with_the_reference_tests_ignores_a_students_edited_test(tmp_path):
    """A student 'fixes' the failing test of the made-up exercise; graded with the reference's tests, it fails."""
    def repository(folder, test_body):
        (folder / "exercises").mkdir(parents=True)
        (folder / "tests").mkdir()
        (folder / "tests" / "test_fake.py").write_text(f"from answer import value\ndef test_value(): {test_body}\n")
        (folder / "answer.py").write_text("value = 1\n")
        (folder / "exercises" / "points.json").write_text(json.dumps({"exercises": [
            {"name": "value", "section": "s", "points": 3, "tests": ["tests/test_fake.py::test_value"]}]}))
    reference, student = tmp_path / "reference", tmp_path / "student"
    repository(reference, "assert value == 2")
    subprocess.run(["git", "init", "-q"], cwd=reference, check=True)
    subprocess.run(["git", "add", "."], cwd=reference, check=True)
    repository(student, "assert value == 1")
    assert [r.points for r in grade(student)] == [3]
    assert [r.points for r in grade(student, reference=reference)] == [0]
    assert (student / "tests" / "test_fake.py").read_text().endswith("assert value == 1\n"), "left as it was"
